"""Hosted tools in the engine (``engine.hosted``): an MCP server's tools, listed once per
thread, offered to the model as functions, run in the turn, and a call that needs approval
waiting in the run's own pause, answered through ``submit_tool_outputs`` (Parley's own API)
and run by the next turn. A real MCP server on loopback; a scripted provider."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from parley.engine import Engine, NewMessage, RunConfig, ThreadTarget, settling, states
from parley.errors import InvalidRequest
from parley.events import FinishPart, ModelEvent, TextPart, ToolCallPart
from parley.providers.base import ModelRequest
from parley.store import threads, users
from parley.types import Role, RunStatus
from tests.engine.inprocess import running_engine
from tests.mcp.conftest import _servers


class Caller:
    """Calls ``echo`` when the last message is the user's; else answers with what the tool
    said. Keeps the tools it was offered."""

    def __init__(self) -> None:
        self.offered: list[list[str]] = []
        self.seen: list[ModelRequest] = []

    async def stream(self, request: ModelRequest) -> AsyncGenerator[ModelEvent, None]:
        self.offered.append([t.function.name for t in request.tools])
        self.seen.append(request)
        last = request.messages[-1]
        if last.role == "tool":
            yield TextPart(f"the tool said: {last.content}")
            yield FinishPart("stop")
            return
        yield ToolCallPart(index=0, id="call_e", name="echo", arguments='{"text": "hi"}')
        yield FinishPart("tool_calls")


@pytest.fixture(scope="module")
def mcp_url() -> Iterator[str]:
    with _servers() as start:
        yield start()


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    async with running_engine(tmp_path, {"calls": Caller()}, mcp_allow_urls=["127.0.0.1"]) as eng:
        yield eng


def mcp(url: str, approval: Any = "never") -> dict[str, Any]:
    return {
        "type": "mcp",
        "server_label": "t",
        "server_url": url,
        "allowed_tools": ["echo"],
        "require_approval": approval,
    }


def caller(engine: Engine) -> Caller:
    found = engine.providers.resolve("calls/x")[0]
    assert isinstance(found, Caller)
    return found


async def go(engine: Engine, user: str, config: RunConfig) -> Any:
    """A new thread's first turn: the user says "go"."""
    said = [NewMessage(role=Role.USER, content="go")]
    return await engine.start_items_turn(
        user_id=user, target=ThreadTarget(), messages=said, config=config
    )


async def items(engine: Engine, thread_id: str) -> list[dict[str, Any]]:
    context = await engine.db.read(threads.thread_context, thread_id=thread_id)
    return [m.item for m in context if m.item is not None]


async def test_a_call_runs_in_the_turn_and_the_list_is_kept(engine: Engine, mcp_url: str) -> None:
    user = (await engine.db.write(users.create_user, name="u")).id
    config = RunConfig(model="calls/x", tools=[mcp(mcp_url)])
    said = [NewMessage(role=Role.USER, content="go")]
    handle = await engine.start_items_turn(
        user_id=user, target=ThreadTarget(), messages=said, config=config
    )
    events = [kind async for batch in _drain(handle) for kind in batch]
    outcome = await handle.result()
    assert outcome.run.status == "completed", outcome.run
    assert outcome.message is not None and outcome.message.content == "the tool said: hi"
    assert events.count("hosted_tool") == 4  # the list and the call, each started and done
    kept = await items(engine, handle.thread_id)
    assert [i["type"] for i in kept] == ["mcp_list_tools", "mcp_call"]
    assert kept[1]["output"] == "hi" and kept[1]["status"] == "completed"
    assert caller(engine).offered[0] == ["echo"]
    # The next turn of the thread takes the kept list: no second one.
    again = await engine.start_items_turn(
        user_id=user,
        target=ThreadTarget.after_run(outcome.run.id),
        messages=[NewMessage(role=Role.USER, content="again")],
        config=config,
    )
    await again.result()
    kept = await items(engine, handle.thread_id)
    assert [i["type"] for i in kept] == ["mcp_list_tools", "mcp_call", "mcp_call"]


async def _drain(handle: Any) -> AsyncIterator[list[str]]:
    async for batch in handle.events():
        yield [entry[1] for entry in batch]


