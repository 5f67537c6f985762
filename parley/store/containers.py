"""Containers of the ``code_interpreter`` tool and their files: rows, and where their bytes are.

A container belongs to one user: another user's is not found. It is ``running`` until
``expires_after_minutes`` pass without use (its ``last_active_at`` moves on with every use:
``touch_container``); from then on it reads ``expired``, and the sweep (``take_expired``)
writes that status and deletes its files' rows, handing their bytes' keys to the caller
(``parley.files.containers_sweep``). An expired container takes no more files and never
runs again; a deleted one is removed with its files.

A container's files live at absolute paths under ``/mnt/data`` (``MOUNT``), one file per
path: a file added at a path already taken replaces the one there (a new id; the old bytes'
key is handed back to be deleted). Their bytes are stored as the Files API's are
(``parley.files.storage``), under keys of their own: copying a file into a container copies
its bytes, so deleting either never touches the other.

The routes of ``/v1/containers`` (``parley.server.faces.containers``) and the engine's
``code_interpreter`` tool read and change containers here.
"""

from __future__ import annotations

import math
import posixpath
import secrets
from collections.abc import Sequence
from typing import Protocol

from sqlalchemy import ColumnElement, Table, delete, func, insert, select, update
from sqlalchemy.engine import Connection

from parley.errors import InvalidRequest, NotFound
from parley.store import db
from parley.store.files import StoredBytes
from parley.store.pagination import ListQuery, fetch_page
from parley.store.records import Container, ContainerFile
from parley.store.tables import container_files, containers, users

#: Where a container's files are, as its Python sees them.
MOUNT = "/mnt/data"
#: The memory limits a container may have (OpenAI's).
MEMORY_LIMITS = ("1g", "4g", "16g", "64g")
#: The longest path a container file may have.
MAX_PATH = 1024
#: Containers expired per sweep batch.
SWEEP_BATCH = 100


