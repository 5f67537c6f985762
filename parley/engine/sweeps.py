"""The transactions of the engine's background work (``engine.upkeep``): lease renewals,
sweeps of expired and orphaned runs, the runs an earlier life of this node left behind,
and the deletion of scratch threads. Each runs inside one database transaction, as the
turns' own do (``engine.transactions``)."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy.engine import Connection

from parley.engine.hosted import code_interpreter, file_search, mcp, web_search
from parley.engine.idle_runs import close_idle_run
from parley.engine.transactions import Lease, lease_node
from parley.events import ErrorEvent, HostedToolEvent, ReasoningPart, TextPart
from parley.providers.accumulator import AnswerAccumulator
from parley.store import runs as run_store
from parley.store import threads as thread_store
from parley.store.db import now
from parley.store.records import Run, StoredEvent
from parley.store.tables import without_nul
from parley.store.transaction import group_commit
from parley.types import ActionStatus, Role, RunStatus

INTERRUPTED = "The server running this turn stopped; the text so far is kept."
#: How far past a dead turn's last checkpoint its closing events are numbered. The turn
#: sent its events live before they reached the log, so numbers just past the checkpoint
#: may already have gone to clients: they are never used again. A turn sends one event per
#: model chunk, nowhere near this many between two checkpoints.
UNSAVED_SEQ_GAP = 1_000_000


def sweep_due(conn: Connection, *, running_here: set[str]) -> tuple[bool, float | None]:
    """Whether ``sweep`` has anything to close or delete now, and when something next
    falls due (None: nothing is waiting to). One read, unless a lease has run out (then
    the runs whose lease did are read, as those running here are not orphans)."""
    t = now()
    lease, expiry, hold = run_store.falling_due(conn)
    due = (expiry is not None and expiry < t) or (
        hold is not None and hold < t and bool(thread_store.idle_scratch(conn, at=t))
    )
    if not due and lease is not None and lease < t:
        due = any(run.id not in running_here for run in run_store.orphaned_runs(conn, at=t))
    later = [v for v in (lease, expiry, hold) if v is not None and v >= t]
    return due, min(later) if later else None


def sweep(conn: Connection, *, running_here: set[str]) -> None:
    """Expire overdue ``action_required`` runs; mark orphaned turns ``incomplete``; delete
    the scratch threads nobody holds any more whose turns have all ended."""
    t = now()
    for run in run_store.overdue_runs(conn, at=t):
        close_idle_run(conn, run, RunStatus.EXPIRED, ActionStatus.EXPIRED)
    for run in run_store.orphaned_runs(conn, at=t):
        if run.id not in running_here:
            close_orphan(conn, run)
    for thread_id in thread_store.idle_scratch(conn, at=t):
        thread_store.delete_scratch(conn, thread_id=thread_id, at=t)


def end_scratch(conn: Connection, *, thread_id: str) -> bool:
    """A turn of a scratch thread ended: the thread goes unless it is still held (a
    WebSocket may continue it) or another turn of it runs. True when it went."""
    return thread_store.delete_scratch(conn, thread_id=thread_id, at=now())


def let_go_scratch(conn: Connection, *, thread_id: str) -> bool:
    """The face holding a scratch thread let go of it: it goes now, or when its turn ends."""
    return thread_store.let_go_scratch(conn, thread_id=thread_id)


def close_orphan(conn: Connection, run: Run) -> bool:
    """End an ``in_progress`` run whose turn died with its server: ``incomplete``, the
    checkpointed text kept, closing events numbered past any the turn could have sent. A
    hosted call the turn had started and not ended is stored ``incomplete`` (``running``).
    A scratch thread's run goes with its thread: whoever held it died with that server."""
    # The whole log, read once: the hosted calls it started, its last event, its text.
    logged = run_store.read_events(conn, run_id=run.id, after=0)
    calls = running(logged)
    closed = close_idle_run(
        conn,
        run,
        RunStatus.INCOMPLETE,
        ActionStatus.CANCELLED,
        error=ErrorEvent(run_id=run.id, code="interrupted", message=INTERRUPTED),
        ahead=[HostedToolEvent(run_id=run.id, phase="done", item=item) for item in calls],
        after=max(run.last_seq, logged[-1].seq if logged else 0) + UNSAVED_SEQ_GAP,
        lease_owner=None,
        lease_expires_at=None,
        error_code="interrupted",
        error_message=INTERRUPTED,
    )
    if closed:
        restore_answer(conn, logged)
        for item in calls:
            thread_store.add_message(
                conn,
                user_id=run.user_id,
                thread_id=run.thread_id,
                role=Role.ASSISTANT,
                content="",
                run_id=run.id,
                item=item,
            )
        thread_store.delete_scratch(conn, thread_id=run.thread_id, at=None)
    return closed


