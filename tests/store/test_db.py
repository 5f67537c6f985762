"""``Database``: a read is one snapshot of the database, and statements sent ahead commit
with their transaction or not at all, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import re
import sys
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, IntegrityError

from parley.errors import Conflict
from parley.store import runs, threads, users
from parley.store.db import Database, Job, LoopWrite, new_id
from parley.store.pagination import ListQuery
from parley.store.records import User
from parley.store.transaction import group_commit, notify, send_ahead
from parley.types import Role
from tests.harness import FreshDatabase


async def test_a_read_sees_one_state_of_the_database(tmp_path: Path) -> None:
    """What another connection commits while a read runs is not in that read, not even in
    its later statements (it is in the next read). A read that decides from several
    statements (where a response goes next) must not see half of another request's write."""
    fresh = FreshDatabase(tmp_path)
    db, other = Database(fresh.url), Database(fresh.url)
    try:
        await db.migrate()
        user = await db.write(lambda c: users.create_user(c, name="u"))

        def count(conn: Connection) -> int:
            page, _ = threads.list_threads(
                conn, user_id=user.id, page=ListQuery(limit=10, order="asc")
            )
            return len(page)

        def count_twice(conn: Connection) -> tuple[int, int]:
            before = count(conn)
            with other.engine.begin() as writer:  # committed between the two statements
                threads.create_thread(writer, user_id=user.id, metadata={})
            return before, count(conn)

        assert await db.read(count_twice) == (0, 0)
        assert await db.read(count) == 1
    finally:
        await other.dispose()
        await db.dispose()
        fresh.drop()


async def test_json_columns_keep_what_is_stored_and_clean_nul(db: Database) -> None:
    """A JSON column reads back what was written (keys that are not strings as strings,
    integers past 64 bits, non-ASCII text), with U+0000 in its strings as U+FFFD, and a
    backslash followed by ``u0000`` (not a NUL) left as it is."""
    user = await db.write(lambda c: users.create_user(c, name="u"))
    metadata = {
        "nul\x00key": "a\x00b",
        "escape": "\\u0000 is text",
        "nested": [{"deep": "x\x00"}, 1.5, None, True],
        "big": 2**70,
        "text": "héllo ✓",
        7: "seven",
    }
    made = await db.write(lambda c: threads.create_thread(c, user_id=user.id, metadata=metadata))
    read = await db.read(lambda c: threads.get_thread(c, user_id=user.id, thread_id=made.id))
    assert read.metadata == {
        "nul\ufffdkey": "a\ufffdb",
        "escape": "\\u0000 is text",
        "nested": [{"deep": "x\ufffd"}, 1.5, None, True],
        "big": 2**70,
        "text": "héllo ✓",
        "7": "seven",
    }


def _thread_count(db: Database, user_id: str) -> Any:
    def count(conn: Connection) -> int:
        page, _ = threads.list_threads(
            conn, user_id=user_id, page=ListQuery(limit=100, order="asc")
        )
        return len(page)

    return db.read(count)


async def test_statements_sent_ahead_are_committed_with_their_transaction(db: Database) -> None:
    """``send_ahead`` (one PostgreSQL pipeline up to the commit; nothing on SQLite): what the
    transaction wrote after it is there once it has committed, and the connection's next
    transactions read and write as before."""
    user = await db.write(lambda c: users.create_user(c, name="u"))

    def write(conn: Connection) -> str:
        assert users.count_users(conn) == 1  # a read before: answered at once
        send_ahead(conn)
        thread = threads.create_thread(conn, user_id=user.id, metadata={"k": 1}, message_count=2)
        rows = [
            threads.new_message(thread_id=thread.id, seq=s, role=Role.USER, content=f"m{s}")
            for s in (1, 2)
        ]
        threads.insert_messages(conn, user_id=user.id, rows=rows)
        return thread.id

    for _ in range(3):  # the same pooled connection, again and again
        made = await db.write(write)
        kept = await db.read(threads.thread_context, thread_id=made)
        assert [m.content for m in kept] == ["m1", "m2"]
    assert await _thread_count(db, user.id) == 3


