"""A deadlock PostgreSQL breaks by aborting one transaction is known for what it is
(``transaction.retryable``): the aborted side can run again (``Database.write_retried``: file indexing,
the vector stores' writes)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError, OperationalError

from parley.store.db import Database
from parley.store.transaction import WRITE_TRIES, retryable
from tests.harness import FreshDatabase, postgres_url


@pytest.mark.skipif(postgres_url() is None, reason="needs PostgreSQL: PARLEY_TEST_DATABASE_URL")
def test_a_deadlock_is_retryable_and_other_errors_are_not(tmp_path: Path) -> None:
    fresh = FreshDatabase(tmp_path)
    engine = create_engine(fresh.url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (id int PRIMARY KEY, n int)"))
            conn.execute(text("INSERT INTO t VALUES (1, 0), (2, 0)"))
        both = threading.Barrier(2)
        errors: list[BaseException] = []

        def lock(first: int, second: int) -> None:
            try:
                with engine.begin() as conn:
                    conn.execute(text("UPDATE t SET n = n + 1 WHERE id = :i"), {"i": first})
                    both.wait(timeout=10)
                    conn.execute(text("UPDATE t SET n = n + 1 WHERE id = :i"), {"i": second})
            except OperationalError as exc:
                errors.append(exc)

        threads = [threading.Thread(target=lock, args=pair) for pair in ((1, 2), (2, 1))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert len(errors) == 1, errors  # PostgreSQL aborted one side
        assert retryable(errors[0])
        with pytest.raises(IntegrityError) as refused, engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (1, 0)"))
        assert not retryable(refused.value)
        assert not retryable(ValueError("x"))
    finally:
        engine.dispose()
        fresh.drop()


@pytest.mark.skipif(postgres_url() is None, reason="needs PostgreSQL: PARLEY_TEST_DATABASE_URL")
async def test_a_write_aborted_by_a_deadlock_is_written_again(tmp_path: Path) -> None:
    """Two writes that lock two rows in opposite orders deadlock; PostgreSQL aborts one, and
    ``Database.write_retried`` runs it again, so both land (``Database.write`` gives the
    aborted one its error)."""
    fresh = FreshDatabase(tmp_path)
    db = Database(fresh.url)
    try:
        await db.write(lambda c: c.execute(text("CREATE TABLE t (id int PRIMARY KEY, n int)")))
        await db.write(lambda c: c.execute(text("INSERT INTO t VALUES (1, 0), (2, 0)")))
        for write, landed in ((db.write, 1), (db.write_retried, 2)):
            both = threading.Barrier(2)
            runs: list[int] = []
            before = await db.read(lambda c: c.execute(text("SELECT sum(n) FROM t")).scalar())
            ended = await asyncio.gather(
                write(_lock, 1, 2, runs=runs, both=both),
                write(_lock, 2, 1, runs=runs, both=both),
                return_exceptions=True,
            )
            assert sum(1 for e in ended if e is None) == landed, ended
            if landed == 1:
                assert len(runs) == 2  # a plain write is not run again
            else:  # the aborted one again (and once more, if a machine's load deadlocked it)
                assert 3 <= len(runs) <= 2 + (WRITE_TRIES - 1)
            after = await db.read(lambda c: c.execute(text("SELECT sum(n) FROM t")).scalar())
            assert after - before == 2 * landed
    finally:
        await db.dispose()
        fresh.drop()


def _lock(
    conn: Connection, first: int, second: int, *, runs: list[int], both: threading.Barrier
) -> None:
    """Lock row ``first``, then ``second``; the first two tries wait for each other between
    the two, a try again goes straight through."""
    runs.append(first)
    conn.execute(text("UPDATE t SET n = n + 1 WHERE id = :i"), {"i": first})
    if len(runs) <= 2:
        both.wait(timeout=10)
    conn.execute(text("UPDATE t SET n = n + 1 WHERE id = :i"), {"i": second})
