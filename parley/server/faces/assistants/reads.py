"""The Assistants face's queries: each runs in one transaction (``Database.read`` /
``write``) and answers what its route needs, in the API's shapes where it can."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import Connection

from parley.errors import Conflict, InvalidRequest
from parley.server.faces.assistants import files
from parley.server.faces.kit.reads import of_thread, run_public
from parley.server.faces.kit.resources import (
    MessagePublic,
    RunPublic,
    RunStepPublic,
    calls_step_id,
    run_steps,
)
from parley.store import assistants as assistant_store
from parley.store import runs as run_store
from parley.store import threads as thread_store
from parley.store.pagination import ListQuery
from parley.store.records import Action, Assistant, Message, Run, Thread
from parley.types import ACTIVE_STATUSES, Role

# ------------------------------------------------------------------------- assistants


def update_assistant(
    conn: Connection,
    *,
    user_id: str,
    assistant_id: str,
    change: Callable[[Assistant], dict[str, Any]],
) -> Assistant:
    """The user's assistant with the fields ``change`` makes of it as it stands."""
    current = assistant_store.get_assistant(conn, user_id=user_id, assistant_id=assistant_id)
    return assistant_store.update_assistant(
        conn, user_id=user_id, assistant_id=assistant_id, fields=change(current)
    )


# ---------------------------------------------------------------------------- threads


def update_thread(
    conn: Connection, *, user_id: str, thread_id: str, metadata: dict[str, Any] | None
) -> Thread:
    """The user's thread, its metadata replaced (None: left as it is)."""
    if metadata is None:
        return thread_store.get_thread(conn, user_id=user_id, thread_id=thread_id)
    return thread_store.update_metadata(
        conn, user_id=user_id, thread_id=thread_id, metadata=metadata
    )


# --------------------------------------------------------------------------- messages


def messages_public(conn: Connection, items: list[Message]) -> list[MessagePublic]:
    """Messages as the API answers them: each with what the run that wrote it says of it."""
    runs = thread_store.runs_of_messages(conn, run_ids={m.run_id for m in items if m.run_id})
    answered = [m.run_id for m in items if m.run_id and m.role == Role.ASSISTANT and m.content]
    found = files.run_files(conn, run_ids=list(set(answered)))
    return [
        files.cited(
            MessagePublic.of(m, runs.get(m.run_id) if m.run_id else None),
            found.get(m.run_id or "", {}),
        )
        for m in items
    ]


def list_messages(
    conn: Connection,
    *,
    user_id: str,
    thread_id: str,
    page: ListQuery,
    run_id: str | None,
    with_tools: bool,
) -> tuple[list[MessagePublic], bool]:
    """A page of the thread's messages (``thread_store.list_messages``), and whether more
    follow."""
    items, more = thread_store.list_messages(
        conn, user_id=user_id, thread_id=thread_id, page=page, run_id=run_id, with_tools=with_tools
    )
    return messages_public(conn, items), more


def message(conn: Connection, *, user_id: str, message_id: str) -> MessagePublic:
    """A message of the user's, by its id alone."""
    found = thread_store.get_message(conn, user_id=user_id, message_id=message_id)
    return messages_public(conn, [found])[0]


def thread_message(
    conn: Connection, *, user_id: str, thread_id: str, message_id: str
) -> MessagePublic:
    """A message of the user's thread."""
    return messages_public(conn, [_of_thread(conn, user_id, thread_id, message_id)])[0]


def update_message(
    conn: Connection,
    *,
    user_id: str,
    thread_id: str,
    message_id: str,
    metadata: dict[str, Any] | None,
) -> MessagePublic:
    """A message of the user's thread, its metadata replaced (None: left as it is; empty:
    cleared)."""
    found = _of_thread(conn, user_id, thread_id, message_id)
    if metadata is not None:
        thread_store.update_message(conn, message_id=found.id, metadata=metadata or None)
        found.metadata = metadata
    return messages_public(conn, [found])[0]


def delete_message(conn: Connection, *, user_id: str, thread_id: str, message_id: str) -> None:
    """Delete a message of the user's thread. An assistant message that holds tool calls
    keeps them (their results answer them) and loses its text; a tool result cannot be
    deleted alone, nor a message of a thread with an active run."""
    found = _of_thread(conn, user_id, thread_id, message_id)
    busy = {str(s) for s in ACTIVE_STATUSES}
    if thread_store.thread_has_run_in(conn, thread_id=thread_id, statuses=busy):
        raise Conflict(
            "The thread has an active run; wait for it, or cancel it, before deleting "
            "its messages.",
            code="thread_busy",
        )
    if found.role == Role.TOOL:
        raise InvalidRequest(
            "A tool result answers a tool call: it cannot be deleted alone.",
            code="tool_result_not_deletable",
        )
    if found.tool_calls:
        thread_store.update_message(conn, message_id=found.id, content="", layout=None)
    else:
        thread_store.delete_message(conn, message_id=found.id)


