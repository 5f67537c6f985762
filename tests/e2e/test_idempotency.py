"""The ``Idempotency-Key`` header on the creating POSTs, against the real server: a retry
gets the first request's answer (a JSON body again, a stream replayed from the run's
events) and stores nothing more; the same key with another request is a 422, a duplicate
while the first is still being processed a 409, and another user's key is their own."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from parley.testing.fake_upstream import expected_text
from tests.e2e.helpers import (
    WEATHER,
    assert_error,
    check_sse_response,
    check_turn,
    create_assistant,
    create_thread,
    get_run,
    list_all,
    marker,
    messages,
    runs_of,
    upstream_requests,
    wait_until,
)
from tests.e2e.responses_helpers import (
    check_sequence,
    conversation_items,
    deltas,
    openai_error,
    output_text,
    sse_events,
    stored,
    thread_ids,
    user,
    without_clock,
)
from tests.e2e.sse import Event, stream_events

REPLAYED = "Idempotent-Replayed"
#: A Responses stream's event.
JSONEvent = dict[str, Any]


def new_key() -> str:
    return f"retry-{uuid.uuid4()}"


def keyed(key: str) -> dict[str, str]:
    return {"Idempotency-Key": key}


def replayed(answer: httpx.Response) -> bool:
    value: str | None = answer.headers.get(REPLAYED)
    assert value in (None, "true"), value
    return value == "true"


def wait_runs_ended(http: httpx.Client, count: int = 1) -> list[dict[str, Any]]:
    """The user's runs, once there are ``count`` and none is in progress."""

    def ended() -> list[dict[str, Any]] | None:
        runs = list_all(http, "/runs")
        done = len(runs) == count and all(r["status"] != "in_progress" for r in runs)
        return runs if done else None

    return list(wait_until(ended, 15, f"{count} runs to end"))


# --------------------------------------------------------------------- Responses: JSON


def test_a_retried_response_answers_the_same_and_makes_nothing_more(
    http: httpx.Client, upstream: Any
) -> None:
    word, key = marker(), new_key()
    body = {"model": "fake/text:4", "input": f"hello {word}"}
    first = http.post("/responses", json=body, headers=keyed(key))
    assert first.status_code == 200, first.text
    assert not replayed(first)
    kept = stored(http)

    again = http.post("/responses", json=body, headers=keyed(key))
    assert again.status_code == 200, again.text
    assert replayed(again)
    assert again.json() == first.json()
    assert output_text(again.json()) == expected_text(4)
    assert stored(http) == kept
    assert len(kept[1]) == 1  # one run: the first request's
    assert len(upstream_requests(upstream, word)) == 1


def test_a_response_retried_after_its_client_timed_out(
    http: httpx.Client, server: Any, user_key: str
) -> None:
    """The story of the header: the client gives up, the server goes on; a retry while
    the response runs is told so (409), one after it gets the response (no second)."""
    key = new_key()
    body = {"model": "fake/text:20:100", "input": "take your time"}
    with server.client(user_key, timeout=0.3) as impatient, pytest.raises(httpx.ReadTimeout):
        impatient.post("/responses", json=body, headers=keyed(key))
    running = wait_until(lambda: list_all(http, "/runs"), 10, "the run")
    assert running[0]["status"] == "in_progress", running

    busy = http.post("/responses", json=body, headers=keyed(key))
    error = openai_error(busy, 409, None, "idempotency_key_in_use")
    assert running[0]["id"] in error["message"]

    [run] = wait_runs_ended(http)

    def retried() -> httpx.Response | None:
        answer = http.post("/responses", json=body, headers=keyed(key))
        return answer if answer.status_code == 200 else None

    answered = wait_until(retried, 10, "the first request to record its answer")
    assert replayed(answered)
    assert answered.json()["id"] == run["id"]
    assert answered.json()["status"] == "completed"
    assert output_text(answered.json()) == expected_text(20)
    assert len(list_all(http, "/runs")) == 1


def test_a_background_response_retried_answers_as_it_did(http: httpx.Client) -> None:
    key = new_key()
    body = {"model": "fake/text:6:40", "input": "later", "background": True}
    first = http.post("/responses", json=body, headers=keyed(key))
    assert first.status_code == 200 and first.json()["status"] == "in_progress", first.text
    [run] = wait_runs_ended(http)
    again = http.post("/responses", json=body, headers=keyed(key))
    assert again.status_code == 200 and replayed(again)
    assert again.json() == first.json()  # the answer as it was: in progress
    assert run["id"] == first.json()["id"] and run["status"] == "completed"
    assert len(list_all(http, "/runs")) == 1


