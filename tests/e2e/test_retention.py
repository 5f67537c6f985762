"""Retention of event logs (docs/runs.md, "Retention"): a server prunes finished runs' logs
once they are older than ``PARLEY_EVENT_RETENTION_HOURS``, on its own; the messages and the
runs stay; a paused run's log stays; a pruned run's stream ends at once with the run's end.

The server here keeps logs for a second and a half and prunes every fifth of a second.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.helpers import (
    WEATHER,
    create_assistant,
    get_run,
    guarded,
    messages,
    read_events,
    stream_process,
    wait_until,
)
from tests.e2e.responses_helpers import read_stream
from tests.harness import FreshDatabase, ParleyServer, tuned

RETENTION_SECONDS = 1.5


@pytest.fixture(scope="module")
def pruning(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ParleyServer]:
    tmp = tmp_path_factory.mktemp("retention")
    db = FreshDatabase(tmp)
    env = tuned(
        {"PARLEY_EVENT_RETENTION_HOURS": str(RETENTION_SECONDS / 3600)}, event_prune_seconds=0.2
    )
    server = ParleyServer(database_url=db.url, workdir=tmp, env=env).start()
    yield server
    server.stop()
    server.assert_clean_log()
    db.drop()


@pytest.fixture
def client(pruning: ParleyServer) -> Iterator[httpx.Client]:
    with guarded(pruning.client(pruning.new_user())) as http:
        yield http


def _pruned(http: httpx.Client, run_id: str) -> list[Any]:
    """The run's events once its log is pruned: only its end is left."""

    def ending() -> list[Any] | None:
        events = read_events(http, f"/runs/{run_id}/events")
        return events if [e.event for e in events] == ["run.status", "done"] else None

    return list(wait_until(ending, timeout=20, what=f"the log of {run_id} to be pruned"))


def test_a_finished_runs_log_is_pruned_and_its_stream_ends_cleanly(client: httpx.Client) -> None:
    bot = create_assistant(client, "demo/x", tools=[WEATHER])
    paused = stream_process(client, assistant_id=bot["id"], content="get_weather Paris")
    assert paused.final_status == "action_required"
    turn = stream_process(client, assistant_id=bot["id"], content="hello there")
    assert turn.final_status == "completed" and turn.text
    assert len(turn.events) > 2

    ending = _pruned(client, turn.run_id)

    # the run's end again, numbered as its closing events were
    assert [e.id for e in ending] == [e.id for e in turn.events[-2:]]
    assert [e.data for e in ending] == [e.data for e in turn.events[-2:]]
    resumed = read_events(
        client, f"/runs/{turn.run_id}/events", headers={"Last-Event-ID": str(ending[0].id)}
    )
    assert [e.event for e in resumed] == ["done"]
    assert read_events(client, f"/runs/{turn.run_id}/events", params={"after": ending[1].id}) == []
    # the run and its messages are kept
    run = get_run(client, turn.run_id)
    assert run["status"] == "completed" and run["usage"]
    thread = messages(client, run["thread_id"])
    assert [m["role"] for m in thread] == ["user", "assistant"]
    assert thread[1]["content"] == turn.text

    # the paused run ended its turn before the other started, and its log is whole
    again = read_events(client, f"/runs/{paused.run_id}/events")
    assert [(e.id, e.data) for e in again] == [(e.id, e.data) for e in paused.events]


def test_a_pruned_response_streams_its_end(client: httpx.Client) -> None:
    made = client.post("/responses", json={"model": "demo/x", "input": "hello"})
    assert made.status_code == 200, made.text
    response = made.json()
    assert response["status"] == "completed"

    _pruned(client, response["id"])

    events = read_stream(client, "GET", f"/responses/{response['id']}", params={"stream": "true"})
    kinds = [e["type"] for e in events]
    assert kinds == ["response.created", "response.in_progress", "response.completed"]
    assert events[-1]["response"]["status"] == "completed"
    # The end carries the stored response whole, its output items too.
    assert events[-1]["response"]["output"] == response["output"] != []
    assert events[-1]["response"]["usage"] == response["usage"]
    kept = client.get(f"/responses/{response['id']}")
    assert kept.status_code == 200
    assert kept.json()["output"] == response["output"]
