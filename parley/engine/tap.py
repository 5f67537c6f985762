"""The direct path of a turn's events to its one streaming client (a performance trick).

A follower of a turn (``hub.RunChannel.follow``) is a task: woken for each event, it hands
the event to its stream, which frames and writes it. With a ``Tap``, the turn does that
itself while the follower waits: the stream's face gives the follower a ``FrameSink``
(``Followed.write_to``; ``kit.direct_write.SocketWrite`` frames with the face's translator
and writes to the client's socket), and the channel hands the sink each event as it is
published. The first event of a round of the event loop goes out at once; those after it in
the same round are held and go out together once the round is done, so a model's parts
that came in one read cost two writes, not one each. The turn's end, a sink that cannot
write at once, or a failure wakes the follower, which reads on from where the tap stopped:
every event goes out once and in order.

Measured by ``bench/turn_profile.py`` (bench/README.md, "Where a stored turn's CPU goes":
"A tap for the stream's one follower"): the stream's task is not woken per chunk.
``tests/engine/test_tap.py`` runs it against the follower's plain path.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

log = logging.getLogger("parley.engine")

#: A run's event as the channel holds it: ``(seq, type, json)`` (``hub.Entry``).
_Entry = tuple[int, str, str]


class FrameSink(Protocol):
    """Where a tap writes: a stream that frames a batch of a turn's entries as its face
    does, and writes the bytes to its client's socket at once."""

    @property
    def ready(self) -> bool:
        """Whether it can write now (its stream's response is running on a socket it can
        write to without waiting)."""
        ...

    def write(self, batch: list[_Entry]) -> bool:
        """Frame and write ``batch`` at once; False, with nothing written, when that would
        wait."""
        ...


class Tap:
    """A follower's way around its own task: the sink its stream gave it, if any."""

    __slots__ = ("sink",)

    def __init__(self) -> None:
        self.sink: FrameSink | None = None

    @property
    def ready(self) -> bool:
        sink = self.sink
        return sink is not None and sink.ready

    def write(self, batch: list[_Entry]) -> bool:
        """Write ``batch`` now; False (nothing done) when it can't be."""
        sink = self.sink
        return sink is not None and sink.write(batch)


class _Stamped(Protocol):
    """The keep-alive timer of a follower: when it last got something (``hub._Quiet``)."""

    last: float


class Direct:
    """A follower waiting while its tap writes: how far it has read, its wait, and the
    round of the event loop its tap is in. ``stop`` lets go of it: the channel's, called
    when the tap cannot write."""

    __slots__ = ("held", "in_round", "index", "live", "quiet", "stop", "tap", "waiting")

    def __init__(
        self,
        index: int,
        tap: Tap,
        waiting: asyncio.Future[bool],
        quiet: _Stamped,
        stop: Callable[[], None],
    ) -> None:
        self.index, self.tap, self.waiting, self.quiet = index, tap, waiting, quiet
        self.stop = stop
        #: Whether the tap wrote in this round; the entries that came after, held.
        self.in_round = False
        self.held: list[_Entry] = []
        #: False once the channel let go of it: it writes no more.
        self.live = True

    def hand(self, entry: _Entry) -> bool:
        """Take ``entry``, published while the follower waits: the first of a round of
        the event loop is written at once, those after it in the same round held for the
        round's end (``_round_done``). False: the follower reads it, and all after it
        (the turn's end, or a sink that could not take it)."""
        if entry[1] == "done":
            return False
        if self.in_round:
            self.held.append(entry)
            return True
        self.in_round = True
        self.waiting.get_loop().call_soon(self._round_done)
        return self._write([entry])

    def _round_done(self) -> None:
        """The round the tap wrote in is done: write what it held since. Nothing, when the
        follower has been woken meanwhile: it reads those itself."""
        self.in_round = False
        if self.live and self.held:
            batch, self.held = self.held, []
            if not self._write(batch):
                self.stop()

    def _write(self, batch: list[_Entry]) -> bool:
        """Write ``batch`` through the tap; False when the sink is not ready or fails."""
        try:
            if self.tap.write(batch):
                self.index += len(batch)
                self.quiet.last = self.waiting.get_loop().time()
                return True
        except Exception:  # the follower's own path meets it again, where it belongs
            log.debug("a tap could not write; its follower reads on", exc_info=True)
        return False

    def let_go(self) -> None:
        """Write no more, and wake the follower if it still waits."""
        self.live = False
        if not self.waiting.done():
            self.waiting.set_result(False)
