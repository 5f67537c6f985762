"""The files of vector stores, row by row: attaching one (``in_progress``, for the workers
that index it), a file batch's row, and what a store's files come to (``tallies``: counts
by status and bytes, never kept). The routes' checks around them are ``vector_stores``,
which offers these too."""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from parley.errors import NotFound
from parley.store.db import now
from parley.store.files import file_not_found
from parley.store.records import VectorStoreFile, _Record
from parley.store.tables import files, vector_store_files

__all__ = [
    "AUTO_CHUNKING",
    "FILE_STATUSES",
    "FileBatch",
    "FileToAdd",
    "Tally",
    "attach_file",
    "batch_not_found",
    "check_files",
    "file_batch_id",
    "store_file_not_found",
    "tallies",
]

#: The ``chunking_strategy`` of a file attached with none, or with ``auto``: OpenAI's.
AUTO_CHUNKING: dict[str, Any] = {
    "type": "static",
    "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400},
}


def attach_file(
    conn: Connection,
    *,
    user_id: str,
    vector_store_id: str,
    file_id: str,
    attributes: Mapping[str, Any] | None = None,
    chunking_strategy: Mapping[str, Any] | None = None,
    batch_id: str | None = None,
    key_hash: str | None = None,
) -> VectorStoreFile:
    """Put the user's file (checked by the caller) in the store, ``in_progress``: a worker
    of any replica claims it and indexes it. A file already in the store is attached again
    (its chunks are made anew). ``key_hash``: the API key whose usage counts the tokens
    its embedding takes."""
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
        key_hash=key_hash,
    )
    # One statement, insert or update: two requests attaching the same file at once on
    # PostgreSQL both succeed (the later one wins) instead of one failing on the key.
    upsert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    statement = upsert(vector_store_files).values(**row.values())
    kept = ("vector_store_id", "file_id", "user_id")
    changed = {k: statement.excluded[k] for k in row.values() if k not in kept}
    conn.execute(
        statement.on_conflict_do_update(index_elements=["vector_store_id", "file_id"], set_=changed)
    )
    return row


#: The statuses of a store's files, in the order of OpenAI's ``file_counts``.
FILE_STATUSES = ("in_progress", "completed", "failed", "cancelled")


@dataclass(frozen=True, slots=True)
class Tally:
    """What a store's (or a batch's) files come to: how many of each status, and the bytes
    their chunks take."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FILE_STATUSES, 0))
    usage_bytes: int = 0

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass(frozen=True, slots=True)
class FileToAdd:
    """A file to put in a store, with its attributes and chunking strategy (as OpenAI
    shows it: ``AUTO_CHUNKING`` for ``auto``)."""

    file_id: str
    attributes: Mapping[str, Any] = field(default_factory=dict)
    chunking_strategy: Mapping[str, Any] | None = None


@dataclass(slots=True)
class FileBatch(_Record):
    """A file batch (``/v1/vector_stores/{id}/file_batches``)."""

    id: str
    vector_store_id: str
    user_id: str
    created_at: float
    #: ``in_progress`` or ``cancelled``; its files' statuses say the rest.
    status: str


def file_batch_id() -> str:
    return "vsfb_" + secrets.token_urlsafe(18).replace("-", "x").replace("_", "y")


def store_file_not_found(vector_store_id: str, file_id: str) -> NotFound:
    return NotFound(
        f"No file found with id {file_id!r} in vector store {vector_store_id!r}.",
        code="vector_store_file_not_found",
        param="file_id",
    )


def batch_not_found(batch_id: str) -> NotFound:
    return NotFound(
        f"No such vector store file batch: {batch_id}.",
        code="vector_store_file_batch_not_found",
        param="batch_id",
    )


def tallies(
    conn: Connection, *, vector_store_ids: Sequence[str] = (), batch_ids: Sequence[str] = ()
) -> dict[str, Tally]:
    """The files of each store (or of each batch), counted by status, with their bytes."""
    column = vector_store_files.c.batch_id if batch_ids else vector_store_files.c.vector_store_id
    keys = list(batch_ids or vector_store_ids)
    found = {key: Tally() for key in keys}
    if not keys:
        return found
    rows = conn.execute(
        select(
            column.label("key"),
            vector_store_files.c.status,
            func.count().label("n"),
            func.coalesce(func.sum(vector_store_files.c.usage_bytes), 0).label("bytes"),
        )
        .where(column.in_(keys))
        .group_by(column, vector_store_files.c.status)
    )
    usage: dict[str, int] = {}
    for row in rows:
        tally = found[row.key]
        tally.counts[row.status] = tally.counts.get(row.status, 0) + int(row.n)
        usage[row.key] = usage.get(row.key, 0) + int(row.bytes)
    return {key: Tally(t.counts, usage.get(key, 0)) for key, t in found.items()}


def check_files(conn: Connection, user_id: str, file_ids: Sequence[str], at: float) -> None:
    """``NotFound`` naming the first of ``file_ids`` that is not the user's, or has expired."""
    wanted = list(dict.fromkeys(file_ids))
    found: set[str] = set()
    for start in range(0, len(wanted), 500):
        part = wanted[start : start + 500]
        found.update(
            conn.execute(
                select(files.c.id).where(
                    files.c.id.in_(part),
                    files.c.user_id == user_id,
                    or_(files.c.expires_at.is_(None), files.c.expires_at > at),
                )
            ).scalars()
        )
    for file_id in wanted:
        if file_id not in found:
            raise file_not_found(file_id)
