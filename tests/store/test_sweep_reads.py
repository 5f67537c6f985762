"""The sweeps' reads look at the few active runs and scratch threads (and the first piece
of each key's bytes), not at every run, thread and piece ever stored: on a database of many
they read little more than on an empty one.

SQLite uses a partial index only for a statement whose WHERE holds the index's own
condition, so each read is measured in SQLite's own unit of work: the virtual machine
steps it takes (a progress handler, counted; nothing here is timed). PostgreSQL proves
that ``status = 'in_progress'`` implies the index's condition by itself."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import insert, text
from sqlalchemy.engine import Connection

from parley.store import files as file_store
from parley.store import runs as run_store
from parley.store import threads as thread_store
from parley.store.db import Database, now
from parley.store.tables import file_data
from tests.store.conftest import new_run, new_user

ENDED = 2000


def _steps(conn: Connection, read: Callable[[Connection], Any]) -> int:
    """The SQLite virtual machine steps ``read`` takes, in hundreds."""
    raw = conn.connection.driver_connection
    assert raw is not None
    counted = [0]

    def tick() -> int:
        counted[0] += 1
        return 0

    raw.set_progress_handler(tick, 100)
    try:
        read(conn)
    finally:
        raw.set_progress_handler(None, 0)
    return counted[0]


def _reads(at: float) -> dict[str, Callable[[Connection], Any]]:
    return {
        "falling_due": run_store.falling_due,
        "orphaned_runs": lambda c: run_store.orphaned_runs(c, at=at),
        "overdue_runs": lambda c: run_store.overdue_runs(c, at=at),
        "in_progress_leases": run_store.in_progress_leases,
        "idle_scratch": lambda c: thread_store.idle_scratch(c, at=at),
    }


async def test_the_sweeps_read_the_active_runs_alone(db: Database) -> None:
    if not db.is_sqlite:
        pytest.skip("counts SQLite's steps; PostgreSQL infers the partial index by itself")
    user = await new_user(db)

    def seed(conn: Connection, count: int, status: str) -> None:
        for _ in range(count):
            thread = thread_store.create_thread(conn, user_id=user, metadata={})
            new_run(conn, user, thread.id, status)

    def measure(conn: Connection) -> dict[str, int]:
        return {name: _steps(conn, read) for name, read in _reads(now() + 60).items()}

    await db.write(lambda c: seed(c, 2, "in_progress"))
    await db.write(lambda c: seed(c, 1, "action_required"))
    await db.write(
        lambda c: thread_store.create_thread(c, user_id=user, metadata={}, scratch_until=now())
    )
    few = await db.read(measure)
    await db.write(lambda c: seed(c, ENDED, "completed"))
    many = await db.read(measure)

    # What a read that looked at every run would take, for scale.
    scan = await db.read(
        lambda c: _steps(c, lambda c: c.execute(text("SELECT count(*) FROM runs WHERE model = ''")))
    )
    assert scan >= ENDED // 100, scan
    for name in few:
        assert many[name] <= few[name] + 2, (name, few[name], many[name], scan)


async def test_the_sweep_of_unnamed_bytes_reads_first_pieces_alone(db: Database) -> None:
    """The sweep of bytes no file names looks at each key's first piece, through the index
    of first pieces by age: a file of many pieces costs it what a file of one does."""
    if not db.is_sqlite:
        pytest.skip("counts SQLite's steps; PostgreSQL plans the literal condition by itself")
    old = now() - 2 * 86400

    def pieces(conn: Connection, key: str, count: int) -> None:
        conn.execute(
            insert(file_data),
            [{"key": key, "seq": s, "data": b"x" * 64, "created_at": old} for s in range(count)],
        )

    def sweep(conn: Connection) -> Any:
        return file_store.orphan_keys(conn, before=now())

    await db.write(lambda c: pieces(c, "a" * 32, 1))
    few = await db.read(lambda c: _steps(c, sweep))
    await db.write(lambda c: pieces(c, "b" * 32, ENDED))
    many = await db.read(lambda c: _steps(c, sweep))
    assert sorted(await db.read(sweep)) == ["a" * 32, "b" * 32]  # both unnamed, both found
    assert many <= few + 2, (few, many)
