"""The engine's containers (``engine.hosted.containers``) on a real database and real
sandboxes: the reaper closes the sandbox of a container that expired or was deleted, and
leaves one kept in use through its files; files added through the store between calls
reach ``/mnt/data`` before the next call, and files deleted there leave the store."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio
from sqlalchemy import update

from parley.config import Settings
from parley.engine.hosted.code_interpreter import Interpreter
from parley.engine.hosted.containers import Containers
from parley.metrics import Metrics
from parley.store import containers as store
from parley.store import users
from parley.store.db import Database
from parley.store.tables import containers as container_rows
from tests.code_interpreter.conftest import needs_sandbox, sandboxes_of

AUTO = Interpreter(None, (), None, False)


@pytest_asyncio.fixture
async def engine_side(tmp_path: Path) -> AsyncIterator[tuple[Containers, str]]:
    needs_sandbox()
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'p.db'}",
        code_interpreter_dir=tmp_path / "containers",
        files_dir=tmp_path / "files",
    )
    db = Database(settings.database_url)
    await db.migrate()
    user = await db.write(users.create_user, name="reaped")
    containers = Containers(db, settings, Metrics())
    try:
        yield containers, user.id
    finally:
        await containers.aclose()
        await db.dispose()


async def test_the_reaper_closes_expired_and_deleted_containers_only(
    engine_side: tuple[Containers, str],
) -> None:
    containers, user_id = engine_side
    boxes = [
        await containers.container_for(AUTO, user_id=user_id, thread_id=f"t{n}", key_hash=None)
        for n in range(3)
    ]
    for box in boxes:
        assert (await containers.run(box, "x = 1")).error is None
    expired, deleted, kept = boxes
    db = containers.db

    def age(conn: object) -> None:
        conn.execute(  # type: ignore[attr-defined]
            update(container_rows)
            .where(container_rows.c.id == expired.id)
            .values(last_active_at=time.time() - 3600)
        )

    await db.write(age)
    await db.write(store.delete_container, user_id=user_id, container_id=deleted.id)
    assert await containers.reap() == 2
    assert set(containers.live) == {kept.id}
    assert sandboxes_of(expired.id) == [] and sandboxes_of(deleted.id) == []
    assert not (containers.root / deleted.id).exists()
    assert (await containers.run(kept, "print(x)")).logs == "1\n"


async def test_files_follow_the_store_between_calls(engine_side: tuple[Containers, str]) -> None:
    containers, user_id = engine_side
    box = await containers.container_for(AUTO, user_id=user_id, thread_id="files", key_hash=None)
    written = await containers.run(box, "open('made.txt', 'w').write('by code')")
    assert [w.path for w in written.files] == ["/mnt/data/made.txt"]

    async def once(data: bytes) -> AsyncIterator[bytes]:
        yield data

    stored = await containers.storages.default.put(once(b"from the api"))
    await containers.db.write(
        store.add_container_file,
        user_id=user_id,
        container_id=box.id,
        path="/mnt/data/added.txt",
        source="user",
        stored=stored,
    )
    seen = await containers.run(
        box, "import os\nprint(open('added.txt').read())\nos.remove('made.txt')"
    )
    assert seen.logs == "from the api\n"
    kept = await containers.db.read(store.all_container_files, container_id=box.id)
    assert [f.path for f in kept] == ["/mnt/data/added.txt"]
