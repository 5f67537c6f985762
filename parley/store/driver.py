"""The hot path's writes, straight to the database driver.

Every streamed turn writes the same few statements: its claim's inserts, a checkpoint's
progress, text and event-log row every ``checkpoint_seconds``, and its end. Through
SQLAlchemy's statement layer each costs tens of microseconds of Python (its execution
context, parameter processing and events; ten times that right after an idle wait, when
the caches are cold), against one or two for the driver itself. These statements are
written here once per table and column set, in the driver's own SQL, and run on the
cursor of the transaction's own connection: the same transaction, and on PostgreSQL the
same transaction. On PostgreSQL a write sent ahead (``transaction.send_ahead``) is not run at once:
it is bound to its values as SQL text and kept, and the transaction's kept writes go with
its COMMIT as one query (``send_all``): one round trip, and one pass through the driver's
machinery for all of them instead of one each. Strings, numbers, booleans, bytes and None
are written as literals here (``bound``), anything else by psycopg's own quoting
(``ClientCursor.mogrify``).

The values are stored exactly as SQLAlchemy stores them (``tables``): a JSON column's as
``json_text`` (a None as JSON ``null``), a ``Name`` or ``Content`` column's with U+0000 as
U+FFFD, a missing column's scalar default. Mostly writes go this way: reads keep the
statement layer, which turns rows into values, but for the one read of a claim
(``first_row``), a checkpoint's (which of its runs are in progress) and the few that an
idle server makes every few seconds (when the sweep, the file indexer and the webhook
sender next have work), whose answers are plain numbers.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from typing import Any, cast

from sqlalchemy import Boolean, Table
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, IntegrityError

from parley.store.tables import JsonType, Name, json_text, json_value, without_nul

Convert = Callable[[Any], Any]


def converter(table: Table, column: str) -> Convert | None:
    """How a value of ``table.column`` is written, when the driver would not write it as
    the statement layer does."""
    kind = table.c[column].type
    if isinstance(kind, JsonType):
        return json_text
    if isinstance(kind, Name):
        return without_nul
    return None


class Statement:
    """One statement in the driver's SQL: written with ``?`` for a value and ``?j`` for a
    JSON value (JSONB on PostgreSQL), and ``converters`` for its values in order."""

    __slots__ = ("converters", "postgresql", "sqlite")

    def __init__(self, sql: str, converters: Sequence[Convert | None] = ()) -> None:
        self.sqlite = sql.replace("?j", "?")
        self.postgresql = sql.replace("?j", "%s::jsonb").replace("?", "%s")
        self.converters = tuple(converters)

    def _row(self, values: Sequence[Any]) -> Sequence[Any]:
        if not self.converters:
            return values
        return [v if c is None else c(v) for c, v in zip(self.converters, values, strict=True)]

    def run(self, conn: Connection, values: Sequence[Any]) -> int:
        """Run once; answers the rows it changed (-1 once statements are sent ahead,
        ``transaction.send_ahead``: it has not run yet)."""
        if (ahead := conn.info.get(AHEAD)) is not None:
            ahead.keep(conn, self.postgresql, self._row(values))
            return -1
        return int(self._execute(conn, "execute", self._row(values)).rowcount)

    def run_many(self, conn: Connection, rows: Sequence[Sequence[Any]]) -> int:
        """Run for each of ``rows``; answers the rows changed in all (-1 sent ahead)."""
        if (ahead := conn.info.get(AHEAD)) is not None:
            for row in rows:
                ahead.keep(conn, self.postgresql, self._row(row))
            return -1
        return int(self._execute(conn, "executemany", [self._row(r) for r in rows]).rowcount)

    def exists(self, conn: Connection, values: Sequence[Any]) -> bool:
        """Run a query; answers whether it found a row."""
        return self.first(conn, values) is not None

    def first(self, conn: Connection, values: Sequence[Any]) -> Sequence[Any] | None:
        """Run a query; answers its first row as the driver gives it, or None."""
        cursor = self._execute(conn, "execute", self._row(values))
        return cast("Sequence[Any] | None", cursor.fetchone())

    def rows(self, conn: Connection, values: Sequence[Any]) -> list[Sequence[Any]]:
        """Run a statement that answers rows (an ``UPDATE ... RETURNING``); answers them
        all, as the driver gives them (read to the end: the statement is done)."""
        return cast(
            "list[Sequence[Any]]", self._execute(conn, "execute", self._row(values)).fetchall()
        )

    def one(self, conn: Connection, values: Sequence[Any]) -> Sequence[Any]:
        """Run a query that always answers one row (an aggregate's); answers that row."""
        row = self.first(conn, values)
        assert row is not None, "an aggregate answers one row"
        return row

    def _execute(self, conn: Connection, how: str, params: Any) -> Any:
        """The cursor after ``cursor.<how>(sql, params)``, run after the writes sent ahead
        before it (a read sees them); the driver's error raised as the statement layer's
        (``_translated``)."""
        info = conn.info
        if (ahead := info.get(AHEAD)) is not None and ahead.texts:
            _send(conn, ahead)
        cursor = info.get(_CURSOR) or _kept_cursor(conn)
        sql = self.postgresql if conn.dialect.name == "postgresql" else self.sqlite
        try:
            getattr(cursor, how)(sql, params)
        except conn.dialect.loaded_dbapi.Error as exc:
            raise _translated(conn, sql, exc) from exc
        return cursor


#: The key of a connection's info that keeps the driver's cursor its statements run on.
_CURSOR = "parley_cursor"


def _kept_cursor(conn: Connection) -> Any:
    """The cursor of ``conn``'s driver connection, one kept for all its statements (a new
    psycopg cursor builds its own adapters each time). A statement's rows and row count
    are read before the next one runs on the cursor. (A SQLite cursor steps past each row
    it returns: a read of its one row is done, and holds no snapshot while the cursor
    waits.) The connection's info goes with its driver connection: a new one, after a
    lost one, starts without a cursor."""
    cursor = conn.info.get(_CURSOR)
    if cursor is None:
        driver = conn.connection.driver_connection
        assert driver is not None
        cursor = conn.info[_CURSOR] = driver.cursor()
    return cursor


#: The key of a connection's info that holds its transaction's writes sent ahead.
AHEAD = "parley_ahead"
#: The key of a connection's info that keeps the psycopg cursor that binds values as text.
_BINDER = "parley_binder"


class Ahead:
    """A PostgreSQL transaction's writes sent ahead of their answers (``transaction.send_ahead``):
    each as SQL text with its values bound, run together by ``send_all``; and how a
    unique-key violation among them is told as its statement's own error
    (``db.translate_ahead``)."""

    __slots__ = ("texts", "translators")

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.translators: list[Callable[[IntegrityError], Exception | None]] = []

    def keep(self, conn: Connection, sql: str, values: Sequence[Any]) -> None:
        text = bound(conn, sql, values)
        if text is None:  # a value of a kind the quick binding leaves to psycopg
            try:
                text = _binder(conn).mogrify(sql, values)
            except conn.dialect.loaded_dbapi.Error as exc:  # a value PostgreSQL can't hold
                raise _translated(conn, sql, exc) from exc
        self.texts.append(text)

    def translated(self, exc: BaseException) -> Exception | None:
        """The error of the statement sent ahead that the unique-key violation ``exc`` is
        about, if one says so."""
        if not isinstance(exc, IntegrityError):
            return None
        for translate in self.translators:
            if (error := translate(exc)) is not None:
                return error
        return None


def _binder(conn: Connection) -> Any:
    """The psycopg cursor kept on ``conn`` that binds values as SQL text (its ``mogrify``)."""
    binder = conn.info.get(_BINDER)
    if binder is None:
        from psycopg import ClientCursor

        driver = conn.connection.driver_connection
        assert driver is not None
        binder = conn.info[_BINDER] = ClientCursor(driver)
    return binder


def bound(conn: Connection, sql: str, values: Sequence[Any]) -> str | None:
    """``sql`` (``%s`` for each value) with ``values`` written in as PostgreSQL literals,
    as psycopg's ``mogrify`` writes them; None when one of them is not a string, number,
    boolean, bytes or None, holds U+0000 (which PostgreSQL refuses, in psycopg's words),
    or the server reads backslashes in strings (``standard_conforming_strings`` off).

    psycopg's binding looks up an adapter for each value and goes through several layers
    of Python per statement; a turn sends seven statements ahead, most of them rows of
    twenty columns, and that binding was a fifth of a stored turn's work on the database
    threads. With standard strings a literal needs only its quotes doubled."""
    parts = _pieces(sql)
    if parts is None or len(parts) != len(values) + 1 or not _standard_strings(conn):
        return None
    out = [parts[0]]
    for value, part in zip(values, parts[1:]):  # noqa: B905 (counted above)
        kind = type(value)
        if kind is str or isinstance(value, str):
            text = value if kind is str else str.__str__(value)  # an enum's: its value
            if "\x00" in text:
                return None
            out.append("'" + text.replace("'", "''") + "'")
        elif value is None:
            out.append("NULL")
        elif kind is bool:
            out.append("true" if value else "false")
        elif kind is int or kind is float:
            text = repr(value)
            text = _FLOAT_WORDS.get(text, text)
            out.append(f" {text}" if text[0] == "-" else text)  # no "--" after a minus; -0.0
        elif kind is bytes:
            out.append(f"'\\x{value.hex()}'")
        else:
            return None
        out.append(part)
    return "".join(out)


#: The floats with no numeric literal, as PostgreSQL spells them (and psycopg writes them).
_FLOAT_WORDS = {
    "inf": "'Infinity'::float8",
    "-inf": "'-Infinity'::float8",
    "nan": "'NaN'::float8",
}
_PIECES: dict[str, list[str] | None] = {}


def _pieces(sql: str) -> list[str] | None:
    """``sql`` cut at its ``%s``; None when it holds another ``%`` (psycopg's escapes)."""
    if sql not in _PIECES:
        pieces = sql.split("%s")
        parts = None if any("%" in p for p in pieces) else pieces
        if len(_PIECES) >= 1024:  # statements are few; a caller making them anew is not
            return parts
        _PIECES[sql] = parts
    return _PIECES[sql]


def _standard_strings(conn: Connection) -> bool:
    """Whether the server reads a backslash in a string literal as itself (as it does
    unless told otherwise), as it last reported."""
    driver = conn.connection.driver_connection
    assert driver is not None
    return bool(driver.pgconn.parameter_status(b"standard_conforming_strings") == b"on")


def send_all(conn: Connection, *, commit: bool = False) -> None:
    """Run the writes ``conn``'s transaction sent ahead so far, as one query: before any
    other statement of it, and with its COMMIT (``commit``: the transaction then ends
    here, and psycopg's own commit finds nothing to do). Their error, the first that
    PostgreSQL met, is raised as the statement layer's; the transaction is then aborted."""
    ahead: Ahead | None = conn.info.get(AHEAD)
    if ahead is not None and ahead.texts:
        _send(conn, ahead, commit=commit)


def _send(conn: Connection, ahead: Ahead, *, commit: bool = False) -> None:
    texts, ahead.texts = ahead.texts, []
    if commit:
        texts.append("COMMIT")
    sql = ";\n".join(texts)
    try:
        # No values and not prepared: psycopg sends it as a simple query, which may hold
        # several statements.
        _kept_cursor(conn).execute(sql, prepare=False)
    except conn.dialect.loaded_dbapi.Error as exc:
        # The statements hold their values (a message's whole text, the log's bytes): the
        # error, which logs repeat, names their start only.
        shown = sql if len(sql) <= _SHOWN else f"{sql[:_SHOWN]}... ({len(texts)} statements)"
        raise _translated(conn, shown, exc) from exc


#: How much of a query of writes sent ahead its error shows.
_SHOWN = 1000


def _translated(conn: Connection, sql: str, exc: Exception) -> BaseException:
    """The driver's error as the statement layer raises it (``sqlalchemy.exc``: an
    ``IntegrityError``, an ``OperationalError``...); a connection the error shows lost is
    invalidated as the statement layer invalidates it, so the next transaction opens a
    new one."""
    dialect = conn.dialect
    gone = dialect.is_disconnect(exc, conn.connection.dbapi_connection, None)  # type: ignore[arg-type]
    if gone:
        conn.invalidate(exc)
    error = dialect.loaded_dbapi.Error
    return DBAPIError.instance(sql, None, exc, error, connection_invalidated=gone, dialect=dialect)


class ForEach:
    """A statement about a list of values: written with one ``IN ??`` after its other
    values' ``?``. On PostgreSQL it is ``= ANY(%s)`` of the list as an array, one
    statement for any length; on SQLite, ``IN (?, ?, ...)`` of the list's length (a
    statement per length, kept), run over slices of at most ``SLICE`` values."""

    SLICE = 500

    __slots__ = ("_sql",)

    def __init__(self, sql: str) -> None:
        self._sql = sql

    def run(self, conn: Connection, values: Sequence[Any], each: Sequence[Any]) -> int:
        """Run for ``each`` (after the other ``values``); answers the rows it changed."""
        return sum(int(cursor.rowcount) for cursor in self._cursors(conn, values, each))

    def rows(self, conn: Connection, values: Sequence[Any], each: Sequence[Any]) -> list[Any]:
        """Run a query for ``each``; answers its rows as the driver gives them."""
        return [row for cursor in self._cursors(conn, values, each) for row in cursor.fetchall()]

    def _cursors(
        self, conn: Connection, values: Sequence[Any], each: Sequence[Any]
    ) -> Iterator[Any]:
        """The cursor after each statement, the next one run once the caller has read it
        (the statements share one cursor: ``_cursor``)."""
        if not each:
            return
        if conn.dialect.name == "postgresql":
            yield _any_of(self._sql)._execute(conn, "execute", [*values, list(each)])
            return
        for start in range(0, len(each), self.SLICE):
            part = each[start : start + self.SLICE]
            yield _in_list(self._sql, len(part))._execute(conn, "execute", [*values, *part])


@functools.lru_cache(maxsize=32)
def _any_of(sql: str) -> Statement:
    return Statement(sql.replace("IN ??", "= ANY(?)"))


@functools.lru_cache(maxsize=256)
def _in_list(sql: str, count: int) -> Statement:
    return Statement(sql.replace("IN ??", f"IN ({', '.join('?' * count)})"))


@functools.lru_cache(maxsize=64)
def insert(table: Table, columns: tuple[str, ...]) -> tuple[Statement, tuple[Any, ...]]:
    """``INSERT INTO table (columns, and those with a scalar default)``: the statement,
    and the default values to append to each row's ``columns`` values. A column left out
    with a default that is not a scalar is a programming error."""
    defaults: dict[str, Any] = {}
    for column in table.columns:
        if column.name in columns or column.default is None:
            continue
        if not column.default.is_scalar:
            raise ValueError(f"{table.name}.{column.name} has a default the driver can't give")
        defaults[column.name] = column.default.arg  # type: ignore[attr-defined]
    names = [*columns, *defaults]
    marks = ", ".join(_mark(table, n) for n in names)
    sql = f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({marks})"
    return Statement(sql, [converter(table, n) for n in names]), tuple(defaults.values())


def insert_rows(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert ``rows`` (column values by name, the same columns in each)."""
    if not rows:
        return
    statement, defaults = insert(table, tuple(rows[0]))
    values = [(*r.values(), *defaults) for r in rows]
    if len(values) == 1:
        statement.run(conn, values[0])
    else:
        statement.run_many(conn, values)


@functools.lru_cache(maxsize=128)
def update(table: Table, columns: tuple[str, ...], where: str, returning: str = "") -> Statement:
    """``UPDATE table SET columns WHERE where`` (``where`` in the driver's SQL, its values
    after the columns' and unconverted), ``RETURNING returning`` when given."""
    sets = ", ".join(f"{n} = {_mark(table, n)}" for n in columns)
    tail = f" RETURNING {returning}" if returning else ""
    return Statement(
        f"UPDATE {table.name} SET {sets} WHERE {where}{tail}",
        [converter(table, n) for n in columns] + [None] * where.count("?"),
    )


@functools.lru_cache(maxsize=32)
def _select(
    table: Table, where: str
) -> tuple[Statement, tuple[str, ...], tuple[Convert | None, ...]]:
    """``SELECT`` every column of ``table`` ``WHERE where``, and how SQLite's value of each
    is read (PostgreSQL's driver gives JSONB and booleans as values already)."""
    names = tuple(c.name for c in table.columns)
    readers: list[Convert | None] = []
    for column in table.columns:
        if isinstance(column.type, JsonType):
            readers.append(_json_read)
        elif isinstance(column.type, Boolean):
            readers.append(_bool_read)
        else:
            readers.append(None)
    sql = f"SELECT {', '.join(names)} FROM {table.name} WHERE {where}"
    return Statement(sql), names, tuple(readers)


def first_row(
    conn: Connection, table: Table, where: str, values: Sequence[Any]
) -> dict[str, Any] | None:
    """The first row of ``table`` ``WHERE where`` (the driver's SQL), every column's value
    by name as the statement layer reads it; None when there is none."""
    statement, names, readers = _select(table, where)
    row = statement.first(conn, values)
    if row is None:
        return None
    if conn.dialect.name == "postgresql":
        return dict(zip(names, row, strict=True))
    return {n: v if r is None else r(v) for n, r, v in zip(names, readers, row, strict=True)}


def _json_read(value: Any) -> Any:
    return None if value is None else json_value(value)


def _bool_read(value: Any) -> Any:
    return None if value is None else bool(value)


def _mark(table: Table, column: str) -> str:
    return "?j" if isinstance(table.c[column].type, JsonType) else "?"
