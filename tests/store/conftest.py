"""Fixtures of the store's tests: a user in the fresh database (``db``, tests/conftest.py)."""

from __future__ import annotations

from parley.store import users
from parley.store.db import Database


async def new_user(db: Database, name: str = "u") -> str:
    """A new user's id."""
    return (await db.write(lambda c: users.create_user(c, name=name))).id
