"""The engine's transactions while another request writes to the same thread, on a real
database (the interleaving made certain with a second connection held open)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from parley.engine import NewMessage, RunConfig, ThreadTarget
from parley.engine import transactions as tx
from parley.errors import InvalidRequest, NotFound
from parley.store import runs, tables, threads, users
from parley.store.db import Database
from parley.store.tables import messages
from parley.types import Role
from tests.harness import FreshDatabase

CALL = {"id": "call_1", "name": "lookup", "arguments": {}}


def answer(output: str) -> list[NewMessage]:
    return [NewMessage(role=Role.TOOL, content=output, tool_call_id=CALL["id"])]


async def waits_on_a_lock(db: Database) -> bool:
    """Whether a transaction waits on a row lock (PostgreSQL; SQLite cannot tell, and needs
    not: its writers take the database's write lock when they begin)."""
    if db.is_sqlite:
        return True
    query = (
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    return bool(await db.read(lambda c: c.exec_driver_sql(query).scalar()))


async def test_an_items_turn_sees_the_output_another_request_is_storing(tmp_path: Path) -> None:
    """A tool result for a call of a thread that no run waits on, sent while another
    request stores one for the same call: the turn's claim reads the thread once that
    request has committed, and refuses the second output."""
    fresh = FreshDatabase(tmp_path)
    db, other = Database(fresh.url), Database(fresh.url)
    stored, release = threading.Event(), threading.Event()
    try:
        await db.migrate()
        user = await db.write(lambda c: users.create_user(c, name="u"))
        asked = [
            NewMessage(role=Role.USER, content="look it up"),
            NewMessage(role=Role.ASSISTANT, tool_calls=[CALL]),
        ]
        thread, _ = await db.write(
            tx.append_messages, user_id=user.id, thread_id=None, messages=asked
        )

        def store_and_hold(conn: Connection) -> None:
            tx.append_messages(conn, user_id=user.id, thread_id=thread.id, messages=answer("a"))
            stored.set()
            release.wait(10)  # committed only once the claim below is under way

        first = asyncio.ensure_future(other.write(store_and_hold))
        assert await asyncio.to_thread(stored.wait, 10)
        claim = asyncio.ensure_future(
            db.write(
                tx.claim_items,
                user_id=user.id,
                target=ThreadTarget(thread_id=thread.id),
                messages=answer("b"),
                config=RunConfig(model="demo/parley"),
                lease=tx.Lease.of(None, 5),
                check_model=lambda model: None,
            )
        )
        for _ in range(500):
            if await waits_on_a_lock(other):
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("the claim never waited for the first request")
        release.set()
        await first
        with pytest.raises(InvalidRequest) as refused:
            await claim
        assert refused.value.code == "duplicate_tool_output"
    finally:
        release.set()
        await other.dispose()
        await db.dispose()
        fresh.drop()


async def test_deleting_a_thread_waits_for_a_writer_of_its_run(tmp_path: Path) -> None:
    """A writer holds a run of the thread and then takes the thread itself (as a turn that
    stores tool messages does) while the thread is being deleted: the delete waits for the
    run and then deletes, where taking the thread first would deadlock with the writer."""
    fresh = FreshDatabase(tmp_path)
    db, other = Database(fresh.url), Database(fresh.url)
    locked, release = threading.Event(), threading.Event()
    try:
        await db.migrate()
        user = await db.write(lambda c: users.create_user(c, name="u"))
        asked = [NewMessage(role=Role.USER, content="hello")]
        thread, _ = await db.write(
            tx.append_messages, user_id=user.id, thread_id=None, messages=asked
        )
        run = await db.write(
            runs.create_run,
            user_id=user.id,
            thread_id=thread.id,
            assistant_id=None,
            model="demo/parley",
            instructions=None,
            tools=[],
            parameters={},
            status="completed",
        )

        def run_then_thread(conn: Connection) -> None:
            runs.lock_run(conn, run_id=run.id, user_id=user.id)
            locked.set()
            release.wait(10)  # the delete is under way
            threads.lock_thread(conn, user_id=user.id, thread_id=thread.id)

        writer = asyncio.ensure_future(other.write(run_then_thread))
        assert await asyncio.to_thread(locked.wait, 10)
        deleting = asyncio.ensure_future(
            db.write(threads.delete_thread, user_id=user.id, thread_id=thread.id)
        )
        for _ in range(500):
            if await waits_on_a_lock(other):
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("the delete never waited for the writer")
        release.set()
        await writer
        await deleting
        with pytest.raises(NotFound):
            await db.read(threads.get_thread, user_id=user.id, thread_id=thread.id)
    finally:
        release.set()
        await other.dispose()
        await db.dispose()
        fresh.drop()


async def test_a_refused_tool_result_is_named_by_its_index_among_the_messages(
    db: Database,
) -> None:
    """The engine names the message at fault by its place in the list it was given, and no
    request field: each face names its own (``input[2]``, ``items[2]``)."""
    user = await db.write(users.create_user, name="u")
    asked = [
        NewMessage(role=Role.USER, content="look it up"),
        NewMessage(role=Role.ASSISTANT, tool_calls=[CALL]),
    ]
    thread, _ = await db.write(tx.append_messages, user_id=user.id, thread_id=None, messages=asked)
    stray = NewMessage(role=Role.TOOL, content="x", tool_call_id="call_nowhere")
    with pytest.raises(InvalidRequest) as refused:
        await db.write(
            tx.append_messages,
            user_id=user.id,
            thread_id=thread.id,
            messages=[NewMessage(role=Role.USER, content="and"), *answer("a"), stray],
        )
    assert (refused.value.code, refused.value.message_index) == ("tool_call_not_found", 2)
    assert refused.value.param is None
    assert "message_index" not in str(refused.value.to_dict())

    with pytest.raises(InvalidRequest) as twice:
        await db.write(
            tx.append_messages,
            user_id=user.id,
            thread_id=thread.id,
            messages=[*answer("a"), *answer("b")],
        )
    assert (twice.value.code, twice.value.message_index, twice.value.param) == (
        "duplicate_tool_output",
        1,
        None,
    )


async def test_a_turn_on_a_new_thread_takes_its_numbers_with_the_thread(db: Database) -> None:
    """A claim that makes its thread takes the messages' and the answer's sequence numbers
    with it (no second statement); the next turn of the thread numbers on from there."""
    user = await db.write(users.create_user, name="u")

    def turn(conn: Connection, thread_id: str | None, *texts: str) -> tx.Claim:
        claimed = tx.claim_items(
            conn,
            user_id=user.id,
            target=ThreadTarget(thread_id=thread_id),
            messages=[NewMessage(role=Role.USER, content=t) for t in texts],
            config=RunConfig(model="demo/parley"),
            lease=tx.Lease.of(None, 5),
            check_model=lambda model: None,
        )
        runs.set_status(conn, run_id=claimed.run.id, expected=["in_progress"], status="completed")
        return claimed

    first = await db.write(lambda c: turn(c, None, "one", "two"))
    thread_id = first.run.thread_id
    second = await db.write(lambda c: turn(c, thread_id, "three"))

    def numbered(conn: Connection) -> tuple[list[tuple[int, str, str]], int]:
        rows = conn.execute(
            select(messages.c.seq, messages.c.role, messages.c.id)
            .where(messages.c.thread_id == thread_id)
            .order_by(messages.c.seq)
        )
        count = conn.execute(
            select(tables.threads.c.message_count).where(tables.threads.c.id == thread_id)
        ).scalar_one()
        return [tuple(r) for r in rows], count

    found, count = await db.read(numbered)
    assert [(seq, role) for seq, role, _ in found] == [
        (1, "user"),
        (2, "user"),
        (3, "assistant"),
        (4, "user"),
        (5, "assistant"),
    ]
    assert (found[2][2], found[4][2]) == (first.message_id, second.message_id)
    assert count == 5


async def test_a_refused_turn_on_a_new_thread_leaves_no_thread(db: Database) -> None:
    """The statements of a turn that makes its thread go ahead of their answers (one round
    trip on PostgreSQL): a turn refused after its thread was sent leaves nothing stored."""
    user = await db.write(users.create_user, name="u")
    stray = NewMessage(role=Role.TOOL, content="x", tool_call_id="call_nowhere")
    with pytest.raises(InvalidRequest) as refused:
        await db.write(
            tx.claim_items,
            user_id=user.id,
            target=ThreadTarget(thread_id=None),
            messages=[NewMessage(role=Role.USER, content="hi"), stray],
            config=RunConfig(model="demo/parley"),
            lease=tx.Lease.of(None, 5),
            check_model=lambda model: None,
        )
    assert refused.value.code == "tool_call_not_found"

    def stored(conn: Connection) -> list[int]:
        return [
            conn.execute(select(func.count()).select_from(table)).scalar_one()
            for table in (tables.threads, tables.runs, messages)
        ]

    assert await db.read(stored) == [0, 0, 0]
    # The connection is whole: the next turn goes through.
    turn = await db.write(
        tx.claim_items,
        user_id=user.id,
        target=ThreadTarget(thread_id=None),
        messages=[NewMessage(role=Role.USER, content="hi")],
        config=RunConfig(model="demo/parley"),
        lease=tx.Lease.of(None, 5),
        check_model=lambda model: None,
    )
    assert await db.read(stored) == [1, 1, 2]
    assert turn.run.status == "in_progress"
