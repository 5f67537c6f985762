"""A thread's messages: their sequence numbers, taken from the thread row in the same
statement that bumps it (so concurrent writers never clash), and writing them, from a new
message to the text a turn streams into its answer. Reading them: ``message_reads``; both
are reached through ``parley.store.threads`` too."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.engine import Connection

from parley.errors import NotFound
from parley.store import driver
from parley.store.db import new_id, now
from parley.store.records import Message
from parley.store.tables import ITEM_ID_LENGTH, messages, threads
from parley.types import Role

__all__ = [
    "add_message",
    "add_tool_messages",
    "copy_messages",
    "delete_message",
    "fill_placeholder",
    "insert_messages",
    "item_key",
    "new_message",
    "reserve_seqs",
    "save_message_text",
    "save_texts",
    "stored_texts",
    "thread_context",
    "thread_not_found",
    "thread_state",
    "tool_messages",
    "update_message",
]

# Statements of the hot path, built once.
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


def thread_not_found(thread_id: str) -> NotFound:
    """The error of a thread that is not there, or not the user's."""
    return NotFound(f"No thread with id {thread_id}.", code="thread_not_found")


def reserve_seqs(conn: Connection, *, user_id: str, thread_id: str, count: int) -> int:
    """Take ``count`` sequence numbers of the thread; returns the last one."""
    bumped = conn.execute(
        _RESERVE, {"b_thread_id": thread_id, "b_user_id": user_id, "b_count": count}
    )
    seq = bumped.scalar_one_or_none()
    if seq is None:
        raise thread_not_found(thread_id)
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


def save_texts(
    conn: Connection, *, rows: list[tuple[str, str, str | None, list[list[Any]] | None]]
) -> None:
    """Save the streamed text of several messages at once: ``(message_id, content,
    reasoning, layout)`` rows."""
    if rows:
        _SAVE_TEXT.run_many(conn, [(c, r, lay, m) for m, c, r, lay in rows])
