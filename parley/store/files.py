"""Files and uploads: their rows, and the bytes kept in the database (``file_data``).

A file's row is written once its bytes are stored whole (``parley.files.storage``), so a
file that can be read always has all its bytes; bytes that no row names (an upload cut off
by a crash) are swept once old (``orphan_keys``). Another user's file or upload is not
found, as is a file past its ``expires_at`` (the sweep deletes it later).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import ColumnElement, bindparam, delete, func, insert, or_, select, text, update
from sqlalchemy.engine import Connection

from parley.errors import InvalidRequest, NotFound
from parley.store.db import new_id, now
from parley.store.pagination import ListQuery, fetch_page
from parley.store.records import StoredFile, Upload, UploadPart
from parley.store.tables import (
    FIRST_PIECE_SQL,
    container_files,
    file_data,
    files,
    upload_parts,
    uploads,
    users,
)

#: Seconds an upload stays open for parts (OpenAI's hour).
UPLOAD_SECONDS = 3600
#: Rows deleted per sweep batch.
SWEEP_BATCH = 100


@dataclass(frozen=True, slots=True)
class StoredBytes:
    """Where some bytes live: ``storage`` (``local`` or ``database``) and the key there."""

    storage: str
    key: str


def file_id() -> str:
    """A new file id: ``file-`` and 24 random letters and digits, like OpenAI's."""
    return "file-" + secrets.token_urlsafe(18).replace("-", "x").replace("_", "y")


def _live(at: float) -> ColumnElement[bool]:
    return or_(files.c.expires_at.is_(None), files.c.expires_at > at)


def file_not_found(file_id: str) -> NotFound:
    return NotFound(f"No such File object: {file_id}.", code="file_not_found", param="file_id")


def upload_not_found(upload_id: str) -> NotFound:
    return NotFound(f"No such Upload: {upload_id}.", code="upload_not_found", param="upload_id")


# ----------------------------------------------------------------------------- quota


def used_bytes(conn: Connection, *, user_id: str, at: float | None = None) -> int:
    """Bytes of the user's files not yet expired."""
    at = now() if at is None else at
    total = conn.execute(
        select(func.coalesce(func.sum(files.c.bytes), 0)).where(
            files.c.user_id == user_id, _live(at)
        )
    ).scalar_one()
    return int(total)


def check_quota(conn: Connection, *, user_id: str, adding: int, quota: int) -> None:
    """Raise the 400 ``quota_exceeded`` when ``adding`` bytes more would take the user's
    files past ``quota`` (0: no quota)."""
    if quota <= 0:
        return
    used = used_bytes(conn, user_id=user_id)
    if used + adding > quota:
        raise InvalidRequest(
            f"This file of {adding} bytes would take your files to {used + adding} bytes, "
            f"over your quota of {quota} bytes: delete files first.",
            code="quota_exceeded",
            param="file",
        )


def _lock_user(conn: Connection, user_id: str) -> None:
    """On PostgreSQL, hold the user's row until the commit, so that two files written at
    once are counted against the quota one after the other (SQLite writes one at a time)."""
    if conn.dialect.name == "postgresql":
        conn.execute(select(users.c.id).where(users.c.id == user_id).with_for_update())


# ----------------------------------------------------------------------------- files


def create_file(
    conn: Connection,
    *,
    user_id: str,
    filename: str,
    purpose: str,
    size: int,
    sha256: str,
    mime_type: str | None,
    stored: StoredBytes,
    expires_after: int | None,
    quota: int,
) -> StoredFile:
    """The file's row, for bytes already stored whole; the quota is checked again here."""
    _lock_user(conn, user_id)
    check_quota(conn, user_id=user_id, adding=size, quota=quota)
    return _insert_file(
        conn,
        user_id=user_id,
        filename=filename,
        purpose=purpose,
        size=size,
        sha256=sha256,
        mime_type=mime_type,
        stored=stored,
        expires_after=expires_after,
    )


