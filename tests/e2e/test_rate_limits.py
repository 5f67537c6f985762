"""Limits per API key and per client address (docs/configuration.md, Limits): requests per
key per window, turns in progress per key, failed authentications per address. Over a
limit: 429 ``rate_limited`` with ``Retry-After``. And an unknown key costs no database write.

With ``PARLEY_TEST_REDIS_URL`` set these servers keep their counters in Redis; otherwise in
their own process (test_rate_limits_redis.py covers the sharing)."""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy import make_url

from parley import Client, RateLimited
from tests.e2e.helpers import (
    assert_error,
    check_sse_response,
    create_assistant,
    create_run,
    create_thread,
    get_run,
    guarded,
    wait_run,
)
from tests.e2e.sse import stream_events
from tests.harness import FreshDatabase, ParleyServer, free_port, provider_config, tuned

WINDOW = 2  # seconds, of both the request and the failed-authentication windows
REQUESTS = 8
FAILURES = 3
ORIGIN = "https://app.example"


def _start(
    upstream: Any, tmp_path_factory: pytest.TempPathFactory, env: dict[str, str]
) -> tuple[ParleyServer, FreshDatabase]:
    tmp = tmp_path_factory.mktemp("limits")
    db = FreshDatabase(tmp)
    config = provider_config(upstream.base_url, free_port())
    return ParleyServer(database_url=db.url, workdir=tmp, config=config, env=env).start(), db


@pytest.fixture(scope="module")
def limited(
    upstream: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ParleyServer, list[str]]]:
    """A server with request and failed-authentication limits (and CORS for one origin),
    and three user keys made before any test spends the admin key's requests."""
    env = {
        "PARLEY_RATE_LIMIT_REQUESTS": str(REQUESTS),
        "PARLEY_RATE_LIMIT_WINDOW_SECONDS": str(WINDOW),
        "PARLEY_AUTH_FAILURE_LIMIT": str(FAILURES),
        "PARLEY_AUTH_FAILURE_WINDOW_SECONDS": str(WINDOW),
        "PARLEY_CORS_ORIGINS": ORIGIN,
    }
    srv, db = _start(upstream, tmp_path_factory, env)
    keys = [srv.new_user(f"u{i}") for i in range(3)]
    yield srv, keys
    srv.stop()
    srv.assert_clean_log()
    db.drop()


@pytest.fixture(scope="module")
def two_runs(upstream: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ParleyServer]:
    """A server where a key may have two turns in progress."""
    srv, db = _start(upstream, tmp_path_factory, {"PARLEY_RATE_LIMIT_CONCURRENT_RUNS": "2"})
    yield srv
    srv.stop()
    srv.assert_clean_log()
    db.drop()


def _retry_after(answer: httpx.Response) -> int:
    value = answer.headers.get("retry-after")
    assert value is not None and value.isdigit(), answer.headers
    return int(value)


def _from_address(srv: ParleyServer, address: str, headers: dict[str, str]) -> httpx.Client:
    """A client whose connections come from ``address`` (any 127.x.y.z is loopback)."""
    return guarded(
        httpx.Client(
            base_url=f"{srv.base_url}/v1",
            headers=headers,
            timeout=30,
            transport=httpx.HTTPTransport(local_address=address),
        )
    )


def _own_address() -> str:
    """A loopback address of this test alone (counters may live in a shared Redis)."""
    return f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(2, 254)}"


# ------------------------------------------------------------------- requests per key


def test_a_key_over_its_request_limit_gets_429_until_its_window_ends(
    limited: tuple[ParleyServer, list[str]],
) -> None:
    srv, (key, other_key, _) = limited
    with guarded(srv.client(key)) as http, guarded(srv.client(other_key)) as other:
        for _ in range(REQUESTS):
            assert http.get("/me").status_code == 200
        refused = http.get("/me")
        error = assert_error(refused, 429, "too_many_requests", type_="rate_limited")
        assert str(REQUESTS) in error["message"]
        wait = _retry_after(refused)
        assert 1 <= wait <= WINDOW
        on_threads = http.post("/threads", json={})  # OpenAI's shape, the same 429
        assert_error(on_threads, 429, "too_many_requests", type_="too_many_requests")
        assert 1 <= _retry_after(on_threads) <= WINDOW
        assert other.get("/me").status_code == 200  # another key counts on its own

        time.sleep(wait + 0.1)
        assert http.get("/me").status_code == 200


