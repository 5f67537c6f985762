"""The run state machine: one transition table, and the compare-and-set move that uses it."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Connection

from parley.store import runs as run_store
from parley.store import webhooks
from parley.types import RunStatus

S = RunStatus

TRANSITIONS: dict[RunStatus, frozenset[RunStatus]] = {
    S.QUEUED: frozenset({S.IN_PROGRESS, S.CANCELLED, S.FAILED}),
    S.IN_PROGRESS: frozenset({S.ACTION_REQUIRED, S.COMPLETED, S.FAILED, S.CANCELLED, S.INCOMPLETE}),
    # completed: its tool outputs came with the first turn of the next run (a Responses
    # continuation), not as a next turn of this one.
    S.ACTION_REQUIRED: frozenset({S.QUEUED, S.COMPLETED, S.CANCELLED, S.EXPIRED, S.FAILED}),
    S.COMPLETED: frozenset(),
    S.FAILED: frozenset(),
    S.CANCELLED: frozenset(),
    S.EXPIRED: frozenset(),
    S.INCOMPLETE: frozenset(),
}


def can_move(source: RunStatus, target: RunStatus) -> bool:
    return target in TRANSITIONS[source]


def sources_of(target: RunStatus) -> frozenset[RunStatus]:
    return frozenset(s for s, targets in TRANSITIONS.items() if target in targets)


def move(
    conn: Connection,
    run_id: str,
    target: RunStatus,
    *,
    source: RunStatus | None = None,
    **values: Any,
) -> bool:
    """Move the run to ``target`` if it is still in ``source`` (or any state that may move
    there); True when it moved. A move that ends the run (or pauses it for tool outputs)
    writes its webhook deliveries too (``store.webhooks.enqueue``). Asking for a move the
    table forbids is a programming error."""
    if source is not None:
        if not can_move(source, target):
            raise ValueError(f"run may not move from {source} to {target}")
        expected = [source.value]
    else:
        expected = [s.value for s in sources_of(target)]
    if target not in webhooks.ENDING:
        return run_store.set_status(
            conn, run_id=run_id, expected=expected, status=target.value, **values
        )
    moved, endpoints = run_store.end_status(
        conn, run_id=run_id, expected=expected, status=target.value, **values
    )
    if moved and endpoints:
        # In the same transaction: the run's end and its webhook events commit together.
        webhooks.enqueue(conn, run_id=run_id, status=target)
    return moved
