"""Finding a thread's messages: by id, by the hosted item they hold, by the approval their
run asked for, by run (its answers, output and tool results) and by sequence number. Also
reached through ``parley.store.threads``."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from typing import Any

from sqlalchemy import exists, func, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from parley.errors import NotFound
from parley.store.messages import item_key
from parley.store.records import Message, Run
from parley.store.tables import VISIBLE_THREAD, actions, messages, runs, threads
from parley.types import Role

__all__ = [
    "IN_SLICE",
    "answer_end",
    "approval_messages",
    "call_marks",
    "get_message",
    "hosted_items",
    "item_messages",
    "last_seq",
    "messages_between",
    "messages_by_id",
    "run_answers",
    "run_output",
    "run_tool_results",
    "runs_of_messages",
]

#: The most values one query's ``IN`` lists (SQLite bounds a statement's variables): a
#: longer list is looked for in slices.
IN_SLICE = 500


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
        exists().where(threads.c.id == messages.c.thread_id, VISIBLE_THREAD),
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
        query = query.where(exists().where(threads.c.id == messages.c.thread_id, VISIBLE_THREAD))
    row = (conn.execute(query)).first()
    if row is None:
        raise NotFound(f"No message with id {message_id}.", code="message_not_found")
    return Message.from_row(row)


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
