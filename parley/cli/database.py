"""The database of the commands that work on it directly (``parley users``, ``keys``,
``usage``): the server's own, from the same settings, migrated first."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from parley.config import Settings

T = TypeVar("T")


def on_database(
    settings: Settings, work: Callable[[Connection], T], *, read_only: bool = False
) -> T:
    """Run ``work`` in one transaction on the settings' database, migrated first (a
    ``read_only`` one takes no write lock)."""
    from parley.store.db import Database
    from parley.store.local import private_database

    async def go() -> T:
        private_database(settings.database_url)
        db = Database(settings.database_url)
        try:
            await db.migrate()
            return await (db.read(work) if read_only else db.write(work))
        finally:
            await db.dispose()

    return asyncio.run(go())
