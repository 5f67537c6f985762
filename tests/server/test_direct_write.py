"""The direct socket write of a turn's SSE stream (``kit.direct_write``) against the plain
path: the same turn, streamed over uvicorn on loopback with and without it, reaches the
client as the same bytes, and with it most of the turn's events go out by the direct
write, through a stack of Parley's middlewares too (each send a ``PassingSend``)."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from parley.asgi_send import PassingSend
from parley.engine import Entry
from parley.engine.hub import Followed, RunChannel
from parley.metrics import Metrics
from parley.metrics_http import RequestMetrics, RouteNames
from parley.server.faces.kit.direct_write import SocketWrite, direct_write, sends_at_once
from parley.server.faces.kit.sse import PING, entry_frames
from parley.server.faces.kit.sse_response import sse_response
from parley.server.faces.kit.streams import pump
from parley.server.logs import AccessLog
from tests.harness import free_port

#: The turn's text deltas, in rounds of the event loop (a model's parts read together).
ROUNDS = [1, 3, 1, 2, 5, 1, 1, 4, 2, 1]


class Frames:
    """The native face's translator: each entry as its own frame."""

    def opening(self) -> bytes:
        return b""

    add = staticmethod(entry_frames)

    async def closing(self) -> bytes:
        return b""

    def cut_off(self, error: object) -> bytes:
        return b""


class Counted(SocketWrite):
    """The direct write, counting the entries it wrote."""

    __slots__ = ()
    written = 0

    def write(self, batch: list[Entry]) -> bool:
        done = super().write(batch)
        if done:
            Counted.written += len(batch)
        return done


async def _turn(channel: RunChannel) -> None:
    await asyncio.sleep(0.02)  # the follower waits
    seq = 0
    for size in ROUNDS:
        for _ in range(size):
            seq += 1
            channel.publish((seq, "content.delta", f'{{"text":"part {seq}"}}'))
        await asyncio.sleep(0.002)
    channel.publish_many([(seq + 1, "run.status", "{}"), (seq + 2, "done", "{}")])
    channel.close()


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """One stream per request: a turn of its own, written directly when the query asks."""
    assert scope["type"] == "http"
    channel = RunChannel("run_1", first_seq=1)
    source = Followed(channel, 0, idle_timeout=30)
    frames = Frames()
    direct = None
    if scope["query_string"] == b"direct=1":
        direct = Counted(frames.add)
        source.write_to(direct)
    turn = asyncio.ensure_future(_turn(channel))
    body = pump(frames, source, ping=PING, turn=True)
    await sse_response(body, direct=direct)(scope, receive, send)
    await turn


#: The app under the server's own middlewares: the access log over the request metrics.
stacked = AccessLog(RequestMetrics(app, Metrics(), routes=RouteNames("", (), ("/",))))


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    yield from _served(app)


@pytest.fixture(scope="module")
def stacked_url() -> Iterator[str]:
    yield from _served(stacked)


def _served(served: ASGIApp) -> Iterator[str]:
    """The URL of ``served`` run by uvicorn on loopback, until the tests are done."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(served, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, name="direct-write")
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.should_exit = True
        thread.join(30)


def test_the_direct_write_sends_the_bytes_the_plain_path_does(url: str) -> None:
    with httpx.Client(timeout=10) as http:
        plain = http.get(url).content
        Counted.written = 0
        direct = http.get(url, params={"direct": "1"}).content
    parts = sum(ROUNDS)
    assert direct == plain
    assert plain.count(b"event: content.delta") == parts and plain.endswith(
        b"event: done\ndata: {}\n\n"
    )
    assert Counted.written >= parts // 2  # the trick did write (all but what it handed back)


@pytest.mark.parametrize("logged", [True, False], ids=["access-logged", "not-logged"])
def test_the_direct_write_reaches_the_socket_under_the_middlewares(
    stacked_url: str, logged: bool
) -> None:
    """The access log (whose send counts the bytes when it logs, else only adds the
    request's id) over the request metrics: the direct write still finds uvicorn's send."""
    access = logging.getLogger("parley.access")
    level = access.level
    access.setLevel(logging.INFO if logged else logging.WARNING)
    try:
        with httpx.Client(timeout=10) as http:
            plain = http.get(stacked_url).content
            Counted.written = 0
            response = http.get(stacked_url, params={"direct": "1"})
    finally:
        access.setLevel(level)
    assert response.content == plain
    assert response.headers["x-request-id"]
    assert Counted.written >= sum(ROUNDS) // 2


def test_a_passing_send_is_stepped_only_over_one_that_can_be() -> None:
    async def send(message: object) -> None:  # an ordinary coroutine, not uvicorn's
        return None

    assert not sends_at_once(PassingSend(send, send))


def test_only_a_turn_s_own_events_take_a_direct_write() -> None:
    channel = RunChannel("run_1", first_seq=1)
    assert direct_write(Followed(channel, 0, idle_timeout=30), entry_frames) is not None
    assert direct_write(_log(), entry_frames) is None


async def _log() -> AsyncIterator[list[Entry]]:
    yield []


def test_a_write_goes_direct_only_through_a_send_it_can_step() -> None:
    sink = SocketWrite(entry_frames)

    async def send(message: object) -> None:  # an ordinary coroutine, not uvicorn's
        return None

    sink.attach(send)
    assert not sink.ready and not sink.write([(1, "a", "{}")])
