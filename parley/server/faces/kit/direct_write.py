"""The direct socket write of a turn's SSE stream (a performance trick): while the stream's
follower waits, the turn frames each event with the face's translator and writes it to the
client's socket itself (``engine.tap``), so the stream's task is not woken per chunk.

``SocketWrite`` is the ``FrameSink`` a face gives the turn's follower (``direct_write``).
It writes through the response's ``send`` stepped once rather than awaited: uvicorn's own
``send`` (or a middleware's that awaits nothing but it, a ``PassingSend``)
only waits before writing anything, when its client has not read what was sent. A step
that would wait stops there, nothing written, and the follower reads the batch itself. It
is ready only while its ``SSEResponse`` runs on such a ``send`` (``attach``).

Measured by ``bench/turn_profile.py`` (bench/README.md, "Where a stored turn's CPU goes":
"A tap for the stream's one follower"). ``tests/server/test_direct_write.py`` streams the
same turn with and without it, over uvicorn, and compares the bytes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.types import Send

from parley.asgi_send import PassingSend
from parley.engine import Entry, FrameSink


class SocketWrite:
    """A stream's socket for its turn's tap: ``frames`` makes the bytes of a batch (the
    face's translator), and the response's ``send``, once attached, writes them."""

    __slots__ = ("_frames", "_send")

    def __init__(self, frames: Callable[[list[Entry]], bytes]) -> None:
        self._frames = frames
        self._send: Send | None = None

    @property
    def ready(self) -> bool:
        return self._send is not None

    def attach(self, send: Send) -> None:
        """Write through ``send`` from now on, when it can be stepped (``sends_at_once``)."""
        if sends_at_once(send):
            self._send = send

    def detach(self) -> None:
        self._send = None

    def write(self, batch: list[Entry]) -> bool:
        send = self._send
        if send is None:
            return False
        data = self._frames(batch)
        if not data:
            return True
        return _step(send({"type": "http.response.body", "body": data, "more_body": True}))


def direct_write(
    source: AsyncIterator[list[Entry]], frames: Callable[[list[Entry]], bytes]
) -> SocketWrite | None:
    """The direct write of a stream of ``source``'s entries framed by ``frames``, given to
    ``source`` when it is a turn's own events (``TurnHandle.events``, which can take a
    ``FrameSink``); None for any other source (a run's log, ``Engine.follow``)."""
    write_to: Callable[[FrameSink | None], None] | None = getattr(source, "write_to", None)
    if write_to is None:
        return None
    sink = SocketWrite(frames)
    write_to(sink)
    return sink


def sends_at_once(send: Send) -> bool:
    """Whether ``send`` is uvicorn's own, whose body sends wait only before writing
    anything (while its client reads, a send is done in its first step), or a middleware's
    whose send awaits nothing but it, a ``PassingSend`` (``metrics_http``,
    ``server.logs``)."""
    while isinstance(send, PassingSend):
        send = send.inner
    owner = getattr(send, "__self__", None)
    return type(owner).__module__.startswith("uvicorn.protocols.http.")


def _step(send: Any) -> bool:
    """Run the coroutine ``send`` if it finishes at once: True. One that would wait is
    closed where it waits (nothing written): False."""
    try:
        send.send(None)
    except StopIteration:
        return True
    send.close()
    return False
