"""Pruning event logs in the background, and what a follower of a pruned log is told.

``prune_round`` prunes, in short batches, the event logs of the runs that ended more than
the retention period ago (``store.retention``); the engine runs one round every
``event_prune_seconds`` as bookkeeping that waits behind client work. Any number of
replicas may do it at once.

A pruned run's log is gone, but a client may still resume its stream (``Last-Event-ID``):
``pruned_ending`` gives it the run's end again instead, made from the run's row: an
``error`` when the run has one, then ``run.status`` and ``done`` with the run's final
status, numbered up to the run's last sequence number as its closing events were.
"""

from __future__ import annotations

from parley.engine.hub import Entry
from parley.events import DoneEvent, ErrorEvent, RunStatusEvent
from parley.store import retention
from parley.store.db import Database, now
from parley.store.records import Run
from parley.types import RunStatus

#: Batches one round prunes at most: a backlog is worked off over several rounds.
ROUND_BATCHES = 20


async def prune_round(db: Database, *, retention_hours: float) -> retention.Pruned:
    """Prune the logs of runs that ended more than ``retention_hours`` ago, a batch per
    transaction, until a batch finds fewer runs than it may take (or ``ROUND_BATCHES``)."""
    before = now() - retention_hours * 3600
    total = retention.Pruned()
    for _ in range(ROUND_BATCHES):
        pruned = await db.write_later(
            retention.prune_event_logs, before=before, limit=retention.BATCH
        )
        total += pruned
        if pruned.runs < retention.BATCH:
            break
    return total


def pruned_ending(run: Run, *, after: int) -> list[Entry]:
    """The closing events of a run whose log was pruned, those numbered after ``after``."""
    status = RunStatus(run.status)
    events: list[ErrorEvent | RunStatusEvent | DoneEvent] = []
    if run.error_code and status in (RunStatus.FAILED, RunStatus.INCOMPLETE):
        message = run.error_message or "The run did not complete."
        events.append(ErrorEvent(run_id=run.id, code=run.error_code, message=message))
    reason = (run.error_code or "interrupted") if status == RunStatus.INCOMPLETE else None
    ended_at = None if run.completed_at is None else int(run.completed_at)
    events += [
        RunStatusEvent(run_id=run.id, status=status),
        DoneEvent(run_id=run.id, status=status, ended_at=ended_at, reason=reason),
    ]
    first = max(run.last_seq - len(events) + 1, 1)
    entries = [
        (seq, event.type, event.model_dump_json()) for seq, event in enumerate(events, first)
    ]
    return [entry for entry in entries if entry[0] > after]