def test_the_sdk_raises_rate_limited_with_retry_after(
    limited: tuple[ParleyServer, list[str]],
) -> None:
    srv, (_, _, key) = limited
    with (
        Client(base_url=srv.base_url, api_key=key, max_retries=0) as client,
        pytest.raises(RateLimited) as caught,
    ):
        for _ in range(REQUESTS + 1):
            client.users.me()
    err = caught.value
    assert err.status_code == 429 and err.code == "too_many_requests"
    assert err.retry_after is not None and 1 <= err.retry_after <= WINDOW
    with (
        Client(base_url=srv.base_url, api_key=key, max_retries=0) as client,
        pytest.raises(RateLimited) as on_threads,
    ):
        client.threads.create()  # an Assistants path: the 429 in OpenAI's shape
    refused = on_threads.value
    assert refused.code == "too_many_requests"
    assert refused.retry_after is not None and 1 <= refused.retry_after <= WINDOW


def test_a_429_carries_cors_headers_and_exposes_retry_after(
    limited: tuple[ParleyServer, list[str]],
) -> None:
    srv, (_, _, key) = limited
    with guarded(srv.client(key)) as http:
        answers = [http.get("/me", headers={"Origin": ORIGIN}) for _ in range(REQUESTS + 1)]
    refused = next(a for a in answers if a.status_code == 429)
    assert refused.headers["access-control-allow-origin"] == ORIGIN
    exposed = [
        h.strip().lower() for h in refused.headers["access-control-expose-headers"].split(",")
    ]
    assert "retry-after" in exposed
    assert _retry_after(refused) >= 1


# ---------------------------------------------------- failed authentications per address


def test_an_address_with_too_many_failed_authentications_gets_429(
    limited: tuple[ParleyServer, list[str]],
) -> None:
    srv, (_, key, _) = limited
    address = _own_address()
    good = {"Authorization": f"Bearer {key}"}
    with (
        _from_address(srv, address, {"Authorization": "Bearer pk_wrong"}) as wrong,
        _from_address(srv, address, good) as right,
        _from_address(srv, _own_address(), good) as elsewhere,
    ):
        for _ in range(FAILURES):
            assert_error(wrong.get("/me"), 401)
        blocked = wrong.get("/me")
        assert_error(blocked, 429, "too_many_auth_failures", type_="rate_limited")
        assert 1 <= _retry_after(blocked) <= WINDOW
        # Refused before any key is checked: a good key from there too, and no key at all.
        assert_error(right.get("/me"), 429, "too_many_auth_failures", type_="rate_limited")
        assert elsewhere.get("/me").status_code == 200  # another address counts on its own

        time.sleep(_retry_after(blocked) + 0.1)
        assert right.get("/me").status_code == 200


def test_missing_and_malformed_keys_count_as_failures(
    limited: tuple[ParleyServer, list[str]],
) -> None:
    srv, _ = limited
    with _from_address(srv, _own_address(), {}) as http:
        assert_error(http.get("/me"), 401, "missing_api_key")
        assert_error(http.get("/me", headers={"Authorization": "Basic eDp5"}), 401)
        assert_error(http.get("/me", headers={"X-API-Key": "nope"}), 401, "invalid_api_key")
        assert_error(http.get("/me"), 429, "too_many_auth_failures", type_="rate_limited")


# -------------------------------------------------------------- turns in progress per key


@contextmanager
def _stalled_turns(http: httpx.Client, assistant_id: str, count: int) -> Iterator[list[str]]:
    """``count`` turns that stay in progress (their streams open); cancelled on leaving."""
    run_ids: list[str] = []
    with ExitStack() as stack:
        for _ in range(count):
            response = stack.enter_context(
                http.stream("POST", "/process", json={"assistant_id": assistant_id, "content": "x"})
            )
            check_sse_response(response)
            first = next(stream_events(response))
            run_ids.append(str(first.data["run_id"]))
        try:
            yield run_ids
        finally:
            for run_id in run_ids:
                if get_run(http, run_id)["status"] == "in_progress":
                    http.post(f"/runs/{run_id}/cancel")
            for run_id in run_ids:
                wait_run(http, run_id)


