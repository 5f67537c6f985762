"""The engine's transactions that start turns: a claim of a turn (with the lease it is held
by) and the messages stored with it. Each is a synchronous function that runs inside one
database transaction on a database thread (``Database.write``), so a status change and
everything that goes with it (messages, actions, closing events) commit together or not at
all. Those on runs no turn is running are in ``engine.idle_runs``; those of the background
work in ``engine.sweeps``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Connection

from parley.engine import states
from parley.engine.history import HistoryCache, items_of, view
from parley.engine.hosted import approvals
from parley.engine.hosted.approvals import Answered, Approved
from parley.engine.idle_runs import ensure_idle, expire_if_overdue
from parley.engine.inputs import NewMessage, RunConfig, ThreadTarget
from parley.engine.thread_item import Item
from parley.engine.tool_results import check_tool_results
from parley.errors import Conflict, InvalidRequest
from parley.store import assistants as assistant_store
from parley.store import runs as run_store
from parley.store import threads as thread_store
from parley.store.db import new_id, now
from parley.store.records import Assistant, Message, Run, Thread
from parley.store.transaction import group_commit, send_ahead
from parley.types import ActionStatus, Role, RunStatus

_WAITING = {
    RunStatus.IN_PROGRESS: (
        "run_in_progress",
        "The run is already streaming a turn; follow it with GET /v1/runs/{id}/events.",
    ),
    RunStatus.ACTION_REQUIRED: (
        "tool_outputs_pending",
        "The run is waiting for tool outputs; submit them before the next turn.",
    ),
}


@dataclass(slots=True)
class Claim:
    """A turn claimed for this process: the run, its new assistant message, the context."""

    run: Run
    message_id: str
    context: list[Item]
    #: The assistant as read by the claim (first turns only).
    assistant: Assistant | None = None
    #: Hosted calls the turn's messages approved, for the turn to run first.
    approved: list[Approved] = field(default_factory=list)


@dataclass(slots=True)
class Lease:
    """This process's claim on the turns it runs: ``owner`` is ``NODE~BOOT`` when the node
    has a name that survives a restart (``Lease.of``), else a random id."""

    owner: str
    seconds: float

    @classmethod
    def of(cls, node: str | None, seconds: float) -> Lease:
        boot = new_id("boot")
        return cls(owner=f"{node}~{boot}" if node else boot, seconds=seconds)

    @property
    def node(self) -> str | None:
        return lease_node(self.owner)

    def until(self) -> float:
        return now() + self.seconds


def lease_node(owner: str | None) -> str | None:
    """The node name of a lease owner (None when it has none)."""
    if not owner or "~" not in owner:
        return None
    return owner.rpartition("~")[0]


@group_commit
def claim_queued(
    conn: Connection,
    *,
    user_id: str,
    run_id: str,
    lease: Lease,
    thread_id: str | None = None,
    assistant_id: str | None = None,
    history: HistoryCache | None = None,
) -> Claim | None:
    """Claim the next turn of a ``queued`` run; None when the run just expired."""
    run = run_store.lock_run(conn, run_id=run_id, user_id=user_id)
    if thread_id is not None and thread_id != run.thread_id:
        raise InvalidRequest(f"Run {run_id} belongs to another thread.", code="thread_mismatch")
    if assistant_id is not None and assistant_id != run.assistant_id:
        raise InvalidRequest(
            f"Run {run_id} belongs to another assistant.", code="assistant_mismatch"
        )
    if expire_if_overdue(conn, run):
        return None
    status = RunStatus(run.status)
    if status in _WAITING:
        code, message = _WAITING[status]
        raise Conflict(message, code=code)
    if status != RunStatus.QUEUED:
        raise Conflict(f"The run is {status.value}; start a new run.", code="run_finished")
    t = now()
    claimed = states.move(
        conn,
        run.id,
        RunStatus.IN_PROGRESS,
        source=RunStatus.QUEUED,
        started_at=run.started_at or t,
        lease_owner=lease.owner,
        lease_expires_at=lease.until(),
    )
    if not claimed:
        raise Conflict("Another request started this turn first.", code="run_in_progress")
    context = read_context(conn, history, thread_id=run.thread_id)
    seq = thread_store.reserve_seqs(conn, user_id=user_id, thread_id=run.thread_id, count=1)
    placeholder = thread_store.new_message(
        thread_id=run.thread_id, seq=seq, role=Role.ASSISTANT, content="", run_id=run.id
    )
    thread_store.insert_messages(conn, user_id=user_id, rows=[placeholder])
    approved = approvals.waiting(conn, run, context)
    return Claim(run=run, message_id=placeholder.id, context=context, approved=approved)


@group_commit
def claim_first(
    conn: Connection,
    *,
    user_id: str,
    assistant_id: str,
    content: str,
    thread_id: str | None,
    lease: Lease,
    images: list[dict[str, Any]] | None = None,
    check_model: Callable[[str], Any],
    history: HistoryCache | None = None,
) -> Claim:
    """Flow B turn 1: the user message, a new run already claimed, its assistant message."""
    assistant = assistant_store.get_assistant(conn, user_id=user_id, assistant_id=assistant_id)
    check_model(assistant.model)
    if thread_id is None:
        send_ahead(conn)
        thread_id = thread_store.create_thread(
            conn, user_id=user_id, metadata={}, message_count=2
        ).id
        context: list[Item] = []
        last_seq = 2
    else:
        thread_store.get_thread(conn, user_id=user_id, thread_id=thread_id)
        ensure_idle(conn, thread_id=thread_id)
        # Reserved first (the thread's row lock): the context holds every earlier message.
        last_seq = thread_store.reserve_seqs(conn, user_id=user_id, thread_id=thread_id, count=2)
        context = read_context(conn, history, thread_id=thread_id, before=last_seq - 1)
        send_ahead(conn)
    run = run_store.create_run(
        conn,
        user_id=user_id,
        thread_id=thread_id,
        assistant_id=assistant.id,
        model=assistant.model,
        instructions=assistant.instructions,
        tools=assistant.tools,
        parameters=assistant.parameters,
        status=RunStatus.IN_PROGRESS,
        lease=(lease.owner, lease.until()),
    )
    question = thread_store.new_message(
        thread_id=thread_id, seq=last_seq - 1, role=Role.USER, content=content, images=images
    )
    placeholder = thread_store.new_message(
        thread_id=thread_id, seq=last_seq, role=Role.ASSISTANT, content="", run_id=run.id
    )
    thread_store.insert_messages(conn, user_id=user_id, rows=[question, placeholder])
    context.extend(items_of([question]))
    return Claim(run=run, message_id=placeholder.id, context=context, assistant=assistant)


@group_commit
def claim_items(
    conn: Connection,
    *,
    user_id: str,
    target: ThreadTarget,
    messages: list[NewMessage],
    config: RunConfig,
    lease: Lease,
    check_model: Callable[[str], Any],
    history: HistoryCache | None = None,
) -> Claim:
    """A turn from items: ``messages`` stored at the end of the target thread, a new run
    already claimed, and its assistant message. Tool results among ``messages`` that answer
    the pending calls of the thread's ``action_required`` run complete that run (all of
    them must be answered); a tool result must answer a call of the thread or of
    ``messages``, once."""
    check_model(config.model)
    # One moment for the run the tool results complete and the run they start: the first
    # did not end after the second began.
    t = now()
    # A new thread is made with the sequence numbers of the messages and the answer taken
    # (it answers no pending calls, so nothing joins them): one statement fewer.
    taken = len(messages) + 1 if target.thread_id is None else 0
    if taken:  # nothing to read: every statement goes ahead, one round trip with the commit
        send_ahead(conn)
    thread, context, answered = _open_thread(
        conn,
        user_id=user_id,
        target=target,
        messages=messages,
        history=history,
        lease=lease,
        at=t,
        reserve=taken,
    )
    approvals.given_back(messages, answered)
    approvals.check_taken(messages, answered)
    messages = [*messages, *answered.denied]
    thread_id = thread.id
    caller_of = check_tool_results(context, messages)
    last = taken or thread_store.reserve_seqs(
        conn, user_id=user_id, thread_id=thread_id, count=len(messages) + 1
    )
    first = last - len(messages)
    request = None
    if config.request is not None:
        request = {**config.request, "input_seqs": [first, last - 1]}
    send_ahead(conn)
    run = run_store.create_run(
        conn,
        user_id=user_id,
        thread_id=thread_id,
        assistant_id=config.assistant_id,
        model=config.model,
        instructions=config.instructions,
        tools=config.tools,
        parameters=config.parameters,
        status=RunStatus.IN_PROGRESS,
        lease=(lease.owner, lease.until()),
        metadata=config.metadata,
        options=config.options,
        request=request,
        created_at=t,
    )
    rows = _message_rows(thread_id, first, messages, caller_of)
    placeholder = thread_store.new_message(
        thread_id=thread_id, seq=last, role=Role.ASSISTANT, content="", run_id=run.id
    )
    thread_store.insert_messages(conn, user_id=user_id, rows=[*rows, placeholder])
    context = context + items_of(rows)
    return Claim(run=run, message_id=placeholder.id, context=context, approved=answered.approved)


def append_messages(
    conn: Connection,
    *,
    user_id: str,
    thread_id: str | None,
    messages: list[NewMessage],
    metadata: dict[str, Any] | None = None,
    history: HistoryCache | None = None,
) -> tuple[Thread, list[Message]]:
    """Store ``messages`` at the end of a thread with no turn running (a new thread with
    ``metadata`` when ``thread_id`` is None), checked as ``claim_items`` checks them."""
    target = ThreadTarget(thread_id=thread_id, metadata=metadata or {})
    taken = len(messages) if thread_id is None else 0  # as claim_items takes them
    thread, context, answered = _open_thread(
        conn,
        user_id=user_id,
        target=target,
        messages=messages,
        history=history,
        at=now(),
        reserve=taken,
    )
    if answered.approved:  # running them is a turn's work
        raise InvalidRequest(
            "Approvals are answered by a turn: send them with the next response.",
            code="approval_needs_turn",
        )
    approvals.check_taken(messages, answered)
    messages = [*messages, *answered.denied]
    caller_of = check_tool_results(context, messages)
    if not messages:
        return thread, []
    last = taken or thread_store.reserve_seqs(
        conn, user_id=user_id, thread_id=thread.id, count=len(messages)
    )
    first = last - len(messages) + 1
    rows = _message_rows(thread.id, first, messages, caller_of)
    thread_store.insert_messages(conn, user_id=user_id, rows=rows)
    return thread, rows


def _open_thread(
    conn: Connection,
    *,
    user_id: str,
    target: ThreadTarget,
    messages: list[NewMessage],
    history: HistoryCache | None,
    at: float,
    lease: Lease | None = None,
    reserve: int = 0,
) -> tuple[Thread, list[Item], Answered]:
    """The thread ``messages`` go to, and its messages so far: a new thread (with ``reserve``
    sequence numbers taken); a branch (a new thread holding copies of the target's messages
    up to ``fork_after``); or the target, whose ``action_required`` run the tool results and
    approvals among ``messages`` answer (what they answered, last). A new thread
    of a ``scratch`` target is a scratch one, held for as long as ``lease``; the target's
    thread may be a scratch one when it is ``held``."""
    until = None
    if target.scratch:
        until = lease.until() if lease is not None else now()
    if target.thread_id is None:
        thread = thread_store.create_thread(
            conn,
            user_id=user_id,
            metadata=target.metadata,
            message_count=reserve,
            scratch_until=until,
        )
        return thread, [], Answered()
    source = thread_store.get_thread(
        conn, user_id=user_id, thread_id=target.thread_id, scratch=target.held
    )
    if target.fork_after is not None:
        thread = thread_store.create_thread(
            conn, user_id=user_id, metadata=target.metadata, scratch_until=until
        )
        copied = thread_store.copy_messages(
            conn,
            user_id=user_id,
            source_id=source.id,
            thread_id=thread.id,
            until_seq=target.fork_after,
        )
        return thread, view(items_of(copied)), Answered()
    answered = _answer_pending_calls(
        conn, user_id=user_id, thread_id=source.id, messages=messages, at=at
    )
    # Locked after its active run, as every writer locks them: the context, and the checks
    # of tool results made on it, see whatever a concurrent writer of the thread committed.
    thread_store.lock_thread(conn, user_id=user_id, thread_id=source.id, scratch=target.held)
    return source, read_context(conn, history, thread_id=source.id), answered


#: The histories of callers that keep none (tests calling a transaction alone).
_UNKEPT = HistoryCache(max_bytes=0)


def read_context(
    conn: Connection, history: HistoryCache | None, *, thread_id: str, before: int | None = None
) -> list[Item]:
    """The thread's messages as its model calls see them (``engine.history``), those with a
    sequence number below ``before`` when given; kept by ``history`` when given."""
    return (history or _UNKEPT).read(conn, thread_id=thread_id, before=before)


def _message_rows(
    thread_id: str, first: int, messages: list[NewMessage], caller_of: dict[str, str]
) -> list[Message]:
    return [
        thread_store.new_message(
            thread_id=thread_id,
            seq=first + i,
            role=m.role,
            content=m.content,
            reasoning=m.reasoning,
            tool_calls=m.tool_calls,
            tool_call_id=m.tool_call_id,
            run_id=caller_of.get(m.tool_call_id) if m.tool_call_id else None,
            images=m.images,
            phase=m.phase,
            layout=m.layout,
            metadata=m.metadata,
            provider_state=m.provider_state,
            item=approvals.response_item(m.approval) if m.approval else m.item,
        )
        for i, m in enumerate(messages)
    ]


def _answer_pending_calls(
    conn: Connection,
    *,
    user_id: str,
    thread_id: str,
    messages: list[NewMessage],
    at: float,
) -> Answered:
    """Close the thread's active run with the tool results and approvals among
    ``messages``: an ``action_required`` run whose pending calls they all answer is
    ``completed``; any other active run keeps the thread busy. Answers what the
    approvals answered (``hosted.approvals``)."""
    active_id = run_store.active_run_id(conn, thread_id=thread_id)
    if active_id is None:
        return Answered()
    # The thread was found for this caller: its run is theirs to answer (scratch or not).
    run = run_store.lock_run(conn, run_id=active_id, user_id=user_id, scratch=True)
    if expire_if_overdue(conn, run):
        return Answered()
    if run.status != RunStatus.ACTION_REQUIRED:
        ensure_idle(conn, thread_id=thread_id)
        return Answered()
    outputs = {m.tool_call_id: m.content for m in messages if m.role == Role.TOOL}
    pending = run_store.list_actions(conn, run_id=run.id, status=ActionStatus.PENDING)
    answered, approved = approvals.answer(conn, run, pending, messages)
    for action in pending:
        if action.kind != "approval" and action.tool_call_id not in outputs:
            raise InvalidRequest(  # no message is at fault: one is missing
                f"No tool output found for function call {action.tool_call_id}.",
                code="tool_output_missing",
            )
    for action in pending:
        output = approved.get(action.id) or outputs[action.tool_call_id]
        run_store.complete_action(conn, action_id=action.id, output=output)
    # completed now; its turn ended when it paused (``paused_at``, kept)
    states.move(
        conn,
        run.id,
        RunStatus.COMPLETED,
        source=RunStatus.ACTION_REQUIRED,
        completed_at=at,
        expires_at=None,
    )
    return answered
