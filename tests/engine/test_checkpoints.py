"""When checkpoints come: each streamed event is in the run's log within
``checkpoint_seconds`` of being sent, and a turn that ends sooner leaves the whole of its
log to its end's one write. The engine in-process, on a real database (SQLite, or
PostgreSQL with ``PARLEY_TEST_DATABASE_URL``), with a provider at the edge that paces its
parts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from parley.config import Tuning
from parley.engine import Engine
from parley.events import FinishPart, ModelEvent, TextPart
from parley.providers.base import ModelRequest
from parley.store.tables import messages, run_events
from tests.engine.inprocess import running_engine, user_and_assistant

INTERVAL = 0.3


class Paced:
    """A provider that streams ``parts`` words, ``gap`` seconds apart (the model name says
    how: ``paced/PARTS:GAP``)."""

    async def stream(self, request: ModelRequest) -> AsyncGenerator[ModelEvent, None]:
        parts, gap = request.model.rpartition("/")[2].split(":")
        for i in range(int(parts)):
            if i:
                await asyncio.sleep(float(gap))
            yield TextPart(f"w{i} ")
        yield FinishPart("stop")


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    async with running_engine(
        tmp_path, {"paced": Paced()}, tuning=Tuning(checkpoint_seconds=INTERVAL)
    ) as eng:
        yield eng


def _log(conn: Any, run_id: str) -> tuple[int, int]:
    """The run's event-log rows, and the last sequence number in them (0: none)."""
    row = conn.execute(
        select(func.count(), func.coalesce(func.max(run_events.c.seq), 0)).where(
            run_events.c.run_id == run_id
        )
    ).one()
    return int(row[0]), int(row[1])


async def test_turns_shorter_than_the_interval_write_their_log_once(engine: Engine) -> None:
    # Back to back, as one client's turns come: each lasts about two thirds of an
    # interval, so checkpoints at a fixed pace would land inside most of them.
    user, bot = await user_and_assistant(engine, "paced/11:0.02")
    runs = []
    for _ in range(4):
        turn = await engine.start_first_turn(user_id=user.id, assistant_id=bot.id, content="hi")
        result = await turn.result()
        assert result.run.status == "completed"
        assert result.message is not None and result.message.content.startswith("w0 w1")
        runs.append(turn.run_id)
    for run_id in runs:
        rows, last = await engine.db.read(_log, run_id)
        assert rows == 1, f"{run_id}: {rows} log rows; the end's write alone was due"
        replayed = [seq async for batch in engine.follow(run_id, after=0) for seq, _, _ in batch]
        assert replayed == list(range(1, last + 1))


async def test_each_event_is_in_the_log_within_the_interval(engine: Engine) -> None:
    user, bot = await user_and_assistant(engine, "paced/40:0.03")
    turn = await engine.start_first_turn(user_id=user.id, assistant_id=bot.id, content="hi")
    sent: list[tuple[int, float]] = []  # each event's number and when the client had it
    logged: list[tuple[float, int]] = []  # when the log was read, and its last number

    async def watch() -> None:
        while True:
            _, last = await engine.db.read(_log, turn.run_id)
            logged.append((time.monotonic(), last))
            await asyncio.sleep(0.01)

    watcher = asyncio.create_task(watch())
    try:
        async for batch in turn.events():
            at = time.monotonic()
            sent.extend((seq, at) for seq, _, _ in batch)
        ended = time.monotonic()
        await turn.result()
    finally:
        watcher.cancel()
    assert ended - sent[0][1] > 3 * INTERVAL  # long enough for several checkpoints
    for seq, at in sent:
        if at > ended - INTERVAL - 0.1:
            continue  # the end's write may save it first
        in_log = next((t for t, last in logged if last >= seq), None)
        assert in_log is not None, f"event {seq} never reached the log while the turn ran"
        # The interval, and room for a loaded machine's late timer and write.
        assert in_log - at < INTERVAL + 0.15, f"event {seq} waited {in_log - at:.3f} s"
    rows, _ = await engine.db.read(_log, turn.run_id)
    # About one checkpoint an interval, and the end's write: not one a chunk.
    assert 3 <= rows <= (ended - sent[0][1]) / INTERVAL + 2


async def test_many_turns_streaming_at_once_share_a_checkpoint_an_interval(engine: Engine) -> None:
    # Each turn's text falls due for a save of its own now and then (a second in, then
    # after longer and longer gaps): those saves ride on the checkpoints the events bring,
    # not one each.
    user, bot = await user_and_assistant(engine, "paced/80:0.03")
    spans: list[list[float]] = []
    turns = []
    for _ in range(8):
        span = [time.monotonic()]
        turn = await engine.start_first_turn(user_id=user.id, assistant_id=bot.id, content="hi")
        turn.when_done(lambda span=span: span.append(time.monotonic()))
        turns.append(turn)
        spans.append(span)
        await asyncio.sleep(0.13)
    for turn in turns:
        await turn.result()
    for turn, (start, end) in zip(turns, spans, strict=True):
        rows, _ = await engine.db.read(_log, turn.run_id)
        # One an interval while it streams (each 2.4 s or more), and its end's write: with
        # a checkpoint for each turn's text due besides, 13 or 14.
        assert rows <= (end - start) / INTERVAL + 2, f"{rows} log rows in {end - start:.2f} s"
        message = await engine.db.read(
            lambda c, t=turn: c.execute(
                select(messages.c.content).where(messages.c.id == t.message_id)
            ).scalar_one()
        )
        assert message.startswith("w0 w1") and message.rstrip().endswith("w79")
