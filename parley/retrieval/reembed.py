"""Re-embedding a vector store: every chunk's vector made again with another model.

A store keeps the embedding model it was made with (a vector of one model means nothing
to another's). ``reembed`` moves a store to a new model without taking it down:

1. The store's chunks are read page by page, their texts embedded with the new model
   (``ProviderRegistry.embed``: the model's own batches, never on the event loop) and the
   vectors kept aside in a temporary file. The store is not touched: it is searched as
   before, by its words and its old vectors.
2. One transaction then switches it: while no file of the store is being indexed and
   every chunk it has was embedded, the old vectors make way for the new ones and the
   store names the new model. Chunks added meanwhile (a file indexed with the old model)
   are embedded in another round; a file being indexed is waited for.

Nothing is written before the switch, and the switch is all or nothing: a failure at any
point (the model refuses a chunk, the process is killed) leaves the store exactly as it
was, to be re-embedded again later. ``parley vector-stores reembed`` runs it
(``docs/retrieval.md``, "Re-embedding a store").
"""

from __future__ import annotations

import array
import asyncio
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Literal

from sqlalchemy import func, select, update
from sqlalchemy.engine import Connection

from parley.errors import Conflict, InvalidRequest, NotFound
from parley.providers.registry import ProviderRegistry
from parley.store import index
from parley.store.db import Database
from parley.store.records import VectorStore
from parley.store.tables import chunks, vector_store_files, vector_stores

__all__ = ["PAGE", "ROUNDS", "Reembedded", "reembed"]

#: Chunks read, embedded and written at a time.
PAGE = 256
#: Times the switch is tried: each try after the first embeds the chunks added meanwhile.
ROUNDS = 5
#: Seconds between two looks at a store whose files are being indexed.
WAIT_POLL = 0.5

#: Called with the chunks embedded so far and the chunks the store had when counted.
Progress = Callable[[int, int], None]
_Outcome = Literal["done", "busy", "changed"]


@dataclass(frozen=True, slots=True)
class Reembedded:
    """What a re-embedding did."""

    vector_store_id: str
    #: The model the store had before, and the one it has now.
    previous_model: str | None
    model: str
    #: Chunks whose vector was made again, and its length.
    chunks: int
    dimensions: int
    #: Tokens the model counted for them.
    input_tokens: int


class _Staged:
    """The new vectors, by chunk id, in a temporary file (float32): a store of 100,000
    chunks holds them in 150 MB of disk, not of memory."""

    def __init__(self) -> None:
        # Closed (and so removed) by ``close``, once the switch is done or has failed.
        self._file: IO[bytes] = tempfile.TemporaryFile(prefix="parley-reembed-")  # noqa: SIM115
        self._places: dict[int, int] = {}
        self.dimensions = 0
        self.tokens = 0

    def __len__(self) -> int:
        return len(self._places)

    def __contains__(self, chunk_id: int) -> bool:
        return chunk_id in self._places

    def add(self, ids: Sequence[int], vectors: Sequence[Sequence[float]]) -> None:
        for chunk_id, vector in zip(ids, vectors, strict=True):
            if not self.dimensions:
                self.dimensions = len(vector)
            if len(vector) != self.dimensions or not vector:
                raise InvalidRequest(
                    f"The model gave vectors of {self.dimensions} and {len(vector)} "
                    "dimensions; a store's vectors must all have one length.",
                    param="model",
                )
            self._file.seek(0, 2)
            self._places[chunk_id] = self._file.tell()
            self._file.write(array.array("f", vector).tobytes())

    def vectors(self, ids: Sequence[int]) -> list[list[float]]:
        out: list[list[float]] = []
        size = 4 * self.dimensions
        for chunk_id in ids:
            self._file.seek(self._places[chunk_id])
            out.append(array.array("f", self._file.read(size)).tolist())
        return out

    def close(self) -> None:
        self._file.close()


async def reembed(
    db: Database,
    providers: ProviderRegistry,
    *,
    vector_store_id: str,
    model: str,
    progress: Progress | None = None,
    wait_seconds: float = 600.0,
) -> Reembedded:
    """Embed every chunk of the store again with ``model`` (``provider/model-id``) and make
    it the store's model, all at once; see the module's docstring. Raises ``NotFound`` (no
    such store), ``InvalidRequest`` (the model cannot embed, this database cannot store
    vectors), ``Conflict`` (its files were still being indexed after ``wait_seconds``, or
    it kept changing) or the model's error; the store is then as it was."""
    providers.embedder(model)  # an unknown model or provider fails before any work
    store = await db.read(_store, vector_store_id=vector_store_id)
    if not await db.read(index.vectors_available):
        raise InvalidRequest(
            "This database cannot store vectors (no sqlite-vec or pgvector): its stores are "
            "searched by their words only.",
            code="vectors_unavailable",
        )
    staged = _Staged()
    deadline = time.monotonic() + wait_seconds
    try:
        for _ in range(ROUNDS):
            await _embed_missing(db, providers, store.id, model, staged, progress)
            outcome = await db.write_retried(
                _switch, vector_store_id=store.id, model=model, staged=staged
            )
            if outcome == "done":
                return Reembedded(
                    vector_store_id=store.id,
                    previous_model=store.embedding_model,
                    model=model,
                    chunks=len(staged),
                    dimensions=staged.dimensions,
                    input_tokens=staged.tokens,
                )
            if outcome == "busy":
                await _wait_indexed(db, store.id, deadline, wait_seconds)
    finally:
        staged.close()
    raise Conflict(
        f"The vector store {store.id} kept changing while it was re-embedded ({ROUNDS} "
        "rounds); nothing was changed. Run it again.",
        code="vector_store_busy",
    )