def _insert_file(
    conn: Connection,
    *,
    user_id: str,
    filename: str,
    purpose: str,
    size: int,
    sha256: str,
    mime_type: str | None,
    stored: StoredBytes,
    expires_after: int | None,
) -> StoredFile:
    created = now()
    row = StoredFile(
        id=file_id(),
        user_id=user_id,
        filename=filename,
        purpose=purpose,
        bytes=size,
        created_at=created,
        expires_at=None if expires_after is None else created + expires_after,
        sha256=sha256,
        mime_type=mime_type,
        storage=stored.storage,
        storage_key=stored.key,
    )
    conn.execute(insert(files).values(**row.values()))
    return row


_GET_FILE = select(files).where(
    files.c.id == bindparam("id"),
    files.c.user_id == bindparam("user_id"),
    or_(files.c.expires_at.is_(None), files.c.expires_at > bindparam("at")),
)


def get_file(conn: Connection, *, user_id: str, file_id: str) -> StoredFile:
    row = conn.execute(_GET_FILE, {"id": file_id, "user_id": user_id, "at": now()}).first()
    if row is None:
        raise file_not_found(file_id)
    return StoredFile.from_row(row)


def list_files(
    conn: Connection, *, user_id: str, page: ListQuery, purpose: str | None = None
) -> tuple[list[StoredFile], bool]:
    where = (files.c.user_id == user_id) & _live(now())
    if purpose is not None:
        where = where & (files.c.purpose == purpose)
    rows, more = fetch_page(conn, files, where=where, sort_column="created_at", page=page)
    return [StoredFile.from_row(r) for r in rows], more


def delete_file(conn: Connection, *, user_id: str, file_id: str) -> StoredBytes:
    """Delete the file's row; returns where its bytes are, for the caller to delete."""
    found = get_file(conn, user_id=user_id, file_id=file_id)
    conn.execute(delete(files).where(files.c.id == found.id))
    return StoredBytes(found.storage, found.storage_key)


