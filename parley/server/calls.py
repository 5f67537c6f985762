"""Model calls in progress that are not turns of a run (chat completions), so that the drain
waits for them as for turns, and ends those still going when it is over (``server.serving``).

A call reads its model's events through ``Call.next``, from the task that tracked it or
the one that ``follow``s it (the response's streaming task). ``Calls.stop`` marks each call
``stopped`` and cancels the task of a call waiting for its next event: ``next`` then takes
the cancel back and raises ``ServiceUnavailable`` (``server_shutdown``), which the call
answers as any error (an error chunk and ``[DONE]``, or a 503), and so does ``next`` on a
stopped call. A cancel of any other cause (the client gone) goes on as it came::

    call = calls.track()
    try:
        while (event := await call.next(events)) is not None:
            ...
    finally:
        calls.forget(call)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, TypeVar

from parley.errors import ServiceUnavailable

T = TypeVar("T")

#: Seconds a client whose call was ended by a shutdown is told to wait (``Retry-After``).
_RETRY_AFTER = 2.0


class Call:
    """One call in progress: the task reading its events."""

    __slots__ = ("reading", "stopped", "task")

    def __init__(self, task: asyncio.Task[Any] | None) -> None:
        self.task = task
        #: Whether ``task`` waits for the call's next event.
        self.reading = False
        #: Set by ``Calls.stop``: the call ends with ``server_shutdown``.
        self.stopped = False

    def follow(self) -> None:
        """The current task reads the call's events from now on."""
        self.task = asyncio.current_task()

    async def next(self, events: AsyncIterator[T]) -> T | None:
        """The next event of ``events``; None at their end.

        Raises:
            ServiceUnavailable: ``server_shutdown``: the server stopped the call.
        """
        if self.stopped:
            raise _stopped()
        self.reading = True
        try:
            return await anext(events)
        except StopAsyncIteration:
            return None
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if not self.stopped or task is None:
                raise
            task.uncancel()  # the shutdown's cancel: answered with an error instead
            raise _stopped() from None
        finally:
            self.reading = False


def _stopped() -> ServiceUnavailable:
    return ServiceUnavailable(
        "The server shut down before the answer ended; retry on another replica.",
        code="server_shutdown",
        retry_after=_RETRY_AFTER,
    )


class Calls:
    """The calls in progress on this server."""

    def __init__(self) -> None:
        self._calls: set[Call] = set()

    def __len__(self) -> int:
        return len(self._calls)

    def track(self) -> Call:
        """A new call, read by the current task."""
        call = Call(asyncio.current_task())
        self._calls.add(call)
        return call

    def forget(self, call: Call) -> None:
        self._calls.discard(call)

    def stop(self) -> None:
        """End every call in progress: mark it ``stopped``, and cancel its task if it
        waits for an event (else its next ``next`` ends it)."""
        for call in self._calls:
            if call.stopped:
                continue
            call.stopped = True
            if call.reading and call.task is not None and not call.task.done():
                call.task.cancel()