async def _wait_indexed(db: Database, store_id: str, deadline: float, wait_seconds: float) -> None:
    """Until no file of the store is being indexed; ``Conflict`` past the deadline."""
    while await db.read(_indexing, vector_store_id=store_id):
        if time.monotonic() >= deadline:
            raise Conflict(
                f"Files of the vector store {store_id} were still being indexed after "
                f"{wait_seconds:g} s; nothing was changed. Run it again once they are done.",
                code="vector_store_busy",
            )
        await asyncio.sleep(WAIT_POLL)


def _store(conn: Connection, *, vector_store_id: str) -> VectorStore:
    row = conn.execute(select(vector_stores).where(vector_stores.c.id == vector_store_id)).first()
    if row is None:
        raise NotFound(
            f"No such vector store: {vector_store_id}.",
            code="vector_store_not_found",
            param="vector_store_id",
        )
    return VectorStore.from_row(row)


def _chunk_ids(conn: Connection, *, vector_store_id: str) -> list[int]:
    query = select(chunks.c.id).where(chunks.c.vector_store_id == vector_store_id)
    return [int(i) for i in conn.execute(query.order_by(chunks.c.id)).scalars()]


def _texts(conn: Connection, *, ids: Sequence[int]) -> list[tuple[int, str]]:
    """The texts of the chunks ``ids`` still there, by id."""
    rows = conn.execute(select(chunks.c.id, chunks.c.text).where(chunks.c.id.in_(ids)))
    return sorted((int(r.id), str(r.text)) for r in rows)


def _indexing(conn: Connection, *, vector_store_id: str) -> int:
    """How many files of the store are being indexed."""
    query = select(func.count()).where(
        vector_store_files.c.vector_store_id == vector_store_id,
        vector_store_files.c.status == "in_progress",
    )
    return int(conn.execute(query).scalar_one())


async def _embed_missing(
    db: Database,
    providers: ProviderRegistry,
    store_id: str,
    model: str,
    staged: _Staged,
    progress: Progress | None,
) -> None:
    """Embed the store's chunks that are not staged yet, a page at a time."""
    ids = await db.read(_chunk_ids, vector_store_id=store_id)
    missing = [i for i in ids if i not in staged]
    done = len(ids) - len(missing)
    for page in _pages(missing):
        found = await db.read(_texts, ids=page)
        if not found:
            continue
        result = await providers.embed(model, [text for _, text in found])
        staged.add([i for i, _ in found], result.vectors)
        staged.tokens += result.input_tokens
        done += len(found)
        if progress is not None:
            progress(done, len(ids))


def _switch(conn: Connection, *, vector_store_id: str, model: str, staged: _Staged) -> _Outcome:
    """The store's vectors replaced by the staged ones and its model set, in this one
    transaction; or nothing, when a file is being indexed (``busy``) or a chunk is not
    staged (``changed``)."""
    # On PostgreSQL the store's row is locked first: a file attached meanwhile (whose
    # foreign key takes a share lock of it) then waits for the switch, and is indexed
    # with the new model, or the switch waits for it, and finds it being indexed.
    if conn.dialect.name == "postgresql":
        conn.execute(
            select(vector_stores.c.id)
            .where(vector_stores.c.id == vector_store_id)
            .with_for_update()
        )
    _store(conn, vector_store_id=vector_store_id)
    if _indexing(conn, vector_store_id=vector_store_id):
        return "busy"
    ids = _chunk_ids(conn, vector_store_id=vector_store_id)
    if any(i not in staged for i in ids):
        return "changed"
    for page in _pages(ids):
        index.replace_embeddings(
            conn, vector_store_id=vector_store_id, ids=page, embeddings=staged.vectors(page)
        )
    conn.execute(
        update(vector_stores)
        .where(vector_stores.c.id == vector_store_id)
        .values(embedding_model=model)
    )
    return "done"


def _pages(ids: Sequence[int]) -> Iterator[list[int]]:
    for start in range(0, len(ids), PAGE):
        yield list(ids[start : start + PAGE])
