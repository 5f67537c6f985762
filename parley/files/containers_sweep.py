"""The sweep of containers: running containers whose time without use has run out end
``expired``, and their files' rows and bytes are deleted (``store.containers.take_expired``).

``sweep_containers(db, storages)`` does one whole round, in short transactions; the files
sweep (``parley.files.sweep.sweep_files``, which a server's upkeep and ``parley db prune``
call) calls it. Reads show such a container ``expired`` meanwhile, and it takes no more
files, so the sweep's pace only decides when the bytes are freed.
"""

from __future__ import annotations

from parley.files.storage import Storages
from parley.store import containers as store
from parley.store.db import Database, now


async def sweep_containers(db: Database, storages: Storages, *, at: float | None = None) -> int:
    """Expire the containers past their time; returns how many."""
    at = now() if at is None else at
    count = 0
    while True:
        ids, gone = await db.write_later(store.take_expired, now=at)
        if not ids:
            return count
        await storages.delete(gone)
        count += len(ids)
