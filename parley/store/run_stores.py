"""The stores a run searches (its assistant's and its thread's own), and the files of
stores that search cannot find yet, which a run waits for (``engine.hosted.file_search``).
Also reached through ``parley.store.vector_stores``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, func, or_, select
from sqlalchemy.engine import Connection

from parley.store.db import now
from parley.store.tables import assistants, files, vector_store_files, vector_stores

__all__ = [
    "Unindexed",
    "UnindexedFile",
    "run_stores",
    "thread_stores",
    "unindexed_files",
]


def thread_stores(conn: Connection, *, user_id: str, thread_id: str) -> list[str]:
    """The ids of the thread's own stores (oldest first): made or named by a thread's
    ``tool_resources`` or its messages' attachments."""
    rows = conn.execute(
        select(vector_stores.c.id)
        .where(vector_stores.c.thread_id == thread_id, vector_stores.c.user_id == user_id)
        .order_by(vector_stores.c.created_at)
    )
    return [str(r) for r in rows.scalars()]


def run_stores(
    conn: Connection, *, user_id: str, assistant_id: str | None, thread_id: str
) -> tuple[list[str], list[str]]:
    """The stores a run's ``file_search`` searches when its entry names none, whatever
    face made the run: its assistant's (``tool_resources`` kept in the assistant's
    options) and its thread's own (``thread_stores``), those not expired; and the
    thread's own among them, whose files the run waits for
    (``engine.hosted.file_search.ready``)."""
    ids: list[str] = []
    if assistant_id is not None:
        options = conn.execute(
            select(assistants.c.options).where(
                assistants.c.id == assistant_id, assistants.c.user_id == user_id
            )
        ).scalar()
        search = ((options or {}).get("tool_resources") or {}).get("file_search") or {}
        ids += [str(i) for i in search.get("vector_store_ids") or ()]
    own = thread_stores(conn, user_id=user_id, thread_id=thread_id)
    wanted = list(dict.fromkeys([*ids, *own]))
    if not wanted:
        return [], []
    at = now()
    live = conn.execute(
        select(vector_stores.c.id).where(
            vector_stores.c.id.in_(wanted),
            vector_stores.c.user_id == user_id,
            or_(vector_stores.c.expires_at.is_(None), vector_stores.c.expires_at > at),
        )
    )
    kept = set(live.scalars())
    found = [i for i in wanted if i in kept]
    return found, [i for i in found if i in own]


@dataclass(frozen=True, slots=True)
class UnindexedFile:
    """A file of a store that search cannot find: not indexed yet (``in_progress``) or
    never to be (``failed``, its ``last_error`` saying why)."""

    vector_store_id: str
    file_id: str
    filename: str
    status: str
    last_error: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class Unindexed:
    """The files of some stores that search cannot find (``unindexed_files``): the first
    of them, and how many there are in all."""

    files: tuple[UnindexedFile, ...] = ()
    count: int = 0

    @property
    def indexing(self) -> bool:
        """Whether one of them is still being indexed (those come first)."""
        return any(f.status == "in_progress" for f in self.files)


def unindexed_files(
    conn: Connection, *, user_id: str, vector_store_ids: Sequence[str], most: int
) -> Unindexed:
    """The files of the user's stores ``vector_store_ids`` that are ``in_progress`` or
    ``failed``: the first ``most`` (at least one), those in progress first, then oldest
    first, and how many files there are in all (a run waits for the first kind and names
    both: ``engine.hosted.file_search.wait_for_files``). One query, unless there are
    ``most`` of them or more: then a count too."""
    if not vector_store_ids:
        return Unindexed()
    joined = vector_store_files.join(files, files.c.id == vector_store_files.c.file_id)
    where = (
        vector_store_files.c.vector_store_id.in_(list(vector_store_ids)),
        vector_store_files.c.user_id == user_id,
        vector_store_files.c.status.in_(("in_progress", "failed")),
        files.c.user_id == user_id,
    )
    indexing_first = case((vector_store_files.c.status == "in_progress", 0), else_=1)
    rows = conn.execute(
        select(
            vector_store_files.c.vector_store_id,
            vector_store_files.c.file_id,
            vector_store_files.c.status,
            vector_store_files.c.last_error,
            files.c.filename,
        )
        .select_from(joined)
        .where(*where)
        .order_by(indexing_first, vector_store_files.c.created_at, vector_store_files.c.file_id)
        .limit(max(most, 1))
    ).all()
    found = tuple(
        UnindexedFile(r.vector_store_id, r.file_id, r.filename, r.status, r.last_error)
        for r in rows
    )
    count = len({f.file_id for f in found})
    if len(rows) >= most:
        distinct = func.count(vector_store_files.c.file_id.distinct())
        count = int(conn.execute(select(distinct).select_from(joined).where(*where)).scalar_one())
    return Unindexed(found, count)
