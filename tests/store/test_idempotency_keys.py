"""Idempotency keys in the database: one claim per user and key, held by the primary key
even when two claims race on separate connections; old keys forgotten, abandoned claims
taken over."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from parley.store import idempotency_keys as keys
from parley.store.db import Database
from parley.store.idempotency_keys import Fingerprint
from parley.store.tables import idempotency_keys
from tests.harness import FreshDatabase
from tests.store.conftest import new_user

REQUEST = Fingerprint("POST", "/v1/threads", "0" * 64)
DAY = 24 * 3600.0


def _claim(conn: Any, user_id: str, at: float, key: str = "k") -> keys.IdempotencyKey | None:
    return keys.claim(
        conn,
        user_id=user_id,
        key=key,
        request=REQUEST,
        at=at,
        expired_before=at - DAY,
        abandoned_before=at - 60,
    )


async def test_the_primary_key_refuses_a_second_row_for_a_user_and_key(db: Database) -> None:
    user_id = await new_user(db)
    request = {"method": REQUEST.method, "path": REQUEST.path, "body_hash": REQUEST.body_hash}
    row = {**request, "user_id": user_id, "key": "k", "created_at": 1.0}
    await db.write(lambda c: c.execute(insert(idempotency_keys).values(row)))
    with pytest.raises(IntegrityError):
        await db.write(lambda c: c.execute(insert(idempotency_keys).values(row)))
    other = await new_user(db)
    await db.write(lambda c: c.execute(insert(idempotency_keys).values({**row, "user_id": other})))


async def test_a_claim_then_its_record_is_what_the_next_claim_finds(db: Database) -> None:
    user_id = await new_user(db)
    assert await db.write(lambda c: _claim(c, user_id, 1000.0)) is None
    pending = await db.write(lambda c: _claim(c, user_id, 1001.0))
    assert pending is not None and pending.pending and pending.created_at == 1000.0
    # Only the claim's own request records into it.
    await db.write(
        lambda c: keys.record_answer(
            c, user_id=user_id, key="k", claimed_at=999.0, status_code=201, body="{}"
        )
    )
    still = await db.read(lambda c: keys.find(c, user_id=user_id, key="k"))
    assert still is not None and still.pending
    await db.write(
        lambda c: keys.record_answer(
            c, user_id=user_id, key="k", claimed_at=1000.0, status_code=201, body='{"a":1}'
        )
    )
    answered = await db.write(lambda c: _claim(c, user_id, 1002.0))
    assert answered is not None and not answered.pending
    assert (answered.status_code, answered.body, answered.request) == (201, '{"a":1}', REQUEST)


async def test_old_keys_are_forgotten_and_abandoned_claims_taken_over(db: Database) -> None:
    user_id = await new_user(db)
    await db.write(lambda c: _claim(c, user_id, 1000.0, key="old"))
    await db.write(
        lambda c: keys.record_answer(
            c, user_id=user_id, key="old", claimed_at=1000.0, status_code=200, body="{}"
        )
    )
    await db.write(lambda c: _claim(c, user_id, 1000.0, key="stuck"))
    await db.write(lambda c: _claim(c, user_id, 1000.0, key="running"))
    await db.write(
        lambda c: keys.record_run(c, user_id=user_id, key="running", claimed_at=1000.0, run_id="r")
    )
    # A minute later: the claim that started nothing is free again, the one waiting for
    # its run is not.
    assert await db.write(lambda c: _claim(c, user_id, 1061.0, key="stuck")) is None
    running = await db.write(lambda c: _claim(c, user_id, 1061.0, key="running"))
    assert running is not None and running.pending and running.run_id == "r"
    # A day after all that, any claim forgets every key older than a day.
    await db.write(lambda c: _claim(c, user_id, 1062.0 + DAY, key="new"))
    left = await db.read(lambda c: c.execute(select(idempotency_keys.c.key)).scalars().all())
    assert sorted(left) == ["new"]


async def test_racing_claims_let_exactly_one_in(tmp_path: Path) -> None:
    """Two databases (two replicas' pools) claim one key at the same moment, many times:
    each time one claim wins and the other finds it. (SQLite runs one write at a time:
    there the second simply comes after the first.)"""
    fresh = FreshDatabase(tmp_path)
    first, second = Database(fresh.url), Database(fresh.url)
    try:
        await first.migrate()
        user_id = await new_user(first)
        for attempt in range(20):
            key = f"k{attempt}"
            ready = None if first.is_sqlite else threading.Barrier(2)

            def claim(
                conn: Any, key: str = key, ready: threading.Barrier | None = ready
            ) -> keys.IdempotencyKey | None:
                if ready is not None:
                    ready.wait(timeout=10)  # both transactions are open: now race
                return _claim(conn, user_id, 1000.0, key=key)

            outcomes = await asyncio.gather(first.write(claim), second.write(claim))
            assert sorted(o is None for o in outcomes) == [False, True], outcomes
    finally:
        await first.dispose()
        await second.dispose()
        fresh.drop()
