"""Tokens per API key, counted in memory and written together (``engine.usage``), on the
suite's database (SQLite, or PostgreSQL with ``PARLEY_TEST_DATABASE_URL``)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import delete

from parley.engine import UsageCounter
from parley.store import users
from parley.store.db import Database, now
from parley.store.tables import users as users_table
from parley.store.usage import KeyUsage, day_of, usage_rows
from parley.types import Usage
from tests.harness import FreshDatabase
from tests.store.conftest import new_user

KEY = users.hash_key("sk-one")


async def _rows(db: Database, user_id: str) -> list[KeyUsage]:
    return await db.read(lambda c: usage_rows(c, user_id=user_id))


def _count(
    counter: UsageCounter, user_id: str, model: str = "demo/a", key: str = KEY, **tokens: int
) -> None:
    counter.count(
        user_id=user_id, key_hash=key, model=model, face="chat.completions", used=Usage(**tokens)
    )


def _row(model: str, requests: int, **tokens: int) -> KeyUsage:
    counts = {"input_tokens": 0, "output_tokens": 0, "reasoning_tokens": 0, "cached_tokens": 0}
    return KeyUsage(
        day=day_of(now()),
        key_hash=KEY,
        model=model,
        face="chat.completions",
        requests=requests,
        **{**counts, **tokens},
    )


async def test_calls_are_written_together_when_flushed(db: Database) -> None:
    user_id = await new_user(db)
    counter = UsageCounter(db, interval=3600)  # no periodic write within the test
    counter.start()
    try:
        _count(counter, user_id, input_tokens=3, output_tokens=5, reasoning_tokens=1)
        _count(counter, user_id, input_tokens=4, output_tokens=2, cached_tokens=2)
        _count(counter, user_id, model="demo/b", output_tokens=7)
        assert await _rows(db, user_id) == []  # counted, not yet written
        await counter.flush()
        first = [
            _row("demo/a", 2, input_tokens=7, output_tokens=7, reasoning_tokens=1, cached_tokens=2),
            _row("demo/b", 1, output_tokens=7),
        ]
        assert await _rows(db, user_id) == first
        _count(counter, user_id, output_tokens=1)
        await counter.flush()  # added to the row written before
        first[0] = _row(
            "demo/a", 3, input_tokens=7, output_tokens=8, reasoning_tokens=1, cached_tokens=2
        )
        assert await _rows(db, user_id) == first
    finally:
        await counter.aclose()


async def test_what_is_left_is_written_at_close(db: Database) -> None:
    user_id = await new_user(db)
    counter = UsageCounter(db, interval=3600)
    counter.start()
    _count(counter, user_id, output_tokens=4)
    await counter.aclose()
    assert await _rows(db, user_id) == [_row("demo/a", 1, output_tokens=4)]


async def test_the_periodic_write(db: Database) -> None:
    """Each call is written by the counter's own task, also the one counted after a quiet
    spell (when the writer sleeps until something is counted)."""
    user_id = await new_user(db)
    written = 0
    for interval in (0.05, 0.0):  # 0: after each call
        counter = UsageCounter(db, interval=interval)
        counter.start()
        try:
            for _ in range(2):
                _count(counter, user_id, output_tokens=1)
                written += 1
                for _ in range(200):  # written by the counter's own task, not by a close
                    rows = await _rows(db, user_id)
                    if rows and rows[0].requests == written:
                        break
                    await asyncio.sleep(0.01)
                assert rows == [_row("demo/a", written, output_tokens=written)], interval
                await asyncio.sleep(0.2)  # quiet: nothing to write
        finally:
            await counter.aclose()


async def test_a_deleted_users_counts_are_dropped_and_the_others_kept(db: Database) -> None:
    kept, gone = await new_user(db, "kept"), await new_user(db, "gone")
    counter = UsageCounter(db, interval=3600)
    _count(counter, kept, output_tokens=2)
    _count(counter, gone, key=users.hash_key("sk-gone"), output_tokens=3)
    await db.write(lambda c: c.execute(delete(users_table).where(users_table.c.id == gone)))
    await counter.flush()
    assert await _rows(db, kept) == [_row("demo/a", 1, output_tokens=2)]
    assert await _rows(db, gone) == []
    await counter.flush()  # nothing left over to write again
    assert await _rows(db, kept) == [_row("demo/a", 1, output_tokens=2)]


async def test_a_failed_write_keeps_the_counts_for_the_next(tmp_path: Path) -> None:
    """The database away (disposed) at the first flush: the counts wait, and are written
    by the flush after it, once the database is back."""
    fresh = FreshDatabase(tmp_path)
    db = Database(fresh.url)
    try:
        await db.migrate()
        user_id = await new_user(db)
        await db.dispose()
        counter = UsageCounter(db, interval=3600)
        _count(counter, user_id, output_tokens=5)
        with pytest.raises(Exception):  # noqa: B017
            await db.read(lambda c: None)  # the database is away indeed
        await counter.flush()
        back = Database(fresh.url)
        counter.db = back
        _count(counter, user_id, output_tokens=1)
        await counter.flush()
        assert await _rows(back, user_id) == [_row("demo/a", 2, output_tokens=6)]
        await back.dispose()
    finally:
        fresh.drop()


async def test_what_a_key_counted_today_written_or_not(db: Database) -> None:
    """For budgets: ``counted_today`` keeps every call of the day, ``unwritten`` only those
    not in the database yet; both count input and output tokens only."""
    user_id = await new_user(db)
    other = users.hash_key("sk-two")
    counter = UsageCounter(db, interval=3600)
    today = day_of(now())
    _count(counter, user_id, input_tokens=3, output_tokens=5, reasoning_tokens=2)
    _count(counter, user_id, key=other, input_tokens=100)
    assert (counter.counted_today(KEY, today), counter.unwritten(KEY, today)) == (8, 8)
    await counter.flush()
    assert (counter.counted_today(KEY, today), counter.unwritten(KEY, today)) == (8, 0)
    _count(counter, user_id, model="demo/b", output_tokens=4, cached_tokens=1)
    assert (counter.counted_today(KEY, today), counter.unwritten(KEY, today)) == (12, 4)
    assert counter.counted_today(KEY, "2000-01-01") == 0
    assert counter.counted_today(other, today) == 100
    await counter.flush()