async def test_a_violation_sent_ahead_is_the_statement_own_error_and_loses_nothing(
    db: Database,
) -> None:
    """A run inserted ahead into a busy thread fails at the commit, as ``thread_busy`` (the
    error ``create_run`` raises itself); nothing of its transaction is kept, and the
    connection goes on working. A Python error after statements sent ahead rolls them back."""
    user = await db.write(lambda c: users.create_user(c, name="u"))
    thread = await db.write(lambda c: threads.create_thread(c, user_id=user.id, metadata={}))
    args: dict[str, Any] = dict(
        user_id=user.id,
        thread_id=thread.id,
        assistant_id=None,
        model="demo/x",
        instructions=None,
        tools=[],
        parameters={},
    )
    await db.write(lambda c: runs.create_run(c, **args))

    def busy(conn: Connection) -> None:
        send_ahead(conn)
        threads.create_thread(conn, user_id=user.id, metadata={"lost": True})
        runs.create_run(conn, **args)

    for _ in range(2):
        with pytest.raises(Conflict) as refused:
            await db.write(busy)
        assert refused.value.code == "thread_busy"
        assert str(thread.id) in str(refused.value)
        assert await _thread_count(db, user.id) == 1

    def broken(conn: Connection) -> None:
        send_ahead(conn)
        threads.create_thread(conn, user_id=user.id, metadata={"lost": True})
        raise RuntimeError("after the statements")

    with pytest.raises(RuntimeError):
        await db.write(broken)
    assert await _thread_count(db, user.id) == 1
    again = await db.write(lambda c: threads.create_thread(c, user_id=user.id, metadata={}))
    assert again.id and await _thread_count(db, user.id) == 2


#: Text that quoting must not change: quotes, backslashes, placeholders of every driver,
#: a statement's end, a comment, a line break, and characters beyond ASCII.
_AWKWARD = (
    "it's \\' \\\\x00 %s %(x)s $1 ? ;-- DROP TABLE runs; /* */\n\t\u00e9\u4e2d\U0001f600 E'\\'"
)


def _queued_run(conn: Connection, user_id: str, thread_id: str, **given: Any) -> Any:
    """A run of the demo model on ``thread_id``, ``given`` as ``runs.create_run`` takes it."""
    values: dict[str, Any] = dict(
        assistant_id=None, model="demo/x", instructions=None, tools=[], parameters={}
    )
    return runs.create_run(conn, user_id=user_id, thread_id=thread_id, **(values | given))


async def test_values_sent_ahead_are_stored_exactly(db: Database) -> None:
    """On PostgreSQL the writes sent ahead go as SQL text with their values quoted in it
    (one query with the commit): awkward text in a text column and in JSON, a U+0000 (a
    message's text stores it as U+FFFD, as every write does), a float's every digit and
    the log's compressed bytes read back as they were given."""
    user = await db.write(lambda c: users.create_user(c, name="u"))
    created_at = 1795832773.5806453
    events = [(1, "content.delta", orjson.dumps({"text": _AWKWARD}).decode())]

    def write(conn: Connection) -> tuple[str, str]:
        send_ahead(conn)
        thread = threads.create_thread(conn, user_id=user.id, metadata={"k": _AWKWARD})
        row = threads.new_message(
            thread_id=thread.id,
            seq=1,
            role=Role.ASSISTANT,
            content=_AWKWARD + "\x00",
            tool_calls=[{"id": "call_1", "arguments": _AWKWARD}],
        )
        row.created_at = created_at
        threads.insert_messages(conn, user_id=user.id, rows=[row])
        run = _queued_run(conn, user.id, thread.id, instructions=_AWKWARD)
        runs.append_events(conn, run_id=run.id, events=events)
        return thread.id, run.id

    thread_id, run_id = await db.write(write)

    def read(conn: Connection) -> tuple[Any, ...]:
        thread = threads.get_thread(conn, user_id=user.id, thread_id=thread_id)
        (message,) = threads.thread_context(conn, thread_id=thread_id)
        run = runs.get_run(conn, run_id=run_id)
        logged = runs.read_events(conn, run_id=run_id, after=0)
        return thread.metadata, message, run.instructions, logged

    metadata, message, instructions, logged = await db.read(read)
    assert metadata == {"k": _AWKWARD}
    assert message.content == _AWKWARD + "\ufffd"
    assert message.tool_calls == [{"id": "call_1", "arguments": _AWKWARD}]
    assert message.created_at == created_at
    assert instructions == _AWKWARD
    assert [(e.seq, e.type, e.data) for e in logged] == events


