"""Fixtures of the ingestion tests: a ``parley serve`` of their own, and its database seen
from the test (``Tables``), where files are attached to stores as the vector store routes
attach them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

import httpx
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.engine import Connection

from parley.store import vector_stores
from parley.store.db import Database
from parley.store.records import VectorStoreFile
from parley.store.tables import chunks, vector_store_files
from tests.harness import FreshDatabase, ParleyServer, free_port, provider_config, tuned

P = ParamSpec("P")
T = TypeVar("T")

#: What the servers of the tests that kill them add to the harness's environment: a lease
#: of 2 s, so that a dead worker's file is taken again soon.
SHORT_LEASE = tuned({"PARLEY_LEASE_SECONDS": "2"}, sweep_seconds=0.2)


class Tables:
    """The server's database from the test: data functions run to their end."""

    def __init__(self, url: str) -> None:
        self._runner = asyncio.Runner()
        self.db = Database(url)

    def write(
        self, fn: Callable[Concatenate[Connection, P], T], /, *args: P.args, **kw: P.kwargs
    ) -> T:
        return self._runner.run(self.db.write(fn, *args, **kw))

    def read(
        self, fn: Callable[Concatenate[Connection, P], T], /, *args: P.args, **kw: P.kwargs
    ) -> T:
        return self._runner.run(self.db.read(fn, *args, **kw))

    def close(self) -> None:
        self._runner.run(self.db.dispose())
        self._runner.close()

    # ------------------------------------------------------------------ helpers

    def user_id(self, server: ParleyServer, key: str) -> str:
        with server.client(key) as http:
            answer = http.get("/me")
            answer.raise_for_status()
            return str(answer.json()["id"])

    def new_store(self, user_id: str, embedding_model: str | None = None) -> str:
        store = self.write(
            vector_stores.create_vector_store, user_id=user_id, embedding_model=embedding_model
        )
        return store.id

    def attach(self, user_id: str, store_id: str, file_id: str, **kw: Any) -> None:
        self.write(
            vector_stores.attach_file,
            user_id=user_id,
            vector_store_id=store_id,
            file_id=file_id,
            **kw,
        )

    def row(self, store_id: str, file_id: str) -> VectorStoreFile | None:
        def get(conn: Connection) -> VectorStoreFile | None:
            found = conn.execute(
                select(vector_store_files).where(
                    vector_store_files.c.vector_store_id == store_id,
                    vector_store_files.c.file_id == file_id,
                )
            ).first()
            return None if found is None else VectorStoreFile.from_row(found)

        return self.read(get)

    def wait_done(self, store_id: str, file_id: str, timeout: float = 30.0) -> VectorStoreFile:
        """The file's row once it is no longer ``in_progress``."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.row(store_id, file_id)
            assert found is not None, "the file's row is gone"
            if found.status != "in_progress":
                return found
            assert time.monotonic() < deadline, f"still in_progress: {found}"
            time.sleep(0.05)

    def set_row(self, store_id: str, file_id: str, **values: Any) -> None:
        def change(conn: Connection) -> None:
            conn.execute(
                update(vector_store_files)
                .where(
                    vector_store_files.c.vector_store_id == store_id,
                    vector_store_files.c.file_id == file_id,
                )
                .values(**values)
            )

        self.write(change)

    def chunk_count(self, **where: str) -> int:
        def count(conn: Connection) -> int:
            query = select(func.count()).select_from(chunks)
            for column, value in where.items():
                query = query.where(chunks.c[column] == value)
            return int(conn.execute(query).scalar_one())

        return self.read(count)


def upload(http: httpx.Client, name: str, data: bytes, content_type: str = "") -> str:
    """A file uploaded through ``POST /v1/files``; its id."""
    kind = content_type or "application/octet-stream"
    answer = http.post("/files", files={"file": (name, data, kind)}, data={"purpose": "assistants"})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["id"])


def wait_until(check: Callable[[], bool], timeout: float = 15.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting: {what}"
        time.sleep(0.02)


class Served:
    """A server, its database seen from the test, and where each started."""

    def __init__(self, upstream: Any, tmp: Path, env: dict[str, str] | None = None) -> None:
        self.upstream = upstream
        self.env = env or {}
        self.database = FreshDatabase(tmp)
        self.config = provider_config(upstream.base_url, free_port())
        self.tmp = tmp
        self.servers: list[ParleyServer] = []
        self.server = self.another()
        self.tables = Tables(self.database.url)

    def another(self) -> ParleyServer:
        """A further replica on the same database (not started)."""
        srv = ParleyServer(
            database_url=self.database.url, workdir=self.tmp, config=self.config, env=self.env
        )
        self.servers.append(srv)
        return srv

    def close(self) -> None:
        self.tables.close()
        for srv in self.servers:
            srv.stop()
        self.database.drop()


@pytest.fixture(scope="module")
def served(upstream: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A server of the module's own, started, on a fresh database."""
    found = Served(upstream, tmp_path_factory.mktemp("ingestion"))
    try:
        found.server.start()
        yield found
        found.server.stop()
        found.server.assert_clean_log()
    finally:
        found.close()
