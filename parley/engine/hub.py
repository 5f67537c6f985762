"""Live run channels: the in-process fan-out of a running turn's events.

A channel holds the events of one turn as ``(seq, type, json)`` entries. The turn appends;
any number of followers read from a sequence number on and wait for more. Publishing is an
append plus waking the waiters, so it is cheap on the hot path.

One follower at a time may also take the turn's events straight from the turn, with no
wake-up of its own task per event: its ``Tap`` (``engine.tap``), once its stream gave it a
``FrameSink`` (``Followed.write_to``), writes the events the turn publishes to the client's
socket while the follower waits. The turn's end, a client that cannot take more at once,
or anything unusual wakes the follower, which goes on as any other: nothing is written
twice or out of order.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from parley.engine.tap import Direct, FrameSink, Tap

Entry = tuple[int, str, str]


class RunChannel:
    __slots__ = ("_direct", "_waiters", "closed", "entries", "first_seq", "run_id")

    def __init__(self, run_id: str, first_seq: int) -> None:
        self.run_id = run_id
        #: Sequence number of the turn's first event; earlier ones are in the database.
        self.first_seq = first_seq
        self.entries: list[Entry] = []
        self.closed = False
        self._waiters: list[asyncio.Future[bool]] = []
        #: The follower whose tap writes, while it waits (``engine.tap``).
        self._direct: Direct | None = None

    def publish(self, entry: Entry) -> None:
        self.entries.append(entry)
        direct = self._direct
        if direct is not None and not direct.hand(entry):
            self._untap()
        if self._waiters:
            self._wake()

    def publish_many(self, entries: list[Entry]) -> None:
        self.entries.extend(entries)
        self._untap()
        self._wake()

    def close(self) -> None:
        self.closed = True
        self._untap()
        self._wake()

    def _untap(self) -> None:
        direct, self._direct = self._direct, None
        if direct is not None:
            direct.let_go()

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(False)

    async def follow(
        self, after: int, *, idle_timeout: float, tap: Tap | None = None
    ) -> AsyncIterator[list[Entry]]:
        """Batches of entries with seq > ``after`` until the channel closes; an empty batch
        after ``idle_timeout`` seconds without news (a cue for a keep-alive).

        Each wait is one future, woken by ``publish``; the keep-alive has one timer for
        the whole follow (``_Quiet``), not one per wait. With a ``tap``, and no other
        follower's tap writing, the entries that come while it waits are written by the
        tap and not given here."""
        index = max(0, after + 1 - self.first_seq)
        loop = asyncio.get_running_loop()
        quiet = _Quiet(loop, idle_timeout)
        try:
            while True:
                if index < len(self.entries):
                    batch = self.entries[index:]
                    index += len(batch)
                    quiet.last = loop.time()
                    yield batch
                    continue
                if self.closed:
                    return
                fut: asyncio.Future[bool] = loop.create_future()
                quiet.waiting = fut
                if tap is not None and tap.ready and self._direct is None:
                    direct = self._direct = Direct(index, tap, fut, quiet, self._untap)
                    try:
                        idle = await fut
                    finally:
                        if self._direct is direct:
                            self._direct = None
                        direct.live = False
                        index = direct.index
                else:
                    self._waiters.append(fut)
                    idle = await fut
                if idle:  # woken by the timer: nothing for an interval
                    quiet.last = loop.time()
                    yield []
        finally:
            quiet.stop()


class Followed:
    """A follower's batches (``RunChannel.follow``), and its tap: the stream that writes
    them may give it a sink to write to while it waits (``write_to``)."""

    __slots__ = ("_batches", "_tap")

    def __init__(self, channel: RunChannel, after: int, idle_timeout: float) -> None:
        self._tap = Tap()
        self._batches = channel.follow(after, idle_timeout=idle_timeout, tap=self._tap)

    def write_to(self, sink: FrameSink | None) -> None:
        """Let the turn write its events to ``sink`` while the follower waits (None: no
        more); the follower reads what it does not write (``engine.tap``)."""
        self._tap.sink = sink

    def __aiter__(self) -> AsyncIterator[list[Entry]]:
        return self._batches

    async def __anext__(self) -> list[Entry]:
        return await self._batches.__anext__()

    async def aclose(self) -> None:
        await self._batches.aclose()  # type: ignore[attr-defined]


class _Quiet:
    """The keep-alive timer of one follower: it wakes the follower's wait with True once
    an interval passed since ``last`` (the last batch, set by the follower). The timer
    only looks at ``last`` when it fires, so the streaming path never touches it."""

    __slots__ = ("_handle", "_interval", "_loop", "last", "waiting")

    def __init__(self, loop: asyncio.AbstractEventLoop, interval: float) -> None:
        self._loop, self._interval = loop, interval
        self.last = loop.time()
        self.waiting: asyncio.Future[bool] | None = None
        self._handle: asyncio.TimerHandle | None = loop.call_at(self.last + interval, self._fire)

    def _fire(self) -> None:
        now = self._loop.time()
        due = self.last + self._interval
        if now >= due:
            waiting = self.waiting
            if waiting is not None and not waiting.done():
                waiting.set_result(True)
            due = now + self._interval  # the follower sets ``last`` when it pings
        self._handle = self._loop.call_at(due, self._fire)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
