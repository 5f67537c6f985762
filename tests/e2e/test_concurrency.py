"""Races between clients: the same turn started twice, the same outputs submitted at once,
two first turns on one thread, many messages at once. One wins; nothing is stored twice."""

from __future__ import annotations

from collections import Counter
from typing import Any

import httpx

from parley.testing.fake_upstream import expected_text
from tests.e2e.helpers import (
    CLOCK,
    WEATHER,
    actions,
    add_message,
    assert_error,
    at_once,
    create_assistant,
    create_run,
    create_thread,
    get_run,
    messages,
    runs_of,
    stream_process,
)
from tests.e2e.sse import parse


def _answer(status: int, body: bytes, path: str) -> httpx.Response:
    """A JSON answer read from a stream, as the response of ``POST path``."""
    request = httpx.Request("POST", f"http://parley{path}")
    headers = {"content-type": "application/json"}
    return httpx.Response(status, content=body, headers=headers, request=request)


def test_the_same_turn_started_twice_runs_once(
    server: Any, user_key: str, http: httpx.Client
) -> None:
    bot = create_assistant(http, "fake/text:20:5")
    thread = create_thread(http)
    add_message(http, thread["id"], "hi")
    run = create_run(http, thread["id"], bot["id"])

    def start(client: httpx.Client, _: int) -> tuple[int, bytes]:
        with client.stream("POST", "/completions", json={"run_id": run["id"]}) as response:
            return response.status_code, response.read()

    results = at_once(server, user_key, 4, start)
    assert Counter(status for status, _ in results) == {200: 1, 409: 3}, results
    for status, body in results:
        if status == 200:
            events = parse(body.decode())
            assert events[-1].event == "done" and events[-1].data["status"] == "completed"
        else:
            error = _answer(409, body, "/v1/completions")
            assert_error(error, 409, "run_in_progress")
    assert [m["role"] for m in messages(http, thread["id"])] == ["user", "assistant"]
    assert messages(http, thread["id"])[-1]["content"] == expected_text(20)


def test_the_same_outputs_submitted_at_once_are_stored_once(
    server: Any, user_key: str, http: httpx.Client
) -> None:
    bot = create_assistant(http, "fake/tools:2", tools=[WEATHER, CLOCK])
    turn = stream_process(http, assistant_id=bot["id"], content="two tools")
    one, two = turn.manifest
    body = {
        "tool_outputs": [
            {"tool_call_id": one["tool_call_id"], "output": "first"},
            {"tool_call_id": two["tool_call_id"], "output": "second"},
        ]
    }

    def submit(client: httpx.Client, _: int) -> httpx.Response:
        return client.post(f"/runs/{turn.run_id}/submit_tool_outputs", json=body)

    results = at_once(server, user_key, 6, submit)
    assert [r.status_code for r in results] == [200] * 6, [r.text for r in results]
    assert {r.json()["status"] for r in results} == {"queued"}
    thread_id = get_run(http, turn.run_id)["thread_id"]
    tools = [
        (m["tool_call_id"], m["content"]) for m in messages(http, thread_id) if m["role"] == "tool"
    ]
    assert tools == [(one["tool_call_id"], "first"), (two["tool_call_id"], "second")]
    assert [a["status"] for a in actions(http, turn.run_id)] == ["completed", "completed"]


def test_one_output_each_at_once_frees_the_run(
    server: Any, user_key: str, http: httpx.Client
) -> None:
    bot = create_assistant(http, "fake/tools:2", tools=[WEATHER, CLOCK])
    turn = stream_process(http, assistant_id=bot["id"], content="two tools")
    items = turn.manifest

    def submit(client: httpx.Client, i: int) -> httpx.Response:
        return client.post(
            "/submit_tool_output", json={"action_id": items[i]["action_id"], "output": f"o{i}"}
        )

    results = at_once(server, user_key, 2, submit)
    assert [r.status_code for r in results] == [200, 200], [r.text for r in results]
    assert get_run(http, turn.run_id)["status"] == "queued"
    nxt = stream_process(http, run_id=turn.run_id)
    assert nxt.final_status == "completed"


