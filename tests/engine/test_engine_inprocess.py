"""The engine driven in-process, on a real database, with a provider at the edge."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import sqlite3
import threading
import time
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, make_url, select
from sqlalchemy.engine import Connection

from parley.engine import Engine, NewMessage, RunConfig, ThreadTarget, TurnHandle
from parley.engine import transactions as tx
from parley.events import ContentDelta, FinishPart, ModelEvent, TextPart, ToolCallPart, UsagePart
from parley.providers.base import ModelRequest
from parley.store import tables, threads, users
from parley.store.engines import _sqlite_driver
from parley.types import Role, Usage
from tests.engine.inprocess import running_engine, user_and_assistant


class Scripted:
    """A provider that streams the given text pieces."""

    def __init__(self, *pieces: str) -> None:
        self.pieces = pieces

    async def stream(self, request: ModelRequest) -> AsyncGenerator[ModelEvent, None]:
        for piece in self.pieces:
            yield TextPart(piece)
        yield FinishPart("stop")


class OneToolRound:
    """A provider that calls the tool ``lookup`` first, and answers with its result."""

    async def stream(self, request: ModelRequest) -> AsyncGenerator[ModelEvent, None]:
        last = request.messages[-1]
        if last.role == "tool":
            yield TextPart(f"it is {last.content}")
            yield UsagePart(input_tokens=7, output_tokens=3, reasoning_tokens=2, cached_tokens=5)
            yield FinishPart("stop")
            return
        yield ToolCallPart(index=0, id="call_1", name="lookup", arguments='{"q": "x"}')
        yield UsagePart(input_tokens=5, output_tokens=2, reasoning_tokens=1)
        yield FinishPart("tool_calls")


class UnreadableThenAnswer:
    """A provider whose first call's tool call cannot be read; called again in the same
    turn with the tool error, it answers."""

    async def stream(self, request: ModelRequest) -> AsyncGenerator[ModelEvent, None]:
        if request.messages[-1].role == "tool":
            yield TextPart("sorry")
            yield UsagePart(input_tokens=30, output_tokens=4, reasoning_tokens=3, cached_tokens=20)
            yield FinishPart("stop")
            return
        yield ToolCallPart(index=0, id="call_1", name="lookup", arguments="[1")
        yield UsagePart(input_tokens=20, output_tokens=9, reasoning_tokens=6, cached_tokens=16)
        yield FinishPart("tool_calls")


class Stalling:
    """A provider that sends a word, then nothing until the turn is cancelled."""

    async def stream(self, request: ModelRequest) -> AsyncGenerator[ModelEvent, None]:
        yield TextPart("partial")
        await asyncio.sleep(60)
        yield FinishPart("stop")


class Watched:
    """A provider that answers "ok" and notes, for each call, its request and whether the
    engine had registered the call's turn yet (it has not when the call began early,
    during the claim); and, on SQLite, the runs stored when the call first ran (where a
    real provider writes its request)."""

    def __init__(self) -> None:
        self.engine: Engine | None = None
        self.calls: list[tuple[ModelRequest, bool]] = []
        #: Calls whose stream was closed, read to its end or not.
        self.closed = 0
        #: The runs in the database as each call first ran (SQLite only).
        self.runs_when_sent: list[int] = []

    def stream(self, request: ModelRequest) -> AsyncGenerator[ModelEvent, None]:
        assert self.engine is not None
        self.calls.append((request, bool(self.engine.turns)))
        return self._answer()

    async def _answer(self) -> AsyncGenerator[ModelEvent, None]:
        assert self.engine is not None
        # A request that takes a round of the event loop to go out, as aiohttp's does (its
        # pooled connection taken first), then is written.
        await asyncio.sleep(0)
        url = make_url(self.engine.db.url)
        if url.get_backend_name() == "sqlite" and url.database:
            driver = _sqlite_driver().get("module", sqlite3)  # the server's own SQLite
            with contextlib.closing(driver.connect(url.database)) as db:
                self.runs_when_sent.append(db.execute("SELECT count(*) FROM runs").fetchone()[0])
        try:
            yield TextPart("ok")
            yield FinishPart("stop")
        finally:
            self.closed += 1


LOOKUP = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    watched = Watched()
    providers = {
        "script": Scripted("a\x00b", " end"),
        "odd": Scripted('"quoted"\n', "\\ \u2028 é 😀 \x7f\x01", ""),
        "round": OneToolRound(),
        "unreadable": UnreadableThenAnswer(),
        "stall": Stalling(),
        "watched": watched,
    }
    async with running_engine(tmp_path, providers) as eng:
        watched.engine = eng
        yield eng


async def test_model_text_with_nul_is_stored_with_a_replacement_character(engine: Engine) -> None:
    user, bot = await user_and_assistant(engine, "script/x")
    turn = await engine.start_first_turn(user_id=user.id, assistant_id=bot.id, content="hi")
    result = await turn.result()
    assert result.run.status == "completed"
    assert result.message is not None
    assert result.message.content == "a\ufffdb end"


async def test_text_deltas_are_the_json_of_their_event_model(engine: Engine) -> None:
    # The deltas are written without a model each: byte for byte what the model writes.
    user, bot = await user_and_assistant(engine, "odd/x")
    turn = await engine.start_first_turn(user_id=user.id, assistant_id=bot.id, content="hi")
    deltas = [
        data async for batch in turn.events() for _, kind, data in batch if kind == "content.delta"
    ]
    assert len(deltas) == 3
    texts = []
    for data in deltas:
        event = ContentDelta.model_validate_json(data)
        assert data == event.model_dump_json()
        assert (event.run_id, event.message_id) == (turn.run_id, turn.message_id)
        texts.append(event.text)
    assert texts == ['"quoted"\n', "\\ \u2028 é 😀 \x7f\x01", ""]
    stored = await engine.follow(turn.run_id, after=0).__anext__()
    assert [d for _, k, d in stored if k == "content.delta"] == deltas


@pytest.mark.parametrize("model", ["script/x", "round/x", "stall/x"])
async def test_a_turn_that_ended_is_freed_without_the_garbage_collector(
    engine: Engine, model: str
) -> None:
    # A turn and all it holds (its run, context, events, model call) go as soon as its
    # task ends: nothing of it is left in a reference cycle for the collector's passes,
    # which cost a server under load far more than the objects themselves.
    user, bot = await user_and_assistant(engine, model)
    gc.collect()
    gc.disable()
    try:
        handle = await engine.start_first_turn(user_id=user.id, assistant_id=bot.id, content="hi")
        run_id = handle.run_id
        turn = weakref.ref(engine.turns[run_id])
        if model == "stall/x":
            await _eventually(lambda: _has_text(engine, run_id))
            await handle.cancel()
        await handle.result()
        del handle
        await _eventually(lambda: _ended(engine, run_id))
        for _ in range(3):  # the task's own end
            await asyncio.sleep(0)
        assert turn() is None
    finally:
        gc.enable()


async def _writes_idle(engine: Engine) -> bool:
    return engine.db._workers.quiet()


async def _has_text(engine: Engine, run_id: str) -> bool:
    turn = engine.turns.get(run_id)
    return turn is not None and bool(turn.answer.acc.text)


async def _ended(engine: Engine, run_id: str) -> bool:
    return run_id not in engine.turns


async def _entries(batches: AsyncIterator[list[tuple[int, str, str]]]) -> list[tuple[int, str]]:
    return [(seq, kind) async for batch in batches for seq, kind, _ in batch]


async def test_a_face_runs_a_tool_round_through_the_engine_interface(engine: Engine) -> None:
    user, bot = await user_and_assistant(engine, "round/x")
    thread = await engine.db.write(lambda c: threads.create_thread(c, user_id=user.id, metadata={}))
    question = await engine.add_message(user_id=user.id, thread_id=thread.id, content="what?")
    assert question.role == "user" and question.content == "what?"
    run = await engine.create_run(
        user_id=user.id, thread_id=thread.id, assistant_id=bot.id, tools=[LOOKUP]
    )
    assert (run.status, run.model, run.tools) == ("queued", "round/x", [LOOKUP])

    first = await engine.start_turn(user_id=user.id, run_id=run.id)
    assert (first.run_id, first.thread_id, first.first_seq) == (run.id, thread.id, 1)
    seen = await _entries(first.events())
    assert [kind for _, kind in seen] == ["run.status", "tool_calls", "usage", "run.status", "done"]
    outcome = await first.result()
    assert outcome.run.status == "action_required"
    assert [a.tool_call_id for a in outcome.actions] == ["call_1"]
    assert outcome.usage == Usage(input_tokens=5, output_tokens=2, reasoning_tokens=1)

    await engine.submit_tool_outputs(user_id=user.id, run_id=run.id, outputs=[("call_1", "42")])
    second = await engine.start_turn(user_id=user.id, run_id=run.id)
    assert second.first_seq == seen[-1][0] + 1
    # From an earlier sequence number: the first turn's events from the log, then this one's.
    replayed = await _entries(second.events(after=0))
    assert [seq for seq, _ in replayed] == list(range(1, len(replayed) + 1))
    assert replayed[: len(seen)] == seen and replayed[-1][1] == "done"
    outcome = await second.result()
    assert outcome.run.status == "completed"
    assert outcome.message is not None and outcome.message.content == "it is 42"
    assert outcome.actions == []
    assert outcome.usage == Usage(
        input_tokens=7, output_tokens=3, reasoning_tokens=2, cached_tokens=5
    )
    # the run: every turn's tokens added up
    assert outcome.run.usage == Usage(
        input_tokens=12, output_tokens=5, reasoning_tokens=3, cached_tokens=5
    )


async def test_a_turn_counts_the_tokens_of_every_model_call(engine: Engine) -> None:
    user, bot = await user_and_assistant(engine, "unreadable/x")
    thread = await engine.db.write(lambda c: threads.create_thread(c, user_id=user.id, metadata={}))
    await engine.add_message(user_id=user.id, thread_id=thread.id, content="what?")
    run = await engine.create_run(
        user_id=user.id, thread_id=thread.id, assistant_id=bot.id, tools=[LOOKUP]
    )
    turn = await engine.start_turn(user_id=user.id, run_id=run.id)
    entries = [entry async for batch in turn.events() for entry in batch]
    outcome = await turn.result()
    assert outcome.run.status == "completed"
    both = Usage(input_tokens=50, output_tokens=13, reasoning_tokens=9, cached_tokens=36)
    assert outcome.usage == both and outcome.run.usage == both
    (usage,) = [json.loads(data) for _, kind, data in entries if kind == "usage"]
    assert usage == {"type": "usage", "run_id": run.id, **both.model_dump()}


async def test_a_turn_cancelled_through_its_handle_keeps_its_text(engine: Engine) -> None:
    user, bot = await user_and_assistant(engine, "stall/x")
    turn = await engine.start_first_turn(user_id=user.id, assistant_id=bot.id, content="hi")
    ended: list[bool] = []
    turn.when_done(lambda: ended.append(True))
    async for batch in turn.events():
        if any(kind == "content.delta" for _, kind, _ in batch):
            break
    assert ended == []
    run = await turn.cancel()
    assert run.status == "cancelled"
    outcome = await turn.result()
    assert outcome.message is not None and outcome.message.content == "partial"
    assert ended == [True]
    turn.when_done(lambda: ended.append(True))  # an ended turn calls back at once
    assert ended == [True, True]


async def _one_call(engine: Engine, turn: TurnHandle) -> tuple[ModelRequest, bool]:
    """The one model call of ``turn``, with whether it began before the turn was claimed."""
    outcome = await turn.result()
    assert outcome.message is not None and outcome.message.content == "ok"
    watched = _watched(engine)
    (call,) = watched.calls  # an early call kept, not made again
    watched.calls.clear()
    return call


async def test_a_first_turn_on_a_new_thread_calls_the_model_while_it_is_claimed(
    engine: Engine,
) -> None:
    user, bot = await user_and_assistant(engine, "watched/x")
    # The first claim of an assistant reads it; later ones can start at once.
    first = await engine.start_first_turn(user_id=user.id, assistant_id=bot.id, content="one")
    _, registered = await _one_call(engine, first)
    assert registered
    # The database thread done with the first turn's bookkeeping (its end, its tokens'
    # count): the claim is written on the event loop, where the order is the launcher's.
    # (A claim the busy thread writes goes on beside the loop, and may land first.)
    await _eventually(lambda: _writes_idle(engine))
    second = await engine.start_first_turn(user_id=user.id, assistant_id=bot.id, content="two")
    request, registered = await _one_call(engine, second)
    assert not registered and [m.content for m in request.messages] == ["two"]
    # The call went out before the claim was written (on SQLite the claim runs on the
    # event loop, which it would hold before the request is out): only the first turn's
    # run was stored then.
    sent = _watched(engine).runs_when_sent
    assert sent in ([], [1, 1]), sent


async def test_an_items_turn_on_a_new_thread_calls_the_model_while_it_is_claimed(
    engine: Engine,
) -> None:
    user = await engine.db.write(lambda c: users.create_user(c, name="u"))
    config = RunConfig(
        model="watched/x",
        instructions="Be brief.",
        tools=[LOOKUP],
        parameters={"temperature": 0.5},
        options={"tool_choice": "auto"},
    )
    messages = [
        NewMessage(role=Role.SYSTEM, content="context"),
        NewMessage(role=Role.ASSISTANT, content="earlier", reasoning="thought"),
        NewMessage(role=Role.USER, content="now", images=[{"url": "https://example.com/a.png"}]),
    ]
    turn = await engine.start_items_turn(
        user_id=user.id, target=ThreadTarget(), messages=messages, config=config
    )
    request, registered = await _one_call(engine, turn)
    assert not registered
    assert [(m.role, m.content) for m in request.messages] == [
        ("system", "context"),
        ("assistant", "earlier"),
        ("user", "now"),
    ]
    assert request.instructions == "Be brief." and request.parameters == {"temperature": 0.5}

    # On an existing thread, or with tool calls among the items, the claim comes first.
    turn = await engine.start_items_turn(
        user_id=user.id,
        target=ThreadTarget(thread_id=turn.thread_id),
        messages=[NewMessage(role=Role.USER, content="again")],
        config=config,
    )
    _, registered = await _one_call(engine, turn)
    assert registered
    call = {"id": "call_9", "name": "lookup", "arguments": {}}
    turn = await engine.start_items_turn(
        user_id=user.id,
        target=ThreadTarget(),
        messages=[
            NewMessage(role=Role.ASSISTANT, tool_calls=[call]),
            NewMessage(role=Role.TOOL, content="42", tool_call_id="call_9"),
        ],
        config=config,
    )
    _, registered = await _one_call(engine, turn)
    assert registered


def _watched(engine: Engine) -> Watched:
    watched = engine.providers.resolve("watched/x")[0]
    assert isinstance(watched, Watched)
    return watched


async def _eventually(check: Callable[[], Awaitable[bool]], seconds: float = 10.0) -> None:
    """Wait until ``check()`` answers True, ``seconds`` at most (then go on: the test's own
    assertions say what did not happen)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.01)


