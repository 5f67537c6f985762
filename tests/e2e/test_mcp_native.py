"""Hosted MCP on Parley's own API (flow B: ``process`` and ``submit_tool_output``) and on
Assistants: an assistant with an ``mcp`` tool, the server running its calls, and a call that
waits for approval answered with ``approve`` instead of an output. A real MCP server on
loopback; the fake upstream's ``auto`` model calls the first tool it is offered."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from parley.testing.fake_upstream import tool_results_text
from tests.e2e.helpers import (
    assert_error,
    assert_invalid,
    create_assistant,
    get_run,
    list_all,
    messages,
    stream_process,
    wait_run,
)
from tests.mcp.conftest import _servers

AUTO = "fake/auto:2"


@pytest.fixture(scope="module")
def mcp_url() -> Iterator[str]:
    with _servers() as start:
        yield start()


def mcp_tool(url: str, **fields: Any) -> dict[str, Any]:
    return {
        "type": "mcp",
        "server_label": "tests",
        "server_url": url,
        "allowed_tools": ["echo"],
        **fields,
    }


def test_an_assistant_runs_an_mcp_tool_in_its_turn(http: httpx.Client, mcp_url: str) -> None:
    bot = create_assistant(http, AUTO, tools=[mcp_tool(mcp_url, require_approval="never")])
    assert bot["tools"][0]["type"] == "mcp" and "headers" not in bot["tools"][0]
    turn = stream_process(http, assistant_id=bot["id"], content="say it")
    assert turn.final_status == "completed"
    hosted = [e.data for e in turn.of_type("hosted_tool")]
    assert [(e["phase"], e["item"]["type"]) for e in hosted] == [
        ("started", "mcp_list_tools"),
        ("done", "mcp_list_tools"),
        ("started", "mcp_call"),
        ("done", "mcp_call"),
    ]
    assert hosted[-1]["item"]["output"] == "text 0"
    assert turn.text == tool_results_text([("echo", "text 0")])


def test_an_approval_in_flow_b(http: httpx.Client, mcp_url: str) -> None:
    bot = create_assistant(http, AUTO, tools=[mcp_tool(mcp_url)])
    first = stream_process(http, assistant_id=bot["id"], content="say it")
    assert first.final_status == "action_required"
    (item,) = first.manifest
    assert item["approval"] == {"type": "mcp", "server_label": "tests", "name": "echo"}
    assert item["action_id"].startswith("mcpr_")
    run = get_run(http, first.run_id)
    (waiting,) = run["required_action"]["actions"]
    assert waiting["approval"] == item["approval"]
    assert run["required_action"]["submit_tool_outputs"]["tool_calls"] == []
    plain = http.post("/submit_tool_output", json={"action_id": item["action_id"], "output": "x"})
    assert plain.status_code == 400 and plain.json()["error"]["code"] == "approval_expected"
    both = http.post(
        "/submit_tool_output",
        json={"action_id": item["action_id"], "output": "x", "approve": True},
    )
    assert both.status_code in (400, 422), both.text
    answer = http.post(
        "/submit_tool_output", json={"action_id": item["action_id"], "approve": True}
    )
    assert answer.status_code == 200 and answer.json()["status"] == "queued", answer.text
    second = stream_process(http, run_id=first.run_id)
    assert second.final_status == "completed"
    done = [e.data for e in second.of_type("hosted_tool") if e.data["phase"] == "done"]
    assert done[-1]["item"]["approval_request_id"] == item["action_id"]
    assert second.text == tool_results_text([("echo", "text 0")])


def test_an_assistant_keeps_no_secret(http: httpx.Client, mcp_url: str) -> None:
    tool = mcp_tool(mcp_url, headers={"X-Key": "s3cret"})
    answer = http.post("/assistants", json={"model": AUTO, "tools": [tool]})
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["param"] == "tools[0].headers" and "s3cret" not in answer.text


def test_the_sdk_answers_an_approval_with_its_callback(
    server: Any, user_key: str, mcp_url: str
) -> None:
    from parley.sdk import Client

    asked: list[Any] = []

    def approve(action: Any) -> bool:
        asked.append(action)
        return True

    with Client(base_url=server.base_url, api_key=user_key) as client:
        bot = client.assistants.create(model=AUTO, tools=[mcp_tool(mcp_url)])
        result = client.respond(assistant_id=bot.id, content="say it", approve=approve)
        assert result.text == tool_results_text([("echo", "text 0")])
        (action,) = asked
        assert action.approval == {"type": "mcp", "server_label": "tests", "name": "echo"}
        # The call ran in the second turn: the items of every turn, in order.
        assert [i["type"] for i in result.items] == ["mcp_list_tools", "mcp_call"]
        assert result.items[-1]["approval_request_id"] == action.action_id
        # No callback: the call is denied, and the model told so.
        denied = client.respond(assistant_id=bot.id, content="say it")
        assert "did not approve" in denied.text


def test_a_whole_turn_and_its_messages_hold_the_items(http: httpx.Client, mcp_url: str) -> None:
    """``"stream": false``: the turn's result carries the items of the tools the server ran
    (``items``), and the thread's messages (all of them) the item each holds (``item``)."""
    bot = create_assistant(http, AUTO, tools=[mcp_tool(mcp_url, require_approval="never")])
    answer = http.post(
        "/process", json={"assistant_id": bot["id"], "content": "say it", "stream": False}
    )
    assert answer.status_code == 200, answer.text
    turn = answer.json()
    assert turn["status"] == "completed", turn
    assert [(i["type"], i["status"]) for i in turn["items"]] == [
        ("mcp_list_tools", "completed"),
        ("mcp_call", "completed"),
    ]
    assert turn["items"][1]["output"] == "text 0"
    listed = http.get(
        f"/threads/{turn['thread_id']}/messages", params={"order": "asc", "all_messages": True}
    )
    assert listed.status_code == 200, listed.text
    held = [m["item"] for m in listed.json()["data"] if m.get("item")]
    assert [i["id"] for i in held] == [i["id"] for i in turn["items"]]


