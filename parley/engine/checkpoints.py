"""Checkpoints: the new events of every running turn, saved together in one transaction
off the streaming path, with the message's text so far now and then (``TEXT_MAX_SECONDS``).
A checkpoint comes when the oldest event not yet in the log is ``checkpoint_seconds`` old,
and saves every turn's: each event is in the log within that time of being sent, and a
turn that ends sooner (its end writes its events) costs no checkpoint at all. Under load
the turns' saves still go together, about once an interval, as each checkpoint leaves
every turn with nothing older than itself.

The log holds every delta, so the text is as durable as the events: a sweep that closes a
dead turn rebuilds its message from the log (``sweeps.restore_answer``). Saving the text
only now and then spares the database the largest write of a long answer, which would
otherwise rewrite the whole text so far four times a second.

One transaction for all turns keeps the database work per tick constant however many
turns stream at once. A turn that ends first drains any save in flight that includes it, so
an older snapshot can never land after its final text. A save that finds a run no longer
``in_progress`` (cancelled on another replica) stops that turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Connection

from parley.engine.bus import RedisBus
from parley.engine.hub import Entry
from parley.store import runs as run_store
from parley.store import threads as thread_store
from parley.store.db import Database
from parley.store.transaction import group_commit, send_ahead

if TYPE_CHECKING:
    from parley.engine.turn import Turn

log = logging.getLogger("parley.engine")


#: How often a running turn's message row gets its text so far: ``turn.TEXT_SECONDS``
#: after the turn starts, then twice as long after each save, up to ``TEXT_MAX_SECONDS``. Each save
#: rewrites the whole text, so a long answer's saves would cost the square of its length
#: at a fixed pace; this way they cost a few times its length. A read of the message while
#: the turn streams sees its text at most ``TEXT_MAX_SECONDS`` behind.
TEXT_MAX_SECONDS = 4.0

#: How early a checkpoint may come: the event loop's timers can fire a little before
#: their time, and a checkpoint that waits for the next one would come a tick late.
_EARLY = 0.002


@dataclass(slots=True)
class _Snapshot:
    turn: Turn
    entries: list[Entry]
    #: The turn's last event: the last in the log once this lands.
    seq: int
    #: The message's text, reasoning and layout; None when not due (``TEXT_MAX_SECONDS``).
    texts: tuple[str, str | None, list[list[Any]] | None] | None
    #: When the oldest of ``entries`` was sent (``TurnLog.unsaved_since``).
    since: float


class Checkpointer:
    def __init__(
        self,
        db: Database,
        turns: Callable[[], list[Turn]],
        *,
        interval: float,
        bus: RedisBus | None = None,
    ) -> None:
        self.db = db
        self.bus = bus
        self.turns = turns
        self.interval = interval
        #: The save being written, until what it comes to is applied (``_landed``).
        self._inflight: asyncio.Future[set[str]] | None = None
        self._inflight_ids: set[str] = set()
        #: When the last checkpoint began (``time.monotonic``).
        self._saved_at = 0.0
        #: Set when a turn starts here: with none running, the loop sleeps until then.
        self._started = asyncio.Event()

    def turn_started(self) -> None:
        self._started.set()

    async def run(self) -> None:
        # With Redis, watchers are looked for at least four times a second, whatever the
        # checkpoint interval, so a follower elsewhere goes live quickly.
        tick = min(self.interval, 0.25) if self.bus is not None else self.interval
        while True:
            if not self.turns() and self._inflight is None:  # nothing to save: sleep
                self._started.clear()
                if not self.turns():
                    await self._started.wait()
            at = time.monotonic()
            # Not sooner than a tenth of an interval after the last: events the last one
            # could not save (it failed, or their turn was stopped) wait that long.
            due = max(self.due(at), self._saved_at + self.interval / 10)
            if due - at > _EARLY:
                await asyncio.sleep(min(due - at, tick))
                if self.bus is not None:
                    await self._start_publishing()
                continue  # what is due is looked at again: turns came and went meanwhile
            try:
                await self.save()
            except Exception:
                log.warning("checkpoint failed; retrying", exc_info=True)
                await asyncio.sleep(self.interval)

    def due(self, at: float) -> float:
        """When the next checkpoint is due: the time the oldest event not yet in the log
        of a turn a checkpoint saves turns ``checkpoint_seconds`` old, or an interval after
        a turn's text is due; with none, ``checkpoint_seconds`` from ``at`` (a turn that
        sends its first event meanwhile is due later than that)."""
        due = at + self.interval
        for t in self.turns():
            if not _saves(t):
                continue
            book = t.log
            if book.unsaved:
                due = min(due, book.unsaved_since + self.interval)
            if book.seq > book.text_seq:
                # A text due rides on the next checkpoint the events bring (each save takes
                # every text due by then); alone it brings one an interval later, for a turn
                # whose model went quiet. Else each turn's text would bring a checkpoint of
                # its own, several an interval when many turns stream.
                due = min(due, book.text_saved + book.text_gap + self.interval)
        return due

    async def save(self) -> None:
        """Save every running turn that has unsaved events, or text due (one transaction)."""
        at = time.monotonic() + _EARLY
        snapshots = [
            _Snapshot(t, b.unsaved, b.seq, t.answer.texts() if text_due else None, b.unsaved_since)
            for t in self.turns()
            if _saves(t)
            and (
                (text_due := (b := t.log).text_saved + b.text_gap <= at and b.seq > b.text_seq)
                or b.unsaved
            )
        ]
        if not snapshots:
            return
        self._saved_at = at
        for snap in snapshots:
            snap.turn.log.unsaved = []
        # The write's own future, and what it comes to applied by a callback of it (no
        # task of its own): a cancelled loop (shutdown) stops waiting for it, not it, and
        # drain() keeps seeing it until it has landed.
        job = self.db.write_later_job(_save, snapshots)
        landed = asyncio.wrap_future(job)
        landed.add_done_callback(functools.partial(self._landed, snapshots, time.monotonic()))
        self._inflight = landed
        self._inflight_ids = {s.turn.run.id for s in snapshots}
        await asyncio.shield(landed)

    def _landed(
        self, snapshots: list[_Snapshot], stamp: float, landed: asyncio.Future[set[str]]
    ) -> None:
        """A save ended: mark what it wrote, queue again what it did not, and stop the
        turns whose runs it found no longer ``in_progress``."""
        if self._inflight is landed:
            self._inflight = None
            self._inflight_ids = set()
        if landed.cancelled() or landed.exception() is not None:
            for snap in snapshots:  # nothing was written: keep the events for the next try
                snap.turn.log.put_back(snap.entries, snap.since)
            return
        alive = landed.result()
        for snap in snapshots:
            turn = snap.turn
            if turn.run.id in alive:
                if snap.texts is not None:
                    book = turn.log
                    book.text_saved, book.text_seq = stamp, snap.seq
                    book.text_gap = min(2 * book.text_gap, TEXT_MAX_SECONDS)
                continue
            turn.log.put_back(snap.entries, snap.since)
            if turn.task is not None and not turn.settling:
                turn.stop_reason = "remote"
                turn.task.cancel()

    async def _start_publishing(self) -> None:
        """Turns that someone follows from another replica publish from now on, starting
        with everything of the turn so far (earlier turns are in the log)."""
        assert self.bus is not None
        quiet = [t for t in self.turns() if t.remote is None]
        try:
            watched = await self.bus.watched([t.run.id for t in quiet])
        except Exception:
            log.warning("could not reach Redis; followers elsewhere read the log", exc_info=True)
            return
        for turn in quiet:
            if turn.run.id in watched:
                turn.remote = self.bus
                self.bus.publish(turn.run.id, list(turn.channel.entries))

    async def drain(self, turn: Turn) -> None:
        """Wait for a save in flight that includes ``turn`` (call once it is settling)."""
        inflight = self._inflight
        if inflight is not None and turn.run.id in self._inflight_ids:
            with contextlib.suppress(Exception):
                await asyncio.shield(inflight)


def _saves(turn: Turn) -> bool:
    """Whether a checkpoint saves ``turn``: not while it writes its end, nor while its
    last round is being written (``Settler.next_round``): its events go to the log in
    order."""
    return not turn.settling and turn.log.behind is None


@group_commit
def _save(conn: Connection, snapshots: list[_Snapshot]) -> set[str]:
    # A read, not a write: the run's row is not touched. Its lease is the heartbeat's
    # (once a second), and the sequence number a sweep closes a dead turn after is the
    # log's own (``sweeps.close_orphan``).
    alive = set(run_store.in_progress_ids(conn, run_ids=[s.turn.run.id for s in snapshots]))
    live = [s for s in snapshots if s.turn.run.id in alive]
    send_ahead(conn)
    thread_store.save_texts(
        conn, rows=[(s.turn.message_id, *s.texts) for s in live if s.texts is not None]
    )
    run_store.append_many_events(conn, batches=[(s.turn.run.id, s.entries) for s in live])
    return alive
