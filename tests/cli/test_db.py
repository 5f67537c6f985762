"""``parley db upgrade|current|backup|prune``, run as a user runs them, against a fresh
database (PostgreSQL in the PostgreSQL pass, else a SQLite file)."""

from __future__ import annotations

import asyncio
import functools
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Connection

from parley.store import runs as run_store
from parley.store import threads as thread_store
from parley.store import users as user_store
from parley.store.db import Database, now
from parley.store.migrations import HEAD
from tests.harness import FreshDatabase
from tests.terminal.conftest import parley


def _parley(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return parley(*args, env={**os.environ, **(env or {})}, timeout=120)


def _failed(out: subprocess.CompletedProcess[str], code: int) -> str:
    """The one line a failed command says on stderr."""
    assert out.returncode == code, (out.stdout, out.stderr)
    assert "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    return out.stderr


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[FreshDatabase]:
    db = FreshDatabase(tmp_path)
    yield db
    db.drop()


def _seed(conn: Connection, *, ended: list[float]) -> list[str]:
    """A user, and one finished run per ``ended`` time, each with a message and 3 events."""
    user = user_store.create_user(conn, name="seeded")
    ids = []
    for completed_at in ended:
        thread = thread_store.create_thread(conn, user_id=user.id, metadata={}, message_count=1)
        message = thread_store.new_message(thread_id=thread.id, seq=1, role="user", content="x")
        thread_store.insert_messages(conn, user_id=user.id, rows=[message])
        run = run_store.create_run(
            conn,
            user_id=user.id,
            thread_id=thread.id,
            assistant_id=None,
            model="demo/x",
            instructions=None,
            tools=[],
            parameters={},
            status="completed",
        )
        events = [(seq, "content.delta", "{}") for seq in (1, 2, 3)]
        run_store.append_events(conn, run_id=run.id, events=events)
        run_store.update_run(conn, run_id=run.id, completed_at=completed_at, last_seq=3)
        ids.append(run.id)
    return ids


def _seeded(url: str, ended: list[float]) -> list[str]:
    async def seed() -> list[str]:
        db = Database(url)
        try:
            return await db.write(functools.partial(_seed, ended=ended))
        finally:
            await db.dispose()

    return asyncio.run(seed())


def test_upgrade_and_current_on_a_blank_database(fresh: FreshDatabase) -> None:
    url = ["--database-url", fresh.url]
    blank = _parley("db", "current", *url)
    assert blank.returncode == 1 and "none" in blank.stdout and HEAD in blank.stdout

    upgraded = _parley("db", "upgrade", *url)
    assert upgraded.returncode == 0, upgraded.stderr
    assert upgraded.stdout.strip() == f"upgraded the database from revision (empty) to {HEAD}"
    current = _parley("db", "current", *url)
    assert (current.returncode, current.stdout.strip()) == (0, f"{HEAD} (head)")
    again = _parley("db", "upgrade", *url)
    assert again.returncode == 0 and "already" in again.stdout


def test_current_does_not_create_a_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "none.db"
    out = _parley("db", "current", "--database-url", f"sqlite:///{path}")
    assert out.returncode == 1 and str(path) in out.stdout
    assert not path.exists()


def test_the_default_database_is_the_servers(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PARLEY_DATABASE_URL"}
    out = subprocess.run(
        [sys.executable, "-m", "parley.cli.main", "db", "upgrade"],
        env={**env, "XDG_DATA_HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    database = tmp_path / "parley" / "parley.db"
    assert database.is_file()
    assert stat.S_IMODE(database.stat().st_mode) == 0o600


def test_prune_dry_run_then_prune(fresh: FreshDatabase) -> None:
    url = ["--database-url", fresh.url]
    assert _parley("db", "upgrade", *url).returncode == 0
    old, recent = now() - 3 * 86400, now() - 3600
    _seeded(fresh.url, [old, old, recent])

    dry = _parley("db", "prune", "--older-than", "2d", "--dry-run", *url)
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.strip() == "would prune the event logs of 2 runs (6 events)"
    pruned = _parley("db", "prune", "--older-than", "2d", *url)
    assert pruned.stdout.splitlines() == [
        "pruned the event logs of 2 runs (6 events)",
        "deleted 0 expired files, 0 parts of expired uploads and 0 leftover pieces",
        "deleted the chunks of 0 expired vector stores",
    ]
    assert _parley("db", "prune", "--older-than", "2d", *url).stdout.startswith(
        "pruned the event logs of 0 runs"
    )
    # the default age is the server's retention setting (7 days): nothing that old is left
    default = _parley("db", "prune", "--dry-run", *url)
    assert default.stdout.strip() == "would prune the event logs of 0 runs (0 events)"
    everything = _parley("db", "prune", "--older-than", "30m", *url)
    assert everything.stdout.startswith("pruned the event logs of 1 runs (3 events)\n")


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("prune", "--older-than", "a week"), "--older-than"),
        (("prune", "--older-than", "7"), "--older-than"),
        (("frobnicate",), "invalid choice"),
        (("backup",), "FILE"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, args: tuple[str, ...], says: str) -> None:
    out = _parley("db", *args, "--database-url", f"sqlite:///{tmp_path}/x.db")
    assert out.returncode == 2
    assert says in out.stderr and "Traceback" not in out.stderr


def test_prune_with_retention_off_needs_an_age(fresh: FreshDatabase) -> None:
    env = {"PARLEY_EVENT_RETENTION_HOURS": "0"}
    out = _parley("db", "prune", "--database-url", fresh.url, env=env)
    assert "--older-than" in _failed(out, 2)


def test_prune_on_an_old_schema_asks_for_upgrade(fresh: FreshDatabase) -> None:
    out = _parley("db", "prune", "--older-than", "1d", "--database-url", fresh.url)
    assert "parley db upgrade" in _failed(out, 1)


def test_an_unreachable_database_is_one_line(tmp_path: Path) -> None:
    url = "postgresql://nobody@127.0.0.1:1/nothing"
    out = _parley("db", "current", "--database-url", url)
    assert "the database failed" in _failed(out, 1)
    unsupported = _parley("db", "current", "--database-url", "mysql://x@127.0.0.1/y")
    assert "unsupported database" in _failed(unsupported, 2)


def test_backup_holds_the_data(fresh: FreshDatabase, tmp_path: Path) -> None:
    url = ["--database-url", fresh.url]
    assert _parley("db", "upgrade", *url).returncode == 0
    (run_id,) = _seeded(fresh.url, [now()])
    target = tmp_path / "backup.db"

    out = _parley("db", "backup", str(target), *url)

    assert out.returncode == 0, out.stderr
    assert str(target) in out.stdout
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert not list(tmp_path.glob("*.partial"))
    if fresh.kind == "sqlite":
        with sqlite3.connect(target) as copy:
            assert copy.execute("SELECT version_num FROM alembic_version").fetchone() == (HEAD,)
            runs = copy.execute("SELECT id FROM runs").fetchall()
            assert runs == [(run_id,)]
            # The three events, logged together: one row of the log.
            logged = copy.execute("SELECT first_seq, seq FROM run_events").fetchall()
            assert logged == [(1, 3)]
    else:
        assert target.read_bytes()[:5] == b"PGDMP"
        listed = subprocess.run(
            ["pg_restore", "--list", str(target)], capture_output=True, text=True, check=True
        )
        assert "TABLE DATA public run_events" in listed.stdout
    again = _parley("db", "backup", str(target), *url)
    assert "exists" in _failed(again, 2)


def test_backup_of_a_live_sqlite_server(server: Any, tmp_path: Path) -> None:
    """While the session's server runs on it (SQLite only: PostgreSQL's is pg_dump's)."""
    if not server.database_url.startswith("sqlite"):
        pytest.skip("the session server is on PostgreSQL")
    server.new_user("backed-up")
    target = tmp_path / "live.db"
    out = _parley("db", "backup", str(target), "--database-url", server.database_url)
    assert out.returncode == 0, out.stderr
    with sqlite3.connect(target) as copy:
        names = [row[0] for row in copy.execute("SELECT name FROM users")]
        assert "backed-up" in names
        assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_backup_of_postgresql_without_pg_dump(fresh: FreshDatabase, tmp_path: Path) -> None:
    if fresh.kind != "postgresql":
        pytest.skip("pg_dump backs up PostgreSQL only")
    empty = tmp_path / "bin"
    empty.mkdir()
    python = Path(sys.executable)
    env = {"PATH": str(empty)}
    assert shutil.which("pg_dump", path=str(empty)) is None
    out = subprocess.run(
        [str(python), "-m", "parley.cli.main", "db", "backup", str(tmp_path / "b.dump")],
        env={**os.environ, **env, "PARLEY_DATABASE_URL": fresh.url},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "pg_dump" in _failed(out, 1)
    assert not list(tmp_path.glob("b.dump*"))
