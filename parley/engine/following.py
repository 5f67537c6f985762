"""Following a run's events: the stored log, then live entries while the run runs.

A turn running here is followed on its channel (``engine.hub``), after the part of the log
its channel does not hold. A run that runs elsewhere is followed over Redis when it is
configured (``engine.bus``), merged in order with the log, which fills any gap; without
Redis, by reading the log every checkpoint. A run whose log was pruned answers its ending
again (``engine.pruning``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping

from sqlalchemy.engine import Connection

from parley.config import Settings
from parley.engine.bus import RedisBus
from parley.engine.hub import Entry
from parley.engine.pruning import pruned_ending
from parley.engine.turn import Turn
from parley.metrics import Metrics
from parley.store import runs as run_store
from parley.store.db import Database
from parley.types import RunStatus


class Follower:
    """Reads runs' events for ``Engine.follow``; ``turns`` are the turns running here, by
    run id (the engine's own mapping, read as it changes)."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        metrics: Metrics,
        turns: Mapping[str, Turn],
        bus: RedisBus | None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.metrics = metrics
        self.turns = turns
        self.bus = bus

    async def follow(self, run_id: str, *, after: int) -> AsyncIterator[list[Entry]]:
        """The run's events after ``after``: the stored log, then live events while the run
        is in progress (here, or on another replica through the database). An empty batch
        means nothing happened for a keep-alive interval."""
        self.metrics.follower(1)
        try:
            async for batch in self._follow(run_id, after=after):
                yield batch
        finally:
            self.metrics.follower(-1)

    async def _follow(self, run_id: str, *, after: int) -> AsyncIterator[list[Entry]]:
        turn = self.turns.get(run_id)
        if turn is not None:
            async for batch in self._follow_here(turn, after):
                yield batch
        elif self.bus is not None:
            async for batch in self._follow_live(self.bus, run_id, after):
                yield batch
        else:
            async for batch in self._follow_log(run_id, after):
                yield batch

    async def _follow_here(self, turn: Turn, after: int) -> AsyncIterator[list[Entry]]:
        """A turn running here: the log up to its channel's first entry, then the channel."""
        channel = turn.channel
        if after + 1 < channel.first_seq:
            stored = await self.db.read(
                run_store.read_events, run_id=turn.run.id, after=after, before=channel.first_seq
            )
            if stored:
                yield [(e.seq, e.type, e.data) for e in stored]
        async for batch in channel.follow(after, idle_timeout=self.settings.keepalive_seconds):
            yield batch

    async def _follow_log(self, run_id: str, after: int) -> AsyncIterator[list[Entry]]:
        """No Redis: the log, read every checkpoint while the run is in progress."""
        idle = self.settings.keepalive_seconds
        quiet_since = time.monotonic()
        while True:
            status, batch = await self.db.read(poll, run_id=run_id, after=after)
            if batch:
                after = batch[-1][0]
                quiet_since = time.monotonic()
                yield batch
            if status != RunStatus.IN_PROGRESS:
                return
            if time.monotonic() - quiet_since >= idle:
                quiet_since = time.monotonic()
                yield []
            await asyncio.sleep(min(self.settings.tuning.checkpoint_seconds, 0.25))

    async def _follow_live(
        self, bus: RedisBus, run_id: str, after: int
    ) -> AsyncIterator[list[Entry]]:
        """Follow a run that runs elsewhere: live over Redis, merged in order with the log,
        which fills any gap and says when the run stops running."""
        idle = self.settings.keepalive_seconds
        quiet_since = time.monotonic()
        early: dict[int, Entry] = {}  # heard, but not yet next in order
        read_log = True
        async with bus.subscription(run_id) as live:
            while True:
                running = True
                if read_log:
                    status, stored = await self.db.read(poll, run_id=run_id, after=after)
                    running = status == RunStatus.IN_PROGRESS
                    early.update((e[0], e) for e in stored if e[0] > after)
                ready: list[Entry] = []
                while after + 1 in early:
                    entry = early.pop(after + 1)
                    ready.append(entry)
                    after = entry[0]
                if not running:
                    # The log was read after the run stopped: nothing more comes, and what
                    # is left follows a gap (the closing events of a turn that died).
                    ready += sorted(early.values())
                if ready:
                    quiet_since = time.monotonic()
                    yield ready
                if not running:
                    return
                heard = await live.next(wait=1.0)
                if heard is None:  # silence: look at the log, and keep the client alive
                    read_log = True
                    if time.monotonic() - quiet_since >= idle:
                        quiet_since = time.monotonic()
                        yield []
                    continue
                early.update((e[0], e) for e in heard if e[0] > after)
                # Read the log on a gap, or when a turn ended (the run may have stopped).
                read_log = after + 1 not in early or any(e[1] == "done" for e in heard)


def poll(conn: Connection, *, run_id: str, after: int) -> tuple[str, list[Entry]]:
    """The run's status and its logged events after ``after`` (its ending again, when its
    log was pruned)."""
    # Status first: events written with a final status are then all visible.
    run = run_store.get_run(conn, run_id=run_id)
    if run.events_pruned_at is not None:
        return run.status, pruned_ending(run, after=after)
    status = run.status
    stored = run_store.read_events(conn, run_id=run_id, after=after)
    return status, [(e.seq, e.type, e.data) for e in stored]
