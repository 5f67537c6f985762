"""Expiry: a run that waits for tool outputs past its expiry becomes ``expired``, with its
actions; late outputs are refused and the thread takes a new run. A dedicated server with a
one-second expiry and a fast sweep."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from parley.testing.fake_upstream import expected_text
from tests.e2e.helpers import (
    WEATHER,
    actions,
    assert_error,
    create_assistant,
    get_run,
    guarded,
    messages,
    read_events,
    stream_process,
    wait_run,
)
from tests.harness import FreshDatabase, ParleyServer, free_port, provider_config, tuned


@pytest.fixture(scope="module")
def quick(upstream: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ParleyServer]:
    """A server whose runs expire one second after they start waiting for tools."""
    db = FreshDatabase(Path(tmp_path_factory.mktemp("expiry-db")))
    srv = ParleyServer(
        database_url=db.url,
        workdir=tmp_path_factory.mktemp("expiry-server"),
        config=provider_config(upstream.base_url, free_port()),
        env=tuned({"PARLEY_ACTION_EXPIRY_SECONDS": "1"}, sweep_seconds=0.2),
    )
    try:
        srv.start()
        yield srv
    finally:
        code = srv.stop()
        db.drop()
    srv.assert_clean_log()
    assert code in (0, -15), srv.log()


@pytest.fixture
def client(quick: ParleyServer) -> Iterator[httpx.Client]:
    with guarded(quick.client(quick.new_user())) as http:
        yield http


def test_a_waiting_run_expires(client: httpx.Client) -> None:
    bot = create_assistant(client, "fake/tools:1", tools=[WEATHER])
    turn = stream_process(client, assistant_id=bot["id"], content="weather")
    (item,) = turn.manifest
    waiting = get_run(client, turn.run_id)
    assert waiting["status"] == "requires_action"
    assert waiting["expires_at"] is not None and waiting["expires_at"] - waiting["created_at"] <= 3

    run = wait_run(client, turn.run_id, {"expired"}, timeout=10)
    assert run["required_action"] is None and run["completed_at"] is not None
    assert [a["status"] for a in actions(client, turn.run_id)] == ["expired"]
    assert actions(client, turn.run_id, status="pending") == []

    thread_id = run["thread_id"]
    before = messages(client, thread_id)
    body = {"tool_outputs": [{"tool_call_id": item["tool_call_id"], "output": "late"}]}
    assert_error(client.post(f"/runs/{turn.run_id}/submit_tool_outputs", json=body), 409)
    assert_error(
        client.post("/submit_tool_output", json={"action_id": item["action_id"], "output": "late"}),
        409,
    )
    assert_error(client.post("/process", json={"run_id": turn.run_id}), 409, "run_finished")
    assert_error(client.post(f"/runs/{turn.run_id}/cancel"), 409, "run_finished")
    assert messages(client, thread_id) == before
    assert get_run(client, turn.run_id)["status"] == "expired"

    replay = read_events(client, f"/runs/{turn.run_id}/events")
    assert [(e.event, e.data["status"]) for e in replay[-2:]] == [
        ("run.status", "expired"),
        ("done", "expired"),
    ]

    good = create_assistant(client, "fake/text:3")
    nxt = stream_process(
        client, assistant_id=good["id"], content="new question", thread_id=thread_id
    )
    assert nxt.final_status == "completed" and nxt.text == expected_text(3)
