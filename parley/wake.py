"""``Wake``: an ``asyncio.Event`` whose wait may end after a time, cheaply.

The loops that sleep until there is work or a deadline (the upkeep's sweep, the file
indexer, the webhook sender, the usage writer, the server's own tick) used
``asyncio.wait_for(event.wait(), timeout)``, which makes a task for the wait and, when the
time is up, cancels it and waits for that: four rounds of the event loop each time, every
few seconds on an idle server. ``Wake.wait(seconds)`` is one future and one timer (and no
exception raised when the time is up, as ``asyncio.timeout`` raises one).
"""

from __future__ import annotations

import asyncio


class Wake:
    """Set, cleared and waited for as an ``asyncio.Event`` (not thread-safe either: from
    another thread, ``loop.call_soon_threadsafe(wake.set)``)."""

    __slots__ = ("_set", "_waiters")

    def __init__(self) -> None:
        self._set = False
        self._waiters: list[asyncio.Future[bool]] = []

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        """Set it, and end every wait."""
        if self._set:
            return
        self._set = True
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            _end(waiter, True)

    def clear(self) -> None:
        self._set = False

    async def wait(self, seconds: float | None = None) -> bool:
        """Until it is set (True), or ``seconds`` have passed first (False)."""
        if self._set:
            return True
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[bool] = loop.create_future()
        self._waiters.append(waiter)
        timer = None if seconds is None else loop.call_later(seconds, _end, waiter, False)
        try:
            return await waiter
        finally:
            if timer is not None:
                timer.cancel()
            if waiter in self._waiters:  # it timed out, or its waiter was cancelled
                self._waiters.remove(waiter)


def _end(waiter: asyncio.Future[bool], value: bool) -> None:
    if not waiter.done():
        waiter.set_result(value)
