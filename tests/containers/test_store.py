"""``parley.store.containers`` on a fresh database (SQLite, or PostgreSQL with
``PARLEY_TEST_DATABASE_URL``): what the engine's ``code_interpreter`` calls beside the API."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import pytest
from sqlalchemy import update

from parley.errors import InvalidRequest, NotFound
from parley.store import containers as store
from parley.store import users
from parley.store.db import Database
from parley.store.files import StoredBytes
from parley.store.records import Container
from parley.store.tables import containers


@dataclass(frozen=True)
class Bytes:
    """Bytes as ``parley.files.storage.Stored`` tells them."""

    kind: str
    key: str
    size: int
    sha256: str = "0" * 64


async def new_user(db: Database) -> str:
    return (await db.write(lambda c: users.create_user(c, name="u"))).id


async def make(db: Database, user_id: str, **given: object) -> Container:
    fields: dict[str, object] = {
        "name": "c",
        "memory_limit": "1g",
        "expires_after_minutes": 20,
        "most": 0,
    }
    fields.update(given)
    return await db.write(store.create_container, user_id=user_id, **fields)  # type: ignore[arg-type]


async def idle(db: Database, container_id: str, seconds: float) -> None:
    def write(conn: object) -> None:
        conn.execute(  # type: ignore[attr-defined]
            update(containers)
            .where(containers.c.id == container_id)
            .values(last_active_at=time.time() - seconds)
        )

    await db.write(write)


async def test_a_thread_s_container_is_its_newest_running_auto_one(db: Database) -> None:
    user, other = await new_user(db), await new_user(db)
    assert await db.read(store.thread_container, user_id=user, thread_id="thread_1") is None
    await make(db, user, thread_id="thread_1")  # origin api: not the thread's
    old = await make(db, user, origin="auto", thread_id="thread_1", expires_after_minutes=1)
    found = await db.read(store.thread_container, user_id=user, thread_id="thread_1")
    assert found is not None and found.id == old.id and found.origin == "auto"
    newer = await make(db, user, origin="auto", thread_id="thread_1")
    found = await db.read(store.thread_container, user_id=user, thread_id="thread_1")
    assert found is not None and found.id == newer.id
    assert await db.read(store.thread_container, user_id=other, thread_id="thread_1") is None
    await idle(db, newer.id, 25 * 60)  # past its 20 minutes
    found = await db.read(store.thread_container, user_id=user, thread_id="thread_1")
    assert found is not None and found.id == old.id


async def test_a_home_is_claimed_and_the_previous_one_told(db: Database) -> None:
    made = await make(db, await new_user(db))
    assert made.home is None
    assert await db.write(store.claim_home, container_id=made.id, node="node-a") is None
    assert await db.write(store.claim_home, container_id=made.id, node="node-b") == "node-a"
    found = await db.read(store.get_container, user_id=made.user_id, container_id=made.id)
    assert found.home == "node-b"


async def test_touch_moves_last_use_on_but_never_revives(db: Database) -> None:
    made = await make(db, await new_user(db), expires_after_minutes=1)
    await idle(db, made.id, 30)
    await db.write(store.touch_container, container_id=made.id)
    found = await db.read(store.get_container, user_id=made.user_id, container_id=made.id)
    assert found.last_active_at > time.time() - 5 and found.status == "running"
    await idle(db, made.id, 90)
    await db.write(store.touch_container, container_id=made.id)
    found = await db.read(store.get_container, user_id=made.user_id, container_id=made.id)
    assert found.status == "expired" and found.last_active_at < time.time() - 80


async def test_files_at_paths_replace_each_other_within_the_disk(db: Database) -> None:
    made = await make(db, await new_user(db))
    user = made.user_id

    async def add(path: str, key: str, size: int, source: str = "user") -> tuple[object, object]:
        return await db.write(
            store.add_container_file,
            user_id=user,
            container_id=made.id,
            path=path,
            source=source,
            stored=Bytes("local", key, size),
            disk_bytes=100,
        )

    first, replaced = await add("/mnt/data/a.csv", "k1", 40)
    assert replaced is None
    await add("/mnt/data/out/plot.png", "k2", 30, "assistant")
    second, replaced = await add("/mnt/data/a.csv", "k3", 60)  # 60 + 30: within 100
    assert replaced == StoredBytes("local", "k1")
    assert second.id != first.id  # type: ignore[attr-defined]
    with pytest.raises(InvalidRequest) as full:
        await add("/mnt/data/b.csv", "k4", 11)
    assert full.value.code == "container_full"
    every = await db.read(store.all_container_files, container_id=made.id)
    assert [(f.path, f.storage_key, f.source) for f in every] == [
        ("/mnt/data/a.csv", "k3", "user"),
        ("/mnt/data/out/plot.png", "k2", "assistant"),
    ]
    at = await db.read(store.container_file_at, container_id=made.id, path="/mnt/data/a.csv")
    assert at is not None and at.bytes == 60
    assert await db.read(store.container_file_at, container_id=made.id, path="/mnt/data/x") is None
    for bad in (
        "/mnt/data/../etc/passwd",
        "/etc/passwd",
        "/mnt/data",
        "/mnt/data/",
        "/mnt/data//a",
        "/mnt/data/./a",
        "mnt/data/a",
        "/mnt/data/a\x00b",
        "/mnt/datax/a",
    ):
        with pytest.raises(InvalidRequest) as refused:
            await add(bad, "k9", 1)
        assert refused.value.code == "invalid_path", bad
    gone = await db.write(
        store.delete_container_file,
        user_id=user,
        container_id=made.id,
        file_id=second.id,  # type: ignore[attr-defined]
    )
    assert gone == StoredBytes("local", "k3")
    with pytest.raises(NotFound):
        await db.write(
            store.delete_container_file,
            user_id=user,
            container_id=made.id,
            file_id=second.id,  # type: ignore[attr-defined]
        )


async def test_the_sweep_takes_expired_containers_in_batches(db: Database) -> None:
    user = await new_user(db)
    made = [await make(db, user, expires_after_minutes=1) for _ in range(3)]
    fresh = await make(db, user, expires_after_minutes=1)
    for i, box in enumerate(made):
        await db.write(
            store.add_container_file,
            user_id=user,
            container_id=box.id,
            path="/mnt/data/f",
            source="user",
            stored=Bytes("database", f"key{i}", 1),
        )
        await idle(db, box.id, 61 + i)
    ids, gone = await db.write(store.take_expired, now=time.time(), limit=2)
    assert ids == [made[2].id, made[1].id]  # the longest unused first
    assert sorted(g.key for g in gone) == ["key1", "key2"]
    ids, gone = await db.write(store.take_expired, now=time.time(), limit=2)
    assert ids == [made[0].id] and [g.key for g in gone] == ["key0"]
    assert await db.write(store.take_expired, now=time.time(), limit=2) == ([], [])
    found = await db.read(store.get_container, user_id=user, container_id=made[0].id)
    assert found.status == "expired" and found.home is None
    with pytest.raises(InvalidRequest) as refused:
        await db.write(
            store.add_container_file,
            user_id=user,
            container_id=made[0].id,
            path="/mnt/data/g",
            source="user",
            stored=Bytes("database", "late", 1),
        )
    assert refused.value.code == "container_expired"
    still = await db.read(store.get_container, user_id=user, container_id=fresh.id)
    assert still.status == "running"
    # Expired containers are out of the cap: three more fit under most=4 with one running.
    for _ in range(3):
        await make(db, user, most=4)
    with pytest.raises(InvalidRequest):
        await make(db, user, most=4)


async def test_the_cap_holds_when_containers_are_made_at_once(db: Database) -> None:
    user = await new_user(db)
    results = await asyncio.gather(
        *(make(db, user, most=3) for _ in range(6)), return_exceptions=True
    )
    made = [r for r in results if isinstance(r, Container)]
    refused = [r for r in results if isinstance(r, InvalidRequest)]
    assert len(made) == 3 and len(refused) == 3, results
    assert {r.code for r in refused} == {"too_many_containers"}


async def test_another_user_s_container_is_not_found(db: Database) -> None:
    made = await make(db, await new_user(db))
    other = await new_user(db)
    with pytest.raises(NotFound) as missing:
        await db.read(store.get_container, user_id=other, container_id=made.id)
    assert missing.value.code == "container_not_found"
    with pytest.raises(NotFound):
        await db.write(store.delete_container, user_id=other, container_id=made.id)
    assert await db.write(store.delete_container, user_id=made.user_id, container_id=made.id) == []
