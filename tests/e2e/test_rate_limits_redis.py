"""Limits across replicas: with Redis two servers share every counter, and a slot held by a
replica that died frees itself when its lease ends; without Redis each counts on its own."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.helpers import (
    assert_error,
    check_sse_response,
    create_assistant,
    guarded,
    wait_run,
)
from tests.e2e.sse import stream_events
from tests.harness import (
    TEST_REDIS_URL,
    FreshDatabase,
    ParleyServer,
    free_port,
    provider_config,
    redis_reachable,
)

REDIS_URL = TEST_REDIS_URL
REQUESTS = 6
LEASE = 2  # seconds


needs_redis = pytest.mark.skipif(
    not redis_reachable(), reason=f"no Redis at {REDIS_URL} (set PARLEY_TEST_REDIS_URL)"
)

LIMITS = {
    "PARLEY_RATE_LIMIT_REQUESTS": str(REQUESTS),
    "PARLEY_RATE_LIMIT_WINDOW_SECONDS": "30",
    "PARLEY_AUTH_FAILURE_LIMIT": "2",
    "PARLEY_AUTH_FAILURE_WINDOW_SECONDS": "30",
}
ONE_RUN = {"PARLEY_RATE_LIMIT_CONCURRENT_RUNS": "1", "PARLEY_LEASE_SECONDS": str(LEASE)}


def _pair(
    upstream: Any, tmp_path_factory: pytest.TempPathFactory, env: dict[str, str]
) -> Iterator[tuple[ParleyServer, ParleyServer]]:
    tmp = tmp_path_factory.mktemp("replicas")
    db = FreshDatabase(tmp)
    config = provider_config(upstream.base_url, free_port())
    a = ParleyServer(database_url=db.url, workdir=tmp, config=config, env=env).start()
    b = ParleyServer(database_url=db.url, workdir=tmp, config=config, env=env).start()
    yield a, b
    for srv in (a, b):
        srv.stop()
        srv.assert_clean_log()
    db.drop()


@pytest.fixture
def shared(
    upstream: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ParleyServer, ParleyServer]]:
    yield from _pair(upstream, tmp_path_factory, {**LIMITS, "PARLEY_REDIS_URL": REDIS_URL})


@pytest.fixture
def shared_runs(
    upstream: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ParleyServer, ParleyServer]]:
    yield from _pair(upstream, tmp_path_factory, {**ONE_RUN, "PARLEY_REDIS_URL": REDIS_URL})


@pytest.fixture
def apart(
    upstream: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ParleyServer, ParleyServer]]:
    # No Redis, whatever the suite uses.
    yield from _pair(upstream, tmp_path_factory, {**LIMITS, "PARLEY_REDIS_URL": ""})


def _key(srv: ParleyServer) -> str:
    """A new user's key, made without spending the admin key's requests."""
    made = srv.cli("users", "create", "u")
    assert made.returncode == 0, made.stderr
    return made.stdout.strip().splitlines()[-1]


def _start_stall(http: httpx.Client, assistant_id: str) -> str | httpx.Response:
    """Start a turn that stays in progress and answer its run id (the turn goes on without
    the stream), or the refusal."""
    body = {"assistant_id": assistant_id, "content": "x"}
    with http.stream("POST", "/process", json=body) as response:
        if response.status_code == 429:
            response.read()
            return response
        check_sse_response(response)
        return str(next(stream_events(response)).data["run_id"])


@needs_redis
def test_replicas_share_the_request_count(shared: tuple[ParleyServer, ParleyServer]) -> None:
    a, b = shared
    key = _key(a)
    with guarded(a.client(key)) as on_a, guarded(b.client(key)) as on_b:
        for _ in range(REQUESTS // 2):
            assert on_a.get("/me").status_code == 200
            assert on_b.get("/me").status_code == 200
        assert_error(on_a.get("/me"), 429, "too_many_requests", type_="rate_limited")
        refused = on_b.get("/me")
        assert_error(refused, 429, "too_many_requests", type_="rate_limited")
        assert 1 <= int(refused.headers["retry-after"]) <= 30


@needs_redis
def test_replicas_share_failed_authentications(shared: tuple[ParleyServer, ParleyServer]) -> None:
    a, b = shared
    address = f"127.{os.getpid() % 250 + 1}.{int(time.time()) % 250 + 1}.9"
    with (
        guarded(a.client("pk_wrong", transport=httpx.HTTPTransport(local_address=address))) as on_a,
        guarded(b.client("pk_wrong", transport=httpx.HTTPTransport(local_address=address))) as on_b,
    ):
        assert_error(on_a.get("/me"), 401)
        assert_error(on_b.get("/me"), 401)
        assert_error(on_a.get("/me"), 429, "too_many_auth_failures", type_="rate_limited")
        assert_error(on_b.get("/me"), 429, "too_many_auth_failures", type_="rate_limited")


@needs_redis
def test_a_dead_replicas_turn_slot_frees_itself(
    shared_runs: tuple[ParleyServer, ParleyServer],
) -> None:
    a, b = shared_runs
    key = _key(a)
    with guarded(a.client(key)) as on_a, guarded(b.client(key)) as on_b:
        stall = create_assistant(on_a, model="fake/stall:1")["id"]
        first = _start_stall(on_a, stall)
        assert isinstance(first, str)
        refused = _start_stall(on_b, stall)
        assert isinstance(refused, httpx.Response)
        assert_error(refused, 429, "too_many_runs", type_="rate_limited")
        time.sleep(LEASE * 1.5)  # a live replica renews its slot past its lease
        refused = _start_stall(on_b, stall)
        assert isinstance(refused, httpx.Response)
        assert_error(refused, 429, "too_many_runs", type_="rate_limited")

        a.kill()  # dies holding the slot: nobody gives it back, its lease ends it
        deadline = time.monotonic() + LEASE * 3
        second = _start_stall(on_b, stall)
        while isinstance(second, httpx.Response) and time.monotonic() < deadline:
            time.sleep(0.1)
            second = _start_stall(on_b, stall)
        assert isinstance(second, str), second.text
        assert on_b.post(f"/runs/{second}/cancel").status_code == 200
        wait_run(on_b, second)
        # The survivor settles the dead replica's turn once its lease has ended too.
        assert wait_run(on_b, first, timeout=20)["status"] == "incomplete"


def test_without_redis_each_replica_counts_on_its_own(
    apart: tuple[ParleyServer, ParleyServer],
) -> None:
    a, b = apart
    key = _key(a)
    with guarded(a.client(key)) as on_a, guarded(b.client(key)) as on_b:
        for _ in range(REQUESTS):
            assert on_a.get("/me").status_code == 200
            assert on_b.get("/me").status_code == 200
        assert_error(on_a.get("/me"), 429, "too_many_requests", type_="rate_limited")
        assert_error(on_b.get("/me"), 429, "too_many_requests", type_="rate_limited")
