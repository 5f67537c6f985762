"""The server's log as JSON lines (``PARLEY_LOG_FORMAT=json``): one access line per request,
written when its answer ends, with the request id every answer carries back; a turn's lines
name its run (and the request that started it); no secret in any line."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.helpers import create_assistant, stream_process, wait_until
from tests.harness import FreshDatabase, ParleyServer, free_port, provider_config

_GENERATED = re.compile(r"[0-9a-f]{16}")


@pytest.fixture(scope="module")
def server(upstream: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ParleyServer]:
    workdir = tmp_path_factory.mktemp("logs")
    db = FreshDatabase(workdir)
    srv = ParleyServer(
        database_url=db.url,
        workdir=workdir,
        config=provider_config(upstream.base_url, free_port()),
        env={"PARLEY_LOG_FORMAT": "json", "PARLEY_LOG_LEVEL": "info"},
    )
    try:
        yield srv.start()
    finally:
        srv.stop()
        db.drop()


def _lines(srv: ParleyServer) -> list[dict[str, Any]]:
    """Every line of the server's log, each one a JSON object."""
    return [json.loads(line) for line in srv.log().splitlines() if line.strip()]


def _access(srv: ParleyServer, request_id: str) -> dict[str, Any]:
    """The access line of the request ``request_id``, once written."""

    def find() -> dict[str, Any] | None:
        hits = [
            line
            for line in _lines(srv)
            if line["logger"] == "parley.access" and line.get("request_id") == request_id
        ]
        assert len(hits) <= 1, hits
        return hits[0] if hits else None

    found: dict[str, Any] = wait_until(find, 5, f"the access line of {request_id}")
    return found


def test_every_line_is_json_and_the_request_id_is_kept_or_made(server: ParleyServer) -> None:
    key = server.new_user()
    with server.client(key) as http:
        given = http.get("/assistants", params={"limit": 1}, headers={"X-Request-ID": "trace-42"})
        made = http.get("/assistants", params={"api_key": "secret-in-query"})
        too_long = http.get("/assistants", headers={"X-Request-ID": "x" * 129})
        missing = http.get("/no-such-path", headers={"X-Request-ID": "lost-7"})
    assert given.status_code == 200 and given.headers["X-Request-ID"] == "trace-42"
    assert _GENERATED.fullmatch(made.headers["X-Request-ID"]), made.headers
    assert _GENERATED.fullmatch(too_long.headers["X-Request-ID"]), too_long.headers
    assert missing.status_code == 404 and missing.headers["X-Request-ID"] == "lost-7"

    line = _access(server, "trace-42")
    assert line["level"] == "info" and line["message"].startswith("GET /v1/assistants 200 ")
    assert (line["method"], line["path"], line["status"]) == ("GET", "/v1/assistants", 200)
    assert line["bytes"] == len(given.content) and line["duration_ms"] >= 0
    assert line["client"].startswith("127.0.0.1:")
    assert line["user_id"].startswith("user_") and line["message"].endswith(line["user_id"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"])
    assert _access(server, made.headers["X-Request-ID"])["path"] == "/v1/assistants"
    assert _access(server, "lost-7")["status"] == 404
    log = server.log()
    assert "secret-in-query" not in log and key not in log


def test_errors_before_the_app_carry_the_request_id(server: ParleyServer) -> None:
    key = server.new_user()
    with server.client(key) as http:
        too_big = http.post(
            "/process", content=b"x" * (1024 * 1024 + 1), headers={"X-Request-ID": "big-1"}
        )
        unauthenticated = httpx.get(
            f"{server.base_url}/v1/assistants",
            headers={"Authorization": "Bearer sk-not-a-key", "X-Request-ID": "anon-1"},
        )
    assert too_big.status_code == 413 and too_big.headers["X-Request-ID"] == "big-1"
    assert unauthenticated.status_code == 401
    assert unauthenticated.headers["X-Request-ID"] == "anon-1"
    assert _access(server, "big-1")["status"] == 413
    anonymous = _access(server, "anon-1")
    assert anonymous["status"] == 401 and "user_id" not in anonymous
    assert "sk-not-a-key" not in server.log()


def test_a_turn_logs_its_run_id_and_its_stream_is_logged_when_it_ends(
    server: ParleyServer,
) -> None:
    key = server.new_user()
    with server.client(key) as http:
        bot = create_assistant(http, "fake/text:6:50")
        http.headers["X-Request-ID"] = "turn-1"
        turn = stream_process(http, assistant_id=bot["id"], content="hello there")
    assert turn.final_status == "completed" and turn.headers["X-Request-ID"] == "turn-1"

    def turn_lines() -> list[dict[str, Any]]:
        return [line for line in _lines(server) if line.get("run_id") == turn.run_id]

    lines = wait_until(turn_lines, 5, "the turn's lines")
    assert all(line["request_id"] == "turn-1" for line in lines), lines
    assert any(line["logger"] == "parley.engine" for line in lines), lines
    access = _access(server, "turn-1")
    assert (access["method"], access["path"], access["status"]) == ("POST", "/v1/process", 200)
    assert access["duration_ms"] >= 250  # six chunks 50 ms apart: written at the stream's end
    assert access["bytes"] > 0 and "run_id" not in access
    assert access["user_id"].startswith("user_")  # the fast paths authenticate too
    log = server.log()
    assert key not in log and "sk-fake" not in log and "hello there" not in log


def test_a_streams_access_line_counts_each_byte_it_sent_once(server: ParleyServer) -> None:
    """A stream's events go to the socket through its tap, not its own task: the access
    line still counts every byte of the body, and none twice."""
    key = server.new_user()
    with server.client(key) as http:
        bot = create_assistant(http, "fake/text:12:20")
        http.headers["X-Request-ID"] = "bytes-1"
        body = {"assistant_id": bot["id"], "content": "count the bytes"}
        with http.stream("POST", "/process", json=body) as answer:
            sent = b"".join(answer.iter_raw())
    assert sent.count(b"event: content.delta") == 12
    assert _access(server, "bytes-1")["bytes"] == len(sent)


def test_the_text_format_names_the_request(upstream: Any, tmp_path: Path) -> None:
    db = FreshDatabase(tmp_path)
    srv = ParleyServer(
        database_url=db.url,
        workdir=tmp_path,
        config=provider_config(upstream.base_url, free_port()),
        env={"PARLEY_LOG_LEVEL": "info"},
    )
    try:
        srv.start()
        with srv.client(srv.new_user()) as http:
            http.get("/assistants", headers={"X-Request-ID": "plain-1"})
        wait_until(
            lambda: re.search(
                r"^INFO parley\.access: GET /v1/assistants 200 [\d.]+ms \d+B "
                r"127\.0\.0\.1:\d+ user_\w+ request_id=plain-1$",
                srv.log(),
                re.MULTILINE,
            ),
            5,
            "the text access line",
        )
    finally:
        srv.stop()
        db.drop()
