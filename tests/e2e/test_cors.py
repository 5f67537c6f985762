"""CORS (docs/configuration.md): off by default; with ``PARLEY_CORS_ORIGINS`` a preflight from
an allowed origin is answered, and answers (streams too) carry the CORS headers; another
origin gets none."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.helpers import create_assistant, guarded
from tests.harness import FreshDatabase, ParleyServer, free_port, provider_config

ALLOWED = "https://app.example"
ALSO_ALLOWED = "http://localhost:5173"
OTHER = "https://evil.example"


@pytest.fixture(scope="module")
def cors_server(upstream: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ParleyServer]:
    tmp = tmp_path_factory.mktemp("cors")
    db = FreshDatabase(tmp)
    srv = ParleyServer(
        database_url=db.url,
        workdir=tmp,
        config=provider_config(upstream.base_url, free_port()),
        env={"PARLEY_CORS_ORIGINS": f"{ALLOWED}, {ALSO_ALLOWED}"},
    ).start()
    yield srv
    srv.stop()
    srv.assert_clean_log()
    db.drop()


def _preflight(srv: ParleyServer, path: str, origin: str, method: str = "POST") -> httpx.Response:
    return httpx.options(
        f"{srv.base_url}{path}",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization, content-type, x-api-key",
        },
    )


def _names(value: str) -> set[str]:
    return {v.strip().lower() for v in value.split(",")}


def _cors_headers(answer: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in answer.headers.items() if k.lower().startswith("access-control-")}


@pytest.mark.parametrize("origin", [ALLOWED, ALSO_ALLOWED])
def test_a_preflight_from_an_allowed_origin_is_answered(
    cors_server: ParleyServer, origin: str
) -> None:
    answer = _preflight(cors_server, "/v1/process", origin)
    assert answer.status_code in (200, 204), answer.text
    assert answer.headers["access-control-allow-origin"] == origin
    assert {"post", "get", "delete"} <= _names(answer.headers["access-control-allow-methods"])
    allowed = _names(answer.headers["access-control-allow-headers"])
    assert {"authorization", "x-api-key", "content-type", "last-event-id"} <= allowed
    assert "idempotency-key" in allowed
    assert int(answer.headers["access-control-max-age"]) > 0
    assert "origin" in _names(answer.headers["vary"])


def test_a_preflight_of_the_event_stream_allows_last_event_id(cors_server: ParleyServer) -> None:
    answer = httpx.options(
        f"{cors_server.base_url}/v1/runs/run_x/events",
        headers={
            "Origin": ALLOWED,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "last-event-id, authorization",
        },
    )
    assert answer.status_code in (200, 204)
    assert "last-event-id" in _names(answer.headers["access-control-allow-headers"])


def test_another_origin_gets_no_cors_headers(cors_server: ParleyServer) -> None:
    preflight = _preflight(cors_server, "/v1/process", OTHER)
    assert _cors_headers(preflight) == {}  # so the browser refuses it
    assert preflight.status_code == 204 and "POST" in preflight.headers["allow"]
    with guarded(cors_server.client(cors_server.new_user())) as http:
        answer = http.get("/me", headers={"Origin": OTHER})
    assert answer.status_code == 200
    assert _cors_headers(answer) == {}


def test_answers_to_an_allowed_origin_carry_cors_headers(cors_server: ParleyServer) -> None:
    with guarded(cors_server.client(cors_server.new_user())) as http:
        ok = http.get("/me", headers={"Origin": ALLOWED})
        refused = http.get("/me", headers={"Origin": ALLOWED, "Authorization": "Bearer nope"})
    for answer in (ok, refused):
        assert answer.headers["access-control-allow-origin"] == ALLOWED
        assert "retry-after" in _names(answer.headers["access-control-expose-headers"])
        assert "origin" in _names(answer.headers["vary"])
    assert refused.status_code == 401  # the page can read why


def test_a_stream_carries_cors_headers(cors_server: ParleyServer) -> None:
    with guarded(cors_server.client(cors_server.new_user())) as http:
        bot = create_assistant(http, model="fake/text:3:1")["id"]
        body = {"assistant_id": bot, "content": "hi"}
        with http.stream("POST", "/process", json=body, headers={"Origin": ALLOWED}) as answer:
            assert answer.headers["content-type"].startswith("text/event-stream")
            assert answer.headers["access-control-allow-origin"] == ALLOWED
            exposed = _names(answer.headers["access-control-expose-headers"])
            assert {"x-parley-run-id", "retry-after", "idempotent-replayed"} <= exposed
            text = answer.read().decode()
    assert "event: done" in text


def test_cors_is_off_by_default(server: ParleyServer, user_key: str) -> None:
    """The session server has no CORS setting: no origin gets CORS headers, and a preflight
    is answered as plain ``OPTIONS`` (the path's methods), not as if it were allowed."""
    preflight = _preflight(server, "/v1/threads", ALLOWED)
    assert _cors_headers(preflight) == {}
    assert preflight.status_code == 204
    assert preflight.headers["allow"] == "GET, POST, OPTIONS"
    with guarded(server.client(user_key)) as http:
        answer = http.get("/me", headers={"Origin": ALLOWED})
    assert answer.status_code == 200
    assert _cors_headers(answer) == {}
