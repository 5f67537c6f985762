"""One stream layer under every face: a face's translator, a source, the pump, a sink.

    source ──► pump ──► sink
                │
            translator (the face's)

- The **source** gives items (an async iterator): batches of a run's engine entries
  (``TurnHandle.events``, ``Engine.follow``; an empty batch when nothing happened for a
  keep-alive interval), or the model events of one call (the chat gateway's
  ``Engine.call_model``).
- The face's **translator** (``Translator``) makes the frames: its opening ones, those of
  each item, its closing ones, and its cut-off: what goes out when the stream ends early.
- The **pump** owns what every stream does alike: a keep-alive ping on an empty batch, the
  end of a turn (the first ``done`` entry, ``turn_end``), the end frame (``data: [DONE]``)
  and the release of what the stream holds, however it ends.
- The **sink** writes the frames: ``sse_response.SSEResponse`` as server-sent events, ``to_socket``
  as WebSocket JSON messages. When the client goes, writing stops at once; the run goes on
  in the engine.

The frames are ``bytes`` for SSE, and lists of JSON events for the WebSocket. The pump adds
no task and no await of its own per item: each item is one step of the source, one ``add``,
one ``yield``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol, TypeVar

import orjson
from starlette.websockets import WebSocket

from parley.engine import Entry
from parley.errors import ParleyError

#: What one event of a WebSocket stream is: a JSON object.
Message = dict[str, Any]
#: What a stream's frames are: SSE bytes, or JSON messages for a WebSocket.
Out = TypeVar("Out", bytes, list[Message])
Out_co = TypeVar("Out_co", bytes, list[Message], covariant=True)
Item = TypeVar("Item")
Item_contra = TypeVar("Item_contra", contravariant=True)


class Translator(Protocol[Item_contra, Out_co]):
    """A face's stream translator: what it sends for a stream's items."""

    def opening(self) -> Out_co:
        """The frames that open the stream, before any item."""
        ...

    def add(self, item: Item_contra) -> Out_co:
        """The frames of one item: a non-empty batch of engine entries (the turn's end,
        when it is in it, last), or one model event."""
        ...

    async def closing(self) -> Out_co:
        """The frames after the end: the turn's ``done`` (for a stream of a turn), or the
        source's end (for one that is not)."""
        ...

    def cut_off(self, error: ParleyError | None) -> Out_co:
        """The frames of a stream that ends early: the source ended before the turn's
        ``done`` (``error`` None), or ``error`` broke it off (raise it again to break the
        stream off without a word)."""
        ...


def turn_end(batch: list[Entry]) -> list[Entry] | None:
    """``batch`` up to the turn's end, its first ``done`` included (None: the turn goes on
    past it)."""
    for i, entry in enumerate(batch):
        if entry[1] == "done":
            return batch if i + 1 == len(batch) else batch[: i + 1]
    return None


async def pump(
    translator: Translator[Item, Out],
    source: AsyncIterator[Item | None],
    *,
    ping: Out | None = None,
    end: Out | None = None,
    turn: bool = False,
    release: Callable[[], Awaitable[None]] | None = None,
) -> AsyncIterator[Out]:
    """A stream's frames, from ``source``'s items by ``translator``.

    Args:
        source: the items; an empty one is an idle interval, and a None ends them as the
            iterator's own end does (``Call.next`` reads None at a model call's end).
        ping: what an idle interval sends (None: nothing).
        end: what ends the stream, after its closing frames or its cut-off.
        turn: the items are batches of a run's engine entries, and the stream is one
            turn's: it closes at the turn's first ``done`` (``turn_end``), and is cut off
            when the source ends before one. Otherwise the source's end closes it.
        release: awaited once the stream is over, however it ended (its client gone too).

    A turn's SSE stream may also have its entries written straight from the turn while
    the source waits (``kit.direct_write``): the pump sees only the others.
    """
    add = translator.add
    last: Out | None = None
    error: ParleyError | None = None
    try:
        try:
            if out := translator.opening():
                yield out
            async for item in source:
                if not item:
                    if item is None:  # the source's end
                        break
                    if ping is not None:  # nothing happened for a keep-alive interval
                        yield ping
                    continue
                if turn:
                    batch: Any = item
                    # Only a batch of several entries, or one done, may hold the turn's end.
                    if batch[0] is not batch[-1] or batch[0][1] == "done":
                        final = turn_end(batch)
                        if final is not None:
                            last = add(final)  # type: ignore[arg-type]
                            break
                if out := add(item):
                    yield out
        except ParleyError as exc:
            error = exc
        if last is not None:
            tail = last + await translator.closing()
        elif error is not None or turn:
            tail = translator.cut_off(error)
        else:
            tail = await translator.closing()
        if end is not None:
            tail = tail + end
        if tail:
            yield tail
    finally:
        if release is not None:
            await release()


async def no_items() -> AsyncIterator[None]:
    """A source with nothing: the stream is its opening frames and its closing ones (a
    response answered whole)."""
    return
    yield


async def to_socket(socket: WebSocket, frames: AsyncIterator[list[Message]]) -> None:
    """The WebSocket sink: each of a pump's events as one JSON text message. A client gone
    ends the writing (its ``WebSocketDisconnect`` goes up to the connection); the run goes
    on in the engine."""
    async for messages in frames:
        for message in messages:
            await send_message(socket, message)


async def send_message(socket: WebSocket, message: Message) -> None:
    """One JSON event as a WebSocket text message (the socket's one framer)."""
    await socket.send_text(orjson.dumps(message).decode())
