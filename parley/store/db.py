"""Database engine set-up, the worker threads that run transactions, migrations, ids, clock.

Data functions (``parley.store.*``) are plain synchronous functions over a SQLAlchemy
``Connection``. The event loop never waits on the database: ``Database.write`` and
``Database.read`` run a whole transaction in one hop to a database thread and await the
result. They take the function and its arguments, as ``asyncio.to_thread`` does
(``db.read(runs.get_run, run_id=r)``: the connection comes first); ``write_later`` and
``read_later`` do the same in the bookkeeping line (``Workers``). SQLite (the embedded
default) gets one thread and one connection in WAL mode: one writer anyway, so contention
becomes a short queue instead of lock errors. PostgreSQL gets a pool of connections and as
many threads (psycopg).

One exception on SQLite: the writes of a turn's path (``group_commit``: a claim, an end, a
checkpoint, a heartbeat) made while the database thread has nothing to do run on the event
loop itself, those of one round of the loop together at its end, on a second connection
that never waits for SQLite's lock (``Database._inline``). A thread hand-off costs more than
such a write, and SQLite writes to its WAL without waiting for the disk; a lock held
elsewhere sends them to the thread as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any, Concatenate, Generic, ParamSpec, TypeAlias, TypeVar, cast

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, IntegrityError

from parley.errors import Conflict
from parley.store import driver
from parley.store.tables import json_text, json_value
from parley.wake import Wake

if TYPE_CHECKING:
    from psycopg import Connection as PostgresConnection

log = logging.getLogger("parley.store")

MIGRATIONS = Path(__file__).parent / "migrations"
#: PostgreSQL advisory lock key taken while migrating, so replicas migrate one at a time.
_MIGRATION_LOCK = 0x7061726C6579  # "parley"
_PG_POOL = 16

T = TypeVar("T")
A = TypeVar("A")
P = ParamSpec("P")


def new_id(prefix: str) -> str:
    """``prefix_`` and 24 hex digits: the millisecond of its making (11 digits), then 52
    random bits. Ids made one after another sort one after another, so a new row goes
    into the last page of each index on an id (and on a thread's or a run's id) instead
    of a page anywhere: a commit of one turn writes a fifth fewer pages to SQLite's WAL,
    and the rows of the turns that commit together share pages."""
    return f"{prefix}_{time.time_ns() // 1_000_000:011x}{secrets.randbits(52):013x}"


async def until_woken(wake: Wake, deadline: Callable[[], float]) -> None:
    """The wait of a loop that looks at the database now and then: until ``wake`` is set,
    or the ``time.monotonic`` time ``deadline()`` answers has come (it may move later
    meanwhile, when a look made elsewhere stands for this one)."""
    while not wake.is_set() and (left := deadline() - time.monotonic()) > 0:
        await wake.wait(left)


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
    def __init__(self, url: str, *, echo: bool = False, pool_size: int | None = None) -> None:
        self.url = normalise_url(url)
        parsed = make_url(self.url)
        self.dialect = parsed.get_backend_name()
        #: Connections (and database threads) on PostgreSQL; SQLite has one thread, and a
        #: connection for it and one for the event loop (``_inline``).
        self.pool_size = pool_size or _PG_POOL
        #: SQLite's file (None: PostgreSQL, or SQLite in memory).
        self._file = parsed.database if self.is_sqlite and parsed.database != ":memory:" else None
        #: Whether ``group_commit`` writes may run on the event loop (``_inline``): SQLite
        #: in a file (each connection to an in-memory one has a database of its own).
        self._inline_ok = bool(self._file)
        self.engine: Engine = self._create_engine(echo)
        workers = 1 if self.is_sqlite else self.pool_size
        self._workers = Workers(workers, "parley-db")
        self._kept: dict[int, Connection] = {}
        #: The event loop's own connection (``_inline``), and the thread it belongs to.
        self._loop_conn: Connection | None = None
        self._loop_thread: int | None = None
        #: The writes of the loop's current round, run together at its end.
        self._round: list[tuple[_Call[Any], LoopWrite[Any], bool]] = []
        #: Transactions committed on the loop since the WAL was last checkpointed.
        self._unchecked = 0
        self._checkpointing = False
        #: Who is told when a transaction that ``notify``-ed a topic commits, by topic.
        self._listeners: dict[str, list[Callable[[], None]]] = {}
        #: How ``group_commit`` writes run together: one bound method, so that a queue
        #: sees their jobs as of one group (None: each alone, as on PostgreSQL).
        self._grouped = self._run_group if self.is_sqlite else None

    def listen(self, topic: str, listener: Callable[[], None]) -> None:
        """Call ``listener`` (on a database thread, or on the event loop for a write it
        ran: it must be quick and thread-safe) each time a transaction that called
        ``notify(conn, topic)`` has committed."""
        self._listeners.setdefault(topic, []).append(listener)

    def unlisten(self, topic: str, listener: Callable[[], None]) -> None:
        listeners = self._listeners.get(topic, [])
        if listener in listeners:
            listeners.remove(listener)

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    def _create_engine(self, echo: bool) -> Engine:
        if not self.is_sqlite:
            return _postgres_engine(self.url, echo, self.pool_size)
        if self._file:
            Path(self._file).expanduser().parent.mkdir(parents=True, exist_ok=True)
        pool_size = 2 if self._inline_ok else 1  # the thread's and the event loop's
        engine = create_engine(
            self.url,
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
            read_only = conn.info.get(_READ_ONLY)
            conn.connection.dbapi_connection.execute(  # type: ignore[union-attr]
                "BEGIN" if read_only else "BEGIN IMMEDIATE"
            )

        return engine

    async def write(
        self, fn: Callable[Concatenate[Connection, P], T], /, *args: P.args, **kw: P.kwargs
    ) -> T:
        """``fn(conn, *args, **kw)`` in one read-write transaction on a database thread
        (shared with the writes queued beside it, when ``fn`` is ``group_commit``)."""
        return await asyncio.wrap_future(self.write_job(fn, *args, **kw))

    async def write_retried(
        self, fn: Callable[Concatenate[Connection, P], T], /, *args: P.args, **kw: P.kwargs
    ) -> T:
        """As ``write``, run again (up to ``WRITE_TRIES`` in all) when PostgreSQL aborted it
        to break a deadlock or a serialization conflict (``retryable``): nothing of it was
        written, and ``fn`` must be a plain function of the database and its arguments. For
        the writes that meet the background workers on the same rows (a vector store's
        files, which its indexer writes at the same moment). It waits a moment first,
        longer each time and never the same for two writers: the transaction it lost to
        gets its rows before the write takes them again (run at once, it could take one
        of them first and meet the same deadlock)."""
        attempt = 1
        while True:
            try:
                return await self.write(fn, *args, **kw)
            except Exception as exc:
                if attempt == WRITE_TRIES or not retryable(exc):
                    raise
                log.info(
                    "a write met a deadlock or a conflict; writing it again (%s)",
                    exc.__class__.__name__,
                )
                await asyncio.sleep(attempt * _RETRY_PAUSE * (1 + secrets.randbelow(1000) / 1000))
                attempt += 1

    def write_job(
        self, fn: Callable[Concatenate[Connection, P], T], /, *args: P.args, **kw: P.kwargs
    ) -> Job[T]:
        """``write``'s job, queued: for a caller that must learn how a write it stopped
        waiting for ended (``asyncio.wrap_future`` cancels it only while it waits to run:
        ``job.cancelled()`` then says that nothing was written)."""
        return self._submit_write(_Call(fn, args, kw, read_only=False), later=False)

    async def read(
        self, fn: Callable[Concatenate[Connection, P], T], /, *args: P.args, **kw: P.kwargs
    ) -> T:
        """``fn(conn, *args, **kw)`` in one read-only transaction (a consistent snapshot)."""
        call = _Call(fn, args, kw, read_only=True)
        return await asyncio.wrap_future(self._workers.submit(self._run, call))

    async def write_later(
        self, fn: Callable[Concatenate[Connection, P], T], /, *args: P.args, **kw: P.kwargs
    ) -> T:
        """As ``write``, as bookkeeping that waits behind the work clients wait on
        (``Workers``: the end of a turn, checkpoints, heartbeats, sweeps)."""
        return await asyncio.wrap_future(self.write_later_job(fn, *args, **kw))

    def write_later_job(
        self, fn: Callable[Concatenate[Connection, P], T], /, *args: P.args, **kw: P.kwargs
    ) -> Job[T]:
        """``write_later``'s job, queued (as ``write_job``)."""
        return self._submit_write(_Call(fn, args, kw, read_only=False), later=True)

    def _submit_write(self, call: _Call[T], *, later: bool) -> Job[T]:
        """A write's job: on the event loop when it may run there (``_inline``), else in
        the thread's ``later`` or first line."""
        group = self._group_of(call.fn)
        if group is not None and self._inline_ok and self._workers.quiet():
            inline = self._inline(call, later=later)
            if inline is not None:
                return inline
        return self._workers.submit(self._run, call, later=later, group=group)

    def _inline(self, call: _Call[T], *, later: bool) -> LoopWrite[T] | None:
        """Queue ``call`` for the end of the event loop's round (``_run_round``); None
        off the loop, or on a thread other than the loop's that wrote first. Its future is
        the loop's own (``LoopWrite``): what it comes to reaches its caller without a
        thread's future and the wake-up of the loop that one's answer costs."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return None
        thread = threading.get_ident()
        if self._loop_thread is None:
            self._loop_thread = thread
        elif self._loop_thread != thread:
            return None
        future: LoopWrite[T] = LoopWrite(loop=loop)
        if not self._round:
            loop.call_soon(self._run_round)
        self._round.append((call, future, later))
        return future

    def _run_round(self) -> None:
        """Run the writes of the round that just ended on the loop's connection, in one
        transaction (each in a savepoint when there are several, as ``_run_group``). If
        SQLite's lock is held elsewhere (the database thread writing, another process),
        they go to the thread, which waits for it."""
        jobs = [j for j in self._round if not j[1].cancelled()]
        self._round = []
        if not jobs:
            return
        conn = self._loop_connection()
        calls = [call for call, _, _ in jobs]
        try:
            if len(calls) == 1:
                results = [self._run(calls[0], conn)]
            else:
                results = self._run_group(calls, conn)
        except Exception as exc:  # noqa: BLE001 - the callers' to handle
            if _locked(exc):  # at BEGIN: nothing ran, so the thread runs them, waiting
                for call, future, later in jobs:
                    future.relay(self._workers.submit(self._run, call, later=later))
                return
            for _, future, _ in jobs:  # one write's own error, or a group's BEGIN failed
                future.set_exception(exc)
            return
        for (_, future, _), result in zip(jobs, results, strict=True):
            _answer(future, result)
        self._unchecked += 1
        if self._unchecked >= _CHECKPOINT_EVERY and not self._checkpointing:
            self._checkpointing, self._unchecked = True, 0
            self._workers.submit(self._checkpoint_wal, None, later=True)

    def _loop_connection(self) -> Connection:
        """The event loop's connection: it never waits for SQLite's lock (the thread's
        waits instead), and leaves the WAL's checkpoints to the thread (``_run_round``
        asks for one every ``_CHECKPOINT_EVERY`` of its transactions), as one would stall
        the loop."""
        conn = self._loop_conn
        if conn is None or conn.closed or conn.invalidated:
            conn = self._loop_conn = self.engine.connect()
            driver = conn.connection.dbapi_connection
            assert driver is not None
            driver.execute("PRAGMA busy_timeout=0")
            driver.execute("PRAGMA wal_autocheckpoint=0")
        conn.info[_READ_ONLY] = False
        return conn

    def _checkpoint_wal(self, _: None) -> None:
        """Copy what the WAL holds into the database file as far as readers allow, on the
        database thread (``PRAGMA wal_checkpoint(PASSIVE)``: it takes no lock writers
        wait for)."""
        try:
            driver = self._connection(read_only=False).connection.dbapi_connection
            assert driver is not None
            driver.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        finally:
            self._checkpointing = False

    def _group_of(self, fn: Callable[..., Any]) -> Callable[[list[_Call[Any]]], list[Any]] | None:
        """How a write of ``fn`` runs with the writes queued beside it: on SQLite, whose one
        thread queues them, a ``group_commit`` write shares their transaction."""
        return self._grouped if getattr(fn, _GROUPED, False) else None

    async def read_later(
        self, fn: Callable[Concatenate[Connection, P], T], /, *args: P.args, **kw: P.kwargs
    ) -> T:
        """As ``read``, in the bookkeeping line (``write_later``)."""
        call = _Call(fn, args, kw, read_only=True)
        return await asyncio.wrap_future(self._workers.submit(self._run, call, later=True))

    def _connection(self, read_only: bool) -> Connection:
        """This thread's own connection, kept open (no pool round trip per transaction);
        the read-only one shares it, marked so that its transaction begins read-only
        (``_READ_ONLY``: SQLite's then takes no write lock)."""
        kept = self._kept.get(threading.get_ident())
        if kept is None or kept.closed or kept.invalidated:
            kept = self._kept[threading.get_ident()] = self.engine.connect()
        # A plain key of the connection's info, set for this transaction whichever way it
        # was last time (an execution option costs events and a new options map each time).
        kept.info[_READ_ONLY] = read_only
        return kept

    def _run(self, call: _Call[T], conn: Connection | None = None) -> T:
        if conn is None:
            conn = self._connection(call.read_only)
        transaction = conn.begin()
        try:
            result = call.fn(conn, *call.args, **call.kw)
            driver.send_all(conn, commit=True)
            transaction.commit()
        except BaseException as exc:
            conn.info.pop(_TOPICS, None)
            # Statements sent ahead (``send_ahead``) and not run are dropped; the errors of
            # those that ran are the statements' own.
            ahead: driver.Ahead | None = conn.info.pop(driver.AHEAD, None)
            transaction.rollback()  # also ends one whose commit failed
            if ahead is not None and (error := ahead.translated(exc)) is not None:
                raise error from None
            raise
        conn.info.pop(driver.AHEAD, None)  # run with the commit
        for topic in conn.info.pop(_TOPICS, ()):
            self._tell(topic)
        return result

    def _run_group(self, calls: list[_Call[Any]], conn: Connection | None = None) -> list[Any]:
        """Several writes in one transaction and one commit (group commit), each in a
        savepoint of its own: one that fails is rolled back alone and gets its error, the
        others are kept. Answers each one's result, or its exception; all of them get the
        error of a commit that fails. Listeners hear of the topics of those kept."""
        if conn is None:
            conn = self._connection(read_only=False)
        driver = conn.connection.dbapi_connection
        assert driver is not None
        results: list[Any] = []
        topics: set[str] = set()
        transaction = conn.begin()
        try:
            for call in calls:
                driver.execute("SAVEPOINT parley_write")
                try:
                    result = call.fn(conn, *call.args, **call.kw)
                except Exception as exc:  # noqa: BLE001 - that write's, given back to it
                    driver.execute("ROLLBACK TO parley_write")
                    results.append(_Failed(exc))
                else:
                    results.append(result)
                    topics |= conn.info.get(_TOPICS, set())
                driver.execute("RELEASE parley_write")
                conn.info.pop(_TOPICS, None)
            transaction.commit()
        except BaseException as exc:
            conn.info.pop(_TOPICS, None)
            transaction.rollback()
            if not isinstance(exc, Exception):
                raise
            return [_Failed(exc)] * len(calls)
        for topic in topics:
            self._tell(topic)
        return results

    def _tell(self, topic: str) -> None:
        for listener in self._listeners.get(topic, ()):
            try:
                listener()
            except Exception:  # committed all the same: a listener's fault is its own
                log.exception("a listener of %r failed", topic)

    async def migrate(self) -> None:
        """Bring the schema to the newest revision (idempotent, replica-safe)."""
        await asyncio.wrap_future(self._workers.submit(Database._migrate, self))

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
        from parley.store.migrations import HEAD

        with conn.begin():
            return schema_revision(conn) == HEAD

    async def dispose(self) -> None:
        if self._round:  # the writes of this round first
            self._run_round()
        self._inline_ok = False
        if self._loop_conn is not None:  # the event loop's, on its thread
            self._loop_conn.close()
            self._loop_conn = None
        # SQLite's one connection is closed in the thread that made it; psycopg's anywhere.
        await asyncio.wrap_future(self._workers.submit(Database._close_kept, self))
        self._workers.shutdown()

    def _close_kept(self) -> None:
        for conn in self._kept.values():
            conn.close()
        self._kept.clear()
        self.engine.dispose()


#: Transactions of the event loop's connection between two checkpoints of the WAL it asks
#: the database thread for: a claim writes about 15 pages, so about SQLite's own 1,000.
_CHECKPOINT_EVERY = 64


def _locked(exc: Exception) -> bool:
    """Whether SQLite refused a transaction because its lock is held elsewhere (the
    driver's error, as the BEGIN raises it, or the statement layer's around it)."""
    error = exc.orig if isinstance(exc, DBAPIError) else exc
    return getattr(error, "sqlite_errorname", None) in ("SQLITE_BUSY", "SQLITE_LOCKED")


def _answer(future: Future[Any] | asyncio.Future[Any], result: Any) -> None:
    """Give ``future`` the result of its write in a group (``_Failed``: its error)."""
    if isinstance(result, _Failed):
        future.set_exception(result.error)
    else:
        future.set_result(result)


class LoopWrite(asyncio.Future[T]):
    """The future of a write queued for the end of the event loop's round
    (``Database._inline``), answered on the loop. It is cancelled, as a thread's queued
    job is, only while nothing of the write has run: when SQLite's lock sends the write
    to the database thread (``relay``), only while the thread has not started it, and a
    ``cancel`` after that is refused (the task that asked is cancelled once the write
    ends, as ``asyncio.wrap_future`` leaves it for a thread's job)."""

    _job: Future[T] | None = None

    def relay(self, job: Future[T]) -> None:
        """The same write, run by the database thread instead: its end answers this."""
        self._job = job
        loop = self.get_loop()
        job.add_done_callback(lambda done: on_loop(loop, self._relayed, done))

    def _relayed(self, job: Future[T]) -> None:
        if self.done():
            return
        if job.cancelled():
            super().cancel()
        elif (error := job.exception()) is not None:
            self.set_exception(error)
        else:
            self.set_result(job.result())

    def cancel(self, msg: Any | None = None) -> bool:
        if self._job is not None and not self._job.cancel():
            return False
        return super().cancel(msg)


#: What a write's caller waits for: a database thread's job, or a write on the loop's own.
Job: TypeAlias = "Future[T] | LoopWrite[T]"


def on_loop(loop: asyncio.AbstractEventLoop, fn: Callable[..., None], *args: Any) -> None:
    """Call ``fn(*args)`` on ``loop`` from any thread; nothing once the loop has closed."""
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(fn, *args)


class _Call(Generic[T]):
    """One transaction's work: ``fn(conn, *args, **kw)``, read-only or not."""

    __slots__ = ("args", "fn", "kw", "read_only")

    def __init__(
        self,
        fn: Callable[..., T],
        args: tuple[Any, ...],
        kw: dict[str, Any],
        *,
        read_only: bool,
    ) -> None:
        self.fn, self.args, self.kw, self.read_only = fn, args, kw, read_only


class _Failed:
    """A write of a group that raised (``Database._run_group``): its error, for its caller."""

    __slots__ = ("error",)

    def __init__(self, error: Exception) -> None:
        self.error = error


#: The attribute that marks a write function ``group_commit``.
_GROUPED = "parley_group_commit"


def group_commit(fn: Callable[P, T]) -> Callable[P, T]:
    """Mark a write function that may share its transaction with the writes queued beside
    it (``Database._run_group``): on SQLite, under load, several claims, ends or
    checkpoints then cost one commit. Only for functions that keep no state of their own
    on the connection and whose failure is their own: each runs in a savepoint, rolled
    back alone when it raises."""
    setattr(fn, _GROUPED, True)
    return fn


#: The key of a connection's info that says its next transaction only reads.
_READ_ONLY = "parley_read_only"

#: The key of the topics a transaction will tell of once it commits (``notify``).
_TOPICS = "parley_notify"


#: How many times ``Database.write_retried`` runs a write that PostgreSQL aborted to break a
#: deadlock or a serialization conflict.
WRITE_TRIES = 3
#: The least pause before a write is run again (``Database.write_retried``), in seconds.
_RETRY_PAUSE = 0.02

#: PostgreSQL's errors of a transaction that lost a race it can win when run again: a
#: deadlock (the database aborted this one to free the other) and a serialization failure.
_RETRYABLE = frozenset({"40P01", "40001"})


def retryable(exc: BaseException) -> bool:
    """Whether ``exc`` (from ``Database.write``) aborted a transaction only to break a
    deadlock or a serialization conflict: nothing was written, and the same transaction
    run again can succeed."""
    return getattr(getattr(exc, "orig", None), "sqlstate", None) in _RETRYABLE


def notify(conn: Connection, topic: str) -> None:
    """Have the listeners of ``topic`` (``Database.listen``) told once this transaction
    commits; nothing is told of one that rolls back."""
    conn.info.setdefault(_TOPICS, set()).add(topic)


def send_ahead(conn: Connection) -> None:
    """From here to its commit, send the transaction's writes without waiting for each
    answer: on PostgreSQL the driver's (``parley.store.driver``) go with the COMMIT as one
    query, one round trip instead of one each (SQLite's statements cost no round trip:
    nothing changes there). What they answer can't be read, so call it once every read,
    and every compare-and-set update whose row count decides something, is done (a
    statement run after it sends those kept first). Their errors come with the commit
    (``translate_ahead``)."""
    if conn.dialect.name == "postgresql" and driver.AHEAD not in conn.info:
        conn.info[driver.AHEAD] = driver.Ahead()


def translate_ahead(
    conn: Connection, translate: Callable[[IntegrityError], Exception | None]
) -> None:
    """For a statement about to be sent ahead (``send_ahead``): ``translate`` turns a
    unique-key violation, which then comes with the commit, into the statement's own error
    (None: not its violation)."""
    if (ahead := conn.info.get(driver.AHEAD)) is not None:
        ahead.translators.append(translate)


class Workers:
    """The database threads and their work, in two lines. ``first``: work a client waits
    on (starting a turn, a request's reads and writes). ``later``: bookkeeping whose client
    is not waiting for it to begin (the end of a turn, checkpoints, heartbeats, sweeps).

    A thread takes the next ``first`` job, except that after ``FIRST_RUN`` of them taken in
    a row while ``later`` work waits, it takes a ``later`` one. With SQLite's one thread
    busy, a new turn's claim does not queue behind every other stream's end (under
    load the time to the first token is mostly that queue), and the ends still get a fifth
    of the thread at least. Within a line, jobs run in the order they came.

    The thread woken for a job is the one that went idle last: under a light load the same
    few threads run every job, on warm caches, instead of each of the pool's threads in
    turn (as a condition variable wakes them).

    The threads are daemons, as ``Database.dispose`` stops them: a process that exits
    without it does not wait for queued work, and a transaction cut off is rolled back.
    """

    FIRST_RUN = 4

    def __init__(self, count: int, name: str) -> None:
        self._lines: tuple[deque[_Job], deque[_Job]] = (deque(), deque())
        self._lock = threading.Lock()
        #: How to wake each thread waiting for work (a lock it waits to acquire), the one
        #: that began to wait last at the end.
        self._idle: list[threading.Lock] = []
        self._run = 0
        self._closed = False
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True)
            for i in range(count)
        ]
        for thread in self._threads:
            thread.start()

    #: The most jobs of one group run together.
    GROUP = 32

    def submit(
        self,
        fn: Callable[[A], T],
        arg: A,
        *,
        later: bool = False,
        group: Callable[[list[A]], list[Any]] | None = None,
    ) -> Future[T]:
        """``fn(arg)`` on a database thread, in the ``later`` line or the ``first``. With
        ``group``, jobs of the same group queued one after another in a line run together
        as ``group([arg, ...])``, which answers each one's result (``_Failed``: its
        error)."""
        job: _Job = (Future(), fn, arg, group)
        with self._lock:
            if self._closed:
                raise RuntimeError("the database threads have stopped")
            self._lines[later].append(job)
            if self._idle:
                self._idle.pop().release()
        return job[0]

    def quiet(self) -> bool:
        """Whether every thread waits for work (read without the lock: a hint)."""
        return not self._lines[0] and not self._lines[1] and len(self._idle) == len(self._threads)

    def shutdown(self) -> None:
        """Stop the threads once the work already queued is done."""
        with self._lock:
            self._closed = True
            while self._idle:
                self._idle.pop().release()
        for thread in self._threads:
            thread.join()

    def _next(self) -> list[_Job] | None:
        first, later = self._lines
        with self._lock:
            while not first and not later:
                if self._closed:
                    return None
                self._wait()
            if first and (not later or self._run < self.FIRST_RUN):
                self._run += 1 if later else 0  # a run counts while later work waits
                line = first
            else:
                self._run = 0
                line = later
            jobs = [line.popleft()]
            group = jobs[0][3]
            while group is not None and line and line[0][3] is group and len(jobs) < self.GROUP:
                jobs.append(line.popleft())
            return jobs

    def _wait(self) -> None:
        """Wait (holding ``_lock``, released meanwhile) until ``submit`` or ``shutdown``
        wakes this thread; a thread woken may find the work taken by another already."""
        wake = threading.Lock()
        wake.acquire()
        self._idle.append(wake)
        self._lock.release()
        try:
            wake.acquire()
        finally:
            self._lock.acquire()

    def _work(self) -> None:
        while (jobs := self._next()) is not None:
            jobs = [job for job in jobs if job[0].set_running_or_notify_cancel()]
            if len(jobs) == 1:
                future, fn, arg, _ = jobs[0]
                try:
                    result = fn(arg)
                except BaseException as exc:  # noqa: BLE001 - the caller's to handle
                    future.set_exception(exc)
                else:
                    future.set_result(result)
                del future, fn, arg
            elif jobs:
                group = jobs[0][3]
                assert group is not None
                try:
                    results = group([arg for _, _, arg, _ in jobs])
                except BaseException as exc:  # noqa: BLE001 - the callers' to handle
                    for future, *_ in jobs:
                        future.set_exception(exc)
                    del jobs
                    continue
                for (future, *_), result in zip(jobs, results, strict=True):
                    _answer(future, result)
                del results
            del jobs


