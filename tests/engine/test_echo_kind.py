"""A new hosted tool kind through every layer: the tests' ``echo`` kind
(``tests.engine.echo_kind``), registered in the engine and the faces' tables, served by the
app in this process (uvicorn on loopback, in a thread) against the fake upstream, whose
``auto`` model calls the first tool offered: ``echo`` with ``{"text": "text 0"}``. A
Responses request runs it (its item stored, streamed and read back), and an Assistants run
shows it as a run step."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn

from parley.config import Settings
from parley.server.app import create_app
from parley.store import users
from parley.store.db import Database
from parley.testing.fake_upstream import tool_results_text
from tests.e2e.helpers import wait_run
from tests.e2e.responses_helpers import check_sequence, create, get, stream_create
from tests.engine.echo_kind import registered
from tests.harness import FreshDatabase, free_port, provider_config

AUTO = "fake/auto"
ECHOED = {"type": "echo_call", "status": "completed", "text": "text 0"}


async def _api_key(url: str) -> str:
    db = Database(url)
    try:
        await db.migrate()

        def make(conn: Any) -> str:
            user = users.create_user(conn, name="echoes")
            return users.create_api_key(conn, user_id=user.id)[1]

        return await db.write(make)
    finally:
        await db.dispose()


@pytest.fixture(scope="module")
def http(upstream: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """A client of the app in this process, the ``echo`` kind registered."""
    tmp = tmp_path_factory.mktemp("echo")
    fresh = FreshDatabase(tmp)
    key = asyncio.run(_api_key(fresh.url))
    config = tmp / "parley.toml"
    config.write_text(provider_config(upstream.base_url, free_port()))
    settings = Settings(database_url=fresh.url, config=config, port=free_port())
    with registered():
        app = create_app(settings)
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=settings.port, log_level="warning")
        )
        thread = threading.Thread(target=server.run, name="echo-server")
        thread.start()
        try:
            deadline = time.monotonic() + 20
            while not server.started:
                assert thread.is_alive() and time.monotonic() < deadline, "no server"
                time.sleep(0.02)
            base_url = f"http://127.0.0.1:{settings.port}/v1"
            headers = {"Authorization": f"Bearer {key}", "OpenAI-Beta": "assistants=v2"}
            with httpx.Client(base_url=base_url, headers=headers, timeout=30) as client:
                yield client
        finally:
            server.should_exit = True
            thread.join(30)
            fresh.drop()


def _echoed(item: dict[str, Any]) -> dict[str, Any]:
    return {k: item[k] for k in ECHOED}


def test_a_response_runs_the_echo_kind(http: httpx.Client) -> None:
    response = create(http, model=AUTO, input="say it back", tools=[{"type": "echo"}])
    assert response["status"] == "completed", response
    kinds = [item["type"] for item in response["output"]]
    assert kinds == ["echo_call", "message"], response["output"]
    assert _echoed(response["output"][0]) == ECHOED
    text = response["output"][1]["content"][0]["text"]
    assert text == tool_results_text([("echo", "echo: text 0")])
    assert response["tools"] == [{"type": "echo"}]
    again = get(http, response["id"])
    assert again["output"] == response["output"]


def test_a_streamed_response_shows_the_echo_call_start_and_end(http: httpx.Client) -> None:
    events = stream_create(http, model=AUTO, input="say it back", tools=[{"type": "echo"}])
    check_sequence(events)
    items = [
        (e["type"], e["item"]["type"], e["item"]["status"])
        for e in events
        if e["type"].startswith("response.output_item.")
    ]
    assert items[:2] == [
        ("response.output_item.added", "echo_call", "in_progress"),
        ("response.output_item.done", "echo_call", "completed"),
    ]
    done = events[-1]["response"]
    assert _echoed(done["output"][0]) == ECHOED


def test_an_assistants_run_shows_the_echo_call_as_its_step(http: httpx.Client) -> None:
    made = http.post("/assistants", json={"model": AUTO, "tools": [{"type": "echo"}]})
    assert made.status_code == 200, made.text
    thread = http.post("/threads", json={}).json()
    said = {"role": "user", "content": "say it back"}
    assert http.post(f"/threads/{thread['id']}/messages", json=said).status_code == 200
    started = http.post(f"/threads/{thread['id']}/runs", json={"assistant_id": made.json()["id"]})
    assert started.status_code == 200, started.text
    run = wait_run(http, started.json()["id"])
    assert run["status"] == "completed", run
    steps = http.get(f"/threads/{thread['id']}/runs/{run['id']}/steps", params={"order": "asc"})
    assert steps.status_code == 200, steps.text
    calls = [
        call
        for step in steps.json()["data"]
        if step["type"] == "tool_calls"
        for call in step["step_details"]["tool_calls"]
    ]
    assert [(c["type"], c["echo"]) for c in calls] == [("echo", {"text": "text 0"})]
