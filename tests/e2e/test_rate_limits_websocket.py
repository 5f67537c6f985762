"""Each ``response.create`` message on the Responses WebSocket counts as one request against
its key's request limit (docs/api.md, "Rate limits"), like an HTTP request: over the limit a
message is answered by an ``error`` event (429 ``rate_limit_exceeded``, with the seconds to
wait) and the socket stays open. With Redis the count is shared by the replicas."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.helpers import assert_error, guarded
from tests.e2e.responses_helpers import output_text, websocket
from tests.harness import (
    TEST_REDIS_URL,
    ParleyServer,
    redis_reachable,
    replicas,
)

REQUESTS = 5
WINDOW = 30
LIMITS = {
    "PARLEY_RATE_LIMIT_REQUESTS": str(REQUESTS),
    "PARLEY_RATE_LIMIT_WINDOW_SECONDS": str(WINDOW),
}
MODEL = "fake/text:2"


def _servers(
    upstream: Any, tmp_path_factory: pytest.TempPathFactory, count: int, env: dict[str, str]
) -> Iterator[list[ParleyServer]]:
    tmp = tmp_path_factory.mktemp("ws_limits")
    yield from replicas(upstream.base_url, tmp, count, env)


@pytest.fixture
def one(upstream: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ParleyServer]:
    for servers in _servers(upstream, tmp_path_factory, 1, {**LIMITS, "PARLEY_REDIS_URL": ""}):
        yield servers[0]


@pytest.fixture
def two(upstream: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[ParleyServer]]:
    if not redis_reachable():
        pytest.skip(f"no Redis at {TEST_REDIS_URL} (set PARLEY_TEST_REDIS_URL)")
    yield from _servers(
        upstream, tmp_path_factory, 2, {**LIMITS, "PARLEY_REDIS_URL": TEST_REDIS_URL}
    )


def _key(srv: ParleyServer) -> str:
    """A new user's key, made without spending any key's requests."""
    made = srv.cli("users", "create", "u")
    assert made.returncode == 0, made.stderr
    return made.stdout.strip().splitlines()[-1]


def _create() -> dict[str, Any]:
    return {"type": "response.create", "model": MODEL, "input": "hello", "store": False}


def _check_refusal(error: dict[str, Any]) -> None:
    assert error["type"] == "error" and error["status"] == 429, error
    body = error["error"]
    assert body["code"] == "rate_limit_exceeded", error
    assert f"at most {REQUESTS} every {WINDOW} seconds" in body["message"], error
    seconds = re.search(r"retry in (\d+) seconds?", body["message"])
    assert seconds is not None and 1 <= int(seconds[1]) <= WINDOW, error


def test_each_message_counts_as_a_request(one: ParleyServer) -> None:
    key = _key(one)
    with websocket(one, key) as socket:  # the handshake is the key's first request
        for _ in range(REQUESTS - 1):
            assert output_text(socket.create(**_create())) != ""
        _check_refusal(socket.error(_create()))
        # Still open, still refusing, and refusing over HTTP too: one count.
        _check_refusal(socket.error(_create()))
        with guarded(one.client(key)) as http:
            assert_error(http.get("/me"), 429, "too_many_requests", type_="rate_limited")


def test_a_burst_on_one_socket_passes_no_more_than_the_limit(one: ParleyServer) -> None:
    key = _key(one)
    with websocket(one, key) as socket:
        answers = [socket.turn(_create())[-1] for _ in range(3 * REQUESTS)]
    passed = [a for a in answers if a["type"] != "error"]
    assert len(passed) == REQUESTS - 1, [a["type"] for a in answers]
    for refused in answers[REQUESTS - 1 :]:
        _check_refusal(refused)


def test_replicas_share_the_count_of_messages(two: list[ParleyServer]) -> None:
    a, b = two
    key = _key(a)
    with websocket(a, key) as socket:
        for _ in range(REQUESTS - 1):
            socket.create(**_create())
        with guarded(b.client(key)) as on_b:
            assert_error(on_b.get("/me"), 429, "too_many_requests", type_="rate_limited")
        _check_refusal(socket.error(_create()))