_Job = tuple[Future[Any], Callable[[Any], Any], Any, Callable[[list[Any]], list[Any]] | None]


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


def _postgres_engine(url: str, echo: bool, pool_size: int) -> Engine:
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
        read_only = bool(conn.info.get(_READ_ONLY))
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


def schema_revision(conn: Connection) -> str | None:
    """The database's schema revision (Alembic's), None for a database never migrated."""
    from sqlalchemy import inspect

    if not inspect(conn).has_table("alembic_version"):
        return None
    value = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
    return None if value is None else str(value)


def at_head(conn: Connection, *, seen: bool = False) -> bool:
    """Whether the schema is at the newest migration. Once ``seen`` there (migrations only
    move forward), a read of a row of the version table answers that the database does
    (not a bare ``SELECT 1``: SQLite reads its file then)."""
    if seen:
        conn.exec_driver_sql("SELECT 1 FROM alembic_version").scalar()
        return True
    from parley.store.migrations import HEAD

    return schema_revision(conn) == HEAD


#: A transaction's errors that say it lost a race (a unique key taken meanwhile, a row it
#: names deleted): answered 409 ``conflict``, a retry may succeed (``lost_race``).
RACES: tuple[type[Exception], ...] = (IntegrityError,)


def lost_race(exc: Exception) -> Conflict | None:
    """``exc`` as the 409 its client is answered, when it is one of ``RACES``."""
    if not isinstance(exc, RACES):
        return None
    log.info("integrity conflict: %s", getattr(exc, "orig", None))
    return Conflict("The request conflicts with the current state; retry.", code="conflict")