#: What the model is told of a call denied with the reason "not now", whichever door the
#: denial came through.
DENIED = "Not run: the user did not approve this call. The reason given: not now"


def _deny_through_responses(http: httpx.Client, mcp_url: str) -> str:
    """Asked on ``/v1/responses``, denied with an ``mcp_approval_response``: its run's id."""
    tool = mcp_tool(mcp_url, require_approval="always")
    asked = http.post("/responses", json={"model": AUTO, "input": "say it", "tools": [tool]})
    assert asked.status_code == 200, asked.text
    request = asked.json()["output"][-1]
    assert request["type"] == "mcp_approval_request"
    denial = {
        "type": "mcp_approval_response",
        "approval_request_id": request["id"],
        "approve": False,
        "reason": "not now",
    }
    body = {"model": AUTO, "input": [denial], "tools": [tool]}
    done = http.post("/responses", json={**body, "previous_response_id": asked.json()["id"]})
    assert done.status_code == 200 and done.json()["status"] == "completed", done.text
    return str(done.json()["id"])


def _deny_through_native(http: httpx.Client, mcp_url: str) -> str:
    """Asked in a native run, denied on ``/v1/runs/{id}/submit_tool_outputs``."""
    bot = create_assistant(http, AUTO, tools=[mcp_tool(mcp_url)])
    first = stream_process(http, assistant_id=bot["id"], content="say it")
    (item,) = first.manifest
    denial = {"tool_call_id": item["tool_call_id"], "approve": False, "reason": "not now"}
    answer = http.post(f"/runs/{first.run_id}/submit_tool_outputs", json={"tool_outputs": [denial]})
    assert answer.status_code == 200 and answer.json()["status"] == "queued", answer.text
    assert stream_process(http, run_id=first.run_id).final_status == "completed"
    return first.run_id


