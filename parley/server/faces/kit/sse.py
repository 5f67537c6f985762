"""Server-sent events, written once for every face: the one framer (``frame``; ``head`` for
a face that keeps a frame's fixed bytes ahead of time; ``entry_frames`` for a batch of engine entries), the keep-alive comment, the
``[DONE]`` end frame, the response headers, and the SSE sink (``SSEResponse``).

A frame is ``id: <seq>`` (when numbered), ``event: <name>`` (when named) and one ``data:``
line of JSON, then a blank line. The JSON of an event never holds a raw newline, so one
``data:`` line always carries it whole.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from parley.engine import Entry
from parley.server.faces.kit.direct_write import SocketWrite

PING = b": ping\n\n"
#: The end of the OpenAI-style streams (Chat Completions, Responses): ``data: [DONE]``.
DONE = b"data: [DONE]\n\n"
#: What ends a frame, after its data.
END = b"\n\n"
HEADERS = {
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}


def frame(data: bytes, event: str | None = None, seq: int | None = None) -> bytes:
    """One server-sent event: ``data`` (one line of JSON), named ``event``, numbered
    ``seq``."""
    if event is None:
        return b"data: " + data + END
    if seq is None:
        return b"event: " + event.encode() + b"\ndata: " + data + END
    return b"id: %d\nevent: %b\ndata: %b\n\n" % (seq, event.encode(), data)


def entry_frames(batch: list[Entry]) -> bytes:
    """A batch of a run's engine entries as frames, each ``frame`` of its data (JSON text)
    named by its type and numbered by its sequence number (written as text: the fastest
    way, for the native stream's every chunk)."""
    if len(batch) == 1:
        seq, kind, data = batch[0]
        return f"id: {seq}\nevent: {kind}\ndata: {data}\n\n".encode()
    return "".join(
        [f"id: {seq}\nevent: {kind}\ndata: {data}\n\n" for seq, kind, data in batch]
    ).encode()


def head(event: str | None = None) -> bytes:
    """A frame's bytes before its data: ``frame(data, event) == head(event) + data + END``."""
    return b"data: " if event is None else b"event: " + event.encode() + b"\ndata: "


class SSEResponse(StreamingResponse):
    """The SSE sink: a streaming response of a pump's frames (``kit.streams.pump``).

    When the client goes, writing stops at once; the run itself goes on in the engine.
    The client's going is watched for with one plain task (Starlette's own response runs
    an anyio task group per response: a measurable share of the time to the first event).

    With ``watch_after_first``, the watch begins once the first chunk is out, keeping its
    task off the way to that chunk: for a body whose first chunk is ready (the chat
    gateway's, made from an event already in hand), so that a client gone before it is
    seen at once after it."""

    watch_after_first = False
    #: The direct write of the stream's turn (``kit.direct_write``): while the response
    #: runs, it writes to this response's socket, when the server's ``send`` allows it.
    direct: SocketWrite | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        streaming = asyncio.current_task()
        assert streaming is not None
        gone = False

        async def watch() -> None:
            nonlocal gone
            while (await receive())["type"] != "http.disconnect":
                pass
            gone = True
            streaming.cancel()

        watcher = None if self.watch_after_first else asyncio.ensure_future(watch())
        direct = self.direct
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": self.status_code,
                    "headers": self.raw_headers,
                }
            )
            if direct is not None:
                direct.attach(send)
            async for chunk in self.body_iterator:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                if watcher is None:
                    watcher = asyncio.ensure_future(watch())
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not gone:
                raise
            streaming.uncancel()
            # Written no more: the body (a pump) lets go of what it holds now.
            aclose = getattr(self.body_iterator, "aclose", None)
            if aclose is not None:
                await aclose()
        finally:
            if direct is not None:
                direct.detach()
            if watcher is not None:
                watcher.cancel()


def sse_response(
    frames: AsyncIterator[bytes],
    headers: dict[str, str] | None = None,
    *,
    watch_after_first: bool = False,
    direct: SocketWrite | None = None,
) -> SSEResponse:
    """An event stream of ``frames`` (a pump's), with the stream headers and ``headers``;
    ``direct``: the direct write of its turn's events (``kit.direct_write``)."""
    response = SSEResponse(
        frames, media_type="text/event-stream", headers={**HEADERS, **(headers or {})}
    )
    response.watch_after_first = watch_after_first
    response.direct = direct
    return response
