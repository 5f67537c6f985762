"""Real OpenAI clients drive Parley's hosted MCP tools (``{"type": "mcp"}``) unchanged: the
``openai`` package in this process (typed output items, typed stream events, the approval
round trip with ``previous_response_id``), and the Agents SDK's ``HostedMCPTool`` in a
subprocess under its own packages (``agents_mcp.py``, as in ``test_agents_sdk.py``).

Parley (the session server, which may reach MCP servers on 127.0.0.1) talks to a real MCP
server on loopback; the fake upstream's ``auto`` model calls the first tool it is offered
(``echo`` with ``{"text": "text 0"}``) and answers with the results it is given.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from openai.types.responses import (
    Response,
    ResponseInputItemParam,
    ResponseStreamEvent,
    ToolParam,
)
from openai.types.responses.response_output_item import (
    McpApprovalRequest,
    McpCall,
    McpListTools,
)
from pydantic import TypeAdapter

from parley.testing.fake_upstream import tool_results_text
from tests.mcp.conftest import Serve, _servers
from tests.openai_sdk.test_agents_sdk import AGENTS, AGENTS_VERSION, INSTALL
from tests.unavailable import json_report, unavailable

AUTO = "fake/auto:2"
LABEL = "tests"
#: What ``echo`` gets from the fake model, what it returns, and the model's answer after it.
ECHO_ARGUMENTS = {"text": "text 0"}
ECHO_OUTPUT = "text 0"
ANSWER = tool_results_text([("echo", ECHO_OUTPUT)])
SCRIPT = Path(__file__).with_name("agents_mcp.py")
#: The Agents SDK subprocess's time limit, for every run together.
TIMEOUT = 120
#: The Agents SDK's transports and runs (``agents_mcp.py``).
AGENTS_TRANSPORTS = ("http", "websocket")
AGENTS_RUNS = ("never", "never_streamed", "always_chained", "always_chained_streamed", "always")
#: An ``mcp_call`` as the Agents SDK's run items show it.
ECHO_CALL = {"name": "echo", "output": ECHO_OUTPUT, "status": "completed"}
MCP_LISTED = "response.mcp_list_tools.completed"

#: Validation (not the SDK's lenient construction): a missing field or an unknown type fails.
STREAM_EVENT: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)


@pytest.fixture(scope="module")
def mcp_url() -> Iterator[str]:
    """A real MCP server (tests/terminal/mcp_server.py) on loopback, for the module."""
    start: Serve
    with _servers() as start:
        yield start()


@pytest.fixture
def client(server: Any, user_key: str) -> Iterator[openai.OpenAI]:
    """A fresh user's client; no retries, so every answer is the server's first."""
    with openai.OpenAI(
        base_url=f"{server.base_url}/v1", api_key=user_key, max_retries=0, timeout=30
    ) as sdk:
        yield sdk


def echo_tool(url: str, approval: str) -> ToolParam:
    """The MCP server as a hosted tool offering ``echo`` only."""
    return {
        "type": "mcp",
        "server_label": LABEL,
        "server_url": url,
        "require_approval": approval,  # type: ignore[typeddict-item]
        "allowed_tools": ["echo"],
    }


def validated(response: Response) -> Response:
    """``response`` validated again from what it holds: every field the types require is
    there and every output item is of a known type."""
    return Response.model_validate(response.to_dict(mode="json", warnings=False))


def check_list(item: Any) -> None:
    assert isinstance(item, McpListTools), item
    assert item.server_label == LABEL and item.error is None
    assert [t.name for t in item.tools] == ["echo"]
    assert item.tools[0].input_schema["properties"] == {"text": {"type": "string"}}  # type: ignore[index]


def check_call(item: Any, approval_request_id: str | None = None) -> None:
    assert isinstance(item, McpCall), item
    assert item.id.startswith("mcp_")
    assert (item.name, item.server_label, item.status) == ("echo", LABEL, "completed")
    assert json.loads(item.arguments) == ECHO_ARGUMENTS
    assert (item.output, item.error) == (ECHO_OUTPUT, None)
    assert item.approval_request_id == approval_request_id


def test_create_gives_typed_mcp_items(client: openai.OpenAI, mcp_url: str) -> None:
    response = client.responses.create(
        model=AUTO, input="say it", tools=[echo_tool(mcp_url, "never")]
    )
    assert response.status == "completed", response
    listed, call, message = validated(response).output
    check_list(listed)
    check_call(call)
    assert message.type == "message"
    assert response.output_text == ANSWER
    # The stored response reads back the same through the SDK.
    assert client.responses.retrieve(response.id).output == response.output


def test_a_stream_parses_into_typed_events(client: openai.OpenAI, mcp_url: str) -> None:
    stream = client.responses.create(
        model=AUTO, input="say it", tools=[echo_tool(mcp_url, "never")], stream=True
    )
    events = []
    with stream:
        for event in stream:
            again = STREAM_EVENT.validate_python(event.to_dict(mode="json", warnings=False))
            assert type(again) is type(event), (event.type, type(event))
            events.append(event)
    names: list[str] = [e.type for e in events]
    for name in [
        "response.mcp_list_tools.in_progress",
        "response.mcp_list_tools.completed",
        "response.mcp_call.in_progress",
        "response.mcp_call_arguments.delta",
        "response.mcp_call_arguments.done",
        "response.mcp_call.completed",
    ]:
        assert names.count(name) == 1, names
    assert names.index("response.mcp_list_tools.completed") < names.index(
        "response.mcp_call_arguments.delta"
    )
    sequence = [e.sequence_number for e in events]
    assert sequence == sorted(sequence) and len(set(sequence)) == len(sequence), sequence
    added = [e.item for e in events if e.type == "response.output_item.added"]
    done = [e.item for e in events if e.type == "response.output_item.done"]
    assert (
        [i.type for i in added]
        == [i.type for i in done]
        == [
            "mcp_list_tools",
            "mcp_call",
            "message",
        ]
    )
    check_list(done[0])
    check_call(done[1])
    final = events[-1]
    assert final.type == "response.completed"
    assert final.response.output_text == ANSWER


def test_the_stream_helper_accumulates_the_response(client: openai.OpenAI, mcp_url: str) -> None:
    with client.responses.stream(
        model=AUTO, input="say it", tools=[echo_tool(mcp_url, "never")]
    ) as stream:
        kinds = [event.type for event in stream]
        response = stream.get_final_response()
    assert "response.mcp_call.completed" in kinds
    listed, call, _ = validated(response).output
    check_list(listed)
    check_call(call)
    assert response.output_text == ANSWER


@pytest.mark.parametrize("streamed", [False, True], ids=["create", "stream"])
def test_an_approval_round_trip(client: openai.OpenAI, mcp_url: str, streamed: bool) -> None:
    tool = echo_tool(mcp_url, "always")
    asked = client.responses.create(model=AUTO, input="say it", tools=[tool])
    assert asked.status == "completed", asked
    listed, request = validated(asked).output
    check_list(listed)
    assert isinstance(request, McpApprovalRequest), request
    assert request.id.startswith("mcpr_") and request.server_label == LABEL
    assert (request.name, json.loads(request.arguments)) == ("echo", ECHO_ARGUMENTS)
    approval: ResponseInputItemParam = {
        "type": "mcp_approval_response",
        "approval_request_id": request.id,
        "approve": True,
    }
    done: Response
    if streamed:
        with client.responses.stream(
            model=AUTO, input=[approval], tools=[tool], previous_response_id=asked.id
        ) as stream:
            names = [
                STREAM_EVENT.validate_python(e.to_dict(mode="json", warnings=False)).type
                for e in stream
            ]
            done = stream.get_final_response()
        assert "response.mcp_call.completed" in names, names
    else:
        done = client.responses.create(
            model=AUTO, input=[approval], tools=[tool], previous_response_id=asked.id
        )
    call, message = validated(done).output
    check_call(call, approval_request_id=request.id)
    assert message.type == "message" and done.output_text == ANSWER
    assert done.previous_response_id == asked.id


def test_an_approval_sent_with_the_history_again(client: openai.OpenAI, mcp_url: str) -> None:
    """The stateless form: no ``previous_response_id``, but the conversation so far (the
    user's message, the response's output items) and the approval after it."""
    tool = echo_tool(mcp_url, "always")
    asked = client.responses.create(model=AUTO, input="say it", tools=[tool])
    request = asked.output[-1]
    assert isinstance(request, McpApprovalRequest), request
    history: list[Any] = [{"role": "user", "content": "say it"}]
    history += [item.to_dict(mode="json") for item in asked.output]
    history.append(
        {"type": "mcp_approval_response", "approval_request_id": request.id, "approve": True}
    )
    done = client.responses.create(model=AUTO, input=history, tools=[tool])
    call, _ = validated(done).output
    check_call(call, approval_request_id=request.id)
    assert done.output_text == ANSWER


def test_an_approval_given_with_an_item_reference(
    client: openai.OpenAI, server: Any, mcp_url: str
) -> None:
    """The AI SDK's form: no ``previous_response_id``; the user's message, an
    ``item_reference`` to the approval request (the server finds it by its id), then the
    approval. The next turn refers to the call and the tool list by reference too; another
    user's references find nothing."""
    tool = echo_tool(mcp_url, "always")
    asked = client.responses.create(model=AUTO, input="say it", tools=[tool])
    listed, request = asked.output
    assert isinstance(request, McpApprovalRequest), request
    history: list[Any] = [
        {"role": "user", "content": "say it"},
        {"type": "item_reference", "id": request.id},
    ]
    approval = {"type": "mcp_approval_response", "approval_request_id": request.id, "approve": True}
    done = client.responses.create(model=AUTO, input=[*history, approval], tools=[tool])
    call, message = validated(done).output[-2:]
    check_call(call, approval_request_id=request.id)
    assert done.output_text == ANSWER
    refs = [{"type": "item_reference", "id": i} for i in (listed.id, call.id, message.id)]
    again = client.responses.create(
        model=AUTO, input=[*history, *refs, {"role": "user", "content": "again"}], tools=[tool]
    )
    # The list given back by reference is the server's: it is not listed again.
    assert [item.type for item in again.output] == ["mcp_approval_request"], again.output
    with openai.OpenAI(
        base_url=f"{server.base_url}/v1", api_key=server.new_user("stranger"), max_retries=0
    ) as stranger:
        for ref in [history[1], *refs]:
            with pytest.raises(openai.BadRequestError) as refused:
                stranger.responses.create(model=AUTO, input=[ref], tools=[tool])
            assert refused.value.code == "item_not_found", ref