# ------------------------------------------------------------------- Responses: stream


def _stream(http: httpx.Client, body: dict[str, Any], key: str) -> tuple[bool, list[JSONEvent]]:
    """A Responses stream with ``key``, read to its end: replayed?, and its events."""
    with http.stream("POST", "/responses", json=body, headers=keyed(key)) as answer:
        check_sse_response(answer)
        events = sse_events(answer.read().decode())
    check_sequence(events)
    return replayed(answer), events


def test_a_retried_stream_replays_the_first_responses_events(
    http: httpx.Client, upstream: Any
) -> None:
    word, key = marker(), new_key()
    body = {"model": "fake/text:5", "input": f"stream {word}", "stream": True}
    was_replayed, first = _stream(http, body, key)
    assert not was_replayed and deltas(first) == expected_text(5)
    kept = stored(http)

    was_replayed, again = _stream(http, body, key)
    assert was_replayed
    assert [without_clock(e) for e in again] == [without_clock(e) for e in first]
    assert stored(http) == kept
    assert len(kept[1]) == 1
    assert len(upstream_requests(upstream, word)) == 1


def test_a_stream_retried_while_it_runs_follows_it_live(
    http: httpx.Client, server: Any, user_key: str
) -> None:
    key = new_key()
    body = {"model": "fake/text:20:100", "input": "slowly", "stream": True}
    seen: dict[str, list[dict[str, Any]]] = {}

    def first_request() -> None:
        with server.client(user_key) as client:
            seen["first"] = _stream(client, body, key)[1]

    reader = threading.Thread(target=first_request)
    reader.start()
    try:
        [run] = wait_until(lambda: list_all(http, "/runs"), 10, "the first request's run")
        assert run["status"] == "in_progress"
        # Sent the moment the run shows, the retry may come between the run's write and
        # the key's record of the stream (a write of its own, just after): it waits for
        # that record instead of being told the key is in use.
        was_replayed, again = _stream(http, body, key)
    finally:
        reader.join(30)
    assert was_replayed
    assert deltas(again) == expected_text(20)
    assert [without_clock(e) for e in again] == [without_clock(e) for e in seen["first"]]
    assert [r["id"] for r in list_all(http, "/runs")] == [run["id"]]


def test_a_stored_response_is_needed_for_a_key(http: httpx.Client) -> None:
    body = {"model": "fake/text:2", "input": "forget", "store": False}
    answer = http.post("/responses", json=body, headers=keyed(new_key()))
    openai_error(answer, 400, "store", "invalid_value")
    assert list_all(http, "/runs") == []


# ------------------------------------------------------------------- reuse and misuse


def test_the_same_key_with_another_request_is_422(http: httpx.Client) -> None:
    key = new_key()
    body = {"model": "fake/text:2", "input": "one"}
    assert http.post("/responses", json=body, headers=keyed(key)).status_code == 200
    kept = stored(http)
    for path, other in [
        ("/responses", {**body, "input": "two"}),
        ("/responses", {**body, "temperature": 0.5}),
        ("/conversations", {}),
    ]:
        answer = http.post(path, json=other, headers=keyed(key))
        error = openai_error(answer, 422, "Idempotency-Key", "idempotency_key_reused")
        assert "Idempotency-Key" in error["message"]
    answer = http.post("/threads", json={}, headers=keyed(key))  # an Assistants path
    openai_error(answer, 422, "Idempotency-Key", "idempotency_key_reused")
    answer = http.post(
        "/messages", json={"thread_id": "thread_x", "content": "hi"}, headers=keyed(key)
    )
    assert "details" not in assert_error(answer, 422, "idempotency_key_reused")  # Parley's own
    assert stored(http) == kept
    # The same JSON spelled another way is the same request.
    spelled = b'{ "input": "one",\n  "model": "fake/text:2" }'
    again = http.post(
        "/responses",
        content=spelled,
        headers={**keyed(key), "Content-Type": "application/json"},
    )
    assert again.status_code == 200 and replayed(again)


def test_another_users_same_key_is_their_own(http: httpx.Client, other: httpx.Client) -> None:
    key = new_key()
    body = {"model": "fake/text:2", "input": "mine"}
    mine = http.post("/responses", json=body, headers=keyed(key))
    theirs = other.post("/responses", json=body, headers=keyed(key))
    assert mine.status_code == theirs.status_code == 200
    assert not replayed(mine) and not replayed(theirs)
    assert mine.json()["id"] != theirs.json()["id"]
    # And each one's retry is answered from their own.
    assert other.post("/responses", json=body, headers=keyed(key)).json() == theirs.json()
    assert len(list_all(http, "/runs")) == len(list_all(other, "/runs")) == 1


