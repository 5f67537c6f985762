"""A deadlock PostgreSQL breaks by aborting one transaction is known for what it is
(``db.retryable``): the aborted side can run again (file indexing does, ``retrieval.ingest``)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import IntegrityError, OperationalError

from parley.store.db import retryable
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