# -------------------------------------------------------------------- the Agents SDK


@pytest.fixture(scope="module")
def agents_report(server: Any, mcp_url: str) -> dict[str, Any]:
    """Every run of ``agents_mcp.py``: ``{"versions", "runs"}``."""
    if not (AGENTS / "agents" / "__init__.py").exists():
        unavailable(f"openai-agents is not installed in {AGENTS}; `make test` does it ({INSTALL})")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(AGENTS), env.get("PYTHONPATH")]))
    request = {
        "base_url": f"{server.base_url}/v1",
        "api_key": server.new_user("agents-mcp"),
        "model": AUTO,
        "server_label": LABEL,
        "server_url": mcp_url,
    }
    return json_report(
        [sys.executable, "-W", "error", str(SCRIPT)],
        what="the Agents SDK's hosted MCP runs",
        timeout=TIMEOUT,
        input=json.dumps(request),
        env=env,
    )


def agents_run(report: dict[str, Any], name: str) -> dict[str, Any]:
    """One run's outcome; the test fails with the SDK's traceback when it raised."""
    outcome: dict[str, Any] = report["runs"][name]
    if "error" in outcome:
        pytest.fail(f"the Agents SDK run {name}:\n{outcome['error']}", False)
    return outcome


def test_the_agents_subprocess_runs_the_pinned_sdk(agents_report: dict[str, Any]) -> None:
    assert agents_report["versions"]["openai-agents"] == AGENTS_VERSION, agents_report
    assert sorted(agents_report["runs"]) == sorted(
        f"{transport}_{run}" for transport in AGENTS_TRANSPORTS for run in AGENTS_RUNS
    )