async def _known_assistant(engine: Engine) -> tuple[str, str]:
    """A user and an assistant of theirs on ``watched/x`` that a claim has read, so that
    its next first turn calls the model early (``engine.early``)."""
    user, bot = await user_and_assistant(engine, "watched/x")
    await _one_call(
        engine, await engine.start_first_turn(user_id=user.id, assistant_id=bot.id, content="one")
    )
    return user.id, bot.id


async def _thread_count(engine: Engine, user_id: str) -> int:
    def count(conn: Connection) -> int:
        query = select(func.count()).select_from(tables.threads)
        return int(conn.execute(query.where(tables.threads.c.user_id == user_id)).scalar_one())

    return await engine.db.read(count)


async def _answers(engine: Engine, user_id: str) -> list[tuple[str, str]]:
    """The status and answer of each of the user's runs, oldest first."""
    runs, messages = tables.runs, tables.messages

    def read(conn: Connection) -> list[tuple[str, str]]:
        query = (
            select(runs.c.status, messages.c.content)
            .join(messages, messages.c.run_id == runs.c.id)
            .where(runs.c.user_id == user_id, messages.c.role == "assistant")
            .order_by(runs.c.id)
        )
        return [(status, str(content)) for status, content in conn.execute(query)]

    return await engine.db.read(read)


