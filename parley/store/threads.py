"""Threads: making, finding, listing and deleting them, their metadata, and the scratch
threads of ``store: false`` responses. Their messages are written by ``messages`` and
read by ``message_reads``, whose functions this module holds too, so that callers reach a
thread and its messages through one module (``threads.add_message``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import and_, bindparam, cast, delete, exists, func, or_, select, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from parley.errors import Conflict
from parley.store import driver
from parley.store.db import new_id, now
from parley.store.message_reads import (
    IN_SLICE,
    answer_end,
    approval_messages,
    call_marks,
    get_message,
    hosted_items,
    item_messages,
    last_seq,
    messages_between,
    messages_by_id,
    run_answers,
    run_output,
    run_tool_results,
    runs_of_messages,
)
from parley.store.messages import (
    add_message,
    add_tool_messages,
    copy_messages,
    delete_message,
    fill_placeholder,
    insert_messages,
    item_key,
    new_message,
    reserve_seqs,
    save_message_text,
    save_texts,
    stored_texts,
    thread_context,
    thread_not_found,
    thread_state,
    tool_messages,
    update_message,
)
from parley.store.pagination import ListQuery, fetch_page
from parley.store.records import Message, Thread
from parley.store.tables import (
    SCRATCH_THREAD,
    VISIBLE_THREAD,
    messages,
    runs,
    threads,
    without_nul,
)
from parley.types import Role

__all__ = [
    "IN_SLICE",
    "SCRATCH",
    "VISIBLE",
    "add_message",
    "add_tool_messages",
    "answer_end",
    "approval_messages",
    "call_marks",
    "copy_messages",
    "create_thread",
    "delete_message",
    "delete_scratch",
    "delete_thread",
    "fill_placeholder",
    "get_message",
    "get_thread",
    "hold_scratch",
    "hosted_items",
    "idle_scratch",
    "insert_messages",
    "item_key",
    "item_messages",
    "last_seq",
    "let_go_scratch",
    "list_messages",
    "list_threads",
    "lock_thread",
    "messages_between",
    "messages_by_id",
    "new_message",
    "reserve_seqs",
    "run_answers",
    "run_output",
    "run_tool_results",
    "runs_of_messages",
    "save_message_text",
    "save_texts",
    "stored_texts",
    "thread_context",
    "thread_has_run_in",
    "thread_not_found",
    "thread_state",
    "tool_messages",
    "update_message",
    "update_metadata",
]

#: The scratch thread of a ``store: false`` response, and a thread anyone may see.
SCRATCH = SCRATCH_THREAD
VISIBLE = VISIBLE_THREAD

# Statements of the hot path, built once.
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
        raise thread_not_found(thread_id)
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
        raise thread_not_found(thread_id)
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
        raise thread_not_found(thread_id)


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
        raise thread_not_found(thread_id)
    return get_thread(conn, user_id=user_id, thread_id=thread_id)


#: A user message that holds an item (an approval given) rather than what the user said.
_USER_ITEM = and_(messages.c.role == Role.USER.value, messages.c.item_id.is_not(None))


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
    system messages to instructions). Neither lists the approvals a user gave
    (``mcp_approval_response`` items, held by user messages with no text): the Responses
    face's items, not messages."""
    get_thread(conn, user_id=user_id, thread_id=thread_id)
    where = and_(messages.c.thread_id == thread_id, ~_USER_ITEM)
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


def thread_has_run_in(conn: Connection, *, thread_id: str, statuses: set[str]) -> bool:
    query = select(exists().where(runs.c.thread_id == thread_id, runs.c.status.in_(statuses)))
    return bool((conn.execute(query)).scalar())