@pytest.mark.parametrize("transport", AGENTS_TRANSPORTS)
def test_agents_hosted_mcp_without_approval(
    agents_report: dict[str, Any], transport: str, mcp_url: str
) -> None:
    outcome = agents_run(agents_report, f"{transport}_never")
    (sent,) = outcome["sent"]  # one model call: Parley ran the tool inside the response
    assert sent["tools"] == [echo_tool(mcp_url, "never")]
    assert outcome["approvals"] == []
    assert outcome["items"] == ["mcp_list_tools_item", "tool_call_item", "message_output_item"]
    assert outcome["calls"] == [ECHO_CALL]
    assert outcome["final_output"] == ANSWER


@pytest.mark.parametrize("transport", AGENTS_TRANSPORTS)
def test_agents_hosted_mcp_streamed(agents_report: dict[str, Any], transport: str) -> None:
    outcome = agents_run(agents_report, f"{transport}_never_streamed")
    assert outcome["item_events"] == ["mcp_list_tools", "tool_called", "message_output_created"]
    raw = outcome["raw_events"]
    at = raw.index("response.mcp_list_tools.in_progress")
    assert raw[at : at + 2] == ["response.mcp_list_tools.in_progress", MCP_LISTED], raw
    at = raw.index("response.mcp_call.in_progress")
    assert raw[at - 1 : at + 5] == [
        "response.output_item.added",
        "response.mcp_call.in_progress",
        "response.mcp_call_arguments.delta",
        "response.mcp_call_arguments.done",
        "response.mcp_call.completed",
        "response.output_item.done",
    ], raw
    assert raw[-1] == "response.completed"
    assert outcome["calls"] == [ECHO_CALL]
    assert outcome["final_output"] == ANSWER