def _start_process(http: httpx.Client, assistant_id: str) -> httpx.Response:
    return http.post(
        "/process", json={"assistant_id": assistant_id, "content": "x", "stream": False}
    )


def test_a_key_over_its_turns_in_progress_gets_429_until_one_ends(two_runs: ParleyServer) -> None:
    srv = two_runs
    with guarded(srv.client(srv.new_user())) as http, guarded(srv.client(srv.new_user())) as other:
        stall = create_assistant(http, model="fake/stall:1")["id"]
        quick = create_assistant(http, model="fake/text:2:1")["id"]
        with _stalled_turns(http, stall, 2) as (first, _):
            refused = _start_process(http, quick)
            assert_error(refused, 429, "too_many_runs", type_="rate_limited")
            assert _retry_after(refused) == 1
            # Flow A (completions) takes a slot too.
            thread = create_thread(http)["id"]
            run = create_run(http, thread, quick)
            flow_a = http.post("/completions", json={"run_id": run["id"], "stream": False})
            assert_error(flow_a, 429, "too_many_runs", type_="rate_limited")
            assert get_run(http, run["id"])["status"] == "queued"  # refused before it started
            # Another key has slots of its own.
            mine = create_assistant(other, model="fake/text:2:1")["id"]
            assert _start_process(other, mine).status_code == 200

            assert http.post(f"/runs/{first}/cancel").status_code == 200
            wait_run(http, first)
            deadline = time.monotonic() + 5
            answer = _start_process(http, quick)
            while answer.status_code == 429 and time.monotonic() < deadline:
                time.sleep(0.05)  # the slot comes back when the turn's task has ended
                answer = _start_process(http, quick)
            assert answer.status_code == 200, answer.text
            assert answer.json()["status"] == "completed"


def test_a_turn_that_cannot_start_gives_its_slot_back(two_runs: ParleyServer) -> None:
    srv = two_runs
    with guarded(srv.client(srv.new_user())) as http:
        quick = create_assistant(http, model="fake/text:2:1")["id"]
        for _ in range(5):
            answer = http.post("/process", json={"assistant_id": "asst_nope", "content": "x"})
            assert_error(answer, 404)
        for _ in range(3):
            assert _start_process(http, quick).status_code == 200


# ---------------------------------------------------------- an unknown key writes nothing


@pytest.fixture
def quiet_server(upstream: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ParleyServer]:
    """A server that writes nothing on its own (no sweeps while the test runs)."""
    srv, db = _start(upstream, tmp_path_factory, tuned(sweep_seconds=3600))
    yield srv
    srv.stop()
    srv.assert_clean_log()
    db.drop()


@contextmanager
def _writes_locked(database_url: str) -> Iterator[None]:
    """Hold the database so that nobody else can write, while reads still go on: SQLite's
    write lock (``BEGIN IMMEDIATE``); on PostgreSQL an ``EXCLUSIVE`` lock on every table."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        conn = sqlite3.connect(str(url.database), timeout=5, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            yield
            conn.execute("ROLLBACK")
        finally:
            conn.close()
        return
    import psycopg

    with psycopg.connect(url.set(drivername="postgresql").render_as_string(False)) as conn:
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT quote_ident(tablename) FROM pg_tables WHERE schemaname = 'public'"
            )
        ]
        conn.execute(f"LOCK TABLE {', '.join(tables)} IN EXCLUSIVE MODE")
        yield
        conn.rollback()


def test_an_unknown_key_costs_no_database_write(quiet_server: ParleyServer) -> None:
    srv = quiet_server
    key = srv.new_user()
    with guarded(srv.client(key)) as known:
        assert known.get("/me").status_code == 200  # its last_used_at is stamped now
    with _writes_locked(srv.database_url), ExitStack() as stack:
        for i in range(5):
            wrong = stack.enter_context(
                guarded(srv.client(f"pk_unknown{i}", timeout=httpx.Timeout(3.0)))
            )
            started = time.monotonic()
            assert_error(wrong.get("/me"), 401, "invalid_api_key")
            assert time.monotonic() - started < 2, "the key check waited for the write lock"
    srv.assert_clean_log()
