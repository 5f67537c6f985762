"""Vector stores and the files in them, each checked for its user.

A store belongs to one user: another user's store, or one past its ``expires_at``, is not
usable (``usable_stores``). The chunks search finds live in ``chunks``, written and read by
``parley.store.index``.

The routes of ``/v1/vector_stores`` (``parley.server.faces.vector_stores``) read and change
stores, their files and file batches here. A store's and a batch's ``file_counts`` and
``usage_bytes`` are counted from their files (``tallies``), never kept. Taking a file out of
a store, cancelling it or deleting the store deletes its chunks in the same transaction.

Beside it, and offered here too: ``store_files`` (a file attached, a batch's row, tallies)
and ``run_stores`` (the stores a run searches, and their files search cannot find yet).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, delete, insert, or_, select, update
from sqlalchemy.engine import Connection

from parley.errors import InvalidRequest, NotFound
from parley.store import index
from parley.store.db import now
from parley.store.pagination import ListQuery, cursor_not_found, fetch_page
from parley.store.records import VectorStore, VectorStoreFile
from parley.store.run_stores import (
    Unindexed,
    UnindexedFile,
    run_stores,
    thread_stores,
    unindexed_files,
)
from parley.store.store_files import (
    AUTO_CHUNKING,
    FILE_STATUSES,
    FileBatch,
    FileToAdd,
    Tally,
    attach_file,
    batch_not_found,
    check_files,
    file_batch_id,
    store_file_not_found,
    tallies,
)
from parley.store.tables import chunks, vector_store_file_batches, vector_store_files, vector_stores

__all__ = [
    "AUTO_CHUNKING",
    "DAY",
    "FILE_STATUSES",
    "KEEP",
    "FileBatch",
    "FileToAdd",
    "Piece",
    "Tally",
    "Unindexed",
    "UnindexedFile",
    "active_store",
    "add_files",
    "attach_file",
    "batch_not_found",
    "cancel_file_batch",
    "create_vector_store",
    "delete_vector_store",
    "expired",
    "file_batch_id",
    "file_pieces",
    "get_file_batch",
    "get_store_file",
    "get_vector_store",
    "list_store_files",
    "list_vector_stores",
    "remove_file",
    "run_stores",
    "store_expired",
    "store_file_not_found",
    "tallies",
    "thread_stores",
    "touch",
    "unindexed_files",
    "update_file_attributes",
    "update_vector_store",
    "usable_stores",
    "vector_store_id",
    "vector_store_not_found",
]

DAY = 86_400.0


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


# ----------------------------------------------------------------------------- the routes'

#: Keep a field as it is (``update_vector_store``).
KEEP: Any = object()


def expired(store: VectorStore, at: float | None = None) -> bool:
    at = now() if at is None else at
    return store.expires_at is not None and store.expires_at <= at


def store_expired(store_id: str) -> InvalidRequest:
    return InvalidRequest(
        f"Vector store {store_id} has expired: its chunks are gone. Make a new one.",
        code="vector_store_expired",
        param="vector_store_id",
    )


def active_store(conn: Connection, *, user_id: str, vector_store_id: str) -> VectorStore:
    """The user's store, made active now (a search uses it); a 400 once it has expired."""
    store = get_vector_store(conn, user_id=user_id, vector_store_id=vector_store_id)
    at = now()
    if expired(store, at):
        raise store_expired(store.id)
    touch(conn, store=store, at=at)
    return store


def list_vector_stores(
    conn: Connection, *, user_id: str, page: ListQuery
) -> tuple[list[VectorStore], bool]:
    rows, more = fetch_page(
        conn,
        vector_stores,
        where=vector_stores.c.user_id == user_id,
        sort_column="created_at",
        page=page,
    )
    return [VectorStore.from_row(r) for r in rows], more


def update_vector_store(
    conn: Connection,
    *,
    user_id: str,
    vector_store_id: str,
    name: str | None = KEEP,
    metadata: Mapping[str, Any] | None = KEEP,
    expires_after_days: int | None = KEEP,
) -> VectorStore:
    """Change what is given (``KEEP``: unchanged); a new ``expires_after_days`` counts
    from the store's ``last_active_at``, and none makes it never expire. An expired store
    keeps its expiry (a 400)."""
    store = get_vector_store(conn, user_id=user_id, vector_store_id=vector_store_id)
    values: dict[str, Any] = {}
    if name is not KEEP:
        values["name"] = store.name = name
    if metadata is not KEEP:
        values["metadata"] = store.metadata = dict(metadata or {})
    if expires_after_days is not KEEP:
        if expired(store):  # its chunks are gone (or going): it cannot come back
            raise store_expired(store.id)
        store.expires_after_days = expires_after_days
        store.expires_at = (
            None if expires_after_days is None else store.last_active_at + expires_after_days * DAY
        )
        values.update(expires_after_days=expires_after_days, expires_at=store.expires_at)
    if values:
        conn.execute(update(vector_stores).where(vector_stores.c.id == store.id).values(**values))
    return store