def _deny_through_assistants(http: httpx.Client, mcp_url: str) -> str:
    """Asked in an Assistants run, denied on its ``submit_tool_outputs``."""
    bot = create_assistant(http, AUTO, tools=[mcp_tool(mcp_url)])
    body = {"assistant_id": bot["id"], "thread": {"messages": [{"role": "user", "content": "hi"}]}}
    created = http.post("/threads/runs", json=body)
    assert created.status_code == 200, created.text
    run = wait_run(http, created.json()["id"], {"requires_action"})
    (action,) = run["required_action"]["actions"]
    assert action["approval"] is not None
    path = f"/threads/{run['thread_id']}/runs/{run['id']}/submit_tool_outputs"
    denial = {"tool_call_id": action["tool_call_id"], "approve": False, "reason": "not now"}
    answer = http.post(path, json={"tool_outputs": [denial]})
    assert answer.status_code == 200, answer.text
    assert wait_run(http, run["id"])["status"] == "completed"
    return str(run["id"])


@pytest.mark.parametrize(
    "deny", [_deny_through_responses, _deny_through_native, _deny_through_assistants]
)
def test_a_denial_keeps_its_reason_through_either_door(
    http: httpx.Client, upstream: Any, mcp_url: str, deny: Any
) -> None:
    """A call denied with a reason, through an ``mcp_approval_response`` or through
    ``submit_tool_outputs`` (native or Assistants), is not run: the thread keeps the same
    result, which tells the model the reason, and the model answers after it."""
    before = len(upstream.requests)
    run_id = deny(http, mcp_url)
    thread_id = get_run(http, run_id)["thread_id"]
    kept = [(m["role"], m["content"]) for m in messages(http, thread_id)]
    assert ("tool", DENIED) in kept, kept
    assert kept[-1] == ("assistant", tool_results_text([("echo", DENIED)]))
    told = upstream.requests[-1]["messages"][-1]
    assert (told["role"], told["content"]) == ("tool", DENIED)
    assert len(upstream.requests) - before == 2  # the call asked for, then the answer


def test_a_reason_goes_with_an_approval_only(http: httpx.Client, mcp_url: str) -> None:
    bot = create_assistant(http, AUTO, tools=[mcp_tool(mcp_url)])
    first = stream_process(http, assistant_id=bot["id"], content="say it")
    (item,) = first.manifest
    given = {"action_id": item["action_id"], "output": "x", "reason": "why"}
    assert_invalid(http.post("/submit_tool_output", json=given))
    denial = {"action_id": item["action_id"], "approve": False, "reason": "not now"}
    answer = http.post("/submit_tool_output", json=denial)
    assert answer.status_code == 200 and answer.json()["status"] == "queued", answer.text
    # Answered already: approving it now is a second, different answer.
    again = http.post("/submit_tool_output", json={"action_id": item["action_id"], "approve": True})
    assert_error(again, 400, "duplicate_tool_output")
    # The same denial again is a repeat, and changes nothing: one approval is kept.
    assert http.post("/submit_tool_output", json=denial).status_code == 200
    thread_id = get_run(http, first.run_id)["thread_id"]
    items = list_all(http, f"/conversations/{thread_id}/items", order="asc")
    kept = [i for i in items if i["type"] == "mcp_approval_response"]
    assert [(i["approve"], i["reason"]) for i in kept] == [(False, "not now")]


