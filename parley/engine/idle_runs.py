"""The transactions on runs that no turn is running: a queued run made, a message added
to an idle thread, tool outputs stored, a run cancelled, expired or closed. Each is a
synchronous function that runs inside one database transaction on a database thread
(``Database.write``), as the claims of ``engine.transactions`` do."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.engine import Connection

from parley.engine import states, tool_results
from parley.engine.hosted import approvals
from parley.engine.tool_results import SubmittedAnswer
from parley.errors import Conflict
from parley.events import DoneEvent, ErrorEvent, RunStatusEvent
from parley.store import assistants as assistant_store
from parley.store import runs as run_store
from parley.store import threads as thread_store
from parley.store.db import now
from parley.store.records import Action, Message, Run
from parley.types import ActionStatus, Role, RunStatus


def add_message(
    conn: Connection,
    *,
    user_id: str,
    thread_id: str,
    content: str,
    images: list[dict[str, Any]] | None = None,
    role: Role = Role.USER,
    metadata: dict[str, Any] | None = None,
) -> Message:
    """A user (or assistant) message at the end of an idle thread (a ``queued`` run may
    wait on it)."""
    thread_store.get_thread(conn, user_id=user_id, thread_id=thread_id)
    ensure_idle(conn, thread_id=thread_id, allow_queued=True)
    return thread_store.add_message(
        conn,
        user_id=user_id,
        thread_id=thread_id,
        role=role,
        content=content,
        images=images,
        metadata=metadata,
    )


def create_run(
    conn: Connection,
    *,
    user_id: str,
    thread_id: str,
    assistant_id: str,
    check_model: Callable[[str], Any],
    model: str | None = None,
    instructions: str | None = None,
    tools: list[dict[str, Any]] | None = None,
    parameters: dict[str, Any] | None = None,
) -> Run:
    """A ``queued`` run of an idle thread; what is not given comes from the assistant."""
    assistant = assistant_store.get_assistant(conn, user_id=user_id, assistant_id=assistant_id)
    thread_store.get_thread(conn, user_id=user_id, thread_id=thread_id)
    model = model or assistant.model
    check_model(model)
    ensure_idle(conn, thread_id=thread_id)
    return run_store.create_run(
        conn,
        user_id=user_id,
        thread_id=thread_id,
        assistant_id=assistant.id,
        model=model,
        instructions=assistant.instructions if instructions is None else instructions,
        tools=assistant.tools if tools is None else tools,
        parameters={**assistant.parameters, **(parameters or {})},
    )


def ensure_idle(conn: Connection, *, thread_id: str, allow_queued: bool = False) -> None:
    """Refuse when the thread has an active run (an overdue one is expired first)."""
    active_id = run_store.active_run_id(conn, thread_id=thread_id)
    if active_id is None:
        return
    run = run_store.get_run(conn, run_id=active_id)
    if expire_if_overdue(conn, run):
        return
    if allow_queued and run.status == RunStatus.QUEUED:
        return
    raise Conflict(
        f"Thread {thread_id} has an active run ({run.id}, {run.status}); wait for it, "
        "submit its tool outputs, or cancel it.",
        code="thread_busy",
    )


def store_outputs(
    conn: Connection, *, user_id: str, run_id: str, outputs: list[tuple[str, SubmittedAnswer]]
) -> Run | None:
    """Store ``(tool_call_id, answer)`` pairs; the run is ``queued`` again once none is
    pending. The answer to a hosted call waiting for approval is a ``Decision`` (or the
    output ``approved`` or ``denied``: ``hosted.approvals``). An answer resubmitted
    unchanged is a no-op; another for a call that has one is ``duplicate_tool_output``.
    None: the run just expired."""
    run = run_store.lock_run(conn, run_id=run_id, user_id=user_id)
    if expire_if_overdue(conn, run):
        return None
    by_call = {a.tool_call_id: a for a in run_store.list_actions(conn, run_id=run.id)}
    fresh: list[tuple[Action, SubmittedAnswer]] = []
    completes_with: dict[str, str] = {}  # the output of each fresh answer's action, by id
    for call_id, answer in outputs:
        action = by_call.get(call_id)
        if action is None:
            raise tool_results.not_found(call_id)
        output = approvals.check_output(action, answer)
        if action.status == ActionStatus.COMPLETED:
            if action.output != output:
                raise tool_results.answered_already(call_id)
            continue
        if action.status != ActionStatus.PENDING:
            raise Conflict(f"Tool call {call_id} is {action.status}.", code="action_closed")
        fresh.append((action, answer))
        completes_with[action.id] = output
    if not fresh:
        return run  # every output was already stored: an idempotent repeat
    if run.status != RunStatus.ACTION_REQUIRED:
        raise Conflict(
            f"The run is {run.status}, not waiting for tool outputs.", code="run_not_waiting"
        )
    for action, _ in fresh:
        run_store.complete_action(conn, action_id=action.id, output=completes_with[action.id])
    _store_answers(conn, user_id=user_id, run=run, fresh=fresh)
    pending = sum(1 for a in by_call.values() if a.status == ActionStatus.PENDING)
    if pending == len(fresh):
        states.move(
            conn,
            run.id,
            RunStatus.QUEUED,
            source=RunStatus.ACTION_REQUIRED,
            expires_at=None,
            paused_at=None,  # the run goes on: its next turn ends it
        )
    return run_store.get_run(conn, run_id=run.id)


def _store_answers(
    conn: Connection, *, user_id: str, run: Run, fresh: list[tuple[Action, SubmittedAnswer]]
) -> None:
    """The answers just given, at the end of the run's thread: the approvals'
    ``mcp_approval_response`` records (user messages that hold the item, as the Responses
    door stores them: no model call sends them and no message list shows them), then the
    tool results."""
    records = approvals.response_records(fresh)
    results = approvals.results(fresh)
    count = len(records) + len(results)
    last = thread_store.reserve_seqs(conn, user_id=user_id, thread_id=run.thread_id, count=count)
    first = last - count + 1
    rows = [
        thread_store.new_message(
            thread_id=run.thread_id, seq=first + i, role=Role.USER, content="", item=record
        )
        for i, record in enumerate(records)
    ]
    rows += thread_store.tool_messages(
        thread_id=run.thread_id, run_id=run.id, first=first + len(records), results=results
    )
    thread_store.insert_messages(conn, user_id=user_id, rows=rows)


def cancel(conn: Connection, *, user_id: str, run_id: str) -> RunStatus:
    """Cancel the run; returns the status it had. A running turn is told to stop by the
    engine; a waiting or queued run is closed here, with its closing events."""
    run = run_store.lock_run(conn, run_id=run_id, user_id=user_id)
    status = RunStatus(run.status)
    if status in (RunStatus.QUEUED, RunStatus.ACTION_REQUIRED):
        close_idle_run(conn, run, RunStatus.CANCELLED, ActionStatus.CANCELLED)
    elif status == RunStatus.IN_PROGRESS:
        states.move(conn, run.id, RunStatus.CANCELLED, source=status, completed_at=now())
    else:
        raise Conflict(f"The run is already {status.value}.", code="run_finished")
    return status


def close_idle_run(
    conn: Connection,
    run: Run,
    status: RunStatus,
    action_status: ActionStatus,
    *,
    error: ErrorEvent | None = None,
    after: int | None = None,
    ahead: Sequence[Any] = (),
    **values: Any,
) -> bool:
    """End a run that no turn is running, with its closing events in the log (``ahead``
    of them: events that go before its error), numbered after ``after`` (the run's last
    logged event when None)."""
    ended_at = now()
    events: list[Any] = [*ahead, *([error] if error else [])]
    events += [
        RunStatusEvent(run_id=run.id, status=status),
        DoneEvent(
            run_id=run.id,
            status=status,
            ended_at=int(ended_at),
            reason="interrupted" if status == RunStatus.INCOMPLETE else None,
        ),
    ]
    first = run.last_seq if after is None else after
    entries = [(first + i, e.type, e.model_dump_json()) for i, e in enumerate(events, 1)]
    moved = states.move(
        conn,
        run.id,
        status,
        source=RunStatus(run.status),
        completed_at=ended_at,
        last_seq=entries[-1][0],
        **values,
    )
    if moved:
        run_store.close_pending_actions(conn, run_id=run.id, status=action_status.value)
        run_store.append_events(conn, run_id=run.id, events=entries)
    return moved


def expire_if_overdue(conn: Connection, run: Run) -> bool:
    if run.status != RunStatus.ACTION_REQUIRED or run.expires_at is None:
        return False
    if run.expires_at >= now():
        return False
    return close_idle_run(conn, run, RunStatus.EXPIRED, ActionStatus.EXPIRED)
