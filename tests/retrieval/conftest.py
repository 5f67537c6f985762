"""Databases for the chunk index's tests: SQLite (FTS5 and sqlite-vec), PostgreSQL with
pgvector (the ``pgserver`` wheel's own server, started once), and the PostgreSQL of
``PARLEY_TEST_DATABASE_URL`` (without pgvector: lexical only)."""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, make_url

from parley.store import users
from parley.store.db import Database, new_id, now
from parley.store.tables import files
from parley.testing.databases import ScratchDatabase
from tests.harness import postgres_url

KINDS = ["sqlite", "pgvector", "postgres"]


@pytest.fixture(scope="session")
def pgvector_server() -> Iterator[str]:
    """The URL of a PostgreSQL with pgvector (``pgserver``), for the session. Skipped when
    the wheel cannot start one, except in CI, where that fails. Its data is not under
    pytest's base directory, which another pytest run may prune while this one runs."""
    data = Path(tempfile.mkdtemp(prefix="parley-pgvector-"))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # its notes on XDG_RUNTIME_DIR
            import pgserver

            server = pgserver.get_server(data, cleanup_mode="stop")
    except Exception as exc:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"pgserver could not start a PostgreSQL with pgvector: {exc!r}")
    try:
        yield server.get_uri()
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            server.cleanup()
        shutil.rmtree(data, ignore_errors=True)


def _admin(url: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql)  # type: ignore[call-overload]


class PgserverDatabase:
    """A new database on the pgserver's PostgreSQL (reached by its Unix socket)."""

    kind = "pgvector"

    def __init__(self, server_url: str) -> None:
        self._server = server_url
        self.name = f"parley_index_{secrets.token_hex(6)}"
        _admin(server_url, f'CREATE DATABASE "{self.name}"')
        self.url = make_url(server_url).set(database=self.name).render_as_string(False)

    def drop(self) -> None:
        _admin(self._server, f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


async def open_database(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> tuple[Database, Any]:
    if kind == "pgvector":
        scratch: Any = PgserverDatabase(request.getfixturevalue("pgvector_server"))
    elif kind == "postgres":
        url = postgres_url()
        if url is None:
            pytest.skip("PARLEY_TEST_DATABASE_URL is not set (plain PostgreSQL, lexical only)")
        scratch = ScratchDatabase(tmp_path, url, prefix="parley_index")
    else:
        scratch = ScratchDatabase(tmp_path)
    database = Database(scratch.url)
    await database.migrate()
    return database, scratch


@pytest.fixture(params=KINDS)
async def index_db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated database of each kind."""
    database, scratch = await open_database(request.param, tmp_path, request)
    try:
        yield database
    finally:
        await database.dispose()
        scratch.drop()


@pytest.fixture(params=["sqlite", "pgvector"])
async def vector_db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated database of each kind that stores vectors."""
    database, scratch = await open_database(request.param, tmp_path, request)
    try:
        yield database
    finally:
        await database.dispose()
        scratch.drop()


async def make_user(db: Database, name: str = "reader") -> str:
    user = await db.write(users.create_user, name=name)
    return user.id


async def make_file(db: Database, user_id: str, filename: str) -> str:
    file_id = new_id("file")

    def add(conn: Any) -> None:
        conn.execute(
            insert(files).values(
                id=file_id,
                user_id=user_id,
                filename=filename,
                purpose="assistants",
                bytes=1,
                created_at=now(),
                sha256="0" * 64,
                mime_type="text/plain",
                storage="database",
                storage_key=secrets.token_hex(16),
            )
        )

    await db.write(add)
    return file_id
