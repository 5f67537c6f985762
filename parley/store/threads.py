"""Threads and their messages. Messages are ordered by a per-thread sequence number taken
from the thread row in the same statement that bumps it, so concurrent writers never clash."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from typing import Any

from sqlalchemy import and_, bindparam, cast, delete, exists, func, or_, select, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from parley.errors import Conflict, NotFound
from parley.store import driver
from parley.store.db import new_id, now
from parley.store.pagination import ListQuery, fetch_page
from parley.store.records import Message, Run, Thread
from parley.store.tables import ITEM_ID_LENGTH, actions, messages, runs, threads, without_nul
from parley.types import Role

# Statements of the hot path, built once.
#: The scratch thread of a ``store: false`` response, and a thread anyone may see.
SCRATCH = threads.c.scratch_until.is_not(None)
VISIBLE = threads.c.scratch_until.is_(None)
_GET_ANY_THREAD = select(threads).where(
    threads.c.id == bindparam("thread_id"), threads.c.user_id == bindparam("user_id")
)
_GET_THREAD = _GET_ANY_THREAD.where(VISIBLE)
_LOCK_ANY_THREAD = _GET_ANY_THREAD.with_for_update()
_LOCK_THREAD = _GET_THREAD.with_for_update()
_LOCK_THREAD_RUNS = (
    select(runs.c.status)
    .where(runs.c.thread_id == bindparam("thread_id"))
    .order_by(runs.c.id)
    .with_for_update()
)
_CONTEXT = (
    select(messages).where(messages.c.thread_id == bindparam("thread_id")).order_by(messages.c.seq)
)
# (Bound names in an UPDATE may not be column names, hence the b_ prefix.)
_RESERVE = (
    update(threads)
    .where(threads.c.id == bindparam("b_thread_id"), threads.c.user_id == bindparam("b_user_id"))
    .values(message_count=threads.c.message_count + bindparam("b_count"))
    .returning(threads.c.message_count)
)
_STATE = select(threads.c.context_version, threads.c.message_count).where(
    threads.c.id == bindparam("thread_id")
)
_BUMP_VERSION = (
    update(threads)
    .where(
        threads.c.id
        == select(messages.c.thread_id)
        .where(messages.c.id == bindparam("b_message_id"))
        .scalar_subquery()
    )
    .values(context_version=threads.c.context_version + 1)
)
_TEXT = ("content", "reasoning", "layout")
_SAVE_TEXT = driver.update(messages, _TEXT, "id = ?")
_SAVE_END = driver.update(messages, (*_TEXT, "tool_calls", "provider_state", "usage"), "id = ?")
#: The most values one query's ``IN`` lists (SQLite bounds a statement's variables): a
#: longer list is looked for in slices.
IN_SLICE = 500


def _thread_not_found(thread_id: str) -> NotFound:
    return NotFound(f"No thread with id {thread_id}.", code="thread_not_found")


def create_thread(
    conn: Connection,
    *,
    user_id: str,
    metadata: dict[str, Any],
    message_count: int = 0,
    scratch_until: float | None = None,
) -> Thread:
    """A new thread; ``message_count`` reserves that many sequence numbers for messages
    the caller inserts in the same transaction. With ``scratch_until``, a scratch thread
    (``tables.threads``) held until then."""
    thread = Thread(id=new_id("thread"), user_id=user_id, metadata=metadata, created_at=now())
    values = {
        "id": thread.id,
        "user_id": user_id,
        "metadata": metadata,
        "message_count": message_count,
        "created_at": thread.created_at,
    }
    if scratch_until is not None:
        values["scratch_until"] = scratch_until
    driver.insert_rows(conn, threads, [values])
    return thread


def get_thread(conn: Connection, *, user_id: str, thread_id: str, scratch: bool = False) -> Thread:
    """The user's thread; a scratch thread only with ``scratch`` (the engine's own)."""
    query = _GET_ANY_THREAD if scratch else _GET_THREAD
    row = conn.execute(query, {"thread_id": thread_id, "user_id": user_id}).first()
    if row is None:
        raise _thread_not_found(thread_id)
    return Thread.from_row(row)


def lock_thread(conn: Connection, *, user_id: str, thread_id: str, scratch: bool = False) -> Thread:
    """The thread, locked for the rest of the transaction (SQLite's write lock already is):
    what the transaction reads of its messages next includes those of every writer of the
    thread that committed before, and no other writer adds any until it ends. A scratch
    thread only with ``scratch``."""
    if conn.dialect.name == "postgresql":
        query = _LOCK_ANY_THREAD if scratch else _LOCK_THREAD
    else:
        query = _GET_ANY_THREAD if scratch else _GET_THREAD
    row = conn.execute(query, {"thread_id": thread_id, "user_id": user_id}).first()
    if row is None:
        raise _thread_not_found(thread_id)
    return Thread.from_row(row)


def list_threads(
    conn: Connection,
    *,
    user_id: str,
    page: ListQuery,
    metadata: Mapping[str, str] | None = None,
) -> tuple[list[Thread], bool]:
    """A page of the user's threads; with ``metadata``, only those whose metadata holds
    each of its keys with that string value."""
    where = and_(threads.c.user_id == user_id, VISIBLE)
    if metadata:
        where = and_(where, _metadata_holds(conn, metadata))
    rows, more = fetch_page(
        conn,
        threads,
        where=where,
        sort_column="created_at",
        page=page,
    )
    return [Thread.from_row(r) for r in rows], more


def _metadata_holds(conn: Connection, pairs: Mapping[str, str]) -> ColumnElement[bool]:
    """Metadata that has every key of ``pairs`` with that string value (a number or any
    other JSON value never equals a string)."""
    column = threads.c.metadata
    if conn.dialect.name == "postgresql":  # containment: one test for all pairs, indexable
        return column.op("@>")(cast(without_nul(dict(pairs)), JSONB))
    tests = []
    for key, value in pairs.items():  # SQLite: json_each decodes keys as stored (escaped)
        entry = func.json_each(column).table_valued("key", "type", "value").alias()
        tests.append(
            exists().where(
                entry.c.key == without_nul(key),
                entry.c.type == "text",
                entry.c.value == without_nul(value),
            )
        )
    return and_(*tests)


def delete_thread(conn: Connection, *, user_id: str, thread_id: str) -> None:
    """Delete the thread with its messages and runs. Its runs are locked first (on
    PostgreSQL), as every writer locks a run before its thread: so no turn starts meanwhile,
    and the delete waits for one that is settling instead of deadlocking with it."""
    get_thread(conn, user_id=user_id, thread_id=thread_id)
    if _runs_in_progress(conn, thread_id):
        raise Conflict(
            "The thread has a run in progress; cancel it before deleting the thread.",
            code="thread_busy",
        )
    result = conn.execute(
        delete(threads).where(threads.c.id == thread_id, threads.c.user_id == user_id, VISIBLE)
    )
    if result.rowcount == 0:
        raise _thread_not_found(thread_id)


# ------------------------------------------------------------------ scratch threads
# A ``store: false`` response's thread (``tables.threads.scratch_until``): held while the
# connection or request that made it may still continue or read it (its server renews the
# hold), then deleted once no run of it is in progress: by the engine when the turn ends,
# by its holder when it lets go, and by the sweep when a holder died.


def hold_scratch(conn: Connection, *, thread_ids: Sequence[str], until: float) -> None:
    """Renew the hold of scratch threads (the ones still there)."""
    if thread_ids:
        conn.execute(
            update(threads).where(threads.c.id.in_(thread_ids), SCRATCH).values(scratch_until=until)
        )


def let_go_scratch(conn: Connection, *, thread_id: str) -> bool:
    """Its holder is done with a scratch thread: deleted now if no run of it is in
    progress, else once its turn ends. True when deleted."""
    if delete_scratch(conn, thread_id=thread_id, at=None):
        return True
    conn.execute(
        update(threads).where(threads.c.id == thread_id, SCRATCH).values(scratch_until=0.0)
    )
    return False


def delete_scratch(conn: Connection, *, thread_id: str, at: float | None) -> bool:
    """Delete a scratch thread (never another) with its messages and runs, if no run of it
    is in progress and its hold ended before ``at`` (None: whatever its hold, as when its
    holder died). True if deleted."""
    if _runs_in_progress(conn, thread_id):
        return False
    query = delete(threads).where(threads.c.id == thread_id, SCRATCH)
    if at is not None:
        query = query.where(threads.c.scratch_until < at)
    return bool(conn.execute(query).rowcount)


def _runs_in_progress(conn: Connection, thread_id: str) -> bool:
    """Whether a run of the thread is in progress; its runs locked first (on PostgreSQL),
    as every writer locks a run before its thread (``delete_thread``)."""
    statuses = conn.execute(_LOCK_THREAD_RUNS, {"thread_id": thread_id}).scalars().all()
    return "in_progress" in statuses


def idle_scratch(conn: Connection, *, at: float) -> list[str]:
    """The scratch threads held no more (before ``at``) with no run in progress: what
    holders that died, or could not delete them, left."""
    busy = exists().where(runs.c.thread_id == threads.c.id, runs.c.status == "in_progress")
    query = select(threads.c.id).where(threads.c.scratch_until < at, ~busy)
    return list(conn.execute(query).scalars().all())


def update_metadata(
    conn: Connection, *, user_id: str, thread_id: str, metadata: dict[str, Any]
) -> Thread:
    """Replace the thread's metadata."""
    result = conn.execute(
        update(threads)
        .where(threads.c.id == thread_id, threads.c.user_id == user_id, VISIBLE)
        .values(metadata=metadata)
    )
    if result.rowcount == 0:
        raise _thread_not_found(thread_id)
    return get_thread(conn, user_id=user_id, thread_id=thread_id)


def delete_message(conn: Connection, *, message_id: str) -> None:
    conn.execute(_BUMP_VERSION, {"b_message_id": message_id})
    conn.execute(delete(messages).where(messages.c.id == message_id))


def update_message(conn: Connection, *, message_id: str, **values: Any) -> None:
    """Change some of a message's columns (``content``, ``reasoning``, ``tool_calls``, ...)."""
    conn.execute(_BUMP_VERSION, {"b_message_id": message_id})
    conn.execute(update(messages).where(messages.c.id == message_id).values(**values))


def thread_state(conn: Connection, *, thread_id: str) -> tuple[int, int]:
    """The thread's ``context_version`` and the last sequence number it gave out."""
    row = conn.execute(_STATE, {"thread_id": thread_id}).one()
    return int(row[0]), int(row[1])


def add_message(
    conn: Connection,
    *,
    user_id: str,
    thread_id: str,
    role: str,
    content: str,
    reasoning: str | None = None,
    tool_calls: list[dict[str, Any]] | None = None,
    tool_call_id: str | None = None,
    run_id: str | None = None,
    images: list[dict[str, Any]] | None = None,
    metadata: dict[str, Any] | None = None,
    item: dict[str, Any] | None = None,
    message_id: str | None = None,
    seq: int | None = None,
) -> Message:
    """Append a message to the thread (which must belong to the user): under the id given,
    or a new one, and the sequence number given, taken already (``reserve_seqs``), or the
    thread's next."""
    if seq is None:
        seq = reserve_seqs(conn, user_id=user_id, thread_id=thread_id, count=1)
    msg = new_message(
        id=message_id,
        thread_id=thread_id,
        seq=seq,
        role=role,
        content=content,
        reasoning=reasoning,
        tool_calls=tool_calls,
        tool_call_id=tool_call_id,
        run_id=run_id,
        images=images,
        metadata=metadata,
        item=item,
    )
    insert_messages(conn, user_id=user_id, rows=[msg])
    return msg


def reserve_seqs(conn: Connection, *, user_id: str, thread_id: str, count: int) -> int:
    """Take ``count`` sequence numbers of the thread; returns the last one."""
    bumped = conn.execute(
        _RESERVE, {"b_thread_id": thread_id, "b_user_id": user_id, "b_count": count}
    )
    seq = bumped.scalar_one_or_none()
    if seq is None:
        raise _thread_not_found(thread_id)
    return int(seq)


def new_message(
    *,
    id: str | None = None,
    thread_id: str,
    seq: int,
    role: str,
    content: str,
    reasoning: str | None = None,
    tool_calls: list[dict[str, Any]] | None = None,
    tool_call_id: str | None = None,
    run_id: str | None = None,
    images: list[dict[str, Any]] | None = None,
    phase: str | None = None,
    layout: list[list[Any]] | None = None,
    metadata: dict[str, Any] | None = None,
    provider_state: dict[str, Any] | None = None,
    item: dict[str, Any] | None = None,
) -> Message:
    return Message(
        id=id or new_id("msg"),
        thread_id=thread_id,
        seq=seq,
        role=role,
        content=content,
        reasoning=reasoning,
        tool_calls=tool_calls,
        tool_call_id=tool_call_id,
        run_id=run_id,
        created_at=now(),
        images=images or None,
        phase=phase,
        layout=layout,
        metadata=metadata or None,
        provider_state=provider_state,
        item=item,
    )


def insert_messages(conn: Connection, *, user_id: str, rows: list[Message]) -> None:
    """Store messages whose sequence numbers were reserved (``reserve_seqs``)."""
    driver.insert_rows(
        conn,
        messages,
        [{"user_id": user_id, **m.values(), "item_id": item_key(m.item)} for m in rows],
    )


def item_key(item: Mapping[str, Any] | None) -> str | None:
    """What ``messages.item_id`` keeps of a message's hosted item: its id, unless it has
    none or one longer than ``ITEM_ID_LENGTH``."""
    found = item.get("id") if item else None
    return found if isinstance(found, str) and len(found) <= ITEM_ID_LENGTH else None


def add_tool_messages(
    conn: Connection,
    *,
    user_id: str,
    thread_id: str,
    run_id: str,
    results: list[tuple[str, str]],
    items: Mapping[str, dict[str, Any]] | None = None,
) -> None:
    """Append one ``tool`` message per ``(tool_call_id, content)``, in order; ``items``: the
    hosted tool's item of a call the server ran, by its call id (``messages.item``)."""
    if not results:
        return
    last = reserve_seqs(conn, user_id=user_id, thread_id=thread_id, count=len(results))
    rows = tool_messages(
        thread_id=thread_id,
        run_id=run_id,
        first=last - len(results) + 1,
        results=results,
        items=items,
    )
    insert_messages(conn, user_id=user_id, rows=rows)


def tool_messages(
    *,
    thread_id: str,
    run_id: str,
    first: int,
    results: list[tuple[str, str]],
    items: Mapping[str, dict[str, Any]] | None = None,
) -> list[Message]:
    """One ``tool`` message per ``(tool_call_id, content)``, numbered from ``first``, not yet
    stored (``add_tool_messages``)."""
    return [
        new_message(
            thread_id=thread_id,
            seq=first + i,
            role=Role.TOOL,
            content=content,
            tool_call_id=call_id,
            run_id=run_id,
            item=(items or {}).get(call_id),
        )
        for i, (call_id, content) in enumerate(results)
    ]


def fill_placeholder(
    conn: Connection,
    *,
    message_id: str,
    role: str,
    content: str,
    tool_call_id: str | None,
    item: dict[str, Any],
) -> None:
    """Make an answer's placeholder, still empty, a hosted tool's message (a tool list, a
    call's result) that its turn stores ahead of the answer."""
    values = {"role": role, "content": content, "tool_call_id": tool_call_id, "item": item}
    values["item_id"] = item_key(item)
    conn.execute(update(messages).where(messages.c.id == message_id).values(**values))


def hosted_items(conn: Connection, *, thread_id: str, kind: str) -> list[dict[str, Any]]:
    """The items of type ``kind`` that the thread's assistant messages hold (an MCP
    server's tool lists), oldest first."""
    query = (
        select(messages.c.item)
        .where(
            messages.c.thread_id == thread_id,
            messages.c.role == Role.ASSISTANT,
            # Looked at by the database: the thread's answers are not read to find them.
            messages.c.item["type"].as_string() == kind,
        )
        .order_by(messages.c.seq)
    )
    found = (row.item for row in conn.execute(query))
    return [item for item in found if isinstance(item, dict) and item.get("type") == kind]


def messages_by_id(
    conn: Connection, *, user_id: str, message_ids: Collection[str], thread_id: str | None = None
) -> dict[str, Message]:
    """The user's messages of ``message_ids`` that exist (in thread ``thread_id``, when
    given), not a scratch thread's, by id."""
    found: dict[str, Message] = {}
    for part in _slices(message_ids):
        query = select(messages).where(messages.c.id.in_(part), *_theirs(user_id, thread_id))
        found.update((row.id, Message.from_row(row)) for row in conn.execute(query))
    return found


def item_messages(
    conn: Connection, *, user_id: str, item_ids: Collection[str], thread_id: str | None = None
) -> dict[str, Message]:
    """The user's messages that hold the hosted items ``item_ids`` (in thread ``thread_id``,
    when given), not a scratch thread's, by item id: the newest where copies of it hold it
    too (a thread copied from another). An id none holds is left out."""
    keys = [i for i in item_ids if item_key({"id": i}) is not None]
    found: dict[str, Message] = {}
    for part in _slices(keys):
        query = (
            select(messages)
            .where(messages.c.item_id.in_(part), *_theirs(user_id, thread_id))
            .order_by(messages.c.created_at)
        )
        found.update((row.item_id, Message.from_row(row)) for row in conn.execute(query))
    return found


def approval_messages(
    conn: Connection, *, user_id: str, request_ids: Collection[str], thread_id: str | None = None
) -> dict[str, list[Message]]:
    """The assistant messages of the runs that asked the user for the approvals
    ``request_ids`` (an approval action's id is its request's; in thread ``thread_id``, when
    given), not a scratch thread's: by request id, those of each run in order."""
    found: dict[str, list[Message]] = {}
    for part in _slices(request_ids):
        query = (
            select(messages, actions.c.id.label("request_id"))
            .join(actions, actions.c.run_id == messages.c.run_id)
            .where(
                actions.c.id.in_(part),
                actions.c.kind == "approval",
                messages.c.role == Role.ASSISTANT.value,
                *_theirs(user_id, thread_id),
            )
            .order_by(messages.c.seq)
        )
        for row in conn.execute(query):
            found.setdefault(row.request_id, []).append(Message.from_row(row))
    return found


def _theirs(user_id: str, thread_id: str | None) -> list[ColumnElement[bool]]:
    """Where a message is the user's, not a scratch thread's, and in ``thread_id`` when
    given."""
    where = [
        messages.c.user_id == user_id,
        exists().where(threads.c.id == messages.c.thread_id, VISIBLE),
    ]
    if thread_id is not None:
        where.append(messages.c.thread_id == thread_id)
    return where


def _slices(values: Collection[str]) -> Iterator[list[str]]:
    """``values`` in slices of at most ``IN_SLICE``: what one query's ``IN`` lists."""
    ordered = sorted(set(values))
    for start in range(0, len(ordered), IN_SLICE):
        yield ordered[start : start + IN_SLICE]


def get_message(
    conn: Connection, *, user_id: str, message_id: str, scratch: bool = False
) -> Message:
    """The user's message; one of a scratch thread only with ``scratch``."""
    query = select(messages).where(messages.c.id == message_id, messages.c.user_id == user_id)
    if not scratch:
        query = query.where(exists().where(threads.c.id == messages.c.thread_id, VISIBLE))
    row = (conn.execute(query)).first()
    if row is None:
        raise NotFound(f"No message with id {message_id}.", code="message_not_found")
    return Message.from_row(row)


def list_messages(
    conn: Connection,
    *,
    user_id: str,
    thread_id: str,
    page: ListQuery,
    run_id: str | None = None,
    with_tools: bool = True,
) -> tuple[list[Message], bool]:
    """A page of the thread's messages; with ``run_id``, only those that run wrote. Without
    ``with_tools``, as the Assistants API lists them: the user messages and the assistant
    messages that hold text or an image (tool results and tool calls belong to run steps,
    system messages to instructions)."""
    get_thread(conn, user_id=user_id, thread_id=thread_id)
    where = messages.c.thread_id == thread_id
    if run_id is not None:
        where = and_(where, messages.c.run_id == run_id)
    if not with_tools:
        where = and_(
            where,
            or_(
                messages.c.role == Role.USER.value,
                and_(messages.c.role == Role.ASSISTANT.value, messages.c.content != ""),
            ),
        )
    rows, more = fetch_page(
        conn,
        messages,
        where=where,
        sort_column="seq",
        page=page,
    )
    return [Message.from_row(r) for r in rows], more


def runs_of_messages(conn: Connection, *, run_ids: set[str]) -> dict[str, tuple[Run, int]]:
    """Each run, by id, with the sequence number of the newest message it wrote: what an
    assistant message's status depends on."""
    if not run_ids:
        return {}
    newest = (
        select(messages.c.run_id, func.max(messages.c.seq).label("seq"))
        .where(messages.c.run_id.in_(run_ids))
        .group_by(messages.c.run_id)
        .subquery()
    )
    query = select(runs, newest.c.seq.label("newest_seq")).join(
        newest, newest.c.run_id == runs.c.id
    )
    return {row.id: (Run.from_row(row), int(row.newest_seq)) for row in conn.execute(query).all()}


def copy_messages(
    conn: Connection, *, user_id: str, source_id: str, thread_id: str, until_seq: int
) -> list[Message]:
    """Copy the messages of thread ``source_id`` up to ``until_seq`` to the end of thread
    ``thread_id`` (new ids, no run: the runs stay with the source); returns the copies."""
    rows = conn.execute(
        select(messages)
        .where(messages.c.thread_id == source_id, messages.c.seq <= until_seq)
        .order_by(messages.c.seq)
    ).all()
    if not rows:
        return []
    last = reserve_seqs(conn, user_id=user_id, thread_id=thread_id, count=len(rows))
    first = last - len(rows) + 1
    t = now()
    copies = [
        Message(
            **{
                **Message.from_row(row).values(),
                "id": new_id("msg"),
                "thread_id": thread_id,
                "seq": first + i,
                "run_id": None,
                "created_at": t,
            }
        )
        for i, row in enumerate(rows)
    ]
    # A compaction marker names the last message it covers by its sequence number: the
    # copy's is that message's copy's (``engine.compaction``).
    moved = {row.seq: first + i for i, row in enumerate(rows)}
    for copy in copies:
        marker = copy.item
        covers = marker.get("covers") if marker is not None else None
        if marker is not None and isinstance(covers, int):
            below = [seq for seq in moved if seq <= covers]
            copy.item = {**marker, "covers": moved[max(below)] if below else first - 1}
    insert_messages(conn, user_id=user_id, rows=copies)
    return copies


def run_answers(conn: Connection, *, run_id: str) -> list[Message]:
    """The assistant messages a run wrote, in order."""
    query = (
        select(messages)
        .where(messages.c.run_id == run_id, messages.c.role == Role.ASSISTANT.value)
        .order_by(messages.c.seq)
    )
    return [Message.from_row(r) for r in conn.execute(query).all()]


def run_output(conn: Connection, *, run_id: str) -> list[Message]:
    """The messages a run wrote that show as its output, in order: its assistant messages,
    and the results of the hosted calls it ran (``messages.item``)."""
    query = (
        select(messages)
        .where(
            messages.c.run_id == run_id,
            messages.c.role.in_((Role.ASSISTANT.value, Role.TOOL.value)),
        )
        .order_by(messages.c.seq)
    )
    found = (Message.from_row(r) for r in conn.execute(query).all())
    # JSON columns keep a missing item as JSON null, not SQL NULL: told apart once read.
    return [m for m in found if m.role == Role.ASSISTANT or m.item is not None]


def call_marks(conn: Connection, *, run_id: str) -> dict[str, dict[str, Any]]:
    """The hosted marks of a run's calls (a call of a tool the server runs: its server,
    tool, and approval request), by call id."""
    marks: dict[str, dict[str, Any]] = {}
    for message in run_answers(conn, run_id=run_id):
        for call in message.tool_calls or ():
            if call.get("hosted"):
                marks[call["id"]] = call["hosted"]
    return marks


def run_tool_results(conn: Connection, *, run_id: str) -> dict[str, str]:
    """The tool results stored for a run's calls (outputs, and the tool errors of calls it
    could not run), by call id."""
    query = select(messages.c.tool_call_id, messages.c.content).where(
        messages.c.run_id == run_id, messages.c.role == Role.TOOL.value
    )
    return {row.tool_call_id: row.content for row in conn.execute(query).all()}


def messages_between(conn: Connection, *, thread_id: str, first: int, last: int) -> list[Message]:
    """The thread's messages with sequence numbers from ``first`` to ``last``, in order."""
    query = (
        select(messages)
        .where(messages.c.thread_id == thread_id, messages.c.seq.between(first, last))
        .order_by(messages.c.seq)
    )
    return [Message.from_row(r) for r in conn.execute(query).all()]


def last_seq(conn: Connection, *, thread_id: str) -> int:
    """The sequence number of the thread's last message (0: it has none)."""
    query = select(func.max(messages.c.seq)).where(messages.c.thread_id == thread_id)
    return int(conn.execute(query).scalar() or 0)


def answer_end(conn: Connection, *, run_id: str) -> int | None:
    """The sequence number of the last message the run wrote (its answer's end); None when
    it wrote none."""
    query = select(func.max(messages.c.seq)).where(messages.c.run_id == run_id)
    value = conn.execute(query).scalar()
    return None if value is None else int(value)


def thread_context(conn: Connection, *, thread_id: str) -> list[Message]:
    """Every message of the thread in order: what the model sees next."""
    rows = conn.execute(_CONTEXT, {"thread_id": thread_id}).all()
    return [Message.from_row(r) for r in rows]


def save_message_text(
    conn: Connection,
    *,
    message_id: str,
    content: str,
    reasoning: str | None,
    layout: list[list[Any]] | None = None,
    tool_calls: list[dict[str, Any]] | None = None,
    provider_state: dict[str, Any] | None = None,
    usage: dict[str, int] | None = None,
) -> None:
    """Save a message's text (and the order of its parts); with ``tool_calls``,
    ``provider_state`` or ``usage`` (the end of its model call), those three."""
    if tool_calls is None and provider_state is None and usage is None:
        _SAVE_TEXT.run(conn, (content, reasoning, layout, message_id))
    else:
        values = (content, reasoning, layout, tool_calls, provider_state, usage, message_id)
        _SAVE_END.run(conn, values)


def stored_texts(conn: Connection, *, message_id: str) -> tuple[str, str | None] | None:
    """A message's text and reasoning as stored; None: no such message."""
    row = conn.execute(
        select(messages.c.content, messages.c.reasoning).where(messages.c.id == message_id)
    ).first()
    return None if row is None else (row.content, row.reasoning)


def thread_has_run_in(conn: Connection, *, thread_id: str, statuses: set[str]) -> bool:
    query = select(exists().where(runs.c.thread_id == thread_id, runs.c.status.in_(statuses)))
    return bool((conn.execute(query)).scalar())


def save_texts(
    conn: Connection, *, rows: list[tuple[str, str, str | None, list[list[Any]] | None]]
) -> None:
    """Save the streamed text of several messages at once: ``(message_id, content,
    reasoning, layout)`` rows."""
    if rows:
        _SAVE_TEXT.run_many(conn, [(c, r, lay, m) for m, c, r, lay in rows])
