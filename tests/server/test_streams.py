"""The kit's one stream layer (``parley.server.faces.kit.streams``): the pump's keep-alive
pings, the end of a turn, the end frame, the cut-off, and a client that leaves an SSE
stream (served by uvicorn on loopback: writing stops, the run goes on)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

from parley.engine import Entry
from parley.errors import NotFound, ParleyError
from parley.server.faces.kit.sse import PING
from parley.server.faces.kit.sse_response import SSEResponse, sse_response
from parley.server.faces.kit.streams import no_items, pump, turn_end
from tests.harness import free_port


class Echo:
    """A translator that writes each entry's type, and says what it was asked."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def opening(self) -> bytes:
        return b"<"

    def add(self, batch: list[Entry]) -> bytes:
        self.asked.append(f"add {len(batch)}")
        return b"".join(kind.encode() + b";" for _, kind, _ in batch)

    async def closing(self) -> bytes:
        self.asked.append("closing")
        return b">"

    def cut_off(self, error: ParleyError | None) -> bytes:
        self.asked.append(f"cut_off {error.code if error else None}")
        return b"!"


async def source(*items: list[Entry] | Exception) -> AsyncIterator[list[Entry]]:
    for item in items:
        if isinstance(item, Exception):
            raise item
        yield item


def entries(*kinds: str, first: int = 1) -> list[Entry]:
    return [(seq, kind, "{}") for seq, kind in enumerate(kinds, start=first)]


async def run(frames: AsyncIterator[bytes]) -> list[bytes]:
    return [chunk async for chunk in frames]


async def test_a_turn_ends_at_its_first_done_with_the_end_frame() -> None:
    echo = Echo()
    batches = source(entries("a"), entries("b", "done", "c", first=2), entries("d"))
    chunks = await run(pump(echo, batches, ping=PING, end=b"[END]", turn=True))
    # The rest of the batch and the batches after the turn's end are never translated.
    assert chunks == [b"<", b"a;", b"b;done;>[END]"]
    assert echo.asked == ["add 1", "add 2", "closing"]


async def test_an_empty_batch_is_a_ping_or_nothing() -> None:
    items = (entries("a"), [], [], entries("done", first=2))
    sse = await run(pump(Echo(), source(*items), ping=PING, turn=True))
    assert sse == [b"<", b"a;", PING, PING, b"done;>"]
    quiet = await run(pump(Echo(), source(*items), turn=True))
    assert quiet == [b"<", b"a;", b"done;>"]


async def test_a_source_that_ends_before_the_done_is_cut_off() -> None:
    echo = Echo()
    chunks = await run(pump(echo, source(entries("a")), end=b"[END]", turn=True))
    assert chunks == [b"<", b"a;", b"![END]"]
    assert echo.asked == ["add 1", "cut_off None"]


async def test_an_error_of_the_source_is_cut_off_with_it() -> None:
    echo = Echo()
    failing = source(entries("a"), NotFound("gone", code="run_not_found"))
    chunks = await run(pump(echo, failing, end=b"[END]", turn=True))
    assert chunks == [b"<", b"a;", b"![END]"]
    assert echo.asked == ["add 1", "cut_off run_not_found"]


async def test_without_a_turn_the_source_end_closes_the_stream() -> None:
    echo = Echo()
    batches = source(entries("done"), entries("b", first=2))
    assert await run(pump(echo, batches)) == [b"<", b"done;", b"b;", b">"]
    assert await run(pump(Echo(), no_items(), end=b"[END]")) == [b"<", b">[END]"]


async def test_a_none_ends_the_source() -> None:
    """The chat gateway's source: model events, None after the last (``Call.next``)."""

    async def events() -> AsyncIterator[list[Entry] | None]:
        yield entries("a")
        yield entries("b")
        yield None
        raise AssertionError("read past the end")

    assert await run(pump(Echo(), events(), end=b"[END]")) == [b"<", b"a;", b"b;", b">[END]"]


async def test_release_runs_however_the_stream_ends() -> None:
    released: list[str] = []

    async def release() -> None:
        released.append("released")

    await run(pump(Echo(), source(entries("done")), turn=True, release=release))
    assert released == ["released"]
    frames = pump(Echo(), source(entries("a"), entries("b")), release=release)
    assert await anext(frames) == b"<"
    await frames.aclose()  # its reader stopped early
    assert released == ["released", "released"]


def test_turn_end() -> None:
    assert turn_end(entries("a")) is None
    assert turn_end(entries("a", "b")) is None
    one = entries("done")
    assert turn_end(one) is one
    two = entries("a", "done")
    assert turn_end(two) is two
    assert turn_end(entries("a", "done", "b")) == entries("a", "done")


# ------------------------------------------------------------------- a client that leaves


class Stage:
    """A served stream, and what happened on the server's side of it."""

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.run: asyncio.Task[None] | None = None
        self.released = threading.Event()
        self.written: list[bytes] = []


@pytest.fixture
def stage() -> Iterator[tuple[Stage, str]]:
    """An app whose one route streams a pump over an SSE sink, from a run that goes on by
    itself (an entry every 20 ms, after the first)."""
    stage = Stage()

    async def endpoint(request: Request) -> SSEResponse:
        stage.loop = asyncio.get_running_loop()
        queue: asyncio.Queue[list[Entry]] = asyncio.Queue()

        async def run() -> None:  # the run, going on in the "engine"
            for seq in range(1, 10_000):
                await queue.put(entries("a", first=seq))
                await asyncio.sleep(0.02)

        stage.run = asyncio.ensure_future(run())

        async def release() -> None:
            stage.released.set()

        class Recorded(Echo):
            def add(self, batch: list[Entry]) -> bytes:
                out = super().add(batch)
                stage.written.append(out)
                return out

        async def followed() -> AsyncIterator[list[Entry]]:
            while True:
                yield await queue.get()

        frames = pump(Recorded(), followed(), ping=PING, turn=True, release=release)
        return sse_response(frames)

    app = Starlette(routes=[Route("/stream", endpoint)])
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, name="stream-sink")
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.02)
        yield stage, f"http://127.0.0.1:{port}/stream"
    finally:
        server.should_exit = True
        thread.join(30)


def test_a_client_that_leaves_stops_the_writing_not_the_run(stage: tuple[Stage, str]) -> None:
    served, url = stage
    with httpx.Client(timeout=10) as http, http.stream("GET", url) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        chunks = response.iter_bytes()
        assert next(chunks).startswith(b"<")
    # The client has gone: the stream lets go at once, and writes no more.
    assert served.released.wait(5), "the stream did not end when its client left"
    written = len(served.written)
    time.sleep(0.2)
    assert len(served.written) == written
    # The run goes on: its task was not cancelled with the stream.
    assert served.loop is not None and served.run is not None
    assert not served.run.done()
    asyncio.run_coroutine_threadsafe(_cancel(served.run), served.loop).result(5)


async def _cancel(task: asyncio.Task[Any]) -> None:
    task.cancel()
