"""The Vector Stores face's queries: each runs in one transaction (``Database.read`` /
``write``) and answers what its route needs, in OpenAI's shapes, the files' counts and
bytes read in the same transaction as the store or batch they belong to."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.engine import Connection

from parley.server.faces.kit.pages import Page
from parley.server.faces.vector_stores.schemas import FileBatchPublic, VectorStorePublic
from parley.store import vector_stores as store
from parley.store.pagination import ListQuery
from parley.store.records import VectorStore


def public(conn: Connection, vs: VectorStore) -> VectorStorePublic:
    return VectorStorePublic.of(vs, store.tallies(conn, vector_store_ids=[vs.id])[vs.id])


def batch_public(conn: Connection, batch: store.FileBatch) -> FileBatchPublic:
    return FileBatchPublic.of(batch, store.tallies(conn, batch_ids=[batch.id])[batch.id])


def create_store(
    conn: Connection,
    *,
    user_id: str,
    files: Sequence[store.FileToAdd],
    name: str | None,
    description: str | None,
    metadata: Mapping[str, Any] | None,
    expires_after_days: int | None,
    embedding_model: str | None,
    key_hash: str | None = None,
) -> VectorStorePublic:
    """A new store, with its files (all the user's, or nothing is made)."""
    made = store.create_vector_store(
        conn,
        user_id=user_id,
        name=name,
        description=description,
        metadata=metadata,
        expires_after_days=expires_after_days,
        embedding_model=embedding_model,
    )
    if files:
        store.add_files(
            conn, user_id=user_id, vector_store_id=made.id, files=files, key_hash=key_hash
        )
    return public(conn, made)


def list_stores(conn: Connection, *, user_id: str, page: ListQuery) -> Page[VectorStorePublic]:
    found, more = store.list_vector_stores(conn, user_id=user_id, page=page)
    tallies = store.tallies(conn, vector_store_ids=[vs.id for vs in found])
    return Page.of([VectorStorePublic.of(vs, tallies[vs.id]) for vs in found], more)


def retrieve_store(conn: Connection, *, user_id: str, vector_store_id: str) -> VectorStorePublic:
    return public(
        conn, store.get_vector_store(conn, user_id=user_id, vector_store_id=vector_store_id)
    )


def update_store(
    conn: Connection, *, user_id: str, vector_store_id: str, changes: Mapping[str, Any]
) -> VectorStorePublic:
    vs = store.update_vector_store(
        conn, user_id=user_id, vector_store_id=vector_store_id, **changes
    )
    return public(conn, vs)


def create_batch(
    conn: Connection,
    *,
    user_id: str,
    vector_store_id: str,
    files: Sequence[store.FileToAdd],
    key_hash: str | None = None,
) -> FileBatchPublic:
    _, batch = store.add_files(
        conn,
        user_id=user_id,
        vector_store_id=vector_store_id,
        files=files,
        batch=True,
        key_hash=key_hash,
    )
    assert batch is not None
    return batch_public(conn, batch)


def retrieve_batch(
    conn: Connection, *, user_id: str, vector_store_id: str, batch_id: str
) -> FileBatchPublic:
    batch = store.get_file_batch(
        conn, user_id=user_id, vector_store_id=vector_store_id, batch_id=batch_id
    )
    return batch_public(conn, batch)


def cancel_batch(
    conn: Connection, *, user_id: str, vector_store_id: str, batch_id: str
) -> FileBatchPublic:
    batch = store.cancel_file_batch(
        conn, user_id=user_id, vector_store_id=vector_store_id, batch_id=batch_id
    )
    return batch_public(conn, batch)
