"""Retention: the event logs of runs that ended long ago are pruned; their messages, the
runs themselves and their actions are kept.

A run's event log (``run_events``) is most of what a stream adds to the database, and it is
only read to replay or resume that stream. Once a run has ended (``completed``, ``failed``,
``cancelled``, ``expired`` or ``incomplete``: every one of those moves sets
``completed_at``) and its retention period has passed, ``prune_event_logs`` deletes its log
and sets ``runs.events_pruned_at``. A run waiting for tool outputs has no ``completed_at``:
its log stays whatever its age.

Each call is one short batch (``limit`` runs, oldest first, found by the partial index
``ix_runs_unpruned_completed_at``), so a backlog never holds one long transaction; callers
repeat it until it prunes fewer than ``limit``. On PostgreSQL the batch's runs are locked
with ``SKIP LOCKED``: replicas pruning at once take different runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, delete, func, select, update
from sqlalchemy.engine import Connection

from parley.store.db import now
from parley.store.tables import run_events, runs
from parley.types import RunStatus

#: The statuses a run never leaves.
ENDED = tuple(
    s.value
    for s in (
        RunStatus.COMPLETED,
        RunStatus.FAILED,
        RunStatus.CANCELLED,
        RunStatus.EXPIRED,
        RunStatus.INCOMPLETE,
    )
)

#: Runs per batch: a batch deletes about this many streams' events in one transaction.
BATCH = 100


@dataclass(frozen=True, slots=True)
class Pruned:
    """How many runs' event logs were (or, in a dry run, would be) pruned, and how many
    events they held."""

    runs: int = 0
    events: int = 0

    def __add__(self, other: Pruned) -> Pruned:
        return Pruned(self.runs + other.runs, self.events + other.events)


#: The events of the log rows selected: a row holds those from ``first_seq`` to ``seq``
#: (numbered without gaps), or one (a row written before batches).
_EVENTS = func.sum(run_events.c.seq - func.coalesce(run_events.c.first_seq, run_events.c.seq) + 1)


def _prunable(before: float) -> ColumnElement[bool]:
    # The first two conditions are the partial index's own, so that it is used.
    return (
        runs.c.completed_at.is_not(None)
        & runs.c.events_pruned_at.is_(None)
        & (runs.c.completed_at < before)
        & runs.c.status.in_(ENDED)
    )


def prune_event_logs(conn: Connection, *, before: float, limit: int = BATCH) -> Pruned:
    """Delete the event logs of at most ``limit`` runs that ended before ``before`` (Unix
    seconds) and mark them pruned; returns what was pruned."""
    query = select(runs.c.id).where(_prunable(before)).order_by(runs.c.completed_at).limit(limit)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    ids = list(conn.execute(query).scalars())
    if not ids:
        return Pruned()
    events = conn.execute(select(_EVENTS).where(run_events.c.run_id.in_(ids))).scalar_one()
    conn.execute(delete(run_events).where(run_events.c.run_id.in_(ids)))
    marked = conn.execute(
        update(runs)
        .where(runs.c.id.in_(ids), runs.c.events_pruned_at.is_(None))
        .values(events_pruned_at=now())
    ).rowcount
    return Pruned(runs=marked, events=int(events or 0))


def count_prunable(conn: Connection, *, before: float) -> Pruned:
    """What pruning everything that ended before ``before`` would prune (a dry run)."""
    where = _prunable(before)
    run_count = conn.execute(select(func.count()).select_from(runs).where(where)).scalar_one()
    event_count = conn.execute(
        select(_EVENTS)
        .select_from(run_events.join(runs, runs.c.id == run_events.c.run_id))
        .where(where)
    ).scalar_one()
    return Pruned(runs=run_count, events=int(event_count or 0))
