"""A sweep that closes a dead turn gives its message every delta the run's log holds: a
checkpoint saves the message's text only now and then (``checkpoints.TEXT_SECONDS``), the
log at every checkpoint. On SQLite, or PostgreSQL with ``PARLEY_TEST_DATABASE_URL``."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from parley.engine import sweeps
from parley.engine.sweeps import UNSAVED_SEQ_GAP
from parley.events import ContentDelta, ReasoningDelta, RunStatusEvent
from parley.store import runs as run_store
from parley.store import threads as thread_store
from parley.store.db import Database, now
from parley.store.tables import messages, runs
from tests.store.conftest import new_run, new_user


def _turn(conn: Connection, user_id: str, stored: str) -> tuple[str, str, str]:
    """An in_progress run whose lease ran out, with an earlier complete answer and the
    answer it was streaming when its server died (``stored``: its text as saved)."""
    thread_id = thread_store.create_thread(conn, user_id=user_id, metadata={}).id
    run = new_run(conn, user_id, thread_id)
    earlier = thread_store.new_message(
        thread_id=thread_id, seq=1, role="assistant", content="done before", run_id=run.id
    )
    current = thread_store.new_message(
        thread_id=thread_id, seq=2, role="assistant", content=stored, run_id=run.id
    )
    thread_store.insert_messages(conn, user_id=user_id, rows=[earlier, current])
    conn.execute(
        update(runs).where(runs.c.id == run.id).values(lease_expires_at=now() - 1, last_seq=0)
    )
    return run.id, earlier.id, current.id


def _log(conn: Connection, run_id: str, events: list[Any], first: int = 1) -> int:
    """Log events as a checkpoint does: the run's ``last_seq`` stays where the claim left
    it."""
    entries = [(first + i, e.type, e.model_dump_json()) for i, e in enumerate(events)]
    run_store.append_events(conn, run_id=run_id, events=entries)
    return entries[-1][0]


def _message(conn: Connection, message_id: str) -> dict[str, Any]:
    row = conn.execute(select(messages).where(messages.c.id == message_id)).one()
    return dict(row._mapping)


async def test_the_text_past_the_last_saved_comes_back_from_the_log(db: Database) -> None:
    user_id = await new_user(db)

    def write(conn: Connection) -> tuple[dict[str, Any], dict[str, Any], list[tuple[int, str]]]:
        run_id, earlier, current = _turn(conn, user_id, stored="Hel")
        r = run_id
        last = _log(
            conn,
            r,
            [
                RunStatusEvent(run_id=r, status="in_progress"),
                ContentDelta(run_id=r, message_id=earlier, text="done before"),
                ReasoningDelta(run_id=r, message_id=current, text="think", summary=True),
                ContentDelta(run_id=r, message_id=current, text="Hel"),
            ],
        )
        # the checkpoint after the text's last save: in the log, not in the message
        _log(
            conn,
            r,
            [
                ContentDelta(run_id=r, message_id=current, text="lo, \x00"),
                ReasoningDelta(run_id=r, message_id=current, text=" more"),
                ContentDelta(run_id=r, message_id=current, text="world"),
            ],
            first=last + 1,
        )
        assert sweeps.close_orphan(conn, run_store.get_run(conn, run_id=r))
        logged = [(e.seq, e.type) for e in run_store.read_events(conn, run_id=r, after=0)]
        return _message(conn, current), _message(conn, earlier), logged

    current, earlier, logged = await db.write(write)
    assert current["content"] == "Hello, \ufffdworld"
    assert current["reasoning"] == "think more"
    layout = current["layout"]
    layout = orjson.loads(layout) if isinstance(layout, str | bytes) else layout
    assert layout == [["summary", 5], ["text", 8], ["reasoning", 5], ["text", 5]]
    assert earlier["content"] == "done before"  # an earlier answer is as it was
    # the closing events are numbered past the last logged one, not the run's stale
    # ``last_seq``, with the gap for events the dead turn may have sent past the log
    assert [t for _, t in logged[-3:]] == ["error", "run.status", "done"]
    assert [s for s, _ in logged[-3:]] == [7 + UNSAVED_SEQ_GAP + i for i in (1, 2, 3)]


async def test_a_saved_text_that_is_not_the_logs_start_is_left_alone(db: Database) -> None:
    """The message's text does not begin with what the log streamed into it (written by
    another path): the sweep keeps the stored text rather than guess."""
    user_id = await new_user(db)

    def write(conn: Connection) -> dict[str, Any]:
        run_id, _, current = _turn(conn, user_id, stored="something else")
        _log(conn, run_id, [ContentDelta(run_id=run_id, message_id=current, text="Hello")])
        assert sweeps.close_orphan(conn, run_store.get_run(conn, run_id=run_id))
        return _message(conn, current)

    assert (await db.write(write))["content"] == "something else"


async def test_a_turn_that_streamed_nothing_leaves_its_messages_alone(db: Database) -> None:
    user_id = await new_user(db)

    def write(conn: Connection) -> tuple[dict[str, Any], str]:
        run_id, _, current = _turn(conn, user_id, stored="")
        _log(conn, run_id, [RunStatusEvent(run_id=run_id, status="in_progress")])
        assert sweeps.close_orphan(conn, run_store.get_run(conn, run_id=run_id))
        status = run_store.get_run(conn, run_id=run_id).status
        return _message(conn, current), status

    message, status = await db.write(write)
    assert message["content"] == "" and message["layout"] is None
    assert status == "incomplete"
