"""Cancel: a streaming turn stops at once (the upstream connection is closed, the text so far
is kept, the stream ends with ``cancelled``); queued and waiting runs can be cancelled too."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from parley.testing.fake_upstream import expected_text
from tests.e2e.helpers import (
    WEATHER,
    actions,
    add_message,
    assert_error,
    check_turn,
    create_assistant,
    create_run,
    create_thread,
    get_run,
    list_all,
    live_turn,
    messages,
    read_events,
    stream_completion,
    stream_process,
    wait_until,
)


def test_cancel_a_streaming_turn(
    http: httpx.Client, server: Any, user_key: str, upstream: Any
) -> None:
    baseline = upstream.active_streams  # 0: every test closes its upstream streams
    bot = create_assistant(http, "fake/stall:3")
    with live_turn(http, bot["id"], chunks=3) as live:
        assert upstream.active_streams == baseline + 1
        assert get_run(http, live.run_id)["status"] == "in_progress"
        with server.client(user_key) as second:  # another connection of the same user
            started = time.monotonic()
            answer = second.post(f"/runs/{live.run_id}/cancel")
            elapsed = time.monotonic() - started
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == "cancelled" and answer.json()["completed_at"] is not None
        assert elapsed < 5, elapsed
        events = live.rest()

    check_turn(events)
    assert events[-2].data["status"] == "cancelled" and events[-1].data["status"] == "cancelled"
    assert "error" not in [e.event for e in events]
    assert "".join(e.data["text"] for e in events if e.event == "content.delta") == expected_text(3)

    run = get_run(http, live.run_id)
    assert run["status"] == "cancelled" and run["last_error"] is None
    stored = messages(http, live.thread_id)
    assert [m["role"] for m in stored] == ["user", "assistant"]
    assert stored[1]["content"] == expected_text(3)
    wait_until(lambda: upstream.active_streams == baseline, 5, "the upstream stream to close")

    replay = read_events(http, f"/runs/{live.run_id}/events")
    assert replay == events
    assert_error(http.post(f"/runs/{live.run_id}/cancel"), 409, "run_finished")

    # the thread is free again
    good = create_assistant(http, "fake/text:2")
    nxt = stream_process(http, assistant_id=good["id"], content="next", thread_id=live.thread_id)
    assert nxt.final_status == "completed"


def test_cancel_a_turn_that_waits_without_streaming(http: httpx.Client, upstream: Any) -> None:
    baseline = upstream.active_streams
    bot = create_assistant(http, "fake/stall:2")
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(
            http.post,
            "/process",
            json={"assistant_id": bot["id"], "content": "hi", "stream": False},
        )
        runs = wait_until(
            lambda: [r for r in list_all(http, "/runs") if r["status"] == "in_progress"],
            10,
            "the run to start",
        )
        wait_until(lambda: upstream.active_streams > baseline, 10, "the upstream stream")
        (run,) = runs
        cancelled = http.post(f"/runs/{run['id']}/cancel")
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled", (
            cancelled.text
        )
        answer = pending.result(timeout=10)
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["status"] == "cancelled" and result["run_id"] == run["id"]
    assert result["text"] == messages(http, run["thread_id"])[-1]["content"]
    wait_until(lambda: upstream.active_streams == baseline, 5, "the upstream stream to close")


def test_cancel_a_queued_run(http: httpx.Client) -> None:
    bot = create_assistant(http, "fake/text:2")
    thread = create_thread(http)
    add_message(http, thread["id"], "hi")
    run = create_run(http, thread["id"], bot["id"])
    answer = http.post(f"/runs/{run['id']}/cancel")
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "cancelled"
    assert get_run(http, run["id"])["status"] == "cancelled"
    assert_error(http.post("/completions", json={"run_id": run["id"]}), 409, "run_finished")
    assert [m["role"] for m in messages(http, thread["id"])] == ["user"]
    replay = read_events(http, f"/runs/{run['id']}/events")
    assert [(e.event, e.data["status"]) for e in replay][-2:] == [
        ("run.status", "cancelled"),
        ("done", "cancelled"),
    ]
    nxt = stream_completion(http, create_run(http, thread["id"], bot["id"])["id"])
    assert nxt.final_status == "completed"


def test_cancel_a_run_waiting_for_tool_outputs(http: httpx.Client) -> None:
    bot = create_assistant(http, "fake/tools:1", tools=[WEATHER])
    turn = stream_process(http, assistant_id=bot["id"], content="weather")
    (item,) = turn.manifest
    answer = http.post(f"/runs/{turn.run_id}/cancel")
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "cancelled" and answer.json()["required_action"] is None
    assert [a["status"] for a in actions(http, turn.run_id)] == ["cancelled"]
    assert actions(http, turn.run_id, status="pending") == []
    run = get_run(http, turn.run_id)
    thread_id = run["thread_id"]
    before = messages(http, thread_id)
    body = {"tool_outputs": [{"tool_call_id": item["tool_call_id"], "output": "late"}]}
    assert_error(http.post(f"/runs/{turn.run_id}/submit_tool_outputs", json=body), 409)
    assert_error(
        http.post("/submit_tool_output", json={"action_id": item["action_id"], "output": "late"}),
        409,
    )
    assert_error(http.post("/process", json={"run_id": turn.run_id}), 409, "run_finished")
    assert messages(http, thread_id) == before
    replay = read_events(http, f"/runs/{turn.run_id}/events")
    assert [e.event for e in replay].count("done") == 2
    assert replay[-1].data["status"] == "cancelled"

    good = create_assistant(http, "fake/text:2")
    nxt = stream_process(http, assistant_id=good["id"], content="next", thread_id=thread_id)
    assert nxt.final_status == "completed"
