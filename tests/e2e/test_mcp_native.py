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
from tests.e2e.helpers import create_assistant, get_run, stream_process
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
