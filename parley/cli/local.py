"""The embedded set-up: one local admin user whose key is kept in the user data directory,
so ``make run`` (and later ``parley chat`` / ``parley web``) work with no configuration."""

from __future__ import annotations

import functools
from pathlib import Path

from sqlalchemy.engine import Connection

from parley.config import data_dir, write_private
from parley.store import users as user_store
from parley.store.db import Database

LOCAL_USER = "local"


def key_file() -> Path:
    return data_dir() / "local-api-key"


async def ensure_local_key(db: Database, path: Path | None = None) -> str:
    """The saved local key if it still works; otherwise a new admin user and key, saved."""
    path = path or key_file()
    if path.exists():
        saved = path.read_text().strip()
        owner = await db.write(functools.partial(user_store.authenticate, secret=saved))
        if saved and owner is not None:
            return saved

    def create(conn: Connection) -> str:
        user = user_store.create_user(conn, name=LOCAL_USER, is_admin=True)
        return user_store.create_api_key(conn, user_id=user.id)[1]

    secret = await db.write(create)
    write_private(path, secret + "\n")
    return secret
