"""The SSE sink (``SSEResponse``, made by ``sse_response``): a streaming response of a
pump's frames (``kit.streams.pump``) that watches for its client's going with one plain
task (a performance trick).

Starlette's own ``StreamingResponse`` runs an anyio task group per response, one task
writing and one listening for the client's going: on a stream of a few hundred
milliseconds, a measurable share of the time to the first event. This one writes in the
request's own task and listens in one plain task; with ``watch_after_first``, the task
starts once the first chunk is out (the chat gateway's, made from an event already in
hand). While it runs, it also lets the stream's turn write to its socket directly
(``kit.direct_write``).

Measured by ``bench/run.py`` (bench/README.md, "What is measured": "time to first content,
p50 / p95"; ``--face chat`` for the chat gateway). ``tests/server/test_sse_response.py``
streams the same frames through it and through Starlette's ``StreamingResponse``, over
uvicorn, and compares the bytes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from parley.server.faces.kit.direct_write import SocketWrite
from parley.server.faces.kit.sse import HEADERS


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
