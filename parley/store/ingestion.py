"""The claims of the workers that index vector store files (``parley.retrieval.ingest``).

A file attached to a store waits ``in_progress`` with no lease. A worker of any replica
claims it (compare-and-set on its lease; ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so two
replicas never take the same row), counts the attempt, and renews the lease while it works.
A worker that dies leaves its lease to run out: the file is claimed again, and after
``MAX_ATTEMPTS`` claims it ends ``failed``. A worker ends a file only while it still holds
its claim and the file is still ``in_progress``: a file cancelled, attached again or
deleted meanwhile is left as it is.

Each function runs in one transaction on a database thread (``Database.write``).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, exists, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from parley.store import driver, index
from parley.store.chunks import Chunk
from parley.store.db import now
from parley.store.tables import chunks, files, vector_store_files, vector_stores

#: Claims of one file before it ends ``failed``: each claim whose worker died counts.
MAX_ATTEMPTS = 3
INTERRUPTED = (
    "The indexing of this file was interrupted {attempts} times (the servers indexing it "
    "stopped); attach it again to retry."
)
#: Expired stores whose chunks one sweep transaction deletes.
SWEEP_BATCH = 50

_rows = vector_store_files


@dataclass(frozen=True, slots=True)
class Claim:
    """A file claimed for indexing: whose, where its bytes are, how to cut and embed it.
    ``owner`` is this claim's own lease owner: a later claim of the same file (after it was
    attached again) never matches it."""

    vector_store_id: str
    file_id: str
    user_id: str
    owner: str
    attempt: int
    filename: str
    mime_type: str | None
    size: int
    storage: str
    storage_key: str
    attributes: dict[str, Any] = field(default_factory=dict)
    chunking_strategy: dict[str, Any] = field(default_factory=dict)
    embedding_model: str | None = None
    #: The API key (its SHA-256) that attached the file: its usage counts the embedding.
    key_hash: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        return self.vector_store_id, self.file_id


@dataclass(frozen=True, slots=True)
class Queue:
    """Files ``in_progress``: all of them, and those whose lease is free or past."""

    waiting: int
    claimable: int


def _claimable(at: float) -> ColumnElement[bool]:
    # The partial index ``ix_vector_store_files_ingesting`` answers this.
    return and_(
        _rows.c.status == "in_progress",
        or_(_rows.c.lease_until.is_(None), _rows.c.lease_until < at),
    )


def _held(claim: Claim) -> ColumnElement[bool]:
    return and_(
        _rows.c.vector_store_id == claim.vector_store_id,
        _rows.c.file_id == claim.file_id,
        _rows.c.status == "in_progress",
        _rows.c.lease_owner == claim.owner,
    )


def queue(conn: Connection) -> Queue:
    """How many files wait ``in_progress``, and how many of them a worker may claim now
    (one query on the partial index of ``in_progress`` files)."""
    waiting, free = _QUEUE.one(conn, (now(),))
    return Queue(int(waiting), int(free))


_QUEUE = driver.Statement(
    "SELECT count(*), count(CASE WHEN lease_until IS NULL OR lease_until < ? THEN 1 END)"
    " FROM vector_store_files WHERE status = 'in_progress'"
)


def claim_files(
    conn: Connection, *, owner: str, until: float, limit: int
) -> tuple[list[Claim], int]:
    """Claim at most ``limit`` files whose lease is free or past, oldest first, for
    ``owner`` until ``until``; each claim counts an attempt. A file already claimed
    ``MAX_ATTEMPTS`` times ends ``failed`` instead. Returns the claims, and how many files
    ended so."""
    at = now()
    query = (
        select(_rows.c.vector_store_id, _rows.c.file_id, _rows.c.attempts, _rows.c.lease_until)
        .where(_claimable(at))
        .order_by(_rows.c.created_at)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    found = conn.execute(query).all()
    claimed: list[tuple[str, str, str, int]] = []
    gave_up = 0
    for row in found:
        key = and_(
            _rows.c.vector_store_id == row.vector_store_id,
            _rows.c.file_id == row.file_id,
            _claimable(at),
        )
        if row.attempts >= MAX_ATTEMPTS:
            error = {"code": "server_error", "message": INTERRUPTED.format(attempts=row.attempts)}
            done = conn.execute(
                update(_rows)
                .where(key)
                .values(status="failed", last_error=error, lease_owner=None, lease_until=None)
            )
            gave_up += done.rowcount
            continue
        mine = f"{secrets.token_hex(4)}@{owner}"[:64]
        done = conn.execute(
            update(_rows)
            .where(key)
            .values(lease_owner=mine, lease_until=until, attempts=_rows.c.attempts + 1)
        )
        if done.rowcount:
            claimed.append((row.vector_store_id, row.file_id, mine, row.attempts + 1))
    return [c for c in (_claim_of(conn, *c) for c in claimed) if c is not None], gave_up


def _claim_of(
    conn: Connection, vector_store_id: str, file_id: str, owner: str, attempt: int
) -> Claim | None:
    row = conn.execute(
        select(
            _rows.c.user_id,
            _rows.c.attributes,
            _rows.c.chunking_strategy,
            _rows.c.key_hash,
            files.c.filename,
            files.c.mime_type,
            files.c.bytes,
            files.c.storage,
            files.c.storage_key,
            vector_stores.c.embedding_model,
        )
        .select_from(
            _rows.join(files, files.c.id == _rows.c.file_id).join(
                vector_stores, vector_stores.c.id == _rows.c.vector_store_id
            )
        )
        .where(_rows.c.vector_store_id == vector_store_id, _rows.c.file_id == file_id)
    ).first()
    if row is None:  # the cascades of a deletion hold no lock on SQLite's side: gone
        return None
    return Claim(
        vector_store_id=vector_store_id,
        file_id=file_id,
        user_id=row.user_id,
        owner=owner,
        attempt=attempt,
        filename=row.filename,
        mime_type=row.mime_type,
        size=int(row.bytes),
        storage=row.storage,
        storage_key=row.storage_key,
        attributes=dict(row.attributes or {}),
        chunking_strategy=dict(row.chunking_strategy or {}),
        embedding_model=row.embedding_model,
        key_hash=row.key_hash,
    )


def renew_claims(
    conn: Connection, *, claims: Sequence[Claim], until: float
) -> set[tuple[str, str]]:
    """Move the leases of ``claims`` on to ``until``; returns the keys (store, file) of
    those still held (a file cancelled, attached again or deleted is not)."""
    held: set[tuple[str, str]] = set()
    for claim in claims:
        if conn.execute(update(_rows).where(_held(claim)).values(lease_until=until)).rowcount:
            held.add(claim.key)
    return held


def release_claims(conn: Connection, *, claims: Sequence[Claim]) -> None:
    """Give back ``claims`` of a worker that stops cleanly: free at once for any replica,
    the attempt not counted."""
    for claim in claims:
        conn.execute(
            update(_rows)
            .where(_held(claim))
            .values(lease_owner=None, lease_until=None, attempts=_rows.c.attempts - 1)
        )


def complete_file(
    conn: Connection,
    *,
    claim: Claim,
    pieces: Sequence[Chunk],
    embeddings: Sequence[Sequence[float]] | None,
    usage_bytes: int,
) -> str:
    """The file is indexed: its old chunks in the store make way for ``pieces`` (with the
    file's attributes), and it is ``completed``. Only while ``claim`` holds: ``lost``, and
    nothing written, otherwise; ``failed`` when the store expired meanwhile."""
    if conn.dialect.name == "postgresql":
        # Locked first, as their deletions lock them first: a file or store deleted now
        # waits for this transaction (and then takes its chunks), or this one for it.
        for table, key in ((files, claim.file_id), (vector_stores, claim.vector_store_id)):
            conn.execute(
                select(table.c.id).where(table.c.id == key).with_for_update(key_share=True)
            )
    done = conn.execute(
        update(_rows)
        .where(_held(claim), _store_live(claim.vector_store_id, now()))
        .values(status="completed", usage_bytes=usage_bytes, lease_owner=None, lease_until=None)
    )
    if not done.rowcount:
        expired = "The vector store expired before the file was indexed."
        return (
            "failed"
            if fail_file(conn, claim=claim, code="server_error", message=expired)
            else "lost"
        )
    index.delete_file_chunks(conn, file_id=claim.file_id, vector_store_id=claim.vector_store_id)
    index.add_chunks(
        conn,
        user_id=claim.user_id,
        vector_store_id=claim.vector_store_id,
        file_id=claim.file_id,
        chunks=pieces,
        embeddings=embeddings,
        attributes=claim.attributes,
    )
    return "completed"


def _store_live(vector_store_id: str, at: float) -> ColumnElement[bool]:
    return exists().where(
        vector_stores.c.id == vector_store_id,
        or_(vector_stores.c.expires_at.is_(None), vector_stores.c.expires_at > at),
    )


def fail_file(conn: Connection, *, claim: Claim, code: str, message: str) -> bool:
    """The file could not be indexed: ``failed`` with ``{"code", "message"}``, while
    ``claim`` holds. False when it no longer does."""
    done = conn.execute(
        update(_rows)
        .where(_held(claim))
        .values(
            status="failed",
            last_error={"code": code, "message": message},
            lease_owner=None,
            lease_until=None,
        )
    )
    return bool(done.rowcount)


def delete_expired_chunks(conn: Connection, *, at: float, limit: int = SWEEP_BATCH) -> int:
    """Delete the chunks of at most ``limit`` stores past their ``expires_at`` (the stores'
    rows stay, shown ``expired``); returns how many stores had chunks."""
    query = (
        select(vector_stores.c.id)
        .where(
            vector_stores.c.expires_at.is_not(None),
            vector_stores.c.expires_at <= at,
            exists().where(chunks.c.vector_store_id == vector_stores.c.id),
        )
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    found = list(conn.execute(query).scalars())
    for store_id in found:
        index.delete_store_chunks(conn, vector_store_id=store_id)
    return len(found)
