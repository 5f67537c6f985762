"""Database engine set-up, the worker threads that run transactions, migrations, ids, clock.

Data functions (``parley.store.*``) are plain synchronous functions over a SQLAlchemy
``Connection``. The event loop never waits on the database: ``Database.write`` and
``Database.read`` run a whole transaction in one hop to a database thread and await the
result. SQLite (the embedded default) gets one thread and one connection in WAL mode: one
writer anyway, so contention becomes a short queue instead of lock errors. PostgreSQL gets
a pool of connections and as many threads (psycopg).
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar, cast

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.engine import Connection

MIGRATIONS = Path(__file__).parent / "migrations"
#: PostgreSQL advisory lock key taken while migrating, so replicas migrate one at a time.
_MIGRATION_LOCK = 0x7061726C6579  # "parley"
_PG_POOL = 16

T = TypeVar("T")


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def now() -> float:
    return time.time()


def normalise_url(url: str) -> str:
    """Accept the usual URL spellings and pick the driver Parley uses for each database."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        parsed = parsed.set(drivername="sqlite")
    elif backend in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    else:
        raise ValueError(f"unsupported database {backend!r}: use sqlite or postgresql")
    return parsed.render_as_string(hide_password=False)


class Database:
    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = normalise_url(url)
        self.dialect = make_url(self.url).get_backend_name()
        self.engine: Engine = self._create_engine(echo)
        workers = 1 if self.is_sqlite else _PG_POOL
        self._threads = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="parley-db")
        self._kept: dict[int, Connection] = {}

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    def _create_engine(self, echo: bool) -> Engine:
        if not self.is_sqlite:
            return _postgres_engine(self.url, echo)
        database = make_url(self.url).database
        if database and database != ":memory:":
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(self.url, echo=echo, pool_size=1, max_overflow=0)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # Autocommit at the driver; the "begin" hook below opens the transactions.
            dbapi_conn.isolation_level = None
            for pragma in (
                "journal_mode=WAL",
                "synchronous=NORMAL",
                "foreign_keys=ON",
                "busy_timeout=10000",
            ):
                dbapi_conn.execute(f"PRAGMA {pragma}")

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Connection) -> None:
            # Writers take the lock up front, so no lock upgrade can fail half-way.
            read_only = conn.get_execution_options().get("parley_read_only")
            conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

        return engine

    async def write(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn`` in one read-write transaction on a database thread."""
        return await asyncio.get_running_loop().run_in_executor(self._threads, self._write, fn)

    async def read(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn`` in one read-only transaction (a consistent snapshot)."""
        return await asyncio.get_running_loop().run_in_executor(self._threads, self._read, fn)

    def _connection(self, read_only: bool) -> Connection:
        """This thread's own connection, kept open (no pool round trip per transaction);
        the read-only one shares it, with the option that makes SQLite begin without the
        write lock."""
        kept = self._kept.get(threading.get_ident())
        if kept is None or kept.closed or kept.invalidated:
            kept = self._kept[threading.get_ident()] = self.engine.connect()
        # In place: the option is set for this transaction whichever way it was last time.
        return kept.execution_options(parley_read_only=read_only)

    def _run(self, fn: Callable[[Connection], T], read_only: bool) -> T:
        conn = self._connection(read_only)
        with conn.begin():
            return fn(conn)

    def _write(self, fn: Callable[[Connection], T]) -> T:
        return self._run(fn, read_only=False)

    def _read(self, fn: Callable[[Connection], T]) -> T:
        return self._run(fn, read_only=True)

    async def migrate(self) -> None:
        """Bring the schema to the newest revision (idempotent, replica-safe)."""
        await asyncio.get_running_loop().run_in_executor(self._threads, self._migrate)

    def _migrate(self) -> None:
        conn = self._connection(read_only=False)
        if self._at_head(conn):
            return  # the usual start: no need to load Alembic at all
        from alembic import command

        if not self.is_sqlite:
            conn.exec_driver_sql(f"SELECT pg_advisory_lock({_MIGRATION_LOCK})")
            conn.commit()
        try:
            command.upgrade(alembic_config(conn), "head")
            conn.commit()
        finally:
            if not self.is_sqlite:
                conn.exec_driver_sql(f"SELECT pg_advisory_unlock({_MIGRATION_LOCK})")
                conn.commit()

    @staticmethod
    def _at_head(conn: Connection) -> bool:
        from sqlalchemy import inspect

        from parley.store.migrations import HEAD

        with conn.begin():
            if not inspect(conn).has_table("alembic_version"):
                return False
            version = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
        return version == HEAD

    async def dispose(self) -> None:
        loop = asyncio.get_running_loop()
        # SQLite's one connection is closed in the thread that made it; psycopg's anywhere.
        await loop.run_in_executor(self._threads, self._close_kept)
        self._threads.shutdown(wait=True)

    def _close_kept(self) -> None:
        for conn in self._kept.values():
            conn.close()
        self._kept.clear()
        self.engine.dispose()


def _postgres_engine(url: str, echo: bool) -> Engine:
    from psycopg import Connection as PostgresConnection
    from psycopg import IsolationLevel

    engine = create_engine(url, echo=echo, pool_size=_PG_POOL, max_overflow=0, pool_pre_ping=True)

    @event.listens_for(engine, "begin")
    def _postgres_begin(conn: Connection) -> None:
        # A read is one snapshot, as on SQLite: REPEATABLE READ, so that every statement of
        # it sees the same commits (under READ COMMITTED each statement sees the commits made
        # before it, and a read that decides something from several statements can mix two
        # states). Writes stay READ COMMITTED, ordered by their row locks and compare-and-set
        # updates. Both settings only change the BEGIN that psycopg sends with the first
        # statement: no round trip.
        read_only = bool(conn.get_execution_options().get("parley_read_only"))
        dbapi = cast("PostgresConnection[Any]", conn.connection.dbapi_connection)
        if bool(dbapi.read_only) != read_only:
            dbapi.isolation_level = IsolationLevel.REPEATABLE_READ if read_only else None
            dbapi.read_only = read_only or None

    return engine


def alembic_config(connection: Connection | None = None) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg
