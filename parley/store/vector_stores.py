"""Vector stores and their files: rows, and the claims of the workers that index them.

A store belongs to one user: another user's store, or one past its ``expires_at``, is not
usable (``usable_stores``). The chunks search finds live in ``chunks``, written and read by
``parley.retrieval.index``.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from parley.errors import NotFound
from parley.store.db import now
from parley.store.records import VectorStore, VectorStoreFile
from parley.store.tables import vector_store_files, vector_stores

DAY = 86_400.0
#: The ``chunking_strategy`` of a file attached with none, or with ``auto``: OpenAI's.
AUTO_CHUNKING: dict[str, Any] = {
    "type": "static",
    "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400},
}


def vector_store_id() -> str:
    """A new vector store id: ``vs_`` and 24 random letters and digits, like OpenAI's."""
    return "vs_" + secrets.token_urlsafe(18).replace("-", "x").replace("_", "y")


def vector_store_not_found(store_id: str) -> NotFound:
    return NotFound(
        f"No such vector store: {store_id}.", code="vector_store_not_found", param="vector_store_id"
    )


def create_vector_store(
    conn: Connection,
    *,
    user_id: str,
    name: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    expires_after_days: int | None = None,
    embedding_model: str | None = None,
    thread_id: str | None = None,
    description: str | None = None,
) -> VectorStore:
    at = now()
    row = VectorStore(
        id=vector_store_id(),
        user_id=user_id,
        name=name,
        metadata=dict(metadata or {}),
        created_at=at,
        last_active_at=at,
        expires_after_days=expires_after_days,
        expires_at=None if expires_after_days is None else at + expires_after_days * DAY,
        embedding_model=embedding_model,
        thread_id=thread_id,
        description=description,
    )
    conn.execute(insert(vector_stores).values(**row.values()))
    return row


def get_vector_store(conn: Connection, *, user_id: str, vector_store_id: str) -> VectorStore:
    """The user's store (expired or not); ``NotFound`` for another user's or none."""
    row = conn.execute(
        select(vector_stores).where(
            vector_stores.c.id == vector_store_id, vector_stores.c.user_id == user_id
        )
    ).first()
    if row is None:
        raise vector_store_not_found(vector_store_id)
    return VectorStore.from_row(row)


def usable_stores(
    conn: Connection, *, user_id: str, vector_store_ids: Sequence[str]
) -> list[VectorStore]:
    """The user's stores of ``vector_store_ids``, in that order, each made active now (its
    expiry moves on); ``NotFound`` naming the first that is another user's, expired or
    unknown."""
    if not vector_store_ids:
        return []
    at = now()
    found = {
        r.id: VectorStore.from_row(r)
        for r in conn.execute(
            select(vector_stores).where(
                vector_stores.c.id.in_(list(vector_store_ids)),
                vector_stores.c.user_id == user_id,
            )
        )
    }
    stores = []
    for store_id in vector_store_ids:
        store = found.get(store_id)
        if store is None or (store.expires_at is not None and store.expires_at <= at):
            raise vector_store_not_found(store_id)
        stores.append(store)
    for store in stores:
        touch(conn, store=store, at=at)
    return stores


def touch(conn: Connection, *, store: VectorStore, at: float | None = None) -> None:
    """The store was used at ``at``: its ``last_active_at``, and its expiry, move on."""
    at = now() if at is None else at
    days = store.expires_after_days
    conn.execute(
        update(vector_stores)
        .where(vector_stores.c.id == store.id)
        .values(last_active_at=at, expires_at=None if days is None else at + days * DAY)
    )
    store.last_active_at = at
    store.expires_at = None if days is None else at + days * DAY


def attach_file(
    conn: Connection,
    *,
    user_id: str,
    vector_store_id: str,
    file_id: str,
    attributes: Mapping[str, Any] | None = None,
    chunking_strategy: Mapping[str, Any] | None = None,
    batch_id: str | None = None,
) -> VectorStoreFile:
    """Put the user's file (checked by the caller) in the store, ``in_progress``: a worker
    of any replica claims it and indexes it. A file already in the store is attached again
    (its chunks are made anew)."""
    row = VectorStoreFile(
        vector_store_id=vector_store_id,
        file_id=file_id,
        user_id=user_id,
        created_at=now(),
        status="in_progress",
        last_error=None,
        attributes=dict(attributes or {}),
        chunking_strategy=dict(chunking_strategy or AUTO_CHUNKING),
        usage_bytes=0,
        batch_id=batch_id,
        lease_owner=None,
        lease_until=None,
        attempts=0,
    )
    key = (vector_store_files.c.vector_store_id == vector_store_id) & (
        vector_store_files.c.file_id == file_id
    )
    if conn.execute(select(vector_store_files.c.file_id).where(key)).first() is None:
        conn.execute(insert(vector_store_files).values(**row.values()))
    else:
        values = row.values()
        for k in ("vector_store_id", "file_id", "user_id"):
            values.pop(k)
        conn.execute(update(vector_store_files).where(key).values(**values))
    return row