async def test_a_caller_gone_while_its_claim_is_written_leaves_the_turn_to_run(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    user_id, bot_id = await _known_assistant(engine)
    began, go_on = threading.Event(), threading.Event()
    claim_first = tx.claim_first

    def slow_claim(conn: Connection, **kw: Any) -> Any:
        began.set()
        go_on.wait(10)
        return claim_first(conn, **kw)

    monkeypatch.setattr(tx, "claim_first", slow_claim)
    caller = asyncio.create_task(
        engine.start_first_turn(user_id=user_id, assistant_id=bot_id, content="two")
    )
    assert await asyncio.to_thread(began.wait, 10)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    go_on.set()

    async def answered() -> bool:  # the claim ends, and its turn runs without its caller
        answers = await _answers(engine, user_id)
        return len(answers) == 2 and answers[1][0] == "completed"

    await _eventually(answered)
    assert await _answers(engine, user_id) == [("completed", "ok"), ("completed", "ok")]
    assert not engine.turns
    watched = _watched(engine)
    (call,) = watched.calls  # the call begun early is the turn's: made once
    assert [m.content for m in call[0].messages] == ["two"] and not call[1]


async def test_a_caller_gone_while_its_claim_waits_to_be_written_leaves_nothing(
    engine: Engine,
) -> None:
    user_id, bot_id = await _known_assistant(engine)
    watched = _watched(engine)
    watched.calls.clear()
    closed = watched.closed
    before = await _thread_count(engine, user_id)
    # Every database thread busy: the claim waits in line.
    held, go_on = threading.Semaphore(0), threading.Event()

    def hold(_: Connection) -> None:
        held.release()
        go_on.wait(10)

    holders = [
        asyncio.create_task(engine.db.write(hold))
        for _ in range(engine.db.pool_size if not engine.db.is_sqlite else 1)
    ]
    for _ in holders:
        assert await asyncio.to_thread(held.acquire, True, 10)
    caller = asyncio.create_task(
        engine.start_first_turn(user_id=user_id, assistant_id=bot_id, content="two")
    )

    async def called() -> bool:  # the early call begins
        return bool(watched.calls)

    await _eventually(called, 5)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    go_on.set()
    await asyncio.gather(*holders)

    async def let_go() -> bool:  # the early call is let go
        return watched.closed > closed

    await _eventually(let_go, 5)
    assert watched.closed == closed + 1 and len(watched.calls) == 1
    assert not engine.turns
    assert await _thread_count(engine, user_id) == before  # nothing was written
