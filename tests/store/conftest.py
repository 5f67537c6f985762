"""Fixtures of the store's tests: a fresh, migrated database (SQLite, or PostgreSQL when
``PARLEY_TEST_DATABASE_URL`` is set), and a user in it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from parley.store import users
from parley.store.db import Database
from tests.harness import FreshDatabase


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    fresh = FreshDatabase(tmp_path)
    database = Database(fresh.url)
    try:
        await database.migrate()
        yield database
    finally:
        await database.dispose()
        fresh.drop()


async def new_user(db: Database, name: str = "u") -> str:
    """A new user's id."""
    return (await db.write(lambda c: users.create_user(c, name=name))).id
