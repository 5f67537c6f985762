"""Both storages and the sweep, on the test database (SQLite, or PostgreSQL with
``PARLEY_TEST_DATABASE_URL``): bytes stored whole or not at all, expired files and uploads
removed with their bytes, and bytes no row names swept once old."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from parley.config import Settings, Tuning
from parley.files.storage import PIECE, Storages
from parley.files.sweep import ORPHAN_SECONDS, sweep_files
from parley.store import files as store
from parley.store.db import Database, now
from parley.store.pagination import ListQuery
from parley.store.tables import file_data, files
from tests.store.conftest import new_user


class CutOff(Exception):
    pass


async def _chunks(data: bytes, *, fail_after: int | None = None) -> AsyncIterator[bytes]:
    for i in range(0, len(data), 100_000):
        if fail_after is not None and i >= fail_after:
            raise CutOff
        yield data[i : i + 100_000]


def _storages(db: Database, tmp_path: Path) -> Storages:
    return Storages(Settings(database_url=db.url, files_dir=tmp_path / "files"), db)


async def _pieces(db: Database) -> int:
    return int(
        await db.read(lambda c: c.execute(select(func.count()).select_from(file_data)).scalar())
    )


def _local_files(tmp_path: Path) -> list[Path]:
    return [p for p in (tmp_path / "files").rglob("*") if p.is_file()]


@pytest.mark.parametrize("kind", ["local", "database"])
async def test_bytes_are_stored_whole_or_not_at_all(
    db: Database, tmp_path: Path, kind: str
) -> None:
    storage = _storages(db, tmp_path).of(kind)
    data = bytes(range(256)) * 9000  # a little over two pieces
    stored = await storage.put(_chunks(data))
    assert stored.size == len(data)
    chunks = [c async for c in storage.read(stored.key)]
    assert b"".join(chunks) == data and max(len(c) for c in chunks) <= PIECE
    with pytest.raises(CutOff):
        await storage.put(_chunks(data, fail_after=1_500_000))
    assert await _pieces(db) == (3 if kind == "database" else 0)
    assert len(_local_files(tmp_path)) == (1 if kind == "local" else 0)  # no tmp/ leftover
    await storage.delete([stored.key])
    assert await _pieces(db) == 0 and _local_files(tmp_path) == []


async def test_the_sweep_removes_expired_files_and_uploads(db: Database, tmp_path: Path) -> None:
    storages = _storages(db, tmp_path)
    user = await new_user(db)
    kept_bytes = await storages.default.put(_chunks(b"kept"))
    gone_bytes = await storages.default.put(_chunks(b"gone"))
    part_bytes = await storages.database.put(_chunks(b"part"))

    def rows(conn: Connection) -> None:
        for stored, expiry in ((kept_bytes, None), (gone_bytes, 3600)):
            store.create_file(
                conn,
                user_id=user,
                filename="f",
                purpose="assistants",
                size=4,
                sha256=stored.sha256,
                mime_type=None,
                stored=store.StoredBytes(stored.kind, stored.key),
                expires_after=expiry,
                quota=0,
            )

    await db.write(rows)
    upload = await db.write(
        store.create_upload,
        user_id=user,
        filename="u",
        purpose="assistants",
        size=8,
        mime_type="text/plain",
        file_expires_after=None,
        quota=0,
    )
    await db.write(
        store.add_part,
        user_id=user,
        upload_id=upload.id,
        size=4,
        stored=store.StoredBytes("database", part_bytes.key),
    )
    await storages.database.put(_chunks(b"orphan"))
    assert (await sweep_files(db, storages)).files == 0  # nothing is due yet
    swept = await sweep_files(db, storages, at=now() + ORPHAN_SECONDS + 1)
    assert (swept.files, swept.uploads_parts, swept.orphans) == (1, 1, 1)
    left, _ = await db.read(store.list_files, user_id=user, page=ListQuery(10, "asc"))
    assert [f.storage_key for f in left] == [kept_bytes.key]
    assert (await db.read(store.get_upload, user_id=user, upload_id=upload.id)).status == "expired"
    remaining = [k async for k in storages.default.read(kept_bytes.key)]
    assert remaining == [b"kept"]
    # Only the kept file's bytes are left, wherever they are.
    local = storages.default.kind == "local"
    assert await _pieces(db) == (0 if local else 1)
    assert len(_local_files(tmp_path)) == (1 if local else 0)


async def test_the_server_sweeps_expired_files_on_its_own(db: Database, tmp_path: Path) -> None:
    """The engine's upkeep runs the sweep every ``tuning.files_sweep_seconds``: a file past its
    expiry goes, rows and bytes, with no command run."""
    from parley.engine import Engine
    from parley.providers.registry import ProviderRegistry

    settings = Settings(
        database_url=db.url,
        files_dir=tmp_path / "files",
        tuning=Tuning(files_sweep_seconds=0.05),
    )
    storages = Storages(settings, db)
    user = await new_user(db)
    stored = await storages.default.put(_chunks(b"soon gone"))

    def expired(conn: Connection) -> str:
        made = store.create_file(
            conn,
            user_id=user,
            filename="f",
            purpose="assistants",
            size=9,
            sha256=stored.sha256,
            mime_type=None,
            stored=store.StoredBytes(stored.kind, stored.key),
            expires_after=3600,
            quota=0,
        )
        conn.execute(files.update().where(files.c.id == made.id).values(expires_at=now() - 1))
        return made.id

    await db.write(expired)
    registry = ProviderRegistry(settings)
    engine = Engine(db, registry, settings)
    await engine.start()
    try:
        async with asyncio.timeout(10):
            while await _pieces(db) or _local_files(tmp_path):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
    finally:
        await engine.stop()
        await registry.aclose()
    left, _ = await db.read(store.list_files, user_id=user, page=ListQuery(10, "asc"))
    assert left == []