@pytest.mark.parametrize("streamed", [False, True], ids=["run", "run_streamed"])
@pytest.mark.parametrize("transport", AGENTS_TRANSPORTS)
def test_agents_hosted_mcp_asks_the_callback(
    agents_report: dict[str, Any], transport: str, streamed: bool, mcp_url: str
) -> None:
    """With ``auto_previous_response_id``, the SDK answers the approval request with the
    callback's approval on the response that asked, and Parley runs the call."""
    name = f"{transport}_always_chained" + ("_streamed" if streamed else "")
    outcome = agents_run(agents_report, name)
    (approval,) = outcome["approvals"]
    assert (approval["name"], approval["server_label"]) == ("echo", LABEL)
    assert json.loads(approval["arguments"]) == ECHO_ARGUMENTS
    asked, answered = outcome["sent"]
    assert asked["tools"] == answered["tools"] == [echo_tool(mcp_url, "always")]
    assert "previous_response_id" not in asked and answered["previous_response_id"]
    assert answered["input"] == [
        {"type": "mcp_approval_response", "approval_request_id": approval["id"], "approve": True}
    ]
    assert outcome["items"] == [
        "mcp_list_tools_item",
        "mcp_approval_request_item",
        "mcp_approval_response_item",
        "tool_call_item",
        "message_output_item",
    ]
    assert outcome["calls"] == [ECHO_CALL]
    assert outcome["final_output"] == ANSWER


@pytest.mark.parametrize("transport", AGENTS_TRANSPORTS)
def test_agents_hosted_mcp_approval_by_default(
    agents_report: dict[str, Any], transport: str
) -> None:
    """The SDK's default: the approval sent with the whole history again, no
    ``previous_response_id``."""
    outcome = agents_report["runs"][f"{transport}_always"]
    _, answered = outcome["sent"]
    assert "previous_response_id" not in answered
    assert [item.get("type") for item in answered["input"]] == [
        None,  # the user's message, without a type
        "mcp_list_tools",
        "mcp_approval_request",
        "mcp_approval_response",
    ]
    outcome = agents_run(agents_report, f"{transport}_always")
    assert len(outcome["approvals"]) == 1
    assert outcome["calls"] == [ECHO_CALL]
    assert outcome["final_output"] == ANSWER