async def test_a_statement_after_writes_sent_ahead_sees_them(db: Database) -> None:
    """A read run after writes sent ahead, by the statement layer or the driver, finds what
    they wrote: on PostgreSQL they are run first. The transaction still commits once."""
    user = await db.write(lambda c: users.create_user(c, name="u"))

    def write(conn: Connection) -> tuple[int, list[str]]:
        send_ahead(conn)
        thread = threads.create_thread(conn, user_id=user.id, metadata={})
        run = _queued_run(conn, user.id, thread.id)
        seen = threads.get_thread(conn, user_id=user.id, thread_id=thread.id)  # the layer's
        assert seen.id == thread.id
        alive = runs.in_progress_ids(conn, run_ids=[run.id])  # the driver's
        threads.create_thread(conn, user_id=user.id, metadata={"after": True})
        return users.count_users(conn), alive

    assert await db.write(write) == (1, [])  # the run is queued, not in progress
    assert await _thread_count(db, user.id) == 2


async def test_a_value_no_column_can_hold_fails_its_write_alone(db: Database) -> None:
    """A text PostgreSQL cannot store (a U+0000 in a column that does not clean it) fails
    the write with the driver's error as the statement layer gives it; nothing of it is
    kept and the connection goes on."""
    user = await db.write(lambda c: users.create_user(c, name="u"))

    def write(conn: Connection) -> None:
        send_ahead(conn)
        thread = threads.create_thread(conn, user_id=user.id, metadata={})
        _queued_run(conn, user.id, thread.id, lease=("boot\x00", 1.0))

    if db.is_sqlite:  # SQLite's text holds it: nothing to refuse
        await db.write(write)
        return
    with pytest.raises(DBAPIError, match="NUL"):
        await db.write(write)
    assert await _thread_count(db, user.id) == 0
    await db.write(lambda c: threads.create_thread(c, user_id=user.id, metadata={}))
    assert await _thread_count(db, user.id) == 1


async def test_a_failed_write_sent_ahead_names_its_statements_not_all_their_values(
    db: Database,
) -> None:
    """A violation among writes sent ahead fails the transaction whole; its error, which a
    log repeats, shows the start of the statements, not a megabyte of a message's text."""
    user = await db.write(lambda c: users.create_user(c, name="u"))
    thread = await db.write(lambda c: threads.create_thread(c, user_id=user.id, metadata={}))
    big = "x" * 1_000_000

    def write(conn: Connection) -> None:
        send_ahead(conn)
        threads.create_thread(conn, user_id=user.id, metadata={})
        rows = [
            threads.new_message(thread_id=thread.id, seq=1, role=Role.USER, content=big)
            for _ in range(2)  # the same place in the thread twice
        ]
        threads.insert_messages(conn, user_id=user.id, rows=rows)

    with pytest.raises(IntegrityError) as failed:
        await db.write(write)
    assert len(str(failed.value)) < 5000
    assert await _thread_count(db, user.id) == 1


def test_every_column_type_of_ours_lets_its_statements_be_cached() -> None:
    """SQLAlchemy caches a statement's compiled form only if each of its types says it may
    (``cache_ok`` on the class itself: it is not inherited); a type without it makes every
    statement naming its columns compile again each time."""
    from sqlalchemy.types import TypeDecorator

    from parley.store import tables

    ours = {
        type(column.type)
        for table in tables.metadata.tables.values()
        for column in table.columns
        if isinstance(column.type, TypeDecorator)
    }
    assert ours, "the tables use types of their own"
    assert [t.__name__ for t in ours if t.__dict__.get("cache_ok") is not True] == []


async def test_a_transaction_takes_its_function_and_the_arguments_to_call_it_with(
    db: Database,
) -> None:
    """``db.write(fn, *args, **kw)`` calls ``fn(conn, *args, **kw)``; a function of the
    connection alone (a ``functools.partial`` made beforehand) is taken as before."""
    user = await db.write(users.create_user, name="u")
    made = await db.write(threads.create_thread, user_id=user.id, metadata={"k": "v"})
    read = await db.read(threads.get_thread, user_id=user.id, thread_id=made.id)
    assert read.metadata == {"k": "v"}
    bound = functools.partial(threads.get_thread, user_id=user.id, thread_id=made.id)
    assert (await db.read(bound)).id == made.id
    assert (await db.read_later(threads.get_thread, user_id=user.id, thread_id=made.id)).id
    later = await db.write_later(users.create_user, name="w")
    assert isinstance(later, User)
    assert await db.read(users.count_users) == 2


