"""OpenTelemetry traces (``parley.tracing``): the app, made with an in-memory span exporter,
served by uvicorn on loopback in a thread of this process, on the suite's database; turns
through the fake upstream give the span tree request → turn → model call."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from parley.config import Settings
from parley.server.app import create_app
from parley.store import users
from parley.store.db import Database
from tests.e2e.helpers import WEATHER, create_assistant
from tests.e2e.sse import stream_events
from tests.harness import FreshDatabase, free_port, provider_config


async def _api_key(url: str) -> str:
    db = Database(url)
    try:
        await db.migrate()

        def make(conn: Any) -> str:
            user = users.create_user(conn, name="traced")
            return users.create_api_key(conn, user_id=user.id)[1]

        return await db.write(make)
    finally:
        await db.dispose()


@pytest.fixture
def traced(upstream: Any, tmp_path: Path) -> Iterator[tuple[httpx.Client, InMemorySpanExporter]]:
    """A client of the traced server, and the spans it finished."""
    fresh = FreshDatabase(tmp_path)
    key = asyncio.run(_api_key(fresh.url))
    config = tmp_path / "parley.toml"
    config.write_text(provider_config(upstream.base_url, free_port()))
    settings = Settings(
        database_url=fresh.url, config=config, port=free_port(), mcp_allow_urls=["127.0.0.1"]
    )
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    app = create_app(settings, tracer_provider=provider)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=settings.port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, name="traced-server")
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.02)
        base_url = f"http://127.0.0.1:{settings.port}/v1"
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=base_url, headers=headers, timeout=30) as http:
            yield http, spans
    finally:
        server.should_exit = True
        thread.join(30)
        provider.shutdown()
        fresh.drop()


def _turn(http: httpx.Client, assistant_id: str) -> list[Any]:
    body = {"assistant_id": assistant_id, "content": "trace this turn"}
    with http.stream("POST", "/process", json=body) as response:
        assert response.status_code == 200
        return list(stream_events(response))


def _one(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, [s.name for s in spans]
    return found[0]


def _parent(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def _id(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.span_id


def test_a_turn_is_a_span_tree_with_genai_attributes(
    traced: tuple[httpx.Client, InMemorySpanExporter],
) -> None:
    http, exporter = traced
    bot = create_assistant(http, "fake/text:3")
    exporter.clear()
    events = _turn(http, bot["id"])
    usage = next(e.data for e in events if e.event == "usage")
    spans = list(exporter.get_finished_spans())

    request = _one(spans, "POST /v1/process")
    turn = _one(spans, "parley.turn")
    call = _one(spans, "chat text:3")
    assert _parent(request) is None
    assert _parent(turn) == _id(request)
    assert _parent(call) == _id(turn)
    assert {s.context.trace_id for s in (request, turn, call) if s.context} == {
        request.context.trace_id if request.context else 0
    }
    assert request.attributes is not None and turn.attributes is not None
    assert request.attributes["http.route"] == "/v1/process"
    assert request.attributes["http.response.status_code"] == 200
    assert turn.attributes["parley.run.id"] == usage["run_id"]
    assert turn.attributes["parley.run.status"] == "completed"
    assert dict(call.attributes or {}) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.system": "fake",
        "gen_ai.request.model": "text:3",
        "gen_ai.usage.input_tokens": usage["input_tokens"],
        "gen_ai.usage.output_tokens": 3,
    }
    assert [e.name for e in call.events] == ["gen_ai.first_token"]


def test_a_pause_for_tools_is_an_event_of_its_turn(
    traced: tuple[httpx.Client, InMemorySpanExporter],
) -> None:
    http, exporter = traced
    bot = create_assistant(http, "fake/tools:1", tools=[WEATHER])
    exporter.clear()
    events = _turn(http, bot["id"])
    assert events[-1].data["status"] == "action_required"
    turn = _one(list(exporter.get_finished_spans()), "parley.turn")
    assert turn.attributes is not None
    assert turn.attributes["parley.run.status"] == "action_required"
    assert [e.name for e in turn.events] == ["parley.action_required"]
    routes = {s.attributes.get("http.route") for s in exporter.get_finished_spans() if s.attributes}
    assert "/v1/assistants" not in routes  # cleared before the turn: only its own spans


def test_a_chat_completion_call_is_a_child_of_its_request(
    traced: tuple[httpx.Client, InMemorySpanExporter],
) -> None:
    http, exporter = traced
    body = {"model": "fake/text:2", "messages": [{"role": "user", "content": "hi"}]}
    assert http.post("/chat/completions", json={**body, "stream": True}).status_code == 200
    spans = list(exporter.get_finished_spans())
    request = _one(spans, "POST /v1/chat/completions")
    call = _one(spans, "chat text:2")
    assert _parent(call) == _id(request)
    assert call.attributes is not None
    assert call.attributes["gen_ai.usage.output_tokens"] == 2


def test_an_mcp_listing_and_call_are_tool_spans_of_their_turn(
    traced: tuple[httpx.Client, InMemorySpanExporter],
) -> None:
    from tests.mcp.conftest import _servers

    http, exporter = traced
    with _servers() as start:
        tool = {
            "type": "mcp",
            "server_label": "tests",
            "server_url": start(),
            "allowed_tools": ["echo"],
            "require_approval": "never",
        }
        bot = create_assistant(http, "fake/auto:2", tools=[tool])
        exporter.clear()
        events = _turn(http, bot["id"])
    assert events[-1].data["status"] == "completed"
    spans = list(exporter.get_finished_spans())
    turn = _one(spans, "parley.turn")
    listed = _one(spans, "mcp tools/list other")
    called = _one(spans, "execute_tool other")
    assert _parent(listed) == _id(turn) and _parent(called) == _id(turn)
    assert (called.attributes or {})["gen_ai.operation.name"] == "execute_tool"
    assert (called.attributes or {})["mcp.method.name"] == "tools/call"
    assert (listed.attributes or {})["mcp.method.name"] == "tools/list"
    assert called.start_time is not None and called.end_time is not None
    assert called.end_time > called.start_time
