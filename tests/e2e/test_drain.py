"""A replica told to stop (SIGTERM) drains: new turns are refused (503 ``server_draining``
with ``Retry-After``), ``/readyz`` says ``draining``, running turns stream on to their
``done``; what still runs when ``drain_seconds`` is over ends ``incomplete``. Each test has
its own server, stopped by the test, and starts it again to read the run back."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from parley.testing.fake_upstream import expected_text
from tests.e2e.helpers import (
    check_sse_response,
    create_assistant,
    get_run,
    guarded,
    joined,
)
from tests.e2e.sse import Event, stream_events
from tests.harness import FreshDatabase, ParleyServer, free_port, provider_config


@pytest.fixture
def database(tmp_path: Path) -> Iterator[FreshDatabase]:
    db = FreshDatabase(tmp_path)
    try:
        yield db
    finally:
        db.drop()


def _server(upstream: Any, db: FreshDatabase, workdir: Path, drain: float) -> ParleyServer:
    return ParleyServer(
        database_url=db.url,
        workdir=workdir,
        config=provider_config(upstream.base_url, free_port()),
        env={"PARLEY_DRAIN_SECONDS": str(drain)},
    )


def _sigterm_mid_turn(
    srv: ParleyServer, http: httpx.Client, model: str
) -> tuple[str, list[Event], dict[str, Any], httpx.Response]:
    """Stream a turn of ``model``, SIGTERM the server after its second content delta, then
    try a new turn and read the rest of the stream: the run id, every event of the stream,
    ``/readyz``'s answer during the drain, and the refused turn's answer."""
    bot = create_assistant(http, model)
    body = {"assistant_id": bot["id"], "content": "hello"}
    with http.stream("POST", "/process", json=body) as response:
        check_sse_response(response)
        events = stream_events(response)
        seen = [next(events)]
        while sum(e.event == "content.delta" for e in seen) < 2:
            seen.append(next(events))
        assert srv.proc is not None
        srv.proc.send_signal(signal.SIGTERM)
        ready = httpx.get(f"{srv.base_url}/readyz", timeout=5)
        assert ready.status_code == 503, ready.text
        refused = http.post("/process", json=body)
        # A model call that stores nothing is no less new: refused alike, in OpenAI's shape.
        chat = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
        called = http.post("/chat/completions", json=chat)
        assert called.status_code == 503, called.text
        assert called.json()["error"]["code"] == "server_draining", called.text
        seen.extend(events)
    return str(seen[0].data["run_id"]), seen, ready.json(), refused


def _exit_code(srv: ParleyServer, timeout: float) -> int | None:
    assert srv.proc is not None
    try:
        return srv.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return None


def test_a_draining_server_finishes_running_turns_and_refuses_new_ones(
    upstream: Any, database: FreshDatabase, tmp_path: Path
) -> None:
    srv = _server(upstream, database, tmp_path, drain=20).start()
    key = srv.new_user()
    try:
        with guarded(srv.client(key)) as http:
            run_id, seen, ready, refused = _sigterm_mid_turn(srv, http, "fake/text:30:60")
        assert ready == {"status": "draining"}
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"]["code"] == "server_draining"
        assert int(refused.headers["Retry-After"]) >= 1
        assert "x-request-id" in refused.headers
        tail = [(e.event, e.data.get("status")) for e in seen[-2:]]
        assert tail == [("run.status", "completed"), ("done", "completed")], seen[-3:]
        assert joined(seen, "content.delta") == expected_text(30)
        # With no turn left, the server stops well before the drain's 20 s run out.
        assert _exit_code(srv, timeout=10) in (0, -signal.SIGTERM)
        srv.stop()
        srv.start()
        with guarded(srv.client(key)) as http:
            assert get_run(http, run_id)["status"] == "completed"
        srv.assert_clean_log()
    finally:
        srv.stop()


def test_turns_still_running_when_the_drain_ends_are_incomplete(
    upstream: Any, database: FreshDatabase, tmp_path: Path
) -> None:
    srv = _server(upstream, database, tmp_path, drain=1).start()
    key = srv.new_user()
    try:
        with guarded(srv.client(key)) as http:
            run_id, seen, _, refused = _sigterm_mid_turn(srv, http, "fake/text:60:100")
        assert refused.status_code == 503
        tail = [(e.event, e.data.get("status")) for e in seen[-2:]]
        assert tail == [("run.status", "incomplete"), ("done", "incomplete")], seen[-3:]
        assert 2 <= sum(e.event == "content.delta" for e in seen) < 60
        assert _exit_code(srv, timeout=10) in (0, -signal.SIGTERM)
        srv.stop()
        srv.start()
        with guarded(srv.client(key)) as http:
            assert get_run(http, run_id)["status"] == "incomplete"
        srv.assert_clean_log()
    finally:
        srv.stop()


def test_a_second_signal_during_the_drain_stops_at_once(
    upstream: Any, database: FreshDatabase, tmp_path: Path
) -> None:
    srv = _server(upstream, database, tmp_path, drain=30).start()
    key = srv.new_user()
    try:
        with guarded(srv.client(key)) as http:
            bot = create_assistant(http, "fake/text:100:100")
            body = {"assistant_id": bot["id"], "content": "hello"}
            with http.stream("POST", "/process", json=body) as response:
                check_sse_response(response)
                events = stream_events(response)
                seen = [next(events), next(events)]
                assert srv.proc is not None
                srv.proc.send_signal(signal.SIGTERM)
                assert httpx.get(f"{srv.base_url}/readyz", timeout=5).status_code == 503
                srv.proc.send_signal(signal.SIGTERM)
                seen.extend(events)
        assert seen[-1].event == "done" and seen[-1].data["status"] == "incomplete", seen[-3:]
        assert _exit_code(srv, timeout=5) is not None
    finally:
        srv.stop()