def delete_vector_store(conn: Connection, *, user_id: str, vector_store_id: str) -> None:
    """Delete the store, its files' places in it, its batches and its chunks (the files
    themselves stay)."""
    store = get_vector_store(conn, user_id=user_id, vector_store_id=vector_store_id)
    if conn.dialect.name == "postgresql":
        # Hold the store's row first: a worker finishing one of its files at this moment
        # (it takes a key-share lock on the row before writing chunks) waits, then finds
        # the store gone, so no chunk outlives it.
        conn.execute(
            select(vector_stores.c.id).where(vector_stores.c.id == store.id).with_for_update()
        )
    index.delete_store_chunks(conn, vector_store_id=store.id)
    for table in (vector_store_files, vector_store_file_batches):
        conn.execute(delete(table).where(table.c.vector_store_id == store.id))
    conn.execute(delete(vector_stores).where(vector_stores.c.id == store.id))


def add_files(
    conn: Connection,
    *,
    user_id: str,
    vector_store_id: str,
    files: Sequence[FileToAdd],
    batch: bool = False,
    key_hash: str | None = None,
) -> tuple[list[VectorStoreFile], FileBatch | None]:
    """Put the user's files in the store, each ``in_progress`` until a worker has indexed
    it (with ``batch``, as one new file batch). ``NotFound`` for the store, or naming the
    first file that is not the user's; a 400 for a store that has expired. Nothing is
    written unless every file is found."""
    store = get_vector_store(conn, user_id=user_id, vector_store_id=vector_store_id)
    at = now()
    if expired(store, at):
        raise store_expired(store.id)
    check_files(conn, user_id, [f.file_id for f in files], at)
    made = None
    if batch:
        made = FileBatch(
            id=file_batch_id(),
            vector_store_id=store.id,
            user_id=user_id,
            created_at=at,
            status="in_progress",
        )
        conn.execute(insert(vector_store_file_batches).values(**made.values()))
    attached = [
        attach_file(
            conn,
            user_id=user_id,
            vector_store_id=store.id,
            file_id=f.file_id,
            attributes=f.attributes,
            chunking_strategy=f.chunking_strategy,
            batch_id=None if made is None else made.id,
            key_hash=key_hash,
        )
        for f in files
    ]
    touch(conn, store=store, at=at)
    return attached, made


def get_store_file(
    conn: Connection, *, user_id: str, vector_store_id: str, file_id: str
) -> VectorStoreFile:
    """A file in the user's store; ``NotFound`` for the store, then for the file."""
    get_vector_store(conn, user_id=user_id, vector_store_id=vector_store_id)
    row = conn.execute(
        select(vector_store_files).where(
            vector_store_files.c.vector_store_id == vector_store_id,
            vector_store_files.c.file_id == file_id,
        )
    ).first()
    if row is None:
        raise store_file_not_found(vector_store_id, file_id)
    return VectorStoreFile.from_row(row)


def list_store_files(
    conn: Connection,
    *,
    user_id: str,
    vector_store_id: str,
    page: ListQuery,
    status: str | None = None,
    batch_id: str | None = None,
) -> tuple[list[VectorStoreFile], bool]:
    """A page of the store's files (of one batch, with one status), by ``created_at``;
    the cursors are file ids."""
    get_vector_store(conn, user_id=user_id, vector_store_id=vector_store_id)
    table = vector_store_files
    where = table.c.vector_store_id == vector_store_id
    if batch_id is not None:
        get_file_batch(conn, user_id=user_id, vector_store_id=vector_store_id, batch_id=batch_id)
        where = where & (table.c.batch_id == batch_id)
    if status is not None:
        where = where & (table.c.status == status)
    sort, ident = table.c.created_at, table.c.file_id
    query = select(table).where(where)
    ascending = page.order == "asc"
    for name, cursor_id in (("after", page.after), ("before", page.before)):
        if cursor_id is None:
            continue
        cursor = conn.execute(select(sort).where(where, ident == cursor_id)).scalar_one_or_none()
        if cursor is None:
            raise cursor_not_found(name, cursor_id)
        if ascending == (name == "after"):
            query = query.where(or_(sort > cursor, and_(sort == cursor, ident > cursor_id)))
        else:
            query = query.where(or_(sort < cursor, and_(sort == cursor, ident < cursor_id)))
    if ascending == (page.before is None):
        query = query.order_by(sort.asc(), ident.asc())
    else:
        query = query.order_by(sort.desc(), ident.desc())
    rows = list(conn.execute(query.limit(page.limit + 1)))
    found = rows[: page.limit]
    if page.before is not None:
        found.reverse()
    return [VectorStoreFile.from_row(r) for r in found], len(rows) > page.limit


