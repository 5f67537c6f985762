"""Hosted tools in the engine (``engine.hosted``): an MCP server's tools, listed once per
thread, offered to the model as functions, run in the turn, and a call that needs approval
waiting in the run's own pause, answered through ``submit_tool_outputs`` (Parley's own API)
and run by the next turn. A real MCP server on loopback; a scripted provider."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from parley.config import Settings
from parley.engine import Engine, NewMessage, RunConfig, ThreadTarget
from parley.errors import InvalidRequest
from parley.events import FinishPart, ModelEvent, TextPart, ToolCallPart
from parley.providers.base import ModelRequest
from parley.providers.registry import ProviderRegistry
from parley.store import threads, users
from parley.store.db import Database
from parley.types import Role
from tests.harness import FreshDatabase
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
    fresh = FreshDatabase(tmp_path)
    settings = Settings(database_url=fresh.url, mcp_allow_urls=["127.0.0.1"])
    db = Database(settings.database_url)
    await db.migrate()
    registry = ProviderRegistry(settings, overrides={"calls": Caller()})
    eng = Engine(db, registry, settings)
    await eng.start()
    yield eng
    await eng.stop()
    await registry.aclose()
    await db.dispose()
    fresh.drop()


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
    handle = await engine.start_items_turn(
        user_id=user,
        target=ThreadTarget(),
        messages=[NewMessage(role=Role.USER, content="go")],
        config=config,
    )
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
    handle = await engine.start_items_turn(
        user_id=user,
        target=ThreadTarget(),
        messages=[NewMessage(role=Role.USER, content="go")],
        config=config,
    )
    paused = await handle.result()
    (action,) = paused.actions
    await engine.submit_tool_outputs(
        user_id=user, run_id=paused.run.id, outputs=[(action.tool_call_id, "denied")]
    )
    done = await (await engine.start_turn(user_id=user, run_id=paused.run.id)).result()
    assert done.message is not None
    assert done.message.content.startswith("the tool said: Not run: the user did not approve")
    assert [i["type"] for i in await items(engine, handle.thread_id)] == ["mcp_list_tools"]
