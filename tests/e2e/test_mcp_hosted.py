"""Remote MCP tools the server runs (``{"type": "mcp"}`` on ``/v1/responses``): against
``parley serve`` (which allows MCP servers on 127.0.0.1), a real MCP server on loopback over
streamable HTTP, and the fake upstream's ``auto`` model, which calls the first tool it is
offered and answers with the results it is given."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from parley.testing.fake_upstream import tool_results_text
from tests.e2e.responses_helpers import create, get, openai_error, stream_create
from tests.mcp.conftest import Serve, _servers

AUTO = "fake/auto:2"


@pytest.fixture(scope="module")
def serve() -> Iterator[Serve]:
    with _servers() as start:
        yield start


@pytest.fixture(scope="module")
def mcp_url(serve: Serve) -> str:
    return serve()


def mcp_tool(url: str, **fields: Any) -> dict[str, Any]:
    return {"type": "mcp", "server_label": "tests", "server_url": url, **fields}


def kinds(output: list[dict[str, Any]]) -> list[str]:
    return [item["type"] for item in output]


def upstream_requests(upstream: Any, since: int) -> list[dict[str, Any]]:
    return list(upstream.requests[since:])


def test_a_call_without_approval_runs_in_the_turn(
    http: httpx.Client, upstream: Any, mcp_url: str
) -> None:
    before = len(upstream.requests)
    tool = mcp_tool(mcp_url, allowed_tools=["echo"], require_approval="never")
    response = create(http, model=AUTO, input="say it", tools=[tool])
    assert response["status"] == "completed", response
    listed, call, message = response["output"]
    assert listed["type"] == "mcp_list_tools" and listed["server_label"] == "tests"
    assert [t["name"] for t in listed["tools"]] == ["echo"]
    assert listed["tools"][0]["input_schema"]["properties"] == {"text": {"type": "string"}}
    assert listed.get("error") is None and "status" not in listed
    assert call["type"] == "mcp_call" and call["id"].startswith("mcp_")
    assert (call["name"], call["server_label"], call["status"]) == ("echo", "tests", "completed")
    assert json.loads(call["arguments"]) == {"text": "text 0"}
    assert (call["output"], call["error"]) == ("text 0", None)
    assert message["type"] == "message"
    assert message["content"][0]["text"] == tool_results_text([("echo", "text 0")])
    # The model saw the server's tool as a function, then its result.
    first, second = upstream_requests(upstream, before)
    assert [t["function"]["name"] for t in first["tools"]] == ["echo"]
    assert second["messages"][-1] == {
        "role": "tool",
        "tool_call_id": first_call_id(second),
        "content": "text 0",
    }
    # The stored response shows the same output; the tool is answered back, no secrets.
    assert get(http, response["id"])["output"] == response["output"]
    assert response["tools"] == [
        {
            "type": "mcp",
            "server_label": "tests",
            "server_url": mcp_url,
            "server_description": None,
            "allowed_tools": ["echo"],
            "require_approval": "never",
            "headers": None,
        }
    ]


def first_call_id(request: dict[str, Any]) -> str:
    calls = [m for m in request["messages"] if m.get("tool_calls")]
    return str(calls[-1]["tool_calls"][0]["id"])


def test_the_stream_shows_the_list_and_the_call(http: httpx.Client, mcp_url: str) -> None:
    tool = mcp_tool(mcp_url, allowed_tools=["echo"], require_approval="never")
    events = stream_create(http, model=AUTO, input="say it", tools=[tool])
    names = [e["type"] for e in events]
    start = names.index("response.mcp_list_tools.in_progress")
    assert names[start - 1 : start + 3] == [
        "response.output_item.added",
        "response.mcp_list_tools.in_progress",
        "response.mcp_list_tools.completed",
        "response.output_item.done",
    ]
    at = names.index("response.mcp_call.in_progress")
    assert names[at - 1 : at + 6] == [
        "response.output_item.added",
        "response.mcp_call.in_progress",
        "response.mcp_call_arguments.delta",
        "response.mcp_call_arguments.done",
        "response.mcp_call.completed",
        "response.output_item.done",
        "response.output_item.added",  # the answer's message
    ]
    added = events[at - 1]
    assert added["item"]["type"] == "mcp_call" and added["item"]["status"] == "in_progress"
    assert added["output_index"] == 1
    done = events[at + 4]
    assert done["item"]["output"] == "text 0" and done["item"]["status"] == "completed"
    final = events[-1]["response"]
    assert kinds(final["output"]) == ["mcp_list_tools", "mcp_call", "message"]


def test_a_conversation_lists_a_server_once(
    http: httpx.Client, upstream: Any, mcp_url: str
) -> None:
    tool = mcp_tool(mcp_url, allowed_tools=["echo"], require_approval="never")
    first = create(http, model=AUTO, input="say it", tools=[tool])
    again = create(http, model=AUTO, input="again", tools=[tool], previous_response_id=first["id"])
    assert kinds(again["output"]) == ["mcp_call", "message"], again["output"]


def test_a_tool_error_and_a_server_that_is_not_there(http: httpx.Client, serve: Serve) -> None:
    url = serve()
    failing = mcp_tool(url, allowed_tools=["fail"], require_approval="never")
    response = create(http, model=AUTO, input="go", tools=[failing])
    call = response["output"][1]
    assert call["status"] == "failed" and call["output"] is None
    assert call["error"] == {
        "type": "mcp_tool_execution_error",
        "content": [{"type": "text", "text": "message 0"}],
    }
    gone = mcp_tool("http://127.0.0.1:9/mcp", require_approval="never")
    response = create(http, model=AUTO, input="go", tools=[gone])
    assert response["status"] == "completed"
    listed = response["output"][0]
    assert listed["type"] == "mcp_list_tools" and listed["tools"] == []
    assert "could not connect" in listed["error"]


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://10.0.0.1/mcp", "private"),
        ("http://169.254.169.254/latest", "metadata"),
        ("http://[::1]/mcp", "loopback"),
        ("ftp://example.com/mcp", "scheme"),
    ],
)
def test_a_server_url_that_may_not_be_reached_is_a_400(
    http: httpx.Client, url: str, why: str
) -> None:
    answer = http.post("/responses", json={"model": AUTO, "input": "x", "tools": [mcp_tool(url)]})
    error = openai_error(answer, 400, "tools[0].server_url", "invalid_value")
    assert why in error["message"], error


def test_a_bad_mcp_tool_is_a_400_naming_its_field(http: httpx.Client, mcp_url: str) -> None:
    cases = [
        ({"server_label": "bad label"}, "tools[0].server_label"),
        ({"require_approval": "sometimes"}, "tools[0].require_approval"),
        ({"allowed_tools": "echo"}, "tools[0].allowed_tools"),
        ({"headers": {"X": 1}}, "tools[0].headers"),
        ({"connector_id": "connector_gmail"}, "tools[0].connector_id"),
    ]
    for fields, param in cases:
        body = {"model": AUTO, "input": "x", "tools": [mcp_tool(mcp_url, **fields)]}
        answer = http.post("/responses", json=body)
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["param"] == param, answer.text
    unknown = {"model": AUTO, "input": "x", "tools": [{"type": "mcp", "server_label": "nope"}]}
    answer = http.post("/responses", json=unknown)
    assert answer.status_code == 400 and answer.json()["error"]["param"] == "tools[0].server_url"


def test_a_tool_list_given_back_that_could_not_be_used_is_a_400(
    http: httpx.Client, mcp_url: str
) -> None:
    """A client's ``mcp_list_tools`` stands for the server's list: one whose tools the
    turn could not offer, or without an id, is refused before anything is stored (the turn
    failed on it, and reading it back was a 500)."""
    echo = {"name": "echo", "input_schema": {"type": "object", "properties": {}}}
    good = {"type": "mcp_list_tools", "id": "mcpl_given", "server_label": "tests", "tools": [echo]}
    cases = [
        ({"tools": ["echo"]}, "input[1].tools"),
        ({"tools": "echo"}, "input[1].tools"),
        ({"tools": [{"input_schema": {}}]}, "input[1].tools"),
        ({"tools": [{"name": "echo", "input_schema": "text"}]}, "input[1].tools"),
        ({"id": None}, "input[1].id"),
        ({"id": {"an": "object"}}, "input[1].id"),
    ]
    tool = mcp_tool(mcp_url, allowed_tools=["echo"], require_approval="never")
    for fields, param in cases:
        given = [{"role": "user", "content": "say it"}, {**good, **fields}]
        answer = http.post("/responses", json={"model": AUTO, "input": given, "tools": [tool]})
        openai_error(answer, 400, param, "invalid_value")
    # The list given back well is the turn's: the server is not asked again, its echo runs.
    listed = create(
        http, model=AUTO, input=[{"role": "user", "content": "say it"}, good], tools=[tool]
    )
    assert kinds(listed["output"]) == ["mcp_call", "message"], listed["output"]


# ----------------------------------------------------------------------------- approvals


def test_a_call_that_needs_approval_waits_for_it_then_runs(
    http: httpx.Client, upstream: Any, mcp_url: str
) -> None:
    tool = mcp_tool(mcp_url, allowed_tools=["echo"])  # approval: "always", by default
    asked = create(http, model=AUTO, input="say it", tools=[tool])
    assert asked["status"] == "completed"
    assert kinds(asked["output"]) == ["mcp_list_tools", "mcp_approval_request"]
    request = asked["output"][1]
    assert request["id"].startswith("mcpr_") and request["server_label"] == "tests"
    assert (request["name"], json.loads(request["arguments"])) == ("echo", {"text": "text 0"})
    before = len(upstream.requests)
    approval = {
        "type": "mcp_approval_response",
        "approval_request_id": request["id"],
        "approve": True,
    }
    done = create(
        http, model=AUTO, input=[approval], tools=[tool], previous_response_id=asked["id"]
    )
    assert kinds(done["output"]) == ["mcp_call", "message"], done["output"]
    call = done["output"][0]
    assert call["approval_request_id"] == request["id"]
    assert (call["output"], call["status"]) == ("text 0", "completed")
    assert done["output"][1]["content"][0]["text"] == tool_results_text([("echo", "text 0")])
    (sent,) = upstream_requests(upstream, before)  # one model call: the tool ran first
    assert sent["messages"][-1]["role"] == "tool" and sent["messages"][-1]["content"] == "text 0"
    # The approval is answered: sending it again finds nothing waiting.
    again = http.post(
        "/responses",
        json={
            "model": AUTO,
            "input": [approval],
            "tools": [tool],
            "previous_response_id": done["id"],
        },
    )
    openai_error(again, 400, "input", "approval_request_not_found")


def test_a_denied_call_is_not_run_and_the_model_is_told(
    http: httpx.Client, upstream: Any, mcp_url: str
) -> None:
    tool = mcp_tool(mcp_url, allowed_tools=["echo"], require_approval="always")
    asked = create(http, model=AUTO, input="say it", tools=[tool])
    request = asked["output"][-1]
    before = len(upstream.requests)
    denial = {
        "type": "mcp_approval_response",
        "approval_request_id": request["id"],
        "approve": False,
        "reason": "not now",
    }
    done = create(http, model=AUTO, input=[denial], tools=[tool], previous_response_id=asked["id"])
    assert kinds(done["output"]) == ["message"], done["output"]
    (sent,) = upstream_requests(upstream, before)
    told = sent["messages"][-1]
    assert told["role"] == "tool" and "did not approve" in told["content"]
    assert "not now" in told["content"]


def test_an_approval_must_answer_the_waiting_request(http: httpx.Client, mcp_url: str) -> None:
    tool = mcp_tool(mcp_url, allowed_tools=["echo"])
    asked = create(http, model=AUTO, input="say it", tools=[tool])
    body = {"model": AUTO, "tools": [tool], "previous_response_id": asked["id"]}
    missing = http.post("/responses", json={**body, "input": "and?"})
    openai_error(missing, 400, "input", "approval_response_missing")
    wrong = {"type": "mcp_approval_response", "approval_request_id": "mcpr_nope", "approve": True}
    answer = http.post("/responses", json={**body, "input": [wrong]})
    assert answer.status_code == 400, answer.text
    bad = {"type": "mcp_approval_response", "approval_request_id": "x", "approve": "yes"}
    answer = http.post("/responses", json={**body, "input": [bad]})
    openai_error(answer, 400, "input[0].approve", "invalid_value")


@pytest.mark.parametrize(
    "policy",
    [
        {"never": {"tool_names": ["echo"]}},
        {"always": {"tool_names": ["add"]}, "never": {"tool_names": ["echo"]}},
    ],
)
def test_approval_filters_by_tool_name(http: httpx.Client, mcp_url: str, policy: Any) -> None:
    tool = mcp_tool(mcp_url, allowed_tools=["echo"], require_approval=policy)
    response = create(http, model=AUTO, input="say it", tools=[tool])
    assert kinds(response["output"]) == ["mcp_list_tools", "mcp_call", "message"]
    asked = mcp_tool(
        mcp_url, allowed_tools=["echo"], require_approval={"always": {"tool_names": ["echo"]}}
    )
    response = create(http, model=AUTO, input="say it", tools=[asked])
    assert kinds(response["output"]) == ["mcp_list_tools", "mcp_approval_request"]


def test_a_function_call_beside_a_hosted_one_goes_to_the_client(
    http: httpx.Client, mcp_url: str
) -> None:
    """The model calls the client's function and a server's tool at once: the server runs
    its own, and the response hands the function call back; the stream and the stored
    response show the items in the same order."""
    from tests.e2e.responses_helpers import WEATHER_TOOL

    tool = mcp_tool(mcp_url, allowed_tools=["echo"], require_approval="never")
    events = stream_create(http, model="fake/tools:2", input="both", tools=[WEATHER_TOOL, tool])
    final = events[-1]["response"]
    assert kinds(final["output"]) == ["mcp_list_tools", "mcp_call", "function_call"]
    assert get(http, final["id"])["output"] == final["output"]
    call = next(i for i in final["output"] if i["type"] == "function_call")
    done = create(
        http,
        model=AUTO,
        input=[{"type": "function_call_output", "call_id": call["call_id"], "output": "sunny"}],
        tools=[WEATHER_TOOL, tool],
        previous_response_id=final["id"],
    )
    assert done["status"] == "completed" and kinds(done["output"])[-1] == "message"


def test_a_client_that_sends_its_whole_history(
    http: httpx.Client, upstream: Any, mcp_url: str
) -> None:
    """No previous_response_id: the client gives back the server's items (as the Agents SDK
    does). An approval request it approves is run; a call and a tool list given back are
    the model's context, and the server is not asked for its tools again."""
    tool = mcp_tool(mcp_url, allowed_tools=["echo"])
    first = create(http, model=AUTO, input="say it", tools=[tool], store=False)
    listed, request = first["output"]
    assert request["type"] == "mcp_approval_request"
    history = [{"role": "user", "content": "say it"}, listed, request]
    approval = {
        "type": "mcp_approval_response",
        "approval_request_id": request["id"],
        "approve": True,
    }
    before = len(upstream.requests)
    second = create(http, model=AUTO, input=[*history, approval], tools=[tool], store=False)
    assert kinds(second["output"]) == ["mcp_call", "message"], second["output"]
    call, message = second["output"]
    assert call["output"] == "text 0" and call["approval_request_id"] == request["id"]
    (sent,) = upstream_requests(upstream, before)
    assert sent["messages"][-1]["role"] == "tool" and sent["messages"][-1]["content"] == "text 0"
    # The whole history again, and a new question: the call and its result are context.
    before = len(upstream.requests)
    third = create(
        http,
        model=AUTO,
        input=[*history, approval, call, message, {"role": "user", "content": "and again"}],
        tools=[{**tool, "require_approval": "never"}],
        store=False,
    )
    assert kinds(third["output"]) == ["mcp_call", "message"], third["output"]
    sent = upstream_requests(upstream, before)[0]
    roles = [m["role"] for m in sent["messages"]]
    assert roles == ["user", "assistant", "tool", "assistant", "user"], roles


