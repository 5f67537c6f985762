"""``/readyz``: ready (200, every check ``ok``) on a good database, Redis too when it is
configured; 503 naming the check once the database is gone. ``/healthz`` stays 200: the
process is alive. (Draining: ``tests/e2e/test_drain.py``.)"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.harness import REDIS_ENV, FreshDatabase, ParleyServer, free_port, provider_config


@pytest.fixture
def database(tmp_path: Path) -> Iterator[FreshDatabase]:
    db = FreshDatabase(tmp_path)
    try:
        yield db
    finally:
        db.drop()


@pytest.fixture
def server(upstream: Any, database: FreshDatabase, tmp_path: Path) -> Iterator[ParleyServer]:
    srv = ParleyServer(
        database_url=database.url,
        workdir=tmp_path,
        config=provider_config(upstream.base_url, free_port()),
    )
    try:
        yield srv.start()
    finally:
        srv.stop()


def _gone(database: FreshDatabase) -> None:
    """Take the server's database away under it: dropped (PostgreSQL, its connections
    ended), or its file emptied (SQLite)."""
    if database.kind == "postgresql":
        database.drop()
    else:
        Path(database.url.removeprefix("sqlite:///")).write_bytes(b"")


def test_ready_on_a_good_database(server: ParleyServer) -> None:
    for _ in range(2):  # the second probe takes the cached "at head"
        answer = httpx.get(f"{server.base_url}/readyz", timeout=5)
        assert answer.status_code == 200, answer.text
        checks = {"database": "ok", "migrations": "ok"}
        if os.environ.get(REDIS_ENV):
            checks["redis"] = "ok"
        assert answer.json() == {"status": "ready", "checks": checks}
        assert "x-request-id" in answer.headers


def test_not_ready_once_the_database_is_gone(server: ParleyServer, database: FreshDatabase) -> None:
    assert httpx.get(f"{server.base_url}/readyz", timeout=5).status_code == 200
    _gone(database)
    answer = httpx.get(f"{server.base_url}/readyz", timeout=5)
    assert answer.status_code == 503, answer.text
    body = answer.json()
    assert body["status"] == "unready" and body["checks"]["database"] == "unreachable", body
    assert "migrations" not in body["checks"]
    assert httpx.get(f"{server.base_url}/healthz", timeout=5).status_code == 200