@pytest.mark.parametrize(
    "deny", [_deny_through_responses, _deny_through_native, _deny_through_assistants]
)
def test_a_denial_reads_the_same_through_either_door(
    http: httpx.Client, mcp_url: str, deny: Any
) -> None:
    """The thread of a call denied with a reason, read as a conversation, holds the approval
    request and its ``mcp_approval_response`` (``approve: false``, the reason) whichever
    door the denial came through; no message list shows that answer as a message."""
    thread_id = get_run(http, deny(http, mcp_url))["thread_id"]
    items = list_all(http, f"/conversations/{thread_id}/items", order="asc")
    assert [i["type"] for i in items] == [
        "message",
        "mcp_list_tools",
        "mcp_approval_request",
        "mcp_approval_response",
        "function_call_output",
        "message",
    ]
    request, response = items[2], items[3]
    assert response["approval_request_id"] == request["id"]
    assert (response["approve"], response["reason"]) == (False, "not now")
    one = http.get(f"/conversations/{thread_id}/items/{response['id']}")
    assert one.status_code == 200 and one.json() == response, one.text
    listed = list_all(http, f"/threads/{thread_id}/messages", order="asc")
    assert [m["role"] for m in listed] == ["user", "assistant"]
    every = messages(http, thread_id)
    assert not [m for m in every if m["role"] == "user" and not m["content"]], every


def test_an_approval_keeps_its_reason_on_submit_tool_outputs(
    http: httpx.Client, mcp_url: str
) -> None:
    """A reason given with ``approve: true`` is kept with the approval, and the call it
    approved runs after it."""
    bot = create_assistant(http, AUTO, tools=[mcp_tool(mcp_url)])
    first = stream_process(http, assistant_id=bot["id"], content="say it")
    (item,) = first.manifest
    given = {"tool_call_id": item["tool_call_id"], "approve": True, "reason": "looks fine"}
    answer = http.post(f"/runs/{first.run_id}/submit_tool_outputs", json={"tool_outputs": [given]})
    assert answer.status_code == 200, answer.text
    assert stream_process(http, run_id=first.run_id).final_status == "completed"
    thread_id = get_run(http, first.run_id)["thread_id"]
    items = list_all(http, f"/conversations/{thread_id}/items", order="asc")
    kinds = [i["type"] for i in items]
    assert kinds[2:5] == ["mcp_approval_request", "mcp_approval_response", "mcp_call"], kinds
    response, call = items[3], items[4]
    assert (response["approve"], response["reason"]) == (True, "looks fine")
    assert response["approval_request_id"] == call["approval_request_id"] == item["action_id"]


def test_the_sdk_callback_gives_a_reason(
    http: httpx.Client, server: Any, user_key: str, upstream: Any, mcp_url: str
) -> None:
    """An ``approve`` callback that returns a ``Decision`` with a reason: the model is told
    it, and the thread keeps it with the approval."""
    import parley
    from parley.sdk import Client

    def approve(action: Any) -> parley.Decision:
        return parley.Decision(approve=False, reason="not now")

    with Client(base_url=server.base_url, api_key=user_key) as client:
        bot = client.assistants.create(model=AUTO, tools=[mcp_tool(mcp_url)])
        result = client.respond(assistant_id=bot.id, content="say it", approve=approve)
        told = upstream.requests[-1]["messages"][-1]
        assert (told["role"], told["content"]) == ("tool", DENIED)
        assert result.text == tool_results_text([("echo", DENIED)])
        assert [r.output for r in result.tool_results] == ["denied"]
    assert result.thread_id is not None
    items = list_all(http, f"/conversations/{result.thread_id}/items", order="asc")
    (response,) = [i for i in items if i["type"] == "mcp_approval_response"]
    assert (response["approve"], response["reason"]) == (False, "not now")


async def test_the_async_sdk_callback_gives_a_reason(
    server: Any, user_key: str, upstream: Any, mcp_url: str
) -> None:
    """``AsyncClient.respond`` alike, with a coroutine callback."""
    import parley
    from parley.sdk import AsyncClient

    async def approve(action: Any) -> parley.Decision:
        return parley.Decision(approve=False, reason="not now")

    async with AsyncClient(base_url=server.base_url, api_key=user_key) as client:
        bot = await client.assistants.create(model=AUTO, tools=[mcp_tool(mcp_url)])
        result = await client.respond(assistant_id=bot.id, content="say it", approve=approve)
    told = upstream.requests[-1]["messages"][-1]
    assert (told["role"], told["content"]) == ("tool", DENIED)
    assert result.text == tool_results_text([("echo", DENIED)])
