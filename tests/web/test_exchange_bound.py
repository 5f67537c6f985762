"""The web app's server and its bound on concurrent exchanges, over real HTTP on loopback
against the suite's Parley server (the fake upstream paces its chunks like a model)."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from parley.sdk import Client, SSEDecoder
from parley.web import create_app
from parley.web.limits import SLOTS, ExchangeSlots
from parley.web.server import WebServer
from tests.web.conftest import SECRET, Browser, WebApp, read_events, serve

#: 30 chunks 50 ms apart: an exchange streams for about 1.5 s.
SLOW = "fake/text:30:50"


@pytest.fixture
def bounded(server: Any, user_key: str) -> Iterator[WebApp]:
    """The web app with ``max_exchanges=2``."""
    app = create_app(base_url=server.base_url, api_key=user_key, secret_key=SECRET, max_exchanges=2)
    yield from serve(app)


def _slots(web: WebApp) -> ExchangeSlots:
    slots: ExchangeSlots = web.app.extensions[SLOTS]
    return slots


def _browser(web: WebApp) -> Browser:
    b = Browser(web.url)
    b.open_page()
    return b


def _until(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _read_to_first_content(response: httpx.Response) -> Iterator[bytes]:
    """The response's raw chunks, the first ones consumed up to the first content event."""
    decoder = SSEDecoder()
    chunks = response.iter_bytes()
    for chunk in chunks:
        if any(frame.event == "content.delta" for frame in decoder.feed(chunk)):
            return chunks
    raise AssertionError("no content.delta in the stream")


def test_each_event_reaches_the_browser_when_written(browser: Browser) -> None:
    arrivals: list[float] = []
    with browser.open_stream("hello", model=SLOW) as response:
        assert response.status_code == 200
        for event, _ in read_events(response):
            if event == "content.delta":
                arrivals.append(time.monotonic())
    assert len(arrivals) == 30
    # Held back and sent in a lump, they would arrive within a few ms of each other.
    assert arrivals[-1] - arrivals[0] > 0.5 * 29 * 0.050, arrivals
    distinct = {round(t, 2) for t in arrivals}
    assert len(distinct) > 10, arrivals


def test_over_the_bound_an_exchange_is_answered_busy_at_once(bounded: WebApp) -> None:
    browsers = [_browser(bounded) for _ in range(3)]
    try:
        with browsers[0].open_stream("one", model=SLOW) as first:
            rest_of_first = _read_to_first_content(first)
            with browsers[1].open_stream("two", model=SLOW) as second:
                _read_to_first_content(second)
                assert _slots(bounded).in_use == 2

                busy = browsers[2].post("/api/messages/process", {"content": "three"})
                # Answered while both streams still run: no waiting for a slot.
                assert not first.is_closed and not second.is_closed
                assert busy.status_code == 503
                assert busy.headers["Retry-After"] == "5"
                assert busy.headers["content-type"].startswith("application/json")
                assert busy.json() == {
                    "error": {
                        "type": "busy",
                        "message": "The server is busy: 2 chats are streaming; "
                        "try again in a moment.",
                    }
                }
                for _ in rest_of_first:  # the first exchange ends
                    pass
                # The first's slot is free (the second may have ended as well by now: on a
                # slow machine both end within one poll, and "exactly 1" is never seen).
                _until(lambda: _slots(bounded).in_use <= 1)

                events = browsers[2].process("three", model="fake/text:3:0")
                assert events[-1][0] == "done" and events[-1][1]["status"] == "completed"
        _until(lambda: _slots(bounded).in_use == 0)
    finally:
        for b in browsers:
            b.close()


def test_page_and_history_load_while_every_slot_streams(bounded: WebApp) -> None:
    browsers = [_browser(bounded) for _ in range(3)]
    try:
        with browsers[0].open_stream("one", model=SLOW) as first:
            _read_to_first_content(first)
            with browsers[1].open_stream("two", model=SLOW) as second:
                _read_to_first_content(second)
                assert browsers[2].get("/").status_code == 200
                assert browsers[2].get("/api/threads").status_code == 200
                assert browsers[2].get("/static/app.js").status_code == 200
    finally:
        for b in browsers:
            b.close()


def test_a_browser_that_leaves_frees_its_slot(bounded: WebApp, sdk: Client) -> None:
    leaver, other = _browser(bounded), _browser(bounded)
    try:
        with leaver.open_stream("leaving", model=SLOW) as response:
            _read_to_first_content(response)
            assert _slots(bounded).in_use == 1
        # The connection is closed mid-answer: the app finishes the run unwatched, then
        # the server closes the response and the slot is free.
        _until(lambda: _slots(bounded).in_use == 0)
        threads = other.get("/api/threads").json()["data"]
        assert threads == []  # the leaver's thread is its session's, not this one's
        events = other.process("after", model="fake/text:3:0")
        assert events[-1][1]["status"] == "completed"
        for thread in leaver.get("/api/threads").json()["data"]:
            messages = leaver.get(f"/api/threads/{thread['id']}/messages").json()["data"]
            assert [m["role"] for m in messages] == ["user", "assistant"]
            assert messages[-1]["content"]  # the whole answer was kept
    finally:
        leaver.close()
        other.close()


def test_a_failed_exchange_frees_its_slot(bounded: WebApp, browser: Browser) -> None:
    b = _browser(bounded)
    try:
        for _ in range(3):  # more failures than slots: each gave its slot back
            events = b.process("hello", model="nowhere/model")
            assert events[-1][0] == "done" and events[-1][1]["status"] == "failed"
        _until(lambda: _slots(bounded).in_use == 0)
    finally:
        b.close()


def test_a_taken_port_is_a_plain_os_error(server: Any, user_key: str) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        app = create_app(base_url=server.base_url, api_key=user_key, secret_key=SECRET)
        with pytest.raises(OSError) as raised:
            WebServer(app, "127.0.0.1", port)
        assert raised.value.strerror  # "Address already in use", for the command to print


def test_stop_ends_serving_and_is_idempotent(web: WebApp) -> None:
    assert httpx.get(web.url + "/").status_code == 200
    server = WebServer(web.app, "127.0.0.1", 0).start_in_thread()
    assert httpx.get(server.url + "/").status_code == 200
    started = time.monotonic()
    server.stop()
    server.stop()
    assert time.monotonic() - started < 5
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.url + "/", timeout=2)


def test_bound_must_be_at_least_one() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        ExchangeSlots(0)
    slots = ExchangeSlots(1)
    slot = slots.take()
    assert slot is not None and slots.take() is None
    slot.release()
    slot.release()  # once only
    assert slots.in_use == 0