def test_a_failed_request_keeps_nothing(http: httpx.Client) -> None:
    key = new_key()
    missing = "/conversations/thread_000000000000000000000000/items"
    for _ in range(2):  # evaluated afresh each time: 404 again, not a replay
        answer = http.post(missing, json={"items": [user("hi")]}, headers=keyed(key))
        openai_error(answer, 404, "conversation_id", None)
        assert not replayed(answer)
    # The key is free for another request.
    made = http.post("/conversations", json={}, headers=keyed(key))
    assert made.status_code == 200 and not replayed(made)
    answer = http.post("/responses", json={"model": "fake/nope"}, headers=keyed(key))
    openai_error(answer, 422, "Idempotency-Key", "idempotency_key_reused")


@pytest.mark.parametrize("path", ["/conversations", "/threads"])
def test_a_key_longer_than_255_characters_is_400(http: httpx.Client, path: str) -> None:
    answer = http.post(path, json={}, headers=keyed("k" * 256))
    error = openai_error(answer, 400, "Idempotency-Key", "invalid_idempotency_key")
    assert "Idempotency-Key" in error["message"]
    assert thread_ids(http) == set()
    longest = http.post(path, json={}, headers=keyed("k" * 255))
    assert longest.status_code in (200, 201), longest.text


# ----------------------------------------------------------------------- concurrency


def test_concurrent_duplicates_make_one_response(
    http: httpx.Client, server: Any, user_key: str, upstream: Any
) -> None:
    word, key = marker(), new_key()
    body = {"model": "fake/text:6:50", "input": f"at once {word}"}
    start = threading.Barrier(6)

    def send(_: int) -> httpx.Response:
        with server.client(user_key) as client:
            start.wait(10)
            answer: httpx.Response = client.post("/responses", json=body, headers=keyed(key))
            answer.read()
            return answer

    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(send, range(6)))
    made = [a for a in answers if a.status_code == 200 and not replayed(a)]
    assert len(made) == 1, [(a.status_code, a.text[:200]) for a in answers]
    for answer in answers:
        if answer.status_code == 409:
            openai_error(answer, 409, None, "idempotency_key_in_use")
        else:
            assert answer.status_code == 200 and answer.json() == made[0].json()
    assert [r["id"] for r in list_all(http, "/runs")] == [made[0].json()["id"]]
    assert len(upstream_requests(upstream, word)) == 1


def test_concurrent_duplicates_make_one_thread(
    http: httpx.Client, server: Any, user_key: str
) -> None:
    key = new_key()
    start = threading.Barrier(8)

    def send(_: int) -> httpx.Response:
        with server.client(user_key) as client:
            start.wait(10)
            answer: httpx.Response = client.post(
                "/threads", json={"metadata": {"n": "1"}}, headers=keyed(key)
            )
            return answer

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(send, range(8)))
    made = {a.json()["id"] for a in answers if a.status_code == 200}
    assert len(made) == 1, [(a.status_code, a.text[:200]) for a in answers]
    assert sum(a.status_code == 200 and not replayed(a) for a in answers) == 1
    for answer in answers:
        if answer.status_code != 200:
            assert_error(answer, 409, "idempotency_key_in_use")
    assert thread_ids(http) == made


# ---------------------------------------------------------------------- conversations


def test_conversations_and_their_items_are_made_once(http: httpx.Client) -> None:
    key = new_key()
    body = {"metadata": {"topic": "retries"}, "items": [user("first")]}
    first = http.post("/conversations", json=body, headers=keyed(key))
    again = http.post("/conversations", json=body, headers=keyed(key))
    assert first.status_code == again.status_code == 200
    assert replayed(again) and again.json() == first.json()
    cid = first.json()["id"]
    assert thread_ids(http) == {cid}

    key = new_key()
    items = {"items": [user("second"), user("third")]}
    added = http.post(f"/conversations/{cid}/items", json=items, headers=keyed(key))
    repeated = http.post(f"/conversations/{cid}/items", json=items, headers=keyed(key))
    assert added.status_code == repeated.status_code == 200
    assert replayed(repeated) and repeated.json() == added.json()
    texts = [item["content"][0]["text"] for item in conversation_items(http, cid)]
    assert texts == ["first", "second", "third"]
    # The query is part of the request.
    answer = http.post(
        f"/conversations/{cid}/items",
        params={"include": "message.output_text.logprobs"},
        json=items,
        headers=keyed(key),
    )
    openai_error(answer, 422, "Idempotency-Key", "idempotency_key_reused")