async def test_an_approval_through_submit_tool_outputs(engine: Engine, mcp_url: str) -> None:
    user = (await engine.db.write(users.create_user, name="u")).id
    config = RunConfig(model="calls/x", tools=[mcp(mcp_url, "always")])
    handle = await go(engine, user, config)
    paused = await handle.result()
    assert paused.run.status == "action_required"
    (action,) = paused.actions
    assert action.kind == "approval" and action.id.startswith("mcpr_")
    with pytest.raises(InvalidRequest) as plain:
        await engine.submit_tool_outputs(
            user_id=user, run_id=paused.run.id, outputs=[(action.tool_call_id, "42")]
        )
    assert plain.value.code == "approval_expected"
    queued = await engine.submit_tool_outputs(
        user_id=user, run_id=paused.run.id, outputs=[(action.tool_call_id, "approved")]
    )
    assert queued.status == "queued"
    turn = await engine.start_turn(user_id=user, run_id=paused.run.id)
    done = await turn.result()
    assert done.run.status == "completed", done.run
    assert done.message is not None and done.message.content == "the tool said: hi"
    call = (await items(engine, handle.thread_id))[-1]
    assert call["type"] == "mcp_call" and call["approval_request_id"] == action.id


async def test_a_denial_through_submit_tool_outputs(engine: Engine, mcp_url: str) -> None:
    user = (await engine.db.write(users.create_user, name="u")).id
    config = RunConfig(model="calls/x", tools=[mcp(mcp_url, "always")])
    handle = await go(engine, user, config)
    paused = await handle.result()
    (action,) = paused.actions
    await engine.submit_tool_outputs(
        user_id=user, run_id=paused.run.id, outputs=[(action.tool_call_id, "denied")]
    )
    done = await (await engine.start_turn(user_id=user, run_id=paused.run.id)).result()
    assert done.message is not None
    assert done.message.content.startswith("the tool said: Not run: the user did not approve")
    kept = await items(engine, handle.thread_id)
    assert [i["type"] for i in kept] == ["mcp_list_tools", "mcp_approval_response"]
    # the submit door keeps the answer as the mcp_approval_response door does
    assert kept[1]["approve"] is False and kept[1]["approval_request_id"] == action.id


async def test_a_round_written_behind_the_next_call_lands_before_the_turn_ends(
    engine: Engine, mcp_url: str
) -> None:
    """The round (the answer that called, the call's result) is written while the next
    model call goes on (``Settler.next_round``): the turn's end waits for it, and the
    thread holds the round before the final answer."""
    user = (await engine.db.write(users.create_user, name="u")).id
    config = RunConfig(model="calls/x", tools=[mcp(mcp_url)])
    handle = await go(engine, user, config)
    outcome = await handle.result()
    assert outcome.run.status == "completed"
    context = await engine.db.read(threads.thread_context, thread_id=handle.thread_id)
    shown = [(m.role, [c["name"] for c in m.tool_calls or ()], m.content) for m in context]
    assert shown[-3:] == [
        ("assistant", ["echo"], ""),
        ("tool", [], "hi"),
        ("assistant", [], "the tool said: hi"),
    ]
    assert [m.seq for m in context] == sorted(m.seq for m in context)
    # The second model call saw the round as it was then stored.
    second = caller(engine).seen[-1]
    assert [m.role for m in second.messages[-2:]] == ["assistant", "tool"]


async def test_a_round_whose_write_finds_the_run_cancelled_stops_the_turn(
    engine: Engine, mcp_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run is cancelled elsewhere after the server ran the call and before the round
    was written: the write finds it and stops the turn, which ends with the run as the
    cancel left it and the round not stored (no result, no next answer)."""
    monkeypatch.setattr(settling, "BEHIND_BY", 0.3)
    user = (await engine.db.write(users.create_user, name="u")).id
    config = RunConfig(model="calls/x", tools=[mcp(mcp_url)])
    handle = await go(engine, user, config)
    seen = caller(engine).seen
    async with asyncio.timeout(10):  # the second model call: the round is written behind it
        while len(seen) < 2:  # noqa: ASYNC110 (the scripted provider keeps a list)
            await asyncio.sleep(0.005)

    def cancel(conn: Any) -> bool:
        return states.move(conn, handle.run_id, RunStatus.CANCELLED, source=RunStatus.IN_PROGRESS)

    assert await engine.db.write(cancel)
    outcome = await asyncio.wait_for(handle.result(), 10)
    assert outcome.run.status == "cancelled", outcome.run
    context = await engine.db.read(threads.thread_context, thread_id=handle.thread_id)
    assert [m for m in context if m.role == Role.TOOL] == []
    assert not [m for m in context if m.content == "the tool said: hi"]
