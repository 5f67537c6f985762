"""Backups of the database, safe while a server writes to it, and its schema revision.

SQLite: SQLite's online backup API copies the database file page by page under a read
transaction; in WAL mode (the server's) that blocks no writer, and the copy is the database
as of one moment. PostgreSQL: ``pg_dump --format=custom`` (restore with ``pg_restore``),
which dumps one snapshot too; it must be on ``PATH``, and its version at least the server's.

Either way the backup is written next to its target under a temporary name and renamed
when whole, so a failed backup leaves no half-written file; it is its owner's only (mode
0600), like the data it holds.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from contextlib import closing
from pathlib import Path

from sqlalchemy import make_url

from parley.errors import InvalidRequest, NotFound, ParleyError

#: How to name a backup's file while it is being written.
_PARTIAL = ".partial"


def sqlite_path(database_url: str) -> Path | None:
    """The file of a SQLite database URL; None for another database (or ``:memory:``)."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database).expanduser()


def backup(database_url: str, target: Path) -> None:
    """Back up the database of ``database_url`` (a normalised URL) to the file ``target``,
    which must not exist yet."""
    if target.exists():
        raise InvalidRequest(f"{target} exists already; remove it or choose another name.")
    if not target.parent.is_dir():
        raise InvalidRequest(f"No directory {target.parent} to write the backup in.")
    partial = target.with_name(target.name + _PARTIAL)
    partial.unlink(missing_ok=True)
    source = sqlite_path(database_url)
    try:
        if source is not None:
            _backup_sqlite(source, partial)
        elif make_url(database_url).get_backend_name() == "postgresql":
            _pg_dump(database_url, partial)
        else:
            raise InvalidRequest("Only a SQLite file or a PostgreSQL database can be backed up.")
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)


def _backup_sqlite(source: Path, target: Path) -> None:
    if not source.is_file():
        raise NotFound(f"No SQLite database at {source}.")
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    # The source is opened read-only: a backup never creates or changes a database.
    with (
        closing(sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True)) as src,
        closing(sqlite3.connect(target)) as dst,
    ):
        src.backup(dst)  # all pages in one step: one consistent snapshot


def _pg_dump(database_url: str, target: Path) -> None:
    program = shutil.which("pg_dump")
    if program is None:
        raise ParleyError(
            "Backing up a PostgreSQL database needs pg_dump on PATH (the PostgreSQL client "
            "tools, of the server's major version or newer)."
        )
    url = make_url(database_url).set(drivername="postgresql")
    env = dict(os.environ)
    if url.password is not None:  # not on the command line, where `ps` shows it
        env["PGPASSWORD"] = str(url.password)
        url = url.set(password=None)
    command = [
        program,
        "--format=custom",
        "--file",
        str(target),
        "--dbname",
        url.render_as_string(),
    ]
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    result = subprocess.run(command, env=env, stdin=subprocess.DEVNULL, check=False)
    if result.returncode != 0:  # pg_dump said why on stderr, which is the user's
        raise ParleyError(f"pg_dump failed (exit status {result.returncode}).")