def _of_thread(conn: Connection, user_id: str, thread_id: str, message_id: str) -> Message:
    return of_thread(
        thread_store.get_message(conn, user_id=user_id, message_id=message_id), thread_id
    )


# ------------------------------------------------------------------------------- runs


def run_in_thread(conn: Connection, *, user_id: str, thread_id: str, run_id: str) -> Run:
    """A run of the user's thread (404 for a run of another thread, as for none)."""
    return of_thread(run_store.get_run(conn, run_id=run_id, user_id=user_id), thread_id)


def thread_run(conn: Connection, *, user_id: str, thread_id: str, run_id: str) -> RunPublic:
    """A run of the user's thread, as every path answers it (``kit.reads.run_public``)."""
    return run_public(
        conn, run_in_thread(conn, user_id=user_id, thread_id=thread_id, run_id=run_id)
    )


def update_run(
    conn: Connection,
    *,
    user_id: str,
    thread_id: str,
    run_id: str,
    metadata: dict[str, Any] | None,
) -> RunPublic:
    """A run of the user's thread, its metadata replaced (None: left as it is)."""
    run = of_thread(run_store.lock_run(conn, run_id=run_id, user_id=user_id), thread_id)
    if metadata is not None:
        run_store.update_run(conn, run_id=run.id, metadata=metadata)
    return thread_run(conn, user_id=user_id, thread_id=thread_id, run_id=run_id)


def turn_message(conn: Connection, *, user_id: str, message_id: str) -> Message:
    """The assistant message a turn writes (its stream's ``thread.message.*``)."""
    return thread_store.get_message(conn, user_id=user_id, message_id=message_id)


def first_turn(conn: Connection, *, user_id: str, run_id: str) -> tuple[Run, Message]:
    """A run of the user's and the message its first turn wrote."""
    run = run_store.get_run(conn, run_id=run_id, user_id=user_id)
    return run, thread_store.run_answers(conn, run_id=run_id)[0]


def resumed_turn(
    conn: Connection, *, queued: Run, message_id: str
) -> tuple[list[RunStepPublic], Message]:
    """A run's turn that started after its tool outputs: the step of the calls they answer,
    as it stood when the run was ``queued`` with them (the run as the outputs left it),
    and the message the new turn writes (``message_id``)."""
    message = thread_store.get_message(conn, user_id=queued.user_id, message_id=message_id)
    answers = thread_store.run_answers(conn, run_id=queued.id)
    earlier = [m for m in answers if m.seq < message.seq][-1:]
    actions = run_store.list_actions(conn, run_id=queued.id)
    results = thread_store.run_tool_results(conn, run_id=queued.id)
    steps = run_steps(queued, earlier, actions, results)
    answered = [s for s in steps if s.id == calls_step_id(earlier[0].id)] if earlier else []
    return answered, message


def steps(
    conn: Connection, *, user_id: str, thread_id: str, run_id: str, contents: bool = False
) -> list[RunStepPublic]:
    """A run's steps, oldest first; a file search's with its results (their text with
    ``contents``)."""
    run = run_in_thread(conn, user_id=user_id, thread_id=thread_id, run_id=run_id)
    answers = [m for m in thread_store.run_answers(conn, run_id=run_id) if m.role == Role.ASSISTANT]
    actions = run_store.list_actions(conn, run_id=run_id)
    found = run_steps(run, answers, actions, thread_store.run_tool_results(conn, run_id=run_id))
    searches = files.search_items(conn, run_id=run_id)
    if not searches:
        return found
    return [files.with_searches(step, searches, run.tools, contents) for step in found]


def turn_end(
    conn: Connection, *, run_id: str, message_id: str
) -> tuple[Run, Message, list[Action]]:
    """A turn that ended: its run, the message it wrote and the run's actions (the
    stream's closing events)."""
    run = run_store.get_run(conn, run_id=run_id)
    written = thread_store.get_message(conn, user_id=run.user_id, message_id=message_id)
    return run, written, run_store.list_actions(conn, run_id=run_id)
