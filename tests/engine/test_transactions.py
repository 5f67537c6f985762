"""The engine's transactions while another request writes to the same thread, on a real
database (the interleaving made certain with a second connection held open)."""

from __future__ import annotations

import asyncio
import functools
import threading
from pathlib import Path

import pytest
from sqlalchemy.engine import Connection

from parley.engine import NewMessage, RunConfig, ThreadTarget
from parley.engine import transactions as tx
from parley.errors import InvalidRequest
from parley.store import users
from parley.store.db import Database
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
            functools.partial(tx.append_messages, user_id=user.id, thread_id=None, messages=asked)
        )

        def store_and_hold(conn: Connection) -> None:
            tx.append_messages(conn, user_id=user.id, thread_id=thread.id, messages=answer("a"))
            stored.set()
            release.wait(10)  # committed only once the claim below is under way

        first = asyncio.ensure_future(other.write(store_and_hold))
        assert await asyncio.to_thread(stored.wait, 10)
        claim = asyncio.ensure_future(
            db.write(
                functools.partial(
                    tx.claim_items,
                    user_id=user.id,
                    target=ThreadTarget(thread_id=thread.id),
                    messages=answer("b"),
                    config=RunConfig(model="demo/parley"),
                    lease=tx.Lease.of(None, 5),
                    check_model=lambda model: None,
                )
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
