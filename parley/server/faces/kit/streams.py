"""Turning engine event batches into an SSE response."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from parley.engine import Entry
from parley.events import encode_frame
from parley.server.faces.kit.sse import HEADERS, PING


class SSEResponse(StreamingResponse):
    """A streaming response that watches for the client going away with one plain task
    (Starlette's own runs an anyio task group per response: a measurable share of the
    time to the first event). When the client goes, the stream stops at once; the run
    itself goes on in the engine.

    With ``watch_after_first``, the watch begins once the first chunk is out, keeping its
    task off the way to that chunk: for a body whose first chunk is ready (the chat
    gateway's, made from an event already in hand), so that a client gone before it is
    seen at once after it."""

    watch_after_first = False

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
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": self.status_code,
                    "headers": self.raw_headers,
                }
            )
            async for chunk in self.body_iterator:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                if watcher is None:
                    watcher = asyncio.ensure_future(watch())
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not gone:
                raise
            streaming.uncancel()
        finally:
            if watcher is not None:
                watcher.cancel()


async def _frames(batches: AsyncIterator[list[Entry]]) -> AsyncIterator[bytes]:
    async for batch in batches:
        if not batch:
            yield PING
        elif len(batch) == 1:
            yield encode_frame(*batch[0])
        else:
            yield b"".join(encode_frame(*e) for e in batch)


async def one_turn(batches: AsyncIterator[list[Entry]]) -> AsyncIterator[list[Entry]]:
    """The batches of a run's events up to the first ``done``: one turn of a run that may
    have gone on to others."""
    async for batch in batches:
        ends = next((i for i, entry in enumerate(batch) if entry[1] == "done"), None)
        if ends is None:
            yield batch
            continue
        yield batch[: ends + 1]
        return


def sse_response(
    batches: AsyncIterator[list[Entry]], headers: dict[str, str] | None = None
) -> SSEResponse:
    return SSEResponse(
        _frames(batches),
        media_type="text/event-stream",
        headers={**HEADERS, **(headers or {})},
    )
