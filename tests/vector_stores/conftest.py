"""A ``parley serve`` of the vector store tests, with the offline embedding ``demo/embed``
as its embedding model, and what they share: an SDK client per user, a deadline to wait
for the indexing worker, and a look into the database (``chunk_count``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import openai
import pytest
from sqlalchemy import create_engine, func, select, update

from parley.store.db import normalise_url
from parley.store.tables import chunks, vector_stores
from tests.harness import ParleyServer

T = TypeVar("T")
#: Seconds a file may take to be indexed before a test fails.
INDEXING_DEADLINE = 30.0
#: How often the SDK's helpers ask whether the files are indexed.
POLL = {"poll_interval_ms": 100}
OWLS = (
    b"Owls hunt at night. Their soft feathers make their flight silent, and their ears "
    b"find a mouse under the snow.\n"
)
BEES = b"Bees dance to tell the hive where the flowers are. The waggle dance points the way.\n"
TIDES = b"Tides rise and fall twice a day, pulled by the moon and, less, by the sun.\n"


class VectorServer:
    """The server, and the database it runs on."""

    def __init__(self, server: ParleyServer) -> None:
        self.server = server

    def sdk(self, key: str) -> openai.OpenAI:
        return openai.OpenAI(
            base_url=f"{self.server.base_url}/v1", api_key=key, max_retries=0, timeout=30
        )

    def chunk_count(self, **where: str) -> int:
        """The chunks of the index whose columns have these values."""
        engine = create_engine(normalise_url(self.server.database_url))
        try:
            with engine.connect() as conn:
                query = select(func.count()).select_from(chunks)
                for name, value in where.items():
                    query = query.where(chunks.c[name] == value)
                return int(conn.execute(query).scalar_one())
        finally:
            engine.dispose()

    def expire(self, vector_store_id: str) -> None:
        """Make the store's expiry a second ago, as days without use would."""
        engine = create_engine(normalise_url(self.server.database_url))
        try:
            with engine.begin() as conn:
                conn.execute(
                    update(vector_stores)
                    .where(vector_stores.c.id == vector_store_id)
                    .values(expires_at=time.time() - 1)
                )
        finally:
            engine.dispose()


def serve(database_url: str, workdir: Path) -> Iterator[VectorServer]:
    """A server with ``demo/embed`` as its embedding model, for the module."""
    srv = ParleyServer(
        database_url=database_url,
        workdir=workdir,
        env={"PARLEY_EMBEDDING_MODEL": "demo/embed", "PARLEY_FILES_DIR": str(workdir / "f")},
    )
    try:
        srv.start()
        yield VectorServer(srv)
        srv.stop()
        srv.assert_clean_log()
    finally:
        srv.stop()


def until(check: Callable[[], T | None], what: str, deadline: float = INDEXING_DEADLINE) -> T:
    """``check()``'s first answer that is not None, asked until the deadline."""
    end = time.monotonic() + deadline
    while True:
        found = check()
        if found is not None:
            return found
        if time.monotonic() > end:
            pytest.fail(f"{what}: not within {deadline:.0f} s")
        time.sleep(0.1)


def sdk_of(vs: VectorServer, name: str = "user") -> Iterator[Any]:
    with vs.sdk(vs.server.new_user(name)) as client:
        yield client
