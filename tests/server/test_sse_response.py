"""The SSE sink (``kit.sse_response``) against the plain path: the same frames, streamed
over uvicorn on loopback through ``SSEResponse`` (one plain watch task) and through
Starlette's ``StreamingResponse`` (an anyio task group), reach the client as the same
bytes, with the same stream headers; with the watch begun after the first chunk too."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import uvicorn
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from parley.server.faces.kit.sse import DONE, HEADERS, PING, frame
from parley.server.faces.kit.sse_response import SSEResponse, sse_response
from tests.harness import free_port


async def _frames() -> AsyncIterator[bytes]:
    """A stream's frames, some in quick succession, some after a wait, a ping among them."""
    for n in range(12):
        yield frame(b'{"n":%d}' % n, "content.delta", n + 1)
        if n % 4 == 3:
            await asyncio.sleep(0.01)
            yield PING
    yield DONE


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    assert scope["type"] == "http"
    path = scope["path"]
    response: StreamingResponse
    if path == "/plain":
        response = StreamingResponse(_frames(), media_type="text/event-stream", headers=HEADERS)
    else:
        response = sse_response(_frames(), watch_after_first=path == "/after-first")
        assert isinstance(response, SSEResponse)
    await response(scope, receive, send)


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, name="sse-response")
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


@pytest.mark.parametrize("path", ["/sink", "/after-first"])
def test_the_sink_sends_what_starlette_s_response_does(url: str, path: str) -> None:
    with httpx.Client(timeout=10) as http:
        plain = http.get(url + "/plain")
        sunk = http.get(url + path)
    assert sunk.content == plain.content
    assert sunk.content.count(b"event: content.delta") == 12 and sunk.content.endswith(DONE)
    for name in ("content-type", "cache-control", "x-accel-buffering"):
        assert sunk.headers[name] == plain.headers[name], name
