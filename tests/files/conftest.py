"""Fixtures of the files tests: a ``parley serve`` of their own with small limits (files
of at most ``MAX_BYTES``, ``QUOTA`` bytes per user), its files directory, and a look at
where its bytes are (``stored_bytes``): the directory's files, or the database's pieces."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from sqlalchemy import create_engine, func, select

from parley.store.db import normalise_url
from parley.store.tables import file_data
from tests.harness import FreshDatabase, ParleyServer

MAX_BYTES = 3 * 1024 * 1024
QUOTA = 5 * 1024 * 1024


class FilesServer:
    """The server, and where its bytes go."""

    def __init__(self, server: ParleyServer, files_dir: Path) -> None:
        self.server = server
        self.files_dir = files_dir

    def sdk(self, key: str) -> openai.OpenAI:
        return openai.OpenAI(
            base_url=f"{self.server.base_url}/v1", api_key=key, max_retries=0, timeout=30
        )

    def stored_bytes(self) -> list[str]:
        """Every key with bytes stored, local files and database pieces together (and any
        write left in ``tmp/``)."""
        found = sorted(
            str(p.relative_to(self.files_dir)) for p in self.files_dir.rglob("*") if p.is_file()
        )
        engine = create_engine(normalise_url(self.server.database_url))
        try:
            with engine.connect() as conn:
                keys = conn.execute(select(file_data.c.key).distinct()).scalars()
                found += sorted(f"db:{k}" for k in keys)
                assert conn.execute(select(func.count()).select_from(file_data)).scalar() >= 0
        finally:
            engine.dispose()
        return found


@pytest.fixture(scope="package", params=["default", "other"])
def files_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FilesServer]:
    """The server with its database's default storage (local on SQLite, the database on
    PostgreSQL), then with the other one."""
    tmp = tmp_path_factory.mktemp("files")
    db = FreshDatabase(tmp)
    files_dir = tmp / "stored"
    storage = {}
    if request.param == "other":
        storage["PARLEY_FILES_STORAGE"] = "database" if db.kind == "sqlite" else "local"
    srv = ParleyServer(
        database_url=db.url,
        workdir=tmp,
        env={
            "PARLEY_FILES_DIR": str(files_dir),
            "PARLEY_FILES_MAX_BYTES": str(MAX_BYTES),
            "PARLEY_FILES_USER_QUOTA_BYTES": str(QUOTA),
            **storage,
        },
    )
    try:
        srv.start()
        yield FilesServer(srv, files_dir)
        srv.stop()
        srv.assert_clean_log()
    finally:
        srv.stop()
        db.drop()


@pytest.fixture
def key(files_server: FilesServer) -> str:
    """A new user of the files server: tests never see each other's files."""
    return files_server.server.new_user()


@pytest.fixture
def sdk(files_server: FilesServer, key: str) -> Iterator[Any]:
    with files_server.sdk(key) as client:
        yield client
