"""The embedded set-up: one local admin user whose key is kept in the user data directory,
so ``make run`` (and later ``parley chat`` / ``parley web``) work with no configuration.

What Parley keeps in that directory is its owner's only: the directory is made with mode
0700, the key file and the default SQLite database (with its ``-wal``, ``-shm`` and
``-journal`` files) have mode 0600, and looser files from before are tightened."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import ArgumentError

from parley.config import data_dir, make_private, write_private
from parley.store import users as user_store
from parley.store.db import Database

LOCAL_USER = "local"
#: What SQLite keeps next to a database file; it gives each the database file's mode.
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


def key_file() -> Path:
    return data_dir() / "local-api-key"


def private_database(database_url: str) -> None:
    """Make a SQLite database in the data directory its owner's only, before a server opens
    it: the file made empty with mode 0600 when missing (SQLite then creates its side files
    with that mode too), the file and side files tightened when looser. Other databases are
    left as they are: where they live is the user's choice."""
    try:
        url = make_url(database_url)
    except ArgumentError:  # not a URL: the database layer says so
        return
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return
    path = Path(url.database).expanduser().resolve()
    if not path.is_relative_to(data_dir().resolve()):
        return
    make_private(path, create=True)
    for suffix in SQLITE_SIDE_FILES:
        make_private(path.with_name(path.name + suffix))


async def ensure_local_key(db: Database, path: Path | None = None) -> str:
    """The saved local key if it still works; otherwise a new admin user and key, saved."""
    path = path or key_file()
    if path.exists():
        make_private(path)
        saved = path.read_text().strip()
        owner = await db.write(user_store.authenticate, secret=saved)
        if saved and owner is not None:
            return saved

    def create(conn: Connection) -> str:
        user = user_store.create_user(conn, name=LOCAL_USER, is_admin=True)
        return user_store.create_api_key(conn, user_id=user.id)[1]

    secret = await db.write(create)
    write_private(path, secret + "\n")
    return secret
