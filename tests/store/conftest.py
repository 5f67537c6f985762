"""Fixtures of the store's tests: a user in the fresh database (``db``, tests/conftest.py)."""

from __future__ import annotations

from sqlalchemy.engine import Connection

from parley.store import runs, users
from parley.store.db import Database
from parley.store.records import Run


async def new_user(db: Database, name: str = "u") -> str:
    """A new user's id."""
    return (await db.write(lambda c: users.create_user(c, name=name))).id


def new_run(conn: Connection, user_id: str, thread_id: str, status: str = "in_progress") -> Run:
    """A run of the demo model on the thread, without tools, in ``status``."""
    return runs.create_run(
        conn,
        user_id=user_id,
        thread_id=thread_id,
        assistant_id=None,
        model="demo/x",
        instructions=None,
        tools=[],
        parameters={},
        status=status,
    )