@contextlib.asynccontextmanager
async def _held(db: Database) -> AsyncIterator[None]:
    """SQLite's one database thread held by a read until the block has queued its work
    (and a moment more); the work runs once the block ends."""
    busy, release = threading.Event(), threading.Event()

    def hold(_: Connection) -> None:
        busy.set()
        release.wait(10)

    held = asyncio.ensure_future(db.read(hold))
    try:
        assert await asyncio.to_thread(busy.wait, 10)
        yield
        await asyncio.sleep(0.05)  # all queued behind the one held
    finally:
        release.set()
        await held


async def test_bookkeeping_waits_behind_the_work_clients_wait_on(tmp_path: Path) -> None:
    """On SQLite's one database thread, a ``write`` queued after a ``write_later`` runs
    first (``Workers``: the first line before the later one)."""
    db = Database(f"sqlite:///{tmp_path / 'lines.db'}")
    done: list[str] = []

    def note(_: Connection, what: str) -> None:
        done.append(what)

    try:
        await db.migrate()
        async with _held(db):
            later = asyncio.ensure_future(db.write_later(note, "later"))
            first = asyncio.ensure_future(db.write(note, what="first"))
        await asyncio.gather(later, first)
        assert done == ["first", "later"]
    finally:
        await db.dispose()


async def test_listeners_hear_of_a_topic_once_its_transaction_commits(db: Database) -> None:
    heard: list[str] = []
    before: list[int] = []  # what was heard when each transaction ran: nothing new yet
    db.listen("topic", lambda: heard.append("one"))
    db.listen("topic", lambda: heard.append("two"))
    db.listen("other", lambda: heard.append("other"))

    def told(conn: Connection, fail: bool) -> None:
        notify(conn, "topic")
        notify(conn, "topic")  # told once all the same
        before.append(len(heard))
        if fail:
            raise Conflict("rolled back", code="test")

    with pytest.raises(Conflict):
        await db.write(told, True)
    assert heard == []  # nothing of a transaction that rolled back
    await db.write(lambda conn: None)
    assert heard == []  # nor of one that named no topic
    await db.write(told, False)
    assert heard == ["one", "two"]

    def broken() -> None:
        raise RuntimeError("its loop is closed")

    db.listen("topic", broken)
    await db.write(told, False)  # committed, and said so, whatever a listener does
    assert heard == ["one", "two", "one", "two"]
    assert before == [0, 0, 2]


@group_commit
def _grouped_insert(conn: Connection, name: str, fail: bool = False) -> object:
    """A user named ``name``, told of on "users", failing afterwards with ``fail``: the
    transaction it ran in (held, so that no later one can take its place in memory)."""
    users.create_user(conn, name=name)
    notify(conn, f"user:{name}")
    if fail:
        raise Conflict("this one fails", code="test")
    return conn.get_transaction()


def _user_names(conn: Connection) -> list[str]:
    return sorted(u.user.name for u in users.list_users(conn))


async def test_grouped_writes_queued_together_share_one_commit(tmp_path: Path) -> None:
    """``group_commit`` writes queued one after another on SQLite's thread run in one
    transaction, each in a savepoint: one that fails is rolled back alone and gets its
    own error, the others are kept and their topics told once committed."""
    db = Database(f"sqlite:///{tmp_path / 'group.db'}")
    heard: list[str] = []
    try:
        await db.migrate()
        for name in ("a", "b", "c", "d"):
            db.listen(f"user:{name}", functools.partial(heard.append, name))
        async with _held(db):
            writes = [
                asyncio.ensure_future(db.write(_grouped_insert, name, fail=name == "b"))
                for name in ("a", "b", "c")
            ]
            alone = asyncio.ensure_future(db.write(lambda c: c.get_transaction()))
        results = await asyncio.gather(*writes, alone, return_exceptions=True)
        a, b, c, other = results
        assert isinstance(b, Conflict)
        assert a is c and c is not other  # a and c shared one; the plain write had its own
        assert await db.read(_user_names) == ["a", "c"]
        assert sorted(heard) == ["a", "c"]
        # One alone is a transaction of its own as before.
        assert await db.write(_grouped_insert, "d") not in (a, other)
        assert await db.read(_user_names) == ["a", "c", "d"]
    finally:
        await db.dispose()