def test_one_output_submitted_at_once_by_action_is_stored_once(
    server: Any, user_key: str, http: httpx.Client
) -> None:
    """Flow B's ``submit_tool_output`` of the same output at once: all answered (a repeat
    is a no-op), stored once; a different output for the same call is refused."""
    bot = create_assistant(http, "fake/tools:1", tools=[WEATHER])
    turn = stream_process(http, assistant_id=bot["id"], content="one tool")
    (item,) = turn.manifest

    def submit(client: httpx.Client, i: int) -> httpx.Response:
        output = "sunny" if i else "rain"
        return client.post(
            "/submit_tool_output", json={"action_id": item["action_id"], "output": output}
        )

    results = at_once(server, user_key, 6, submit)
    thread_id = turn.headers["x-parley-thread-id"]
    stored = [(m["tool_call_id"], m["content"]) for m in messages(http, thread_id)[2:]]
    assert len(stored) == 1, stored
    (output,) = [content for _, content in stored]
    for i, result in enumerate(results):
        if ("sunny" if i else "rain") == output:
            assert result.status_code == 200, result.text
            assert result.json()["status"] == "queued"
        else:
            assert_error(result, 400, "duplicate_tool_output")
    assert stored == [(item["tool_call_id"], output)]
    assert get_run(http, turn.run_id)["status"] == "queued"


def test_two_first_turns_on_one_thread(server: Any, user_key: str, http: httpx.Client) -> None:
    bot = create_assistant(http, "fake/text:10:50")  # the winner runs for half a second
    thread = create_thread(http)

    def process(client: httpx.Client, i: int) -> tuple[int, bytes]:
        body = {"assistant_id": bot["id"], "content": f"turn {i}", "thread_id": thread["id"]}
        with client.stream("POST", "/process", json=body) as response:
            return response.status_code, response.read()

    results = at_once(server, user_key, 5, process)
    assert Counter(status for status, _ in results) == {200: 1, 409: 4}, results
    for status, body in results:
        if status == 409:
            error = _answer(409, body, "/v1/process")
            assert_error(error, 409)
    stored = messages(http, thread["id"])
    assert [m["role"] for m in stored] == ["user", "assistant"]
    assert len(runs_of(http, thread["id"])) == 1


def test_many_messages_at_once_get_distinct_seqs(
    server: Any, user_key: str, http: httpx.Client
) -> None:
    thread = create_thread(http)

    def post(client: httpx.Client, i: int) -> httpx.Response:
        return client.post("/messages", json={"thread_id": thread["id"], "content": f"m{i}"})

    results = at_once(server, user_key, 12, post)
    assert [r.status_code for r in results] == [201] * 12, [r.text for r in results]
    stored = messages(http, thread["id"])
    assert sorted(m["content"] for m in stored) == sorted(f"m{i}" for i in range(12))
    seqs = [m["seq"] for m in stored]
    assert seqs == sorted(seqs) and len(set(seqs)) == 12
    assert {r.json()["id"]: r.json()["seq"] for r in results} == {m["id"]: m["seq"] for m in stored}


def test_racing_first_turns_all_lose_with_thread_busy(
    server: Any, user_key: str, http: httpx.Client
) -> None:
    bot = create_assistant(http, "fake/text:4:75")  # a winning turn runs for 0.3 s
    for _ in range(5):
        thread = create_thread(http)
        body = {"assistant_id": bot["id"], "thread_id": thread["id"]}

        def start(client: httpx.Client, i: int, body: dict[str, Any] = body) -> httpx.Response:
            if i % 2:
                return client.post("/process", json={**body, "content": "x", "stream": False})
            return client.post("/runs", json=body)

        results = at_once(server, user_key, 6, start)
        winners = [r for r in results if r.status_code in (200, 201)]
        assert len(winners) == 1, [r.text for r in results]
        for loser in results:
            if loser not in winners:
                assert_error(loser, 409, "thread_busy")
        assert len(runs_of(http, thread["id"])) == 1
        assert len([m for m in messages(http, thread["id"]) if m["role"] == "user"]) <= 1
