"""Where a turn's messages go (``ThreadTarget``), decided before the turn's claim: after a
run's answer (``ThreadTarget.after_run``), on in its thread or in a branch of it; and a
scratch turn named a thread it does not hold, in a scratch copy of that thread.

Placed before the claim, not in it, a continuation goes where its request found it: of
outputs to one call sent at once, each is placed in the same thread, where the claims take
one and refuse the others (``duplicate_tool_output``, or ``thread_busy`` while the first's
turn runs); one sent again later is refused as well, since the output taken belongs to the
answer of the run that called (``transactions.claim_items``)."""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy.engine import Connection

from parley.engine.inputs import ThreadTarget
from parley.errors import InvalidRequest, NotFound
from parley.store import runs as run_store
from parley.store import threads as thread_store
from parley.store.records import Run
from parley.types import RunStatus


def place(conn: Connection, *, user_id: str, target: ThreadTarget) -> ThreadTarget:
    """``target`` as a thread (or a branch of one) the claim can take: checked to exist
    for the caller (``NotFound`` ``thread_not_found`` when not), and, when not ``placed``,
    found. A new thread needs nothing read."""
    if target.after_run_id is not None:
        return _after_run(conn, user_id=user_id, target=target)
    if target.thread_id is None:
        return target
    thread_store.get_thread(conn, user_id=user_id, thread_id=target.thread_id, scratch=target.held)
    if target.placed:
        return target
    end = thread_store.last_seq(conn, thread_id=target.thread_id)
    return replace(target, fork_after=end)


def _after_run(conn: Connection, *, user_id: str, target: ThreadTarget) -> ThreadTarget:
    run_id = target.after_run_id
    assert run_id is not None
    previous, kept = _previous_run(conn, user_id=user_id, run_id=run_id, held=target.held)
    if previous.status in (RunStatus.QUEUED, RunStatus.IN_PROGRESS):
        raise InvalidRequest(
            f"The run {run_id} to continue after is still in progress.",
            code="previous_run_in_progress",
        )
    end = thread_store.answer_end(conn, run_id=previous.id)
    if end is None:
        raise _not_found(run_id)
    # On in the same thread when its answer ends it and the turn is kept the same way: a
    # kept turn after a kept one, or a scratch one after one of a scratch thread the face
    # holds. Anything else is a branch (a copy of the thread up to the run's answer).
    same_kind = kept != target.scratch and (kept or target.held)
    source = previous.thread_id
    fork_after = None
    if not same_kind or end < thread_store.last_seq(conn, thread_id=source):
        fork_after = end
    return replace(target, thread_id=source, fork_after=fork_after, after_run_id=None)


def _previous_run(conn: Connection, *, user_id: str, run_id: str, held: bool) -> tuple[Run, bool]:
    """The caller's run ``run_id``, and whether its thread is kept (not a scratch one: one
    of those only when the face holds it)."""
    try:
        return run_store.get_run(conn, run_id=run_id, user_id=user_id), True
    except NotFound:
        if not held:
            raise _not_found(run_id) from None
    try:
        return run_store.get_run(conn, run_id=run_id, user_id=user_id, scratch=True), False
    except NotFound:
        raise _not_found(run_id) from None


def _not_found(run_id: str) -> NotFound:
    return NotFound(f"No run {run_id} to continue after.", code="previous_run_not_found")