async def test_grouped_writes_on_postgresql_run_alone(db: Database) -> None:
    """PostgreSQL's threads run writes side by side: a ``group_commit`` write is a
    transaction of its own there (and anywhere it is not queued beside another)."""
    if db.is_sqlite:
        pytest.skip("PostgreSQL's case: PARLEY_TEST_DATABASE_URL")
    results = await asyncio.gather(
        *(db.write(_grouped_insert, n, fail=n == "y") for n in ("x", "y", "z")),
        return_exceptions=True,
    )
    assert isinstance(results[1], Conflict)
    assert await db.read(_user_names) == ["x", "z"]


def test_ids_made_one_after_another_sort_one_after_another() -> None:
    """An id is its prefix and 24 hex digits, and a later id sorts after an earlier one once
    their milliseconds differ: new rows go to the end of each index on an id."""
    made = []
    for _ in range(5):
        made.append(new_id("msg"))
        time.sleep(0.002)
    assert all(re.fullmatch(r"msg_[0-9a-f]{24}", i) for i in made)
    assert made == sorted(made)
    assert len({new_id("run") for _ in range(10_000)}) == 10_000


async def _quiet(db: Database) -> None:
    """Wait until the database thread waits for work (it answers a job before it does)."""
    deadline = time.monotonic() + 10
    while not db._workers.quiet():
        assert time.monotonic() < deadline, "the database thread stayed busy"
        await asyncio.sleep(0.001)


@group_commit
def _where(conn: Connection, name: str, fail: bool = False) -> tuple[int, object]:
    """``_grouped_insert``, answering the thread it ran on as well."""
    return threading.get_ident(), _grouped_insert(conn, name, fail)


async def test_grouped_writes_of_a_quiet_thread_run_on_the_loop_a_round_together(
    tmp_path: Path,
) -> None:
    """With SQLite's thread idle, the ``group_commit`` writes of one round of the event loop
    run at its end on the loop's own connection, in one transaction (each in a savepoint, as
    on the thread); a write that is not ``group_commit`` still goes to the thread."""
    db = Database(f"sqlite:///{tmp_path / 'loop.db'}")
    heard: list[str] = []
    loop_thread = threading.get_ident()
    try:
        await db.migrate()
        for name in ("a", "b", "c", "d"):
            db.listen(f"user:{name}", functools.partial(heard.append, name))
        await _quiet(db)
        a, b, c = await asyncio.gather(
            *(db.write(_where, name, fail=name == "b") for name in ("a", "b", "c")),
            return_exceptions=True,
        )
        assert isinstance(b, Conflict)
        assert isinstance(a, tuple) and isinstance(c, tuple)
        assert a[0] == c[0] == loop_thread
        assert a[1] is c[1]  # one transaction
        assert sorted(heard) == ["a", "c"]  # told on the loop, once committed
        await _quiet(db)
        thread, transaction = await db.write_later(_where, "d")
        assert thread == loop_thread and transaction is not a[1]
        assert await db.write(lambda c: threading.get_ident()) != loop_thread
        assert await db.read(_user_names) == ["a", "c", "d"]
    finally:
        await db.dispose()


async def _hold_the_lock(path: Path) -> asyncio.subprocess.Process:
    """Another process that holds the SQLite file's write lock until a line comes on its
    stdin, and then commits."""
    holder = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "import sqlite3, sys\n"
        f"c = sqlite3.connect({str(path)!r}, isolation_level=None)\n"
        "c.execute('BEGIN IMMEDIATE'); print('held', flush=True)\n"
        "sys.stdin.readline(); c.execute('COMMIT')\n",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert holder.stdin is not None and holder.stdout is not None
    assert await holder.stdout.readline() == b"held\n"
    return holder


async def _let_go(holder: asyncio.subprocess.Process) -> int:
    """Have ``_hold_the_lock``'s process commit; its exit status."""
    assert holder.stdin is not None
    holder.stdin.write(b"go\n")
    await holder.stdin.drain()
    return await holder.wait()