def update_file_attributes(
    conn: Connection,
    *,
    user_id: str,
    vector_store_id: str,
    file_id: str,
    attributes: Mapping[str, Any],
) -> VectorStoreFile:
    """Give a file in the store new attributes, on its row and on its chunks (what search
    filters look at)."""
    found = get_store_file(conn, user_id=user_id, vector_store_id=vector_store_id, file_id=file_id)
    found.attributes = dict(attributes)
    conn.execute(
        update(vector_store_files)
        .where(
            vector_store_files.c.vector_store_id == vector_store_id,
            vector_store_files.c.file_id == file_id,
        )
        .values(attributes=found.attributes)
    )
    index.set_file_attributes(
        conn, vector_store_id=vector_store_id, file_id=file_id, attributes=found.attributes
    )
    return found


def remove_file(conn: Connection, *, user_id: str, vector_store_id: str, file_id: str) -> None:
    """Take a file out of the store, with its chunks there; the file itself stays."""
    get_store_file(conn, user_id=user_id, vector_store_id=vector_store_id, file_id=file_id)
    conn.execute(
        delete(vector_store_files).where(
            vector_store_files.c.vector_store_id == vector_store_id,
            vector_store_files.c.file_id == file_id,
        )
    )
    index.delete_file_chunks(conn, file_id=file_id, vector_store_id=vector_store_id)


@dataclass(frozen=True, slots=True)
class Piece:
    """A chunk of a file's text in a store, where it lies in that text."""

    text: str
    start: int
    end: int


def file_pieces(
    conn: Connection, *, user_id: str, vector_store_id: str, file_id: str
) -> list[Piece]:
    """The chunks of a file in the store, in order."""
    get_store_file(conn, user_id=user_id, vector_store_id=vector_store_id, file_id=file_id)
    rows = conn.execute(
        select(chunks.c.text, chunks.c.char_start, chunks.c.char_end)
        .where(
            chunks.c.vector_store_id == vector_store_id,
            chunks.c.file_id == file_id,
            chunks.c.user_id == user_id,
        )
        .order_by(chunks.c.seq)
    )
    return [Piece(r.text, r.char_start, r.char_end) for r in rows]


def get_file_batch(
    conn: Connection, *, user_id: str, vector_store_id: str, batch_id: str
) -> FileBatch:
    get_vector_store(conn, user_id=user_id, vector_store_id=vector_store_id)
    row = conn.execute(
        select(vector_store_file_batches).where(
            vector_store_file_batches.c.id == batch_id,
            vector_store_file_batches.c.vector_store_id == vector_store_id,
            vector_store_file_batches.c.user_id == user_id,
        )
    ).first()
    if row is None:
        raise batch_not_found(batch_id)
    return FileBatch.from_row(row)


def cancel_file_batch(
    conn: Connection, *, user_id: str, vector_store_id: str, batch_id: str
) -> FileBatch:
    """Cancel the batch: its files still ``in_progress`` become ``cancelled`` (and have no
    chunks in the store); those already indexed stay as they are."""
    batch = get_file_batch(
        conn, user_id=user_id, vector_store_id=vector_store_id, batch_id=batch_id
    )
    waiting = (
        (vector_store_files.c.vector_store_id == vector_store_id)
        & (vector_store_files.c.batch_id == batch_id)
        & (vector_store_files.c.status == "in_progress")
    )
    cancelled = list(conn.execute(select(vector_store_files.c.file_id).where(waiting)).scalars())
    if cancelled:
        conn.execute(
            update(vector_store_files)
            .where(waiting)
            .values(status="cancelled", lease_owner=None, lease_until=None)
        )
    for file_id in cancelled:
        index.delete_file_chunks(conn, file_id=file_id, vector_store_id=vector_store_id)
    conn.execute(
        update(vector_store_file_batches)
        .where(vector_store_file_batches.c.id == batch.id)
        .values(status="cancelled")
    )
    batch.status = "cancelled"
    return batch