def approved_conversation(http: httpx.Client, mcp_url: str) -> str:
    """A conversation whose call of ``echo`` was asked about, then approved and run."""
    conversation = str(http.post("/conversations", json={}).json()["id"])
    tool = mcp_tool(mcp_url, allowed_tools=["echo"])
    asked = create(http, model=AUTO, input="say it", tools=[tool], conversation=conversation)
    approval = {
        "type": "mcp_approval_response",
        "approval_request_id": asked["output"][-1]["id"],
        "approve": True,
    }
    create(http, model=AUTO, input=[approval], tools=[tool], conversation=conversation)
    return conversation


def test_each_hosted_item_of_a_conversation_may_be_deleted(
    http: httpx.Client, mcp_url: str
) -> None:
    """Newest first, every item of a conversation goes, the tool list and the approval
    request too (found by their own ids); the request only once its call's result has."""
    path = f"/conversations/{approved_conversation(http, mcp_url)}/items"
    items = http.get(path, params={"limit": 100}).json()["data"]
    assert kinds(items) == [
        "message",
        "mcp_call",
        "mcp_approval_response",
        "mcp_approval_request",
        "mcp_list_tools",
        "message",
    ]
    request = items[3]
    openai_error(http.delete(f"{path}/{request['id']}"), 400, "item_id", "item_has_output")
    for item in items:
        answer = http.delete(f"{path}/{item['id']}")
        assert answer.status_code == 200, (item, answer.text)
        openai_error(http.get(f"{path}/{item['id']}"), 404, "item_id", None)
    assert http.get(path).json()["data"] == []


