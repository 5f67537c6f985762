"""Live run channels: the in-process fan-out of a running turn's events.

A channel holds the events of one turn as ``(seq, type, json)`` entries. The turn appends;
any number of followers read from a sequence number on and wait for more. Publishing is an
append plus waking the waiters, so it is cheap on the hot path.

One follower at a time may also take the turn's events straight from the turn, with no
wake-up of its own task per event: its ``Tap``, once the stream's pump and sink have set
it (``kit.streams.pump``, ``kit.sse.SSEResponse``), writes the events the turn publishes to
the client's socket while the follower waits (the first of a round of the event loop at
once, the others of the round together at its end). The turn's end, a client that
cannot take more at once, or anything unusual wakes the follower, which goes on as any
other: nothing is written twice or out of order.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Protocol

Entry = tuple[int, str, str]

log = logging.getLogger("parley.engine")


class Sink(Protocol):
    """Where a tap writes: a stream's socket, when it can take bytes at once."""

    def write(self, data: bytes) -> bool:
        """Write ``data`` at once; False, with nothing written, when that would wait."""
        ...


class Tap:
    """A follower's way around its own task: ``frames`` (set by the stream's pump: the
    face's translator) makes the bytes of a batch, and ``sink`` (set by the stream's SSE
    response while it runs) writes them. Until both are set, and whenever the sink is not
    ready, the follower reads as usual."""

    __slots__ = ("frames", "sink")

    def __init__(self) -> None:
        self.frames: Callable[[list[Entry]], bytes] | None = None
        self.sink: Sink | None = None

    def write(self, batch: list[Entry]) -> bool:
        """Write ``batch`` now; False (nothing done) when it can't be."""
        frames, sink = self.frames, self.sink
        if frames is None or sink is None:
            return False
        data = frames(batch)
        return not data or sink.write(data)


class _Direct:
    """A follower waiting while its tap writes: how far it has read, its wait, and the
    round of the event loop its tap is in (``RunChannel._tap``)."""

    __slots__ = ("held", "in_round", "index", "quiet", "tap", "waiting")

    def __init__(self, index: int, tap: Tap, waiting: asyncio.Future[bool], quiet: _Quiet):
        self.index, self.tap, self.waiting, self.quiet = index, tap, waiting, quiet
        #: Whether the tap wrote in this round; the entries that came after, held.
        self.in_round = False
        self.held: list[Entry] = []


class RunChannel:
    __slots__ = ("_direct", "_waiters", "closed", "entries", "first_seq", "run_id")

    def __init__(self, run_id: str, first_seq: int) -> None:
        self.run_id = run_id
        #: Sequence number of the turn's first event; earlier ones are in the database.
        self.first_seq = first_seq
        self.entries: list[Entry] = []
        self.closed = False
        self._waiters: list[asyncio.Future[bool]] = []
        #: The follower whose tap writes, while it waits.
        self._direct: _Direct | None = None

    def publish(self, entry: Entry) -> None:
        self.entries.append(entry)
        if self._direct is not None:
            self._tap(entry)
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

    def _tap(self, entry: Entry) -> None:
        """Hand ``entry`` to the waiting follower's tap. The first entry of a round of the
        event loop is written at once; those after it in the same round are held and
        written together once the round is done (``_round_done``): a model's parts that
        came in one read cost two writes to the client's socket, not one each. A turn's
        end wakes the follower instead."""
        direct = self._direct
        assert direct is not None
        if entry[1] == "done":
            self._untap()
            return
        if direct.in_round:
            direct.held.append(entry)
            return
        direct.in_round = True
        direct.waiting.get_loop().call_soon(self._round_done, direct)
        self._write(direct, [entry])

    def _round_done(self, direct: _Direct) -> None:
        """The round ``direct``'s tap wrote in is done: write what it held since. Nothing,
        when the follower has been woken meanwhile: it reads those itself."""
        direct.in_round = False
        if self._direct is direct and direct.held:
            batch, direct.held = direct.held, []
            self._write(direct, batch)

    def _write(self, direct: _Direct, batch: list[Entry]) -> None:
        """Write ``batch`` through the tap of ``direct``; a sink not ready or a failure
        wakes the follower instead, which reads on from where the tap stopped."""
        try:
            if direct.tap.write(batch):
                direct.index += len(batch)
                direct.quiet.last = direct.waiting.get_loop().time()
                return
        except Exception:  # the follower's own path meets it again, where it belongs
            log.debug("a tap could not write; its follower reads on", exc_info=True)
        self._untap()

    def _untap(self) -> None:
        direct, self._direct = self._direct, None
        if direct is not None and not direct.waiting.done():
            direct.waiting.set_result(False)

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
                if tap is not None and tap.frames is not None and self._direct is None:
                    direct = self._direct = _Direct(index, tap, fut, quiet)
                    try:
                        idle = await fut
                    finally:
                        if self._direct is direct:
                            self._direct = None
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
    """A follower's batches (``RunChannel.follow``) and its ``tap``, which the stream that
    writes them may set (``kit.streams.pump``, ``kit.sse``)."""

    __slots__ = ("_batches", "tap")

    def __init__(self, channel: RunChannel, after: int, idle_timeout: float) -> None:
        self.tap = Tap()
        self._batches = channel.follow(after, idle_timeout=idle_timeout, tap=self.tap)

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
