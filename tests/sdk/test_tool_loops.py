"""``runs.poll_and_execute_action`` (flow A) and ``respond()`` (flow B) against scripted
server answers."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

import parley
from parley.sdk import RespondResult, RunFailed, ToolLoopLimitExceeded
from parley.types import RunStatus, Usage
from tests.sdk.fake import (
    RUN,
    FakeServer,
    action_body,
    call,
    done,
    error,
    make_client,
    ok,
    page,
    run_body,
    sse,
    status,
    text,
    thinking,
    tool_calls,
    turn,
    usage,
)

SUBMIT = f"/v1/runs/{RUN}/submit_tool_outputs"


# --------------------------------------------------------------------- poll_and_execute


def get_time(name: str, arguments: dict[str, Any]) -> str:
    if name == "explode":
        raise ValueError("boom")
    return f"12:00 {arguments['tz']}"


async def test_poll_and_execute_action(client: Any, fake_server: FakeServer) -> None:
    fake_server.on(
        "GET", f"/v1/runs/{RUN}", ok(run_body("in_progress")), ok(run_body("requires_action"))
    )
    fake_server.on(
        "GET",
        "/v1/actions",
        ok(page([action_body(1, "get_time", {"tz": "UTC"}), action_body(2, "explode", {})])),
    )
    fake_server.on("POST", SUBMIT, ok(run_body("queued")))

    submitted = await call(
        client.runs.poll_and_execute_action(
            run_id=RUN,
            thread_id="thread_1",
            assistant_id="asst_1",
            tool_executor=get_time,
            timeout=5.0,
            interval=0.001,
        )
    )

    assert submitted is True
    assert fake_server.routes == [
        f"GET /v1/runs/{RUN}",
        f"GET /v1/runs/{RUN}",
        "GET /v1/actions",
        f"POST {SUBMIT}",
    ]
    assert fake_server.requests[2].params == {"run_id": RUN, "status": "pending"}
    assert fake_server.requests[3].body == {
        "tool_outputs": [
            {"tool_call_id": "call_1", "output": "12:00 UTC"},
            {"tool_call_id": "call_2", "output": "Error: ValueError: boom"},
        ]
    }


async def test_an_executor_with_a_third_argument_gets_the_action(
    client: Any, fake_server: FakeServer
) -> None:
    # two calls of one tool with the same arguments: only the action tells them apart
    fake_server.on("GET", f"/v1/runs/{RUN}", ok(run_body("requires_action")))
    fake_server.on(
        "GET",
        "/v1/actions",
        ok(page([action_body(1, "roll", {"sides": 6}), action_body(2, "roll", {"sides": 6})])),
    )
    fake_server.on("POST", SUBMIT, ok(run_body("queued")))
    seen: list[tuple[str, str, str]] = []

    def roll(name: str, arguments: dict[str, Any], action: Any) -> str:
        seen.append((name, action.action_id, action.tool_call_id))
        return f"rolled for {action.tool_call_id}"

    assert await call(client.runs.poll_and_execute_action(run_id=RUN, tool_executor=roll))
    assert seen == [("roll", "act_1", "call_1"), ("roll", "act_2", "call_2")]
    assert fake_server.requests[-1].body == {
        "tool_outputs": [
            {"tool_call_id": "call_1", "output": "rolled for call_1"},
            {"tool_call_id": "call_2", "output": "rolled for call_2"},
        ]
    }


async def test_poll_returns_false_when_the_run_finishes(
    client: Any, fake_server: FakeServer
) -> None:
    fake_server.on("GET", f"/v1/runs/{RUN}", ok(run_body("completed")))
    assert (
        await call(client.runs.poll_and_execute_action(run_id=RUN, tool_executor=get_time)) is False
    )
    assert fake_server.routes == [f"GET /v1/runs/{RUN}"]


async def test_poll_returns_false_after_timeout(client: Any, fake_server: FakeServer) -> None:
    fake_server.on("GET", f"/v1/runs/{RUN}", ok(run_body("in_progress")))
    # Room for a loaded machine: a GET that took the whole of a 30 ms limit left one poll.
    result = await call(
        client.runs.poll_and_execute_action(
            run_id=RUN, tool_executor=get_time, timeout=0.3, interval=0.01
        )
    )
    assert result is False
    assert set(fake_server.routes) == {f"GET /v1/runs/{RUN}"}
    assert len(fake_server.routes) >= 2


async def test_poll_with_nothing_pending(client: Any, fake_server: FakeServer) -> None:
    fake_server.on("GET", f"/v1/runs/{RUN}", ok(run_body("requires_action")))
    fake_server.on("GET", "/v1/actions", ok(page([])))
    assert (
        await call(client.runs.poll_and_execute_action(run_id=RUN, tool_executor=get_time)) is False
    )
    assert f"POST {SUBMIT}" not in fake_server.routes


# ------------------------------------------------------------------------------ respond


TOOL_TURN = turn(
    1,
    status("in_progress"),
    thinking("I need tools."),
    tool_calls(("add", {"a": 1, "b": 2}), ("explode", {}), ("nope", {})),
    usage(5, 7, reasoning=4),
    status("action_required"),
    done("action_required"),
)
FINAL_TURN = turn(
    7,
    status("in_progress"),
    text("The sum "),
    text("is 3."),
    usage(9, 3, cached=5),
    status("completed"),
    done("completed"),
)


def add(a: int, b: int) -> dict[str, int]:
    return {"sum": a + b}


def explode() -> str:
    raise RuntimeError("boom")


def script_two_turns(fake_server: FakeServer) -> None:
    fake_server.on("POST", "/v1/process", sse(TOOL_TURN), sse(FINAL_TURN))
    fake_server.on("POST", SUBMIT, ok(run_body("queued")))
    fake_server.on("GET", f"/v1/runs/{RUN}", ok(run_body("completed")))


async def test_respond_runs_the_tool_loop(client: Any, fake_server: FakeServer) -> None:
    script_two_turns(fake_server)
    seen: list[str] = []

    result = await call(
        client.respond(
            assistant_id="asst_1",
            content="add 1 and 2",
            tools={"add": add, "explode": explode},
            on_event=lambda event: seen.append(event.type),
        )
    )

    assert isinstance(result, RespondResult)
    assert result.status is RunStatus.COMPLETED
    assert result.text == "The sum is 3."
    assert result.reasoning == "I need tools."
    # every turn's tokens added up, the reasoning and cached ones too
    assert result.usage == Usage(
        input_tokens=14, output_tokens=10, reasoning_tokens=4, cached_tokens=5
    )
    assert (result.run_id, result.thread_id, result.turns) == (RUN, "thread_1", 2)
    assert seen == [event["type"] for _, event in TOOL_TURN + FINAL_TURN]
    assert fake_server.routes == [
        "POST /v1/process",
        f"POST {SUBMIT}",
        "POST /v1/process",
        f"GET /v1/runs/{RUN}",
    ]
    assert fake_server.requests[0].body == {
        "assistant_id": "asst_1",
        "content": "add 1 and 2",
        "stream": True,
    }
    outputs = [
        {"tool_call_id": "call_1_0", "output": json.dumps({"sum": 3})},
        {"tool_call_id": "call_1_1", "output": "Error: RuntimeError: boom"},
        {"tool_call_id": "call_1_2", "output": "Error: no tool named 'nope' is available"},
    ]
    assert fake_server.requests[1].body == {"tool_outputs": outputs}
    assert fake_server.requests[2].body == {"run_id": RUN, "stream": True}
    assert [r.output for r in result.tool_results] == [o["output"] for o in outputs]


async def test_respond_on_a_known_thread_needs_no_lookup(
    client: Any, fake_server: FakeServer
) -> None:
    fake_server.on("POST", "/v1/process", sse(FINAL_TURN))
    result = await call(client.respond(assistant_id="asst_1", content="hi", thread_id="thread_9"))
    assert result.thread_id == "thread_9"
    assert result.tool_results == []
    assert fake_server.routes == ["POST /v1/process"]
    assert fake_server.requests[0].body["thread_id"] == "thread_9"


FAILED_TURN = [
    (1, status("in_progress")),
    (2, text("Half an ans")),
    (3, {"type": "error", "run_id": RUN, "code": "upstream_auth", "message": "Key refused."}),
    (4, status("failed")),
    (5, done("failed")),
]


async def test_respond_raises_for_a_failed_run_only(client: Any, fake_server: FakeServer) -> None:
    """A script that prints ``result.text`` must not print an empty line and exit 0; an
    ``incomplete`` (token limit) or ``cancelled`` run carries text, and is answered."""
    cut_short = [
        sse(turn(1, status("in_progress"), text("Half"), status(end), done(end)))
        for end in ("incomplete", "cancelled")
    ]
    fake_server.on("POST", "/v1/process", sse(FAILED_TURN), *cut_short)
    with pytest.raises(RunFailed) as caught:
        await call(client.respond(assistant_id="asst_1", content="hi", thread_id="t"))
    failure = caught.value
    assert (failure.code, failure.message, failure.run_id) == ("upstream_auth", "Key refused.", RUN)
    assert str(failure) == f"run {RUN} failed: upstream_auth: Key refused."
    assert isinstance(failure.result, RespondResult)
    assert (failure.result.status, failure.result.text) == (RunStatus.FAILED, "Half an ans")
    assert (failure.result.thread_id, failure.result.turns) == ("t", 1)
    for end in ("incomplete", "cancelled"):
        result = await call(client.respond(assistant_id="asst_1", content="hi", thread_id="t"))
        assert (result.status, result.text) == (end, "Half")


async def test_respond_reports_a_failed_run_when_asked_not_to_raise(
    client: Any, fake_server: FakeServer
) -> None:
    fake_server.on("POST", "/v1/process", sse(FAILED_TURN))
    result = await call(
        client.respond(assistant_id="asst_1", content="hi", thread_id="t", raise_on_failure=False)
    )
    assert result.status is RunStatus.FAILED
    assert result.error is not None and result.error.message == "Key refused."


@pytest.mark.parametrize(
    "cancel_answer", [ok(run_body("cancelled")), error(409, "conflict", "Done.")]
)
async def test_respond_stops_after_max_turns(
    client: Any, fake_server: FakeServer, cancel_answer: Any
) -> None:
    fake_server.on("POST", "/v1/process", sse(TOOL_TURN))
    fake_server.on("POST", SUBMIT, ok(run_body("queued")))
    fake_server.on("POST", f"/v1/runs/{RUN}/cancel", cancel_answer)

    with pytest.raises(ToolLoopLimitExceeded) as caught:
        await call(client.respond(assistant_id="asst_1", content="hi", thread_id="t", max_turns=2))

    assert caught.value.run_id == RUN
    assert caught.value.result.turns == 2
    assert fake_server.routes == [
        "POST /v1/process",
        f"POST {SUBMIT}",
        "POST /v1/process",
        f"POST /v1/runs/{RUN}/cancel",
    ]


async def test_async_respond_runs_tool_calls_concurrently(fake_server: FakeServer) -> None:
    pinged, ponged = asyncio.Event(), asyncio.Event()

    async def ping() -> str:  # finishes only if pong runs meanwhile
        pinged.set()
        await asyncio.wait_for(ponged.wait(), 2)
        return "ping"

    async def pong() -> str:
        ponged.set()
        await asyncio.wait_for(pinged.wait(), 2)
        return "pong"

    fake_server.on(
        "POST",
        "/v1/process",
        sse(turn(1, tool_calls(("ping", {}), ("pong", {})), done("action_required"))),
        sse(FINAL_TURN),
    )
    fake_server.on("POST", SUBMIT, ok(run_body("queued")))
    events: list[str] = []

    async def on_event(event: Any) -> None:
        events.append(event.type)

    async with make_client("async", fake_server) as client:
        result = await client.respond(
            assistant_id="asst_1",
            content="hi",
            thread_id="t",
            tools={"ping": ping, "pong": pong},
            on_event=on_event,
        )

    assert [r.output for r in result.tool_results] == ["ping", "pong"]
    assert events[0] == "tool_calls"


async def test_sync_respond_refuses_async_tools(fake_server: FakeServer) -> None:
    async def later() -> str:
        return "never"

    fake_server.on(
        "POST",
        "/v1/process",
        sse(turn(1, tool_calls(("later", {})), done("action_required"))),
        sse(FINAL_TURN),
    )
    fake_server.on("POST", SUBMIT, ok(run_body("queued")))
    with make_client("sync", fake_server) as client:
        result = client.respond(
            assistant_id="asst_1", content="hi", thread_id="t", tools={"later": later}
        )
    assert (
        result.tool_results[0].output
        == "Error: TypeError: tool 'later' is async: use it with AsyncClient"
    )


def _approvals_turn() -> list[tuple[int, dict[str, Any]]]:
    """A turn that asks for three calls the server runs once approved."""
    asked = tool_calls(("echo", {"n": 1}), ("echo", {"n": 2}), ("echo", {"n": 3}))
    for action in asked["actions"]:
        action["approval"] = {"type": "mcp", "server_label": "tests", "name": "echo"}
    return turn(1, status("in_progress"), asked, status("action_required"), done("action_required"))


async def test_respond_sends_an_approval_and_its_reason(
    client: Any, fake_server: FakeServer
) -> None:
    """An ``approve`` callback answers with a bool, or a ``Decision`` that gives a reason:
    sent as ``approve`` with the ``reason`` (none when it gave none)."""
    fake_server.on("POST", "/v1/process", sse(_approvals_turn()), sse(FINAL_TURN))
    fake_server.on("POST", SUBMIT, ok(run_body("queued")))
    fake_server.on("GET", f"/v1/runs/{RUN}", ok(run_body("completed")))
    answers = {
        1: True,
        2: parley.Decision(approve=False, reason="not now"),
        3: parley.Decision(approve=True, reason="fine"),
    }

    result = await call(
        client.respond(
            assistant_id="asst_1",
            content="echo",
            approve=lambda action: answers[action.arguments["n"]],
        )
    )

    assert fake_server.requests[1].body == {
        "tool_outputs": [
            {"tool_call_id": "call_1_0", "approve": True},
            {"tool_call_id": "call_1_1", "approve": False, "reason": "not now"},
            {"tool_call_id": "call_1_2", "approve": True, "reason": "fine"},
        ]
    }
    assert [r.output for r in result.tool_results] == ["approved", "denied", "approved"]


async def test_a_tool_that_returns_a_decision_sends_it_as_its_output(
    client: Any, fake_server: FakeServer
) -> None:
    """Only a call that waits for approval is answered with ``approve``."""
    script_two_turns(fake_server)
    decided = parley.Decision(approve=True)
    tools = {"add": lambda a, b: decided, "explode": explode}

    await call(client.respond(assistant_id="asst_1", content="add 1 and 2", tools=tools))

    first = fake_server.requests[1].body["tool_outputs"][0]
    assert set(first) == {"tool_call_id", "output"}