def test_item_references_are_found_in_a_few_queries_however_many(
    server: Any, http: httpx.Client, mcp_url: str
) -> None:
    """A request may give hundreds of ``item_reference``s: the items they name are looked
    for all together. References to every item of a conversation (an approved MCP call, a
    function call and its output, reasoning, many messages), each three times, take the
    queries that one reference to an item of each kind takes, and find the items as the
    conversation lists them."""
    from tests.e2e.responses_helpers import WEATHER_TOOL

    conversation = approved_conversation(http, mcp_url)
    asked = create(
        http, model=AUTO, input="Weather?", tools=[WEATHER_TOOL], conversation=conversation
    )
    output = {"type": "function_call_output", "call_id": asked["output"][-1]["call_id"]}
    create(http, model=AUTO, input=[{**output, "output": "sunny"}], conversation=conversation)
    create(http, model="fake/reasoning:3", input="Think.", conversation=conversation)
    path = f"/conversations/{conversation}/items"
    for first in (0, 20):  # 20 items at most a request
        said = [{"role": "user", "content": f"note {n}"} for n in range(first, first + 20)]
        assert http.post(path, json={"items": said}).status_code == 200
    listed = http.get(path, params={"limit": 100}).json()["data"]
    by_id = {item["id"]: item for item in listed}
    few = list({item["type"]: item["id"] for item in listed}.values())
    assert len(few) == 8 and len(listed) > 50, kinds(listed)
    every = [item["id"] for item in listed] * 3
    one, queries_of_one = references_resolved(server, conversation, few)
    assert one == [by_id[i] for i in few]
    all_of_them, queries = references_resolved(server, conversation, every)
    assert all_of_them == [by_id[i] for i in every]
    assert queries == queries_of_one


def references_resolved(
    server: Any, conversation: str, item_ids: list[str]
) -> tuple[list[dict[str, Any]], int]:
    """What the server's database gives for ``item_reference``s to ``item_ids`` (as the
    owner of ``conversation``), and how many statements it ran to find them."""
    import asyncio

    from sqlalchemy import event, select

    from parley.server.faces.responses import reads
    from parley.store.db import Database
    from parley.store.tables import threads

    refs = [{"type": "item_reference", "id": i} for i in item_ids]
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    async def resolve() -> list[dict[str, Any]]:
        db = Database(server.database_url)
        try:
            owner = select(threads.c.user_id).where(threads.c.id == conversation)
            user_id = await db.read(lambda c: c.execute(owner).scalar_one())
            event.listen(db.engine, "before_cursor_execute", count)
            return await db.read(reads.resolve_references, user_id=user_id, items=refs)
        finally:
            await db.dispose()

    resolved = asyncio.run(resolve())
    return resolved, len(statements)
