"""Fixtures of the containers tests: a ``parley serve`` of their own with small limits
(uploads of at most ``MAX_BYTES``, ``MOST`` running containers per user), run with its
database's default storage (local on SQLite, the database on PostgreSQL) and then with the
other one; an SDK client per new user; a look into its database and its stored bytes, and
the containers sweep run against them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import openai
import pytest
from sqlalchemy import create_engine, select, update

from parley.config import Settings
from parley.files.containers_sweep import sweep_containers
from parley.files.storage import Storages
from parley.store.db import Database, normalise_url
from parley.store.tables import container_files, containers, file_data
from tests.harness import FreshDatabase, ParleyServer, postgres_url

MAX_BYTES = 256 * 1024
#: Running containers per user.
MOST = 3


class ContainersServer:
    """The server, where its bytes go, and its database seen from the test."""

    def __init__(self, server: ParleyServer, files_dir: Path) -> None:
        self.server = server
        self.files_dir = files_dir

    def sdk(self, key: str) -> openai.OpenAI:
        return openai.OpenAI(
            base_url=f"{self.server.base_url}/v1", api_key=key, max_retries=0, timeout=30
        )

    def keys_of(self, container_id: str) -> list[tuple[str, str]]:
        """Where the container's files' bytes are: ``(storage, key)`` of each."""
        with self._engine() as engine, engine.connect() as conn:
            rows = conn.execute(
                select(container_files.c.storage, container_files.c.storage_key)
                .where(container_files.c.container_id == container_id)
                .order_by(container_files.c.path)
            )
            return [(r.storage, r.storage_key) for r in rows]

    def has_bytes(self, storage: str, key: str) -> bool:
        """Whether bytes are stored under ``key``, in the directory or the database."""
        if storage == "local":
            return (self.files_dir / key[:2] / key).is_file()
        with self._engine() as engine, engine.connect() as conn:
            found = conn.execute(select(file_data.c.key).where(file_data.c.key == key)).first()
            return found is not None

    def idle(self, container_id: str, seconds: float) -> None:
        """Make the container's last use ``seconds`` ago, as that long without use would."""
        with self._engine() as engine, engine.begin() as conn:
            conn.execute(
                update(containers)
                .where(containers.c.id == container_id)
                .values(last_active_at=time.time() - seconds)
            )

    def sweep(self) -> int:
        """One round of the containers sweep, on the server's database and storages."""

        async def run() -> int:
            db = Database(self.server.database_url)
            try:
                settings = Settings(database_url=self.server.database_url, files_dir=self.files_dir)
                return await sweep_containers(db, Storages(settings, db))
            finally:
                await db.dispose()

        return asyncio.run(run())

    @contextmanager
    def _engine(self) -> Iterator[Any]:
        engine = create_engine(normalise_url(self.server.database_url))
        try:
            yield engine
        finally:
            engine.dispose()


def serve(tmp: Path, env: dict[str, str]) -> Iterator[ContainersServer]:
    db = FreshDatabase(tmp)
    files_dir = tmp / "stored"
    srv = ParleyServer(
        database_url=db.url,
        workdir=tmp,
        env={
            "PARLEY_FILES_DIR": str(files_dir),
            "PARLEY_FILES_MAX_BYTES": str(MAX_BYTES),
            "PARLEY_CODE_INTERPRETER_MAX_CONTAINERS": str(MOST),
            **env,
        },
    )
    try:
        srv.start()
        yield ContainersServer(srv, files_dir)
        srv.stop()
        srv.assert_clean_log()
    finally:
        srv.stop()
        db.drop()


@pytest.fixture(scope="package", params=["default", "other"])
def containers_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ContainersServer]:
    tmp = tmp_path_factory.mktemp("containers")
    env = {}
    if request.param == "other":
        env["PARLEY_FILES_STORAGE"] = "local" if postgres_url() else "database"
    yield from serve(tmp, env)


@pytest.fixture
def key(containers_server: ContainersServer) -> str:
    """A new user: tests never see each other's containers (nor count in each other's cap)."""
    return containers_server.server.new_user()


@pytest.fixture
def sdk(containers_server: ContainersServer, key: str) -> Iterator[Any]:
    with containers_server.sdk(key) as client:
        yield client