# ------------------------------------------------------------------------ native API


def _turn(http: httpx.Client, body: dict[str, Any], key: str) -> tuple[httpx.Response, list[Event]]:
    with http.stream("POST", "/process", json=body, headers=keyed(key)) as answer:
        check_sse_response(answer)
        events = list(stream_events(answer))
    check_turn(events)
    return answer, events


def test_a_retried_process_stream_replays_its_turn(http: httpx.Client, upstream: Any) -> None:
    assistant = create_assistant(http, model="fake/text:4")
    word, key = marker(), new_key()
    body = {"assistant_id": assistant["id"], "content": f"native {word}", "stream": True}
    first, events = _turn(http, body, key)
    again, replay = _turn(http, body, key)
    assert not replayed(first) and replayed(again)
    assert replay == events
    for header in ("X-Parley-Run-Id", "X-Parley-Thread-Id", "X-Parley-Message-Id"):
        assert again.headers[header] == first.headers[header]
    thread_id = first.headers["X-Parley-Thread-Id"]
    assert [m["role"] for m in messages(http, thread_id)] == ["user", "assistant"]
    assert len(runs_of(http, thread_id)) == 1
    assert len(upstream_requests(upstream, word)) == 1


def test_a_retried_turn_replays_that_turn_only(http: httpx.Client) -> None:
    """A retry of ``process`` gets the one turn its first request streamed, not the run's
    turns after it (turn 1, once turn 2 has run), nor those before it (turn 2)."""
    assistant = create_assistant(http, model="fake/auto", tools=[WEATHER])
    first_key, second_key = new_key(), new_key()
    first_body = {"assistant_id": assistant["id"], "content": "weather?"}
    _, first_turn = _turn(http, first_body, first_key)
    run_id = str(first_turn[0].data["run_id"])
    [call] = next(e for e in first_turn if e.event == "tool_calls").data["actions"]
    outputs = {"tool_outputs": [{"tool_call_id": call["tool_call_id"], "output": "sunny"}]}
    assert http.post(f"/runs/{run_id}/submit_tool_outputs", json=outputs).status_code == 200
    _, second_turn = _turn(http, {"run_id": run_id}, second_key)
    assert second_turn[0].id == (first_turn[-1].id or 0) + 1
    assert get_run(http, run_id)["status"] == "completed"

    assert _turn(http, first_body, first_key)[1] == first_turn
    assert _turn(http, {"run_id": run_id}, second_key)[1] == second_turn
    assert len(runs_of(http, get_run(http, run_id)["thread_id"])) == 1


def test_a_retried_process_answer_is_the_same_json(http: httpx.Client) -> None:
    assistant = create_assistant(http, model="fake/text:3")
    body = {"assistant_id": assistant["id"], "content": "json please", "stream": False}
    key = new_key()
    first = http.post("/process", json=body, headers=keyed(key))
    again = http.post("/process", json=body, headers=keyed(key))
    assert first.status_code == again.status_code == 200
    assert replayed(again) and again.json() == first.json()
    assert first.json()["text"] == expected_text(3)
    assert len(runs_of(http, first.json()["thread_id"])) == 1


def test_native_creations_are_made_once(http: httpx.Client) -> None:
    assistant = create_assistant(http)
    thread = create_thread(http)
    creations = [  # the Assistants API's paths answer 200, Parley's own flat ones 201
        ("/assistants", {"name": "twice?", "model": "demo/x"}, 200),
        ("/threads", {"metadata": {"a": "b"}}, 200),
        (f"/threads/{thread['id']}/messages", {"content": "hello", "role": "user"}, 200),
        ("/messages", {"thread_id": thread["id"], "content": "again", "role": "user"}, 201),
        ("/runs", {"thread_id": thread["id"], "assistant_id": assistant["id"]}, 201),
    ]
    for path, body, status in creations:
        key = new_key()
        first = http.post(path, json=body, headers=keyed(key))
        again = http.post(path, json=body, headers=keyed(key))
        assert first.status_code == again.status_code == status, (path, first.text, again.text)
        assert not replayed(first) and replayed(again), path
        assert again.json() == first.json(), path
    assert len(list_all(http, "/assistants")) == 2
    assert len(thread_ids(http)) == 2
    assert [m["content"] for m in messages(http, thread["id"])] == ["hello", "again"]
    assert len(runs_of(http, thread["id"])) == 1