class NewBytes(Protocol):
    """Bytes stored whole for a container file: where (``kind``, ``key``), how many, and
    their SHA-256 (as ``parley.files.storage.Stored`` tells them)."""

    @property
    def kind(self) -> str: ...
    @property
    def key(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def sha256(self) -> str: ...


def container_id() -> str:
    """A new container id: ``cntr_`` and 48 hex digits, like OpenAI's."""
    return "cntr_" + secrets.token_hex(24)


def container_file_id() -> str:
    """A new container file id: ``cfile_`` and 48 hex digits."""
    return "cfile_" + secrets.token_hex(24)


def container_not_found(found_id: str) -> NotFound:
    return NotFound(
        f"No such container: {found_id}.", code="container_not_found", param="container_id"
    )


def container_file_not_found(found_id: str, file_id: str) -> NotFound:
    return NotFound(
        f"No file with id {file_id!r} in container {found_id!r}.",
        code="container_file_not_found",
        param="file_id",
    )


def container_expired(found_id: str) -> InvalidRequest:
    return InvalidRequest(
        f"Container {found_id} has expired: its files are gone and it runs no more code. "
        "Make a new one.",
        code="container_expired",
        param="container_id",
    )


def _due(at: float) -> ColumnElement[bool]:
    """The containers whose time without use has run out at ``at``."""
    return containers.c.last_active_at + containers.c.expires_after_minutes * 60 <= at


def _read(row: object, at: float) -> Container:
    """A container as its row has it; ``expired`` once its time has run out (the sweep
    writes that status later)."""
    found = Container.from_row(row)
    if found.status == "running" and found.expires_at <= at:
        found.status = "expired"
    return found


def _lock(conn: Connection, table: Table, row_id: str) -> None:
    """On PostgreSQL, hold a row until the commit (SQLite writes one at a time)."""
    if conn.dialect.name == "postgresql":
        conn.execute(select(table.c.id).where(table.c.id == row_id).with_for_update())


# ----------------------------------------------------------------------------- containers


def create_container(
    conn: Connection,
    *,
    user_id: str,
    name: str,
    memory_limit: str,
    expires_after_minutes: int,
    origin: str = "api",
    thread_id: str | None = None,
    key_hash: str | None = None,
    most: int,
    now: float | None = None,
) -> Container:
    """A new ``running`` container; refused (400 ``too_many_containers``) when the user has
    ``most`` running already (0: no cap)."""
    at = db.now() if now is None else now
    _lock(conn, users, user_id)  # two made at once are counted one after the other
    check_room(conn, user_id=user_id, most=most, now=at)
    row = Container(
        id=container_id(),
        user_id=user_id,
        name=name,
        status="running",
        memory_limit=memory_limit,
        expires_after_minutes=expires_after_minutes,
        created_at=at,
        last_active_at=at,
        origin=origin,
        thread_id=thread_id,
        home=None,
        key_hash=key_hash,
    )
    conn.execute(insert(containers).values(**row.values()))
    return row


def check_room(conn: Connection, *, user_id: str, most: int, now: float | None = None) -> None:
    """Raise the 400 ``too_many_containers`` when the user has ``most`` running containers
    (0: no cap), naming the setting and how soon one of them expires."""
    if most <= 0:
        return
    at = db.now() if now is None else now
    running, soonest = conn.execute(
        select(
            func.count(),
            func.min(containers.c.last_active_at + containers.c.expires_after_minutes * 60),
        )
        .select_from(containers)
        .where(containers.c.user_id == user_id, containers.c.status == "running", ~_due(at))
    ).one()
    if running >= most:
        left = max(float(soonest) - at, 0.0) if soonest is not None else 0.0
        raise InvalidRequest(
            f"You have {running} running container{'' if running == 1 else 's'}, the most this "
            f"server allows per user ({most}: PARLEY_CODE_INTERPRETER_MAX_CONTAINERS, or "
            "max_containers in the config file's [code_interpreter] table). Delete one, or "
            f"wait for one to expire: the soonest frees in {_time_left(left)}.",
            code="too_many_containers",
        )


def _time_left(seconds: float) -> str:
    """``under a minute``, ``1 minute``, ``12 minutes``: a wait as people say it, the
    minutes rounded up."""
    if seconds < 60:
        return "under a minute"
    minutes = math.ceil(seconds / 60)
    return f"{minutes} minute{'' if minutes == 1 else 's'}"


def get_container(conn: Connection, *, user_id: str, container_id: str) -> Container:
    """The user's container (expired or not); ``NotFound`` for another user's or none."""
    row = conn.execute(
        select(containers).where(containers.c.id == container_id, containers.c.user_id == user_id)
    ).first()
    if row is None:
        raise container_not_found(container_id)
    return _read(row, db.now())


def running_container(conn: Connection, *, user_id: str, container_id: str) -> Container:
    """The user's container, made active now; a 400 once it has expired."""
    found = get_container(conn, user_id=user_id, container_id=container_id)
    if found.status != "running":
        raise container_expired(found.id)
    at = db.now()
    touch_container(conn, container_id=found.id, now=at)
    found.last_active_at = at
    return found


def list_containers(
    conn: Connection, *, user_id: str, page: ListQuery, name: str | None = None
) -> tuple[list[Container], bool]:
    """A page of the user's containers (of this name), by ``created_at``."""
    where = containers.c.user_id == user_id
    if name is not None:
        where = where & (containers.c.name == name)
    rows, more = fetch_page(conn, containers, where=where, sort_column="created_at", page=page)
    at = db.now()
    return [_read(r, at) for r in rows], more


def delete_container(conn: Connection, *, user_id: str, container_id: str) -> list[StoredBytes]:
    """Delete the container and its files' rows; returns where their bytes are, for the
    caller to delete."""
    found = get_container(conn, user_id=user_id, container_id=container_id)
    _lock(conn, containers, found.id)
    gone = _drop_files(conn, found.id)
    conn.execute(delete(containers).where(containers.c.id == found.id))
    return gone


def touch_container(conn: Connection, *, container_id: str, now: float | None = None) -> None:
    """The container was used at ``now``: its ``last_active_at`` moves on (an expired one
    stays expired)."""
    at = db.now() if now is None else now
    conn.execute(
        update(containers)
        .where(containers.c.id == container_id, containers.c.status == "running", ~_due(at))
        .values(last_active_at=at)
    )


def claim_home(conn: Connection, *, container_id: str, node: str) -> str | None:
    """Make ``node`` the server node that runs the container's Python; returns the node
    that did before (None: none did, or the container is gone)."""
    _lock(conn, containers, container_id)
    before = conn.execute(
        select(containers.c.home).where(containers.c.id == container_id)
    ).scalar_one_or_none()
    conn.execute(update(containers).where(containers.c.id == container_id).values(home=node))
    return before


def container_states(
    conn: Connection, *, container_ids: list[str]
) -> dict[str, tuple[str, str | None]]:
    """The status (``expired`` once due, as ``_read`` says) and home of each of
    ``container_ids`` still in the database."""
    if not container_ids:
        return {}
    at = db.now()
    rows = conn.execute(select(containers).where(containers.c.id.in_(container_ids)))
    return {found.id: (found.status, found.home) for found in (_read(r, at) for r in rows)}


def thread_container(conn: Connection, *, user_id: str, thread_id: str) -> Container | None:
    """The newest running ``auto`` container that serves the thread, if any."""
    at = db.now()
    row = conn.execute(
        select(containers)
        .where(
            containers.c.thread_id == thread_id,
            containers.c.user_id == user_id,
            containers.c.origin == "auto",
            containers.c.status == "running",
            ~_due(at),
        )
        .order_by(containers.c.created_at.desc())
        .limit(1)
    ).first()
    return None if row is None else Container.from_row(row)


def take_expired(
    conn: Connection, *, now: float, limit: int = SWEEP_BATCH
) -> tuple[list[str], list[StoredBytes]]:
    """Mark at most ``limit`` running containers whose time without use has run out
    ``expired`` and delete their files' rows; returns their ids, and where the files' bytes
    are, for the caller to delete."""
    query = (
        select(containers.c.id)
        .where(
            containers.c.status == "running",
            containers.c.last_active_at <= now - 60,  # the index; a minute is the least
            _due(now),
        )
        .order_by(containers.c.last_active_at)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    ids = list(conn.execute(query).scalars())
    if not ids:
        return [], []
    conn.execute(
        update(containers).where(containers.c.id.in_(ids)).values(status="expired", home=None)
    )
    gone: list[StoredBytes] = []
    for found_id in ids:
        gone += _drop_files(conn, found_id)
    return ids, gone


def _drop_files(conn: Connection, found_id: str) -> list[StoredBytes]:
    rows = conn.execute(
        delete(container_files)
        .where(container_files.c.container_id == found_id)
        .returning(container_files.c.storage, container_files.c.storage_key)
    ).all()
    return [StoredBytes(r.storage, r.storage_key) for r in rows]


# ----------------------------------------------------------------------------- files


def check_path(path: str) -> str:
    """``path`` if it is a file's place in a container (``path_problem`` finds nothing
    wrong with it); else a 400."""
    if path_problem(path) is not None:
        raise InvalidRequest(
            f"Invalid container file path {path[:200]!r}: a path under {MOUNT}/ is needed, "
            "without '..', control characters or a trailing '/'.",
            code="invalid_path",
            param="path",
        )
    return path


def path_problem(path: str) -> str | None:
    """Why ``path`` cannot be a file's place in a container, said plainly; None when it
    can: absolute, under ``MOUNT``, already in its simplest form (no ``..``, ``.``, ``//``
    or trailing ``/``), valid UTF-8 (a name listed from a folder may hold bytes that are
    not: they come as lone surrogates), without NUL or other control characters, at most
    ``MAX_PATH`` characters."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return "its name is not valid UTF-8"
    if any(ord(c) < 32 or c == "\x7f" for c in path):
        return "a control character in its name"
    if len(path) > MAX_PATH:
        return f"its path is longer than {MAX_PATH} characters"
    simple = posixpath.normpath(path) if path.startswith("/") else ""
    if simple != path or not path.startswith(MOUNT + "/"):
        return f"not a plain path under {MOUNT}/"
    return None


def file_path(name: str) -> str:
    """The path of a file named ``name`` given by a client: ``/mnt/data/<name>``. A name
    with a ``/``, ``\\``, NUL or control character, or that is ``.`` or ``..``, is a 400."""
    if (
        not name
        or name in (".", "..")
        or "/" in name
        or "\\" in name
        or any(ord(c) < 32 or c == "\x7f" for c in name)
    ):
        raise InvalidRequest(
            f"Invalid file name {name[:200]!r} for a container: a plain name is needed "
            "(no directories, no control characters).",
            code="invalid_filename",
            param="file",
        )
    return check_path(f"{MOUNT}/{name}")


def _used_bytes(conn: Connection, found_id: str, besides: str) -> int:
    total = conn.execute(
        select(func.coalesce(func.sum(container_files.c.bytes), 0)).where(
            container_files.c.container_id == found_id, container_files.c.path != besides
        )
    ).scalar_one()
    return int(total)


def add_container_file(
    conn: Connection,
    *,
    user_id: str,
    container_id: str,
    path: str,
    source: str,
    stored: NewBytes,
    disk_bytes: int = 0,
) -> tuple[ContainerFile, StoredBytes | None]:
    """A file at ``path`` in the user's running container, for bytes already stored whole;
    it replaces the file at that path, if one is there. Returns the file, and where the
    replaced file's bytes are (for the caller to delete). A 400 for an expired container,
    and when the container's files would pass ``disk_bytes`` (0: no limit)."""
    check_path(path)
    found = get_container(conn, user_id=user_id, container_id=container_id)
    _lock(conn, containers, found.id)  # one change of a container's files at a time
    if found.status != "running":
        raise container_expired(found.id)
    if disk_bytes > 0:
        used = _used_bytes(conn, found.id, path)
        if used + stored.size > disk_bytes:
            raise InvalidRequest(
                f"This file of {stored.size} bytes would take container {found.id}'s files to "
                f"{used + stored.size} bytes, over its disk of {disk_bytes} bytes.",
                code="container_full",
                param="file",
            )
    at = db.now()
    replaced = conn.execute(
        delete(container_files)
        .where(container_files.c.container_id == found.id, container_files.c.path == path)
        .returning(container_files.c.storage, container_files.c.storage_key)
    ).first()
    row = ContainerFile(
        id=container_file_id(),
        container_id=found.id,
        user_id=user_id,
        path=path,
        source=source,
        bytes=stored.size,
        storage=stored.kind,
        storage_key=stored.key,
        sha256=stored.sha256,
        created_at=at,
        updated_at=at,
    )
    conn.execute(insert(container_files).values(**row.values()))
    touch_container(conn, container_id=found.id, now=at)
    old = None if replaced is None else StoredBytes(replaced.storage, replaced.storage_key)
    return row, old


def list_container_files(
    conn: Connection, *, user_id: str, container_id: str, page: ListQuery
) -> tuple[list[ContainerFile], bool]:
    """A page of the container's files, by ``created_at``; the container is used now. An
    expired container has none (the sweep deletes their rows later)."""
    found = get_container(conn, user_id=user_id, container_id=container_id)
    if found.status != "running":
        return [], False
    rows, more = fetch_page(
        conn,
        container_files,
        where=container_files.c.container_id == found.id,
        sort_column="created_at",
        page=page,
    )
    touch_container(conn, container_id=found.id)
    return [ContainerFile.from_row(r) for r in rows], more


def get_container_file(
    conn: Connection, *, user_id: str, container_id: str, file_id: str
) -> ContainerFile:
    """A file of the user's container; ``NotFound`` for the container, then for the file
    (every file of an expired container). The container is used now."""
    found = get_container(conn, user_id=user_id, container_id=container_id)
    if found.status != "running":
        raise container_file_not_found(found.id, file_id)
    row = conn.execute(
        select(container_files).where(
            container_files.c.id == file_id, container_files.c.container_id == found.id
        )
    ).first()
    if row is None:
        raise container_file_not_found(found.id, file_id)
    touch_container(conn, container_id=found.id)
    return ContainerFile.from_row(row)


def container_file_at(conn: Connection, *, container_id: str, path: str) -> ContainerFile | None:
    """The container's file at ``path``, if there is one."""
    row = conn.execute(
        select(container_files).where(
            container_files.c.container_id == container_id, container_files.c.path == path
        )
    ).first()
    return None if row is None else ContainerFile.from_row(row)


def all_container_files(conn: Connection, *, container_id: str) -> list[ContainerFile]:
    """Every file of the container, by path (what a sandbox is given)."""
    rows = conn.execute(
        select(container_files)
        .where(container_files.c.container_id == container_id)
        .order_by(container_files.c.path)
    )
    return [ContainerFile.from_row(r) for r in rows]


def delete_container_file(
    conn: Connection, *, user_id: str, container_id: str, file_id: str
) -> StoredBytes:
    """Delete a file of the user's container; returns where its bytes are, for the caller
    to delete."""
    found = get_container_file(conn, user_id=user_id, container_id=container_id, file_id=file_id)
    conn.execute(delete(container_files).where(container_files.c.id == found.id))
    return StoredBytes(found.storage, found.storage_key)


def container_keys(conn: Connection, *, keys: Sequence[str]) -> set[str]:
    """Those of ``keys`` that some container file's bytes are stored under."""
    if not keys:
        return set()
    rows = conn.execute(
        select(container_files.c.storage_key).where(container_files.c.storage_key.in_(list(keys)))
    )
    return set(rows.scalars())
