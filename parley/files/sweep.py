"""The sweep of files and uploads: files past their ``expires_at`` are deleted (rows and
bytes, and their chunks in every vector store), pending uploads past theirs end ``expired``
(their parts' bytes deleted), bytes no row names (a write a crash cut off) are deleted once
a day old, vector stores past their ``expires_at`` lose their chunks (the store and its
files' rows stay, the store shown ``expired``), and containers unused for their
``expires_after`` end ``expired``, their files deleted (``parley.files.containers_sweep``).

``sweep_files(db, storages)`` does one whole round, in short transactions; a server (its
upkeep) or ``parley db prune`` calls it. Reads never show an expired file meanwhile
(``parley.store.files``), so the sweep's pace only decides when the bytes are freed.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from sqlalchemy.engine import Connection

from parley.files.containers_sweep import sweep_containers
from parley.files.storage import Storages
from parley.store import files as store
from parley.store.db import Database, now
from parley.store.ingestion import delete_expired_chunks

#: Seconds before bytes no row names are taken for the leftovers of a failed write (a
#: write still going is younger).
ORPHAN_SECONDS = 24 * 3600


@dataclass(frozen=True, slots=True)
class Swept:
    """What one sweep removed."""

    files: int = 0
    uploads_parts: int = 0
    orphans: int = 0
    #: Expired vector stores whose chunks were deleted.
    stores: int = 0
    #: Containers that expired (their files deleted).
    containers: int = 0


async def sweep_files(db: Database, storages: Storages, *, at: float | None = None) -> Swept:
    """Delete expired files, expire pending uploads past their time, delete bytes left
    by failed writes, the chunks of expired vector stores, and expire the containers past
    their time."""
    at = now() if at is None else at
    files = parts = orphans = stores = 0
    while found := await db.write_later(store.take_expired_files, at=at):
        await storages.delete(found)
        files += len(found)
    while found := await db.write_later(store.expire_uploads, at=at):
        await storages.delete(found)
        parts += len(found)
    while count := await db.write_later(_delete_orphans, before=at - ORPHAN_SECONDS):
        orphans += count
    orphans += await asyncio.to_thread(storages.local.sweep_partial, older_than=ORPHAN_SECONDS)
    if storages.s3 is not None:
        orphans += await storages.s3.sweep_orphans(db, before=at - ORPHAN_SECONDS)
    while count := await db.write_later(delete_expired_chunks, at=at):
        stores += count
    containers = await sweep_containers(db, storages, at=at)
    return Swept(files, parts, orphans, stores, containers)


def _delete_orphans(conn: Connection, *, before: float) -> int:
    keys = store.orphan_keys(conn, before=before)
    store.delete_pieces(conn, keys=keys)
    return len(keys)