async def test_a_lock_held_elsewhere_sends_the_loop_writes_to_the_thread(tmp_path: Path) -> None:
    """A ``group_commit`` write meant for the loop while another process holds SQLite's
    write lock does not stall the loop: the database thread runs it once the lock is free."""
    path = tmp_path / "locked.db"
    db = Database(f"sqlite:///{path}")
    loop_thread = threading.get_ident()
    try:
        await db.migrate()
        holder = await _hold_the_lock(path)
        await _quiet(db)
        write = asyncio.ensure_future(db.write(_where, "waits"))
        began = time.monotonic()
        ticks = 0
        while time.monotonic() - began < 0.3:  # the loop goes on meanwhile
            await asyncio.sleep(0.01)
            ticks += 1
        assert ticks >= 10
        assert not write.done()
        assert await _let_go(holder) == 0
        thread, _ = await asyncio.wait_for(write, 10)
        assert thread != loop_thread
        await _quiet(db)
        assert (await db.write(_where, "after"))[0] == loop_thread  # the loop's again
        assert await db.read(_user_names) == ["after", "waits"]
    finally:
        await db.dispose()


async def test_a_loop_write_is_cancelled_only_while_nothing_of_it_has_run(
    tmp_path: Path,
) -> None:
    """A caller that stops waiting for a write queued for the loop's round cancels it:
    nothing is written and its job says so. Once the database thread runs it instead (the
    lock is held elsewhere), a cancel is refused: the write lands, its job has its result,
    and the caller is cancelled when it ends (as with any thread's job)."""
    path = tmp_path / "cancel.db"
    db = Database(f"sqlite:///{path}")
    try:
        await db.migrate()
        await _quiet(db)
        jobs: list[Job[tuple[int, object]]] = []

        async def write(name: str) -> tuple[int, object]:
            jobs.append(db.write_job(_where, name))
            return await asyncio.wrap_future(jobs[-1])

        waiting = asyncio.ensure_future(write("dropped"))
        await asyncio.sleep(0)  # the writer waits; the round it wrote in has not ended
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert jobs[0].cancelled()
        assert await db.read(_user_names) == []

        holder = await _hold_the_lock(path)
        await _quiet(db)
        waiting = asyncio.ensure_future(write("kept"))
        await asyncio.sleep(0)
        job = jobs[-1]
        assert isinstance(job, LoopWrite)
        deadline = time.monotonic() + 10
        # The round ended and the lock sent the write to the thread, which started it and
        # waits for the lock (queued there, not yet started, it could still be cancelled).
        while job._job is None or not job._job.running():
            assert time.monotonic() < deadline, "the write never reached the thread"
            await asyncio.sleep(0.005)
        assert not job.cancel()
        waiting.cancel()
        await asyncio.sleep(0.05)
        assert not waiting.done()
        assert await _let_go(holder) == 0
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(waiting, 10)
        assert not job.cancelled()
        thread, _ = job.result()
        assert thread != threading.get_ident()
        assert await db.read(_user_names) == ["kept"]
    finally:
        await db.dispose()


async def test_the_loop_writes_have_the_thread_checkpoint_the_wal(tmp_path: Path) -> None:
    """The loop's connection never checkpoints the WAL itself (that would stall the loop):
    the thread does, every so many of its transactions, so the WAL stays small."""
    path = tmp_path / "wal.db"
    db = Database(f"sqlite:///{path}")

    @group_commit
    def big(conn: Connection, n: int) -> None:
        conn.exec_driver_sql("INSERT INTO blobs (n, data) VALUES (?, ?)", (n, "x" * 8000))

    try:
        await db.write(lambda c: c.exec_driver_sql("CREATE TABLE blobs (n INTEGER, data TEXT)"))
        for n in range(600):  # about 1,800 pages: 10 MB of WAL, were it never checkpointed
            await _quiet(db)
            await db.write(big, n)
            if n % 50 == 49:  # the thread's bookkeeping line, a checkpoint asked for first
                await db.read_later(lambda c: None)
        assert await asyncio.to_thread(os.path.getsize, f"{path}-wal") < 3_000_000
        assert await db.read(lambda c: c.exec_driver_sql("SELECT count(*) FROM blobs").scalar())
    finally:
        await db.dispose()
