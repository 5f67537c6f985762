"""``StreamClock``: the timeouts that stop a model gone quiet in the middle of a call (its
first token, and the gaps between its parts), kept on one loop timer."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from parley.errors import UpstreamTimeout


class StreamClock:
    """First-token and idle timeouts of one model call, on a single loop timer.

    The streaming loop only stamps ``last`` (and sets ``started`` at the first text,
    reasoning or tool call); the timer, when it fires, moves itself to the deadline that
    stamp implies, or calls ``stop`` with the error, which answers whether it stopped the
    call (``error`` is then set)."""

    __slots__ = ("_handle", "_loop", "error", "first", "idle", "last", "started", "stop_call")

    def __init__(
        self, stop_call: Callable[[UpstreamTimeout], bool], first: float, idle: float
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self.stop_call, self.first, self.idle = stop_call, first, idle
        self.last = self._loop.time()
        self.started = False
        self.error: UpstreamTimeout | None = None
        self._handle: asyncio.TimerHandle | None = None
        if first or idle:
            self._handle = self._loop.call_at(self.last + (first or idle), self._check)

    def begin(self) -> None:
        """The model started its answer (its first text, reasoning or tool call): from now
        on the idle limit applies, so a timer set for the first-token deadline is moved."""
        self.started = True
        if self._handle is not None and self.idle:
            self._handle.cancel()
            self._handle = self._loop.call_at(self.last + self.idle, self._check)

    def _check(self) -> None:
        limit = self.idle if self.started else self.first
        if not limit:
            if not self.started:  # no first-token limit: the idle one starts at the start
                self._handle = self._loop.call_at(self._loop.time() + self.idle, self._check)
            else:
                self._handle = None
            return
        deadline = self.last + limit
        if self._loop.time() < deadline:
            self._handle = self._loop.call_at(deadline, self._check)
            return
        if self.started:
            what = f"sent nothing for {limit:g} s in the middle of its answer (idle_timeout)"
        else:
            what = f"did not start its answer within {limit:g} s (first_token_timeout)"
        error = UpstreamTimeout(f"The model {what}.", code="upstream_timeout")
        if self.stop_call(error):
            self.error = error

    def stop(self) -> None:
        """Stop the timer, and let go of ``stop_call``: it holds the turn, which holds this
        clock, and a cycle would leave the turn and all it holds to the garbage collector."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self.stop_call = _stopped


def _stopped(_: UpstreamTimeout) -> bool:
    return False
