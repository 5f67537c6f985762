"""A replica told to stop (SIGTERM) drains: new turns are refused (503 ``server_draining``
with ``Retry-After``), ``/readyz`` says ``draining``, running turns stream on to their
``done``; what still runs when ``drain_seconds`` is over ends ``incomplete``. Each test has
its own server, stopped by the test, and starts it again to read the run back."""

from __future__ import annotations

import concurrent.futures
import json
import signal
import subprocess
import time
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


# ----------------------------------------------------------------- chat completions


def _chat_lines(response: httpx.Response) -> Iterator[str]:
    """The ``data:`` payloads of a chat completion stream, as they come."""
    for line in response.iter_lines():
        if line.startswith("data: "):
            yield line[len("data: ") :]


def _sigterm_mid_chat(srv: ParleyServer, http: httpx.Client, model: str) -> tuple[list[str], float]:
    """Stream a chat completion of ``model``, SIGTERM the server after its second content
    chunk, check during the drain that the server still answers (``/readyz``: draining)
    a while later, and read the stream to its end: its payloads, and the seconds from the
    signal to the stream's end."""
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": True}
    with http.stream("POST", "/chat/completions", json=body) as response:
        assert response.status_code == 200, response.read()
        lines = _chat_lines(response)
        seen = [next(lines)]
        while sum('"content"' in line for line in seen) < 3:
            seen.append(next(lines))
        assert srv.proc is not None
        srv.proc.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        seen.extend(next(lines) for _ in range(3))
        # The stream runs on, and so does the server: it has not closed its doors.
        ready = httpx.get(f"{srv.base_url}/readyz", timeout=5)
        assert ready.status_code == 503 and ready.json() == {"status": "draining"}, ready.text
        seen.extend(lines)
    return seen, time.monotonic() - signalled


def _text_of(payloads: list[str]) -> str:
    chunks = [json.loads(p) for p in payloads if p != "[DONE]"]
    return "".join(
        c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices")
    )


def test_a_draining_server_finishes_chat_streams(
    upstream: Any, database: FreshDatabase, tmp_path: Path
) -> None:
    srv = _server(upstream, database, tmp_path, drain=20).start()
    key = srv.new_user()
    try:
        with guarded(srv.client(key)) as http:
            seen, _ = _sigterm_mid_chat(srv, http, "fake/text:40:100")
        assert seen[-1] == "[DONE]", seen[-3:]
        assert not any('"error"' in p for p in seen), seen[-3:]
        assert _text_of(seen) == expected_text(40)
        # With no stream left, the server stops well before the drain's 20 s run out.
        assert _exit_code(srv, timeout=10) in (0, -signal.SIGTERM)
        srv.assert_clean_log()
    finally:
        srv.stop()


def test_chat_streams_still_running_when_the_drain_ends_get_an_error_and_done(
    upstream: Any, database: FreshDatabase, tmp_path: Path
) -> None:
    drain = 2.0
    srv = _server(upstream, database, tmp_path, drain=drain).start()
    key = srv.new_user()
    try:
        with guarded(srv.client(key)) as http:
            seen, took = _sigterm_mid_chat(srv, http, "fake/text:200:100")
        assert seen[-1] == "[DONE]", seen[-3:]
        error = json.loads(seen[-2])["error"]
        assert error["code"] == "server_shutdown", error
        assert error["type"] == "server_error" and "retry" in error["message"], error
        assert 3 <= sum('"content"' in p for p in seen) < 200
        # Within the drain (with room for a slow machine), not uvicorn's 10 s later.
        assert drain <= took < drain + 4, took
        assert _exit_code(srv, timeout=5) in (0, -signal.SIGTERM)
        srv.assert_clean_log()
    finally:
        srv.stop()


def test_a_chat_completion_without_stream_still_running_when_the_drain_ends_gets_503(
    upstream: Any, database: FreshDatabase, tmp_path: Path
) -> None:
    drain = 1.0
    srv = _server(upstream, database, tmp_path, drain=drain).start()
    key = srv.new_user()
    body = {"model": "fake/text:100:100", "messages": [{"role": "user", "content": "hi"}]}
    try:
        with (
            guarded(srv.client(key)) as http,
            concurrent.futures.ThreadPoolExecutor(1) as pool,
        ):
            answer = pool.submit(http.post, "/chat/completions", json=body)
            time.sleep(1.0)  # its 10 s answer is under way
            assert not answer.done()
            assert srv.proc is not None
            srv.proc.send_signal(signal.SIGTERM)
            refused = answer.result(timeout=drain + 5)
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"]["code"] == "server_shutdown", refused.text
        assert int(refused.headers["Retry-After"]) >= 1
        assert _exit_code(srv, timeout=5) in (0, -signal.SIGTERM)
        srv.assert_clean_log()
    finally:
        srv.stop()
