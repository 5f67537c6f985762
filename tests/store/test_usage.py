"""Token usage per API key: every call adds to the row of its UTC day, key, model and
face, on SQLite and PostgreSQL; a user's rows go with the user."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, select

from parley.store import usage, users
from parley.store.db import Database
from parley.store.tables import key_usage
from parley.store.tables import users as users_table
from parley.store.usage import KeyUsage
from tests.store.conftest import new_user

#: 2025-03-01 12:00:00 UTC.
NOON = datetime(2025, 3, 1, 12, tzinfo=UTC).timestamp()
KEY, OTHER_KEY = users.hash_key("sk-one"), users.hash_key("sk-two")


async def _add(
    db: Database,
    user_id: str,
    *,
    key_hash: str = KEY,
    model: str = "demo/a",
    face: str = "chat.completions",
    at: float = NOON,
    **tokens: int,
) -> None:
    await db.write(
        lambda c: usage.add_usage(
            c, user_id=user_id, key_hash=key_hash, model=model, face=face, at=at, **tokens
        )
    )


async def _rows(db: Database, user_id: str, **filters: Any) -> list[KeyUsage]:
    return await db.read(lambda c: usage.usage_rows(c, user_id=user_id, **filters))


async def test_calls_of_a_day_key_model_and_face_add_up(db: Database) -> None:
    user_id = await new_user(db)
    await _add(db, user_id, input_tokens=10, output_tokens=5, reasoning_tokens=2, cached_tokens=4)
    await _add(db, user_id, at=NOON + 3600, input_tokens=7, output_tokens=1)
    assert await _rows(db, user_id) == [
        KeyUsage(
            day="2025-03-01",
            key_hash=KEY,
            model="demo/a",
            face="chat.completions",
            requests=2,
            input_tokens=17,
            output_tokens=6,
            reasoning_tokens=2,
            cached_tokens=4,
        )
    ]


async def test_another_model_key_or_face_is_a_row_of_its_own(db: Database) -> None:
    user_id = await new_user(db)
    await _add(db, user_id, input_tokens=1)
    await _add(db, user_id, model="demo/b", input_tokens=2)
    await _add(db, user_id, key_hash=OTHER_KEY, input_tokens=3)
    await _add(db, user_id, face="responses", input_tokens=4)
    rows = await _rows(db, user_id)
    assert sorted(
        (r.model, r.key_hash, r.face, r.requests, r.input_tokens) for r in rows
    ) == sorted(
        [
            ("demo/a", KEY, "chat.completions", 1, 1),
            ("demo/b", KEY, "chat.completions", 1, 2),
            ("demo/a", OTHER_KEY, "chat.completions", 1, 3),
            ("demo/a", KEY, "responses", 1, 4),
        ]
    )
    assert [r.model for r in rows] == ["demo/a", "demo/a", "demo/a", "demo/b"]


async def test_the_day_is_the_utc_date_of_the_call(db: Database) -> None:
    user_id = await new_user(db)
    midnight = datetime(2025, 3, 2, tzinfo=UTC).timestamp()
    await _add(db, user_id, at=midnight - 1, output_tokens=1)  # 23:59:59
    await _add(db, user_id, at=midnight, output_tokens=2)  # 00:00:00 the next day
    rows = await _rows(db, user_id)
    assert [(r.day, r.requests, r.output_tokens) for r in rows] == [
        ("2025-03-01", 1, 1),
        ("2025-03-02", 1, 2),
    ]


async def test_rows_are_filtered_by_user_key_and_day(db: Database) -> None:
    user_id, other_user = await new_user(db), await new_user(db)
    day = 24 * 3600.0
    for offset in (0, day, 2 * day):
        await _add(db, user_id, at=NOON + offset, model="demo/b")
        await _add(db, user_id, at=NOON + offset, key_hash=OTHER_KEY)
    await _add(db, other_user, key_hash=users.hash_key("sk-three"))

    everything = await _rows(db, user_id)
    assert [(r.day, r.model) for r in everything] == [
        ("2025-03-01", "demo/a"),
        ("2025-03-01", "demo/b"),
        ("2025-03-02", "demo/a"),
        ("2025-03-02", "demo/b"),
        ("2025-03-03", "demo/a"),
        ("2025-03-03", "demo/b"),
    ]
    one_key = await _rows(db, user_id, key_hash=KEY)
    assert [(r.day, r.key_hash) for r in one_key] == [
        ("2025-03-01", KEY),
        ("2025-03-02", KEY),
        ("2025-03-03", KEY),
    ]
    recent = await _rows(db, user_id, since_day="2025-03-02")
    assert [r.day for r in recent] == ["2025-03-02"] * 2 + ["2025-03-03"] * 2
    both = await _rows(db, user_id, key_hash=OTHER_KEY, since_day="2025-03-03")
    assert [(r.day, r.key_hash) for r in both] == [("2025-03-03", OTHER_KEY)]
    # Another user's key is nobody else's.
    assert await _rows(db, user_id, key_hash=users.hash_key("sk-three")) == []
    assert len(await _rows(db, other_user)) == 1


async def test_deleting_a_user_deletes_its_usage(db: Database) -> None:
    user_id, kept = await new_user(db), await new_user(db)
    await _add(db, user_id)
    await _add(db, kept, key_hash=OTHER_KEY)
    await db.write(lambda c: c.execute(delete(users_table).where(users_table.c.id == user_id)))
    assert await _rows(db, user_id) == []
    count = await db.read(lambda c: c.execute(select(func.count()).select_from(key_usage)).scalar())
    assert count == 1
    assert len(await _rows(db, kept)) == 1


def test_the_day_of_a_time_is_its_utc_day_at_every_edge() -> None:
    midnight = datetime(2026, 11, 24, tzinfo=UTC).timestamp()
    for at in (midnight - 1e-6, midnight, midnight + 86_399.999, midnight + 86_400, 0.0, -0.5):
        assert usage.day_of(at) == datetime.fromtimestamp(at, UTC).date().isoformat(), at
    # Asked again out of order: the day kept is never taken for another one.
    assert usage.day_of(midnight + 10) == "2026-11-24"
    assert usage.day_of(midnight - 10) == "2026-11-23"
    assert usage.day_of(midnight + 86_400 * 400) == "2027-12-29"