def restore_answer(conn: Connection, logged: list[StoredEvent]) -> None:
    """Give the message a dead turn was streaming all the text its run's log holds.

    A checkpoint logs every delta but saves the message's text only now and then
    (``turn.TEXT_SECONDS``): the log has the rest. The text is rebuilt from the
    deltas of the last message the log streamed into, and stored when what is stored is
    the start of it (an earlier turn's message, complete, is left as it is)."""
    message_id: str | None = None
    acc = AnswerAccumulator()
    for event in logged:
        if event.type not in _DELTAS:
            continue
        data = orjson.loads(event.data)
        if data["message_id"] != message_id:
            message_id, acc = data["message_id"], AnswerAccumulator()
        if event.type == "content.delta":
            acc.add(TextPart(data["text"]))
        else:
            acc.add(ReasoningPart(data["text"], bool(data.get("summary"))))
    if message_id is None:
        return
    stored = thread_store.stored_texts(conn, message_id=message_id)
    text, reasoning = without_nul(acc.text), without_nul(acc.reasoning) or None
    if stored is None or stored == (text, reasoning):
        return
    content, thought = stored
    if text.startswith(content) and (reasoning or "").startswith(thought or ""):
        thread_store.save_message_text(
            conn, message_id=message_id, content=text, reasoning=reasoning, layout=acc.layout
        )


_DELTAS = frozenset(("content.delta", "reasoning.delta"))

#: How the item of each kind of hosted call a dead turn had started is cut short.
_CUT_SHORT = {
    "mcp_call": mcp.cut_short,
    "file_search_call": file_search.cut_short,
    "code_interpreter_call": code_interpreter.cut_short,
    "web_search_call": web_search.cut_short,
}


def running(logged: list[StoredEvent]) -> list[dict[str, Any]]:
    """The hosted calls (MCP calls, file searches) a dead turn had started and not ended,
    as their items cut short: the start of each is in the run's log (``logged``: a
    checkpoint saved it), its end is not (the end is logged with the round that stores
    the call's result)."""
    started: dict[str, dict[str, Any]] = {}
    for event in logged:
        if event.type != "hosted_tool":
            continue
        data = orjson.loads(event.data)
        item = data.get("item") or {}
        if data.get("phase") == "started":
            started[str(item.get("id"))] = item
        else:
            started.pop(str(item.get("id")), None)
    return [
        _CUT_SHORT[kind](item)
        for item in started.values()
        if (kind := str(item.get("type"))) in _CUT_SHORT
    ]


def earlier_leases(conn: Connection, *, lease: Lease) -> dict[str, float | None]:
    """Runs ``in_progress`` under an earlier life of this node (same node name, another
    process): their ids, with their lease expiry as now."""
    if lease.node is None:
        return {}
    return {
        run_id: expires
        for run_id, (owner, expires) in run_store.in_progress_leases(conn).items()
        if owner != lease.owner and lease_node(owner) == lease.node
    }


def close_abandoned(conn: Connection, *, leases: dict[str, float | None]) -> int:
    """Close the runs of ``earlier_leases`` whose lease nobody renewed since: their turns
    died with the earlier process. Returns how many were closed."""
    closed = 0
    for run_id, seen in leases.items():
        if run_store.lock_lease(conn, run_id=run_id) == (RunStatus.IN_PROGRESS, seen):
            closed += close_orphan(conn, run_store.get_run(conn, run_id=run_id))
    return closed


@group_commit
def heartbeat(
    conn: Connection, *, lease: Lease, run_ids: list[str], scratch: list[str]
) -> set[str]:
    """Renew this process's leases, and its holds on the ``scratch`` threads its faces
    hold; returns the runs still ``in_progress``."""
    until = lease.until()
    run_store.renew_leases(conn, owner=lease.owner, run_ids=run_ids, until=until)
    thread_store.hold_scratch(conn, thread_ids=scratch, until=until)
    if not run_ids:
        return set()
    return set(run_store.in_progress_ids(conn, run_ids=run_ids))