def take_expired_files(
    conn: Connection, *, at: float, limit: int = SWEEP_BATCH
) -> list[StoredBytes]:
    """Delete the rows of at most ``limit`` files past their ``expires_at``; returns where
    their bytes are, for the caller to delete."""
    query = (
        select(files.c.id, files.c.storage, files.c.storage_key)
        .where(files.c.expires_at.is_not(None), files.c.expires_at <= at)
        .order_by(files.c.expires_at)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    found = conn.execute(query).all()
    if not found:
        return []
    conn.execute(delete(files).where(files.c.id.in_([r.id for r in found])))
    return [StoredBytes(r.storage, r.storage_key) for r in found]


# ----------------------------------------------------------------------------- uploads


def create_upload(
    conn: Connection,
    *,
    user_id: str,
    filename: str,
    purpose: str,
    size: int,
    mime_type: str,
    file_expires_after: int | None,
    quota: int,
) -> Upload:
    check_quota(conn, user_id=user_id, adding=size, quota=quota)
    created = now()
    row = Upload(
        id=new_id("upload"),
        user_id=user_id,
        filename=filename,
        purpose=purpose,
        bytes=size,
        mime_type=mime_type,
        status="pending",
        created_at=created,
        expires_at=created + UPLOAD_SECONDS,
        file_expires_after=file_expires_after,
        file_id=None,
    )
    conn.execute(insert(uploads).values(**row.values()))
    return row


def get_upload(conn: Connection, *, user_id: str, upload_id: str) -> Upload:
    row = conn.execute(
        select(uploads).where(uploads.c.id == upload_id, uploads.c.user_id == user_id)
    ).first()
    if row is None:
        raise upload_not_found(upload_id)
    upload = Upload.from_row(row)
    if upload.status == "pending" and upload.expires_at <= now():
        upload.status = "expired"  # the sweep writes it later
    return upload


def get_upload_file(conn: Connection, *, upload: Upload) -> StoredFile | None:
    """The file a completed upload made, while it is there."""
    if upload.file_id is None:
        return None
    row = conn.execute(_GET_FILE, {"id": upload.file_id, "user_id": upload.user_id, "at": now()})
    found = row.first()
    return None if found is None else StoredFile.from_row(found)


def _pending(upload: Upload) -> None:
    if upload.status != "pending":
        raise InvalidRequest(
            f"Upload {upload.id} is {upload.status}: it takes no more parts.",
            code="upload_not_pending",
            param="upload_id",
        )


def add_part(
    conn: Connection, *, user_id: str, upload_id: str, size: int, stored: StoredBytes
) -> UploadPart:
    """A part of a pending upload, for bytes already stored; refused when the parts would
    add up to more than the upload's declared size."""
    upload = get_upload(conn, user_id=user_id, upload_id=upload_id)
    _pending(upload)
    have = conn.execute(
        select(func.coalesce(func.sum(upload_parts.c.bytes), 0)).where(
            upload_parts.c.upload_id == upload_id
        )
    ).scalar_one()
    if int(have) + size > upload.bytes:
        raise InvalidRequest(
            f"This part of {size} bytes would take upload {upload_id} to {int(have) + size} "
            f"bytes, more than the {upload.bytes} it was created with.",
            code="upload_too_large",
            param="data",
        )
    part = UploadPart(
        id=new_id("part"),
        upload_id=upload_id,
        created_at=now(),
        bytes=size,
        storage=stored.storage,
        storage_key=stored.key,
    )
    conn.execute(insert(upload_parts).values(**part.values()))
    return part


def parts_to_complete(
    conn: Connection, *, user_id: str, upload_id: str, part_ids: list[str]
) -> tuple[Upload, list[UploadPart]]:
    """The pending upload and its parts in the order ``part_ids`` gives, which must name
    each part once and add up to the declared size."""
    upload = get_upload(conn, user_id=user_id, upload_id=upload_id)
    _pending(upload)
    rows = conn.execute(select(upload_parts).where(upload_parts.c.upload_id == upload_id))
    parts = {p.id: p for p in (UploadPart.from_row(r) for r in rows)}
    if len(set(part_ids)) != len(part_ids):
        raise InvalidRequest(
            "Invalid 'part_ids': a part is named twice.", code="invalid_value", param="part_ids"
        )
    for part_id in part_ids:
        if part_id not in parts:
            raise InvalidRequest(
                f"Invalid 'part_ids': {part_id!r} is not a part of upload {upload_id}.",
                code="invalid_value",
                param="part_ids",
            )
    ordered = [parts[p] for p in part_ids]
    total = sum(p.bytes for p in ordered)
    if total != upload.bytes:
        raise InvalidRequest(
            f"The parts named add up to {total} bytes, not the {upload.bytes} upload "
            f"{upload_id} was created with.",
            code="upload_size_mismatch",
            param="part_ids",
        )
    return upload, ordered


def complete_upload(
    conn: Connection,
    *,
    user_id: str,
    upload_id: str,
    sha256: str,
    stored: StoredBytes,
    quota: int,
) -> tuple[Upload, StoredFile, list[StoredBytes]]:
    """Make the file of a pending upload whose bytes are stored whole, and end the upload
    ``completed``; returns it, the file, and where its parts' bytes are, for the caller to
    delete. Refused (400) when the upload is no longer pending."""
    _lock_user(conn, user_id)
    upload = get_upload(conn, user_id=user_id, upload_id=upload_id)
    _pending(upload)
    check_quota(conn, user_id=user_id, adding=upload.bytes, quota=quota)
    made = _insert_file(
        conn,
        user_id=user_id,
        filename=upload.filename,
        purpose=upload.purpose,
        size=upload.bytes,
        sha256=sha256,
        mime_type=upload.mime_type,
        stored=stored,
        expires_after=upload.file_expires_after,
    )
    changed = conn.execute(
        update(uploads)
        .where(uploads.c.id == upload_id, uploads.c.status == "pending")
        .values(status="completed", file_id=made.id)
    ).rowcount
    if changed != 1:
        raise InvalidRequest(f"Upload {upload_id} is no longer pending.", code="upload_not_pending")
    upload.status, upload.file_id = "completed", made.id
    return upload, made, _drop_parts(conn, upload_id)


def cancel_upload(
    conn: Connection, *, user_id: str, upload_id: str
) -> tuple[Upload, list[StoredBytes]]:
    """End a pending upload ``cancelled``; returns it and where its parts' bytes are."""
    upload = get_upload(conn, user_id=user_id, upload_id=upload_id)
    _pending(upload)
    conn.execute(
        update(uploads)
        .where(uploads.c.id == upload_id, uploads.c.status == "pending")
        .values(status="cancelled")
    )
    upload.status = "cancelled"
    return upload, _drop_parts(conn, upload_id)


def _drop_parts(conn: Connection, upload_id: str) -> list[StoredBytes]:
    rows = conn.execute(
        delete(upload_parts)
        .where(upload_parts.c.upload_id == upload_id)
        .returning(upload_parts.c.storage, upload_parts.c.storage_key)
    ).all()
    return [StoredBytes(r.storage, r.storage_key) for r in rows]


def expire_uploads(conn: Connection, *, at: float, limit: int = SWEEP_BATCH) -> list[StoredBytes]:
    """End at most ``limit`` pending uploads past their ``expires_at`` ``expired``; returns
    where their parts' bytes are, for the caller to delete."""
    query = (
        select(uploads.c.id)
        .where(uploads.c.status == "pending", uploads.c.expires_at <= at)
        .order_by(uploads.c.expires_at)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    ids = list(conn.execute(query).scalars())
    if not ids:
        return []
    conn.execute(
        update(uploads)
        .where(uploads.c.id.in_(ids), uploads.c.status == "pending")
        .values(status="expired")
    )
    found: list[StoredBytes] = []
    for upload_id in ids:
        found += _drop_parts(conn, upload_id)
    return found


# ------------------------------------------------------------------ bytes in the database


def put_piece(conn: Connection, *, key: str, seq: int, data: bytes) -> None:
    conn.execute(insert(file_data).values(key=key, seq=seq, data=data, created_at=now()))


_READ_PIECE = select(file_data.c.data).where(
    file_data.c.key == bindparam("key"), file_data.c.seq == bindparam("seq")
)


def read_piece(conn: Connection, *, key: str, seq: int) -> bytes | None:
    """Piece ``seq`` of the bytes under ``key`` (None past the last)."""
    data = conn.execute(_READ_PIECE, {"key": key, "seq": seq}).scalar_one_or_none()
    return None if data is None else bytes(data)


def delete_pieces(conn: Connection, *, keys: list[str]) -> int:
    if not keys:
        return 0
    return int(conn.execute(delete(file_data).where(file_data.c.key.in_(keys))).rowcount)


def orphan_keys(conn: Connection, *, before: float, limit: int = SWEEP_BATCH) -> list[str]:
    """Keys of bytes in the database written before ``before`` that no file, part or
    container file names (a write cut off by a crash, or one whose row was never made)."""
    named_by_file = select(files.c.id).where(files.c.storage_key == file_data.c.key)
    named_by_part = select(upload_parts.c.id).where(upload_parts.c.storage_key == file_data.c.key)
    named_by_container = select(container_files.c.id).where(
        container_files.c.storage_key == file_data.c.key
    )
    query = (
        select(file_data.c.key)
        .where(
            text(FIRST_PIECE_SQL),  # the condition of the index of first pieces, word for word
            file_data.c.created_at < before,
            ~named_by_file.exists(),
            ~named_by_part.exists(),
            ~named_by_container.exists(),
        )
        .limit(limit)
    )
    return list(conn.execute(query).scalars())
