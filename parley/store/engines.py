"""The SQLAlchemy engines ``Database`` runs on: SQLite in WAL mode (with ``sqlite-vec`` when
it loads) and PostgreSQL over psycopg, both with the JSON codec of ``parley.store.tables``,
and how each begins a read-only transaction (``READ_ONLY``)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import Connection

from parley.store import driver
from parley.store.tables import json_text, json_value

if TYPE_CHECKING:
    from psycopg import Connection as PostgresConnection

__all__ = ["READ_ONLY", "postgres_engine", "sqlite_engine"]

log = logging.getLogger("parley.store")

#: The key of a connection's info that says its next transaction only reads.
READ_ONLY = "parley_read_only"

# JSON columns: orjson both ways, U+0000 stored as U+FFFD (``parley.store.tables``).
_JSON_CODEC = {"json_serializer": json_text, "json_deserializer": json_value}


def _sqlite_driver() -> dict[str, Any]:
    """The SQLite driver: the standard library's, unless it was built without loadable
    extensions (as some Python builds are) and ``pysqlite3`` (its own SQLite, extensions
    allowed) is installed: then that one, so that ``sqlite-vec`` can load."""
    import sqlite3

    if hasattr(sqlite3.Connection, "enable_load_extension"):
        return {}
    try:
        from pysqlite3 import dbapi2
    except ImportError:
        return {}
    return {"module": dbapi2}


_vec_warned = False


def _load_sqlite_vec(dbapi_conn: Any) -> None:
    """Load ``sqlite-vec`` (vector search, ``parley.store.index``) into a new
    connection; without it search is lexical only, said once per process."""
    global _vec_warned
    reason = None
    try:
        import sqlite_vec
    except ImportError:
        reason = "the sqlite-vec package is not installed"
    else:
        if not hasattr(dbapi_conn, "enable_load_extension"):
            reason = "this Python's sqlite3 cannot load extensions (install pysqlite3-binary)"
        else:
            try:
                dbapi_conn.enable_load_extension(True)
                sqlite_vec.load(dbapi_conn)
                dbapi_conn.enable_load_extension(False)
            except Exception as exc:  # noqa: BLE001 - any failure means no vectors
                reason = f"sqlite-vec did not load: {exc}"
    if reason is not None and not _vec_warned:
        _vec_warned = True
        log.warning("vector search is off on SQLite, search is lexical only: %s", reason)


def postgres_engine(url: str, echo: bool, pool_size: int) -> Engine:
    """PostgreSQL's engine over psycopg: a pool of ``pool_size`` connections; the writes sent
    ahead (``parley.store.driver``) run before any other statement; a read is one snapshot."""
    from psycopg import IsolationLevel

    engine = create_engine(
        url, echo=echo, pool_size=pool_size, max_overflow=0, pool_pre_ping=True, **_JSON_CODEC
    )

    @event.listens_for(engine, "before_cursor_execute")
    def _after_those_ahead(conn: Connection, *_: Any) -> None:
        # A statement of the statement layer runs after the writes sent ahead before it.
        driver.send_all(conn)

    @event.listens_for(engine, "begin")
    def _postgres_begin(conn: Connection) -> None:
        # A read is one snapshot, as on SQLite: REPEATABLE READ, so that every statement of
        # it sees the same commits (under READ COMMITTED each statement sees the commits made
        # before it, and a read that decides something from several statements can mix two
        # states). Writes stay READ COMMITTED, ordered by their row locks and compare-and-set
        # updates. Both settings only change the BEGIN that psycopg sends with the first
        # statement: no round trip.
        read_only = bool(conn.info.get(READ_ONLY))
        dbapi = cast("PostgresConnection[Any]", conn.connection.dbapi_connection)
        if bool(dbapi.read_only) != read_only:
            dbapi.isolation_level = IsolationLevel.REPEATABLE_READ if read_only else None
            dbapi.read_only = read_only or None

    return engine


def sqlite_engine(url: str, echo: bool, pool_size: int, file: str | None) -> Engine:
    """SQLite's engine: WAL, foreign keys, a wait for the lock, ``sqlite-vec``; a write
    takes the lock at BEGIN. ``file`` (None: in memory) gets its directory made."""
    if file:
        Path(file).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        echo=echo,
        pool_size=pool_size,
        max_overflow=0,
        **_sqlite_driver(),
        **_JSON_CODEC,
    )

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
        _load_sqlite_vec(dbapi_conn)

    @event.listens_for(engine, "begin")
    def _sqlite_begin(conn: Connection) -> None:
        # Writers take the lock up front, so no lock upgrade can fail half-way.
        # Straight to the driver: every transaction begins here, and the statement layer
        # would cost more than the BEGIN.
        read_only = conn.info.get(READ_ONLY)
        conn.connection.dbapi_connection.execute(  # type: ignore[union-attr]
            "BEGIN" if read_only else "BEGIN IMMEDIATE"
        )

    return engine
