"""``parley db``: ``upgrade``, ``current``, ``backup`` and ``prune``, against the same
database as the server (``--database-url`` / ``--config``, else its environment, else the
SQLite file in the user data directory).

Only ``argparse`` is imported at the top: the parser is built on every ``parley`` command.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from parley.cli.durations import seconds_of

if TYPE_CHECKING:
    from parley.config import Settings
    from parley.store.db import Database


def add_parser(subparsers: Any, add_db_options: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add ``db`` and its commands to the ``parley`` subcommands."""
    db = subparsers.add_parser(
        "db",
        help="upgrade, inspect, back up and prune the database",
        description="Work on the server's database (the same one `parley serve` uses).",
    )
    commands = db.add_subparsers(dest="db_command", required=True)
    upgrade = commands.add_parser("upgrade", help="migrate the schema to this version's")
    current = commands.add_parser(
        "current", help="print the schema revision; exit 1 when it is behind this version"
    )
    backup = commands.add_parser(
        "backup",
        help="copy the database to FILE while it is in use",
        description="SQLite: an online copy (a SQLite file). PostgreSQL: pg_dump "
        "--format=custom (restore with pg_restore); pg_dump must be on PATH.",
    )
    backup.add_argument("file", type=Path, metavar="FILE", help="the backup to write (new)")
    prune = commands.add_parser(
        "prune",
        help="delete the event logs of runs that ended long ago, and expired files",
        description="Delete the event logs of finished runs that ended before the retention "
        "period; their messages and the runs are kept. The server does the same on its own "
        "(PARLEY_EVENT_RETENTION_HOURS). Also delete files and uploads past their expiry "
        "(expires_after), as the server does every five minutes.",
    )
    prune.add_argument(
        "--older-than",
        type=duration,
        metavar="AGE",
        help="runs that ended longer ago than this: 90m, 24h, 7d, 2w (default: "
        "PARLEY_EVENT_RETENTION_HOURS)",
    )
    prune.add_argument("--dry-run", action="store_true", help="only count what would be pruned")
    for command in (upgrade, current, backup, prune):
        add_db_options(command)


def duration(text: str) -> float:
    """Seconds of ``90m``, ``24h``, ``7d``, ``2w``, ``30s`` (``cli.durations``)."""
    seconds = seconds_of(text)
    if seconds is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not an age such as 90m, 24h, 7d or 2w")
    return seconds


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Run ``parley db COMMAND``: 0 done, 1 failed (or, for ``current``, behind), 2 bad
    input; a failure is one line on stderr."""
    from sqlalchemy.exc import DBAPIError

    from parley.errors import InvalidRequest, NotFound, ParleyError
    from parley.store.local import private_database

    name = f"parley db {args.db_command}"
    try:
        private_database(settings.database_url)
        if args.db_command == "backup":
            return _backup(settings, args.file)
        return asyncio.run(_COMMANDS[args.db_command](settings, args))
    except (InvalidRequest, NotFound) as exc:
        print(f"{name}: {exc.message}", file=sys.stderr)
        return 2
    except ParleyError as exc:
        print(f"{name}: {exc.message}", file=sys.stderr)
        return 1
    except DBAPIError as exc:  # the database's own words, without SQLAlchemy's
        reason = str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else "refused"
        print(f"{name}: the database failed: {reason}", file=sys.stderr)
        return 1


def _open(settings: Settings) -> Database:
    from parley.errors import InvalidRequest
    from parley.store.db import Database

    try:
        return Database(settings.database_url)
    except ValueError as exc:  # an unsupported or malformed URL
        raise InvalidRequest(f"database URL: {exc}") from None


async def _upgrade(settings: Settings, args: argparse.Namespace) -> int:
    from alembic.util.exc import CommandError

    from parley.errors import ParleyError
    from parley.store.migrations import HEAD
    from parley.store.schema import schema_revision

    db = _open(settings)
    try:
        before = await db.read(schema_revision)
        try:
            await db.migrate()
        except CommandError:  # a revision this version does not know: a newer Parley's
            raise ParleyError(
                f"the database is at revision {before}, which this version of Parley does "
                f"not know (its newest is {HEAD}); upgrade Parley instead"
            ) from None
        after = await db.read(schema_revision)
    finally:
        await db.dispose()
    if before == after:
        print(f"the database is at revision {after} (head) already")
    else:
        print(f"upgraded the database from revision {before or '(empty)'} to {after}")
    return 0


async def _current(settings: Settings, args: argparse.Namespace) -> int:
    from parley.store.backup import sqlite_path
    from parley.store.migrations import HEAD
    from parley.store.schema import schema_revision

    path = sqlite_path(settings.database_url)
    if path is not None and not path.exists():  # looking must not create the file
        print(f"none: no database at {path} (head is {HEAD}; run parley db upgrade)")
        return 1
    db = _open(settings)
    try:
        current = await db.read(schema_revision)
    finally:
        await db.dispose()
    if current == HEAD:
        print(f"{current} (head)")
        return 0
    if current is None:
        print(f"none: an empty database (head is {HEAD}; run parley db upgrade)")
    elif current < HEAD:
        print(f"{current}: behind head {HEAD} (run parley db upgrade)")
    else:
        print(f"{current}: newer than this version of Parley knows (its head is {HEAD})")
    return 1


def _backup(settings: Settings, target: Path) -> int:
    from parley.store import backup
    from parley.store.db import normalise_url

    backup.backup(normalise_url(settings.database_url), target)
    print(f"backed up the database to {target} ({target.stat().st_size:,} bytes)")
    return 0


async def _prune(settings: Settings, args: argparse.Namespace) -> int:

    from parley.errors import InvalidRequest, ParleyError
    from parley.files.storage import Storages
    from parley.files.sweep import sweep_files
    from parley.store import retention
    from parley.store.db import now
    from parley.store.migrations import HEAD
    from parley.store.schema import schema_revision

    age = args.older_than
    if age is None:
        if settings.event_retention_hours <= 0:
            raise InvalidRequest(
                "PARLEY_EVENT_RETENTION_HOURS is 0 (keep every log); give --older-than"
            )
        age = settings.event_retention_hours * 3600
    before = now() - age
    db = _open(settings)
    try:
        if (current := await db.read(schema_revision)) != HEAD:
            raise ParleyError(
                f"the database is at revision {current or '(empty)'}, not {HEAD}; "
                "run parley db upgrade first"
            )
        if args.dry_run:
            found = await db.read(retention.count_prunable, before=before)
            print(f"would prune the event logs of {found.runs} runs ({found.events} events)")
            return 0
        total = retention.Pruned()
        while (pruned := await db.write(retention.prune_event_logs, before=before)).runs:
            total += pruned
        swept = await sweep_files(db, Storages(settings, db))
    finally:
        await db.dispose()
    print(f"pruned the event logs of {total.runs} runs ({total.events} events)")
    print(
        f"deleted {swept.files} expired files, {swept.uploads_parts} parts of expired "
        f"uploads and {swept.orphans} leftover pieces"
    )
    print(f"deleted the chunks of {swept.stores} expired vector stores")
    return 0


_COMMANDS = {"upgrade": _upgrade, "current": _current, "prune": _prune}
