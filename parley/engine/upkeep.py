"""The engine's background work, from ``Engine.start`` to ``Engine.stop``: keeping runs
honest while no request asks.

- Heartbeats renew the leases of the turns running here, and the holds of the scratch
  threads held here; a turn whose run left ``in_progress`` elsewhere (cancelled on another
  replica) is stopped.
- Sweeps expire overdue ``action_required`` runs and close orphaned turns ``incomplete``.
- Runs an earlier life of this node left ``in_progress`` are closed once their lease has
  not moved for a while (``sweeps.earlier_leases``).
- Checkpoints (``engine.checkpoints``) and the pruning of old event logs
  (``engine.pruning``) run in tasks of their own.
- The ingestion worker (``retrieval.ingest``) indexes the files attached to vector stores.
- The webhook worker (``webhooks.delivery``) sends the run-end events of the outbox.

All of it is bookkeeping: it waits behind the work clients wait on (``Workers``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping

from sqlalchemy.engine import Connection

from parley.config import Settings
from parley.engine import sweeps
from parley.engine import transactions as tx
from parley.engine.checkpoints import Checkpointer
from parley.engine.pruning import prune_round
from parley.engine.turn import Turn
from parley.files.storage import Storages
from parley.files.sweep import sweep_files
from parley.metrics import Metrics
from parley.providers.registry import ProviderRegistry
from parley.retrieval.ingest import CountsUsage, Ingestion
from parley.store import ingestion as ingestion_store
from parley.store import webhooks as webhook_store
from parley.store.db import Database
from parley.wake import Wake
from parley.webhooks.delivery import Deliveries

log = logging.getLogger("parley.engine")


class Upkeep:
    """The background tasks of one engine. ``turns`` (by run id) and ``scratch_held`` are
    the engine's own, read as they change."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        lease: tx.Lease,
        checkpointer: Checkpointer,
        turns: Mapping[str, Turn],
        scratch_held: set[str],
        *,
        providers: ProviderRegistry,
        metrics: Metrics,
        usage: CountsUsage | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.lease = lease
        self.checkpointer = checkpointer
        self.turns = turns
        self.scratch_held = scratch_held
        #: Runs an earlier life of this node left ``in_progress`` (``earlier_leases``),
        #: closed at ``_abandoned_check`` unless their lease moved meanwhile.
        self._abandoned: dict[str, float | None] = {}
        self._abandoned_check = 0.0
        self._tasks: list[asyncio.Task[None]] = []
        #: Set when a turn starts here: with nothing to renew, the heartbeat sleeps till then.
        self._started = Wake()
        #: Indexes vector store files; ``ingestion.wake()`` when one was just attached.
        self.ingestion = Ingestion(
            db,
            settings,
            providers,
            metrics,
            owner=lease.owner,
            lease_seconds=settings.lease_seconds,
            usage=usage,
        )
        #: Sends the webhook events the ends of runs wrote to the outbox.
        self.webhooks = Deliveries(db, settings, metrics, owner=lease.owner)

    def turn_started(self) -> None:
        self._started.set()

    @property
    def beat(self) -> float:
        """Seconds between lease renewals."""
        return min(1.0, self.settings.lease_seconds / 3)

    async def start(self) -> None:
        """A first sweep, then the background tasks."""
        await self.sweep()
        self._abandoned = await self.db.read(sweeps.earlier_leases, lease=self.lease)
        # Two heartbeats and a half: a live owner (started twice by mistake) renews by then.
        self._abandoned_check = time.monotonic() + 2.5 * self.beat
        self._tasks = [
            asyncio.create_task(self._maintain()),
            asyncio.create_task(self.checkpointer.run()),
        ]
        if self.settings.event_retention_hours > 0:
            self._tasks.append(asyncio.create_task(self._prune_event_logs()))
        self._tasks.append(asyncio.create_task(self._sweep_files()))
        await self.ingestion.start()
        await self.webhooks.start()

    async def stop(self) -> None:
        """Stop the background tasks."""
        await self.webhooks.stop()
        await self.ingestion.stop()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def _maintain(self) -> None:
        started = time.monotonic()
        next_beat = started + self.beat
        next_sweep = started + self.settings.tuning.sweep_seconds
        while True:
            if self.turns or self.scratch_held or self._abandoned:
                await asyncio.sleep(max(0.0, min(next_beat, next_sweep) - time.monotonic()))
            else:  # nothing to renew: sleep till the next sweep, or a turn starting here
                self._started.clear()
                await self._started.wait(max(0.0, next_sweep - time.monotonic()))
                next_beat = min(next_beat, time.monotonic() + self.beat)
            try:
                if time.monotonic() >= next_beat:
                    next_beat = time.monotonic() + self.beat
                    await self.heartbeat()
                if self._abandoned and time.monotonic() >= self._abandoned_check:
                    leases, self._abandoned = self._abandoned, {}
                    await self.db.write_later(sweeps.close_abandoned, leases=leases)
                if time.monotonic() >= next_sweep:
                    next_sweep = time.monotonic() + await self.sweep()
            except Exception:  # a boundary: the next round tries again
                next_sweep = time.monotonic() + self.settings.tuning.sweep_seconds
                log.exception("run upkeep failed; retrying")

    async def heartbeat(self) -> None:
        """Renew the leases of the turns running here and the holds of the scratch threads
        held here; stop the turns cancelled elsewhere. One write for all of them, once a
        beat: checkpoints, four times a second, leave the runs' rows alone."""
        stamp = time.monotonic()
        ids = [r for r, t in self.turns.items() if stamp - t.log.renewed >= self.beat]
        if not ids and not self.scratch_held:
            return
        alive = await self.db.write_later(
            sweeps.heartbeat, lease=self.lease, run_ids=ids, scratch=sorted(self.scratch_held)
        )
        for run_id in ids:
            turn = self.turns.get(run_id)
            if turn is None:
                continue
            if run_id in alive:
                turn.log.renewed = max(turn.log.renewed, stamp)
            elif turn.task and not turn.settling:
                turn.stop_reason = "remote"
                turn.task.cancel()

    async def _prune_event_logs(self) -> None:
        """Prune finished runs' old event logs now and then (``engine.pruning``): a task of
        its own, so that a round never holds up lease renewals."""
        while True:
            await asyncio.sleep(self.settings.tuning.event_prune_seconds)
            try:
                pruned = await prune_round(
                    self.db, retention_hours=self.settings.event_retention_hours
                )
            except Exception:  # a boundary: the next round tries again
                log.exception("pruning event logs failed; retrying")
                continue
            if pruned.runs:
                log.info("pruned the event logs of %d runs", pruned.runs)

    async def _sweep_files(self) -> None:
        """Delete expired files and uploads, bytes a failed write left, and the chunks of
        expired vector stores, now and then (``parley.files.sweep``): a task of its own, as
        the pruning of event logs."""
        storages = Storages(self.settings, self.db)
        while True:
            await asyncio.sleep(self.settings.tuning.files_sweep_seconds)
            try:
                swept = await sweep_files(self.db, storages)
            except Exception:  # a boundary: the next round tries again
                log.exception("sweeping expired files failed; retrying")
                continue
            if swept.files or swept.uploads_parts or swept.orphans or swept.stores:
                log.info(
                    "swept %d expired files, %d parts of expired uploads, %d leftover pieces,"
                    " the chunks of %d expired vector stores",
                    swept.files,
                    swept.uploads_parts,
                    swept.orphans,
                    swept.stores,
                )

    async def sweep(self) -> float:
        """Expire overdue ``action_required`` runs; mark orphaned turns ``incomplete``. A
        read first: the write (and its lock) only when there is something to close.
        Returns the seconds until the next sweep: until the next lease, expiry or hold
        falls due, at least ``sweep_seconds`` later (clocks of replicas differ that much)
        and at most a lease's length (a run started meanwhile, and dead at once, falls due
        no sooner). So an idle server sweeps every few seconds, and a dead server's run is
        still closed within ``lease_seconds + sweep_seconds``."""
        here = set(self.turns)
        due, upcoming, queue, deliveries = await self.db.read_later(_look, running_here=here)
        # The same read looked for files to index and deliveries to send: an idle
        # replica's own looks for them wait (``Ingestion.looked``, ``Deliveries.looked``).
        self.ingestion.looked(queue)
        self.webhooks.looked(deliveries)
        if due:
            await self.db.write_later(sweeps.sweep, running_here=here)
            return self.settings.tuning.sweep_seconds
        settings = self.settings
        wait = settings.lease_seconds
        if upcoming is not None:
            wait = min(wait, upcoming - time.time())
        return max(settings.tuning.sweep_seconds, wait + settings.tuning.sweep_seconds / 2)


def _look(
    conn: Connection, *, running_here: set[str]
) -> tuple[bool, float | None, ingestion_store.Queue, float | None]:
    """The replica's look at what falls due, one read: the sweep's (``sweeps.sweep_due``),
    the files waiting to be indexed, and when the next webhook delivery is due."""
    due, upcoming = sweeps.sweep_due(conn, running_here=running_here)
    return due, upcoming, ingestion_store.queue(conn), webhook_store.next_due(conn)
