"""``Database``: the one way to the database, its transactions run on database threads;
ids and the clock.

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

Beside it: the engines (``engines``), the threads (``workers``), what a data function asks
of its transaction (``transaction``) and the schema's revision (``schema``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Concatenate, Generic, ParamSpec, TypeAlias, TypeVar

from sqlalchemy import Engine, make_url
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from parley.store import driver, schema
from parley.store.engines import READ_ONLY, postgres_engine, sqlite_engine
from parley.store.transaction import TOPICS, WRITE_TRIES, grouped, retryable
from parley.store.workers import Failed, Workers, answer
from parley.wake import Wake

__all__ = [
    "Database",
    "Job",
    "LoopWrite",
    "new_id",
    "normalise_url",
    "now",
    "on_loop",
    "until_woken",
]

log = logging.getLogger("parley.store")

_PG_POOL = 16
#: The least pause before a write is run again (``Database.write_retried``), in seconds.
_RETRY_PAUSE = 0.02

T = TypeVar("T")
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
            return postgres_engine(self.url, echo, self.pool_size)
        pool_size = 2 if self._inline_ok else 1  # the thread's and the event loop's
        return sqlite_engine(self.url, echo, pool_size, self._file)

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
            answer(future, result)
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
        conn.info[READ_ONLY] = False
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
        return self._grouped if grouped(fn) else None

    async def read_later(
        self, fn: Callable[Concatenate[Connection, P], T], /, *args: P.args, **kw: P.kwargs
    ) -> T:
        """As ``read``, in the bookkeeping line (``write_later``)."""
        call = _Call(fn, args, kw, read_only=True)
        return await asyncio.wrap_future(self._workers.submit(self._run, call, later=True))

    def _connection(self, read_only: bool) -> Connection:
        """This thread's own connection, kept open (no pool round trip per transaction);
        the read-only one shares it, marked so that its transaction begins read-only
        (``READ_ONLY``: SQLite's then takes no write lock)."""
        kept = self._kept.get(threading.get_ident())
        if kept is None or kept.closed or kept.invalidated:
            kept = self._kept[threading.get_ident()] = self.engine.connect()
        # A plain key of the connection's info, set for this transaction whichever way it
        # was last time (an execution option costs events and a new options map each time).
        kept.info[READ_ONLY] = read_only
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
            conn.info.pop(TOPICS, None)
            # Statements sent ahead (``send_ahead``) and not run are dropped; the errors of
            # those that ran are the statements' own.
            ahead: driver.Ahead | None = conn.info.pop(driver.AHEAD, None)
            transaction.rollback()  # also ends one whose commit failed
            if ahead is not None and (error := ahead.translated(exc)) is not None:
                raise error from None
            raise
        conn.info.pop(driver.AHEAD, None)  # run with the commit
        for topic in conn.info.pop(TOPICS, ()):
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
                    results.append(Failed(exc))
                else:
                    results.append(result)
                    topics |= conn.info.get(TOPICS, set())
                driver.execute("RELEASE parley_write")
                conn.info.pop(TOPICS, None)
            transaction.commit()
        except BaseException as exc:
            conn.info.pop(TOPICS, None)
            transaction.rollback()
            if not isinstance(exc, Exception):
                raise
            return [Failed(exc)] * len(calls)
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
        schema.migrate(self._connection(read_only=False))

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
