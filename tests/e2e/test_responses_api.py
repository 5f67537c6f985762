"""The Responses API over HTTP: bad bodies, unknown and foreign ids, ``store: false``,
branches of a ``previous_response_id`` chain, background responses and their cancellation,
resumable streams, compaction, ``item_reference`` items and client-side function tools.
Every refusal is checked in OpenAI's error shape, and what is stored afterwards."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from parley.testing.fake_upstream import (
    expected_reasoning,
    expected_text,
    text_chunks,
    tool_results_text,
)
from tests.e2e.helpers import at_once, get_run, marker, messages, read_events, wait_until
from tests.e2e.responses_helpers import (
    WEATHER_ARGUMENTS,
    WEATHER_TOOL,
    call_output,
    calls,
    check_sequence,
    conversation,
    create,
    deltas,
    get,
    input_items,
    native_messages,
    nothing_stored,
    openai_error,
    output_text,
    read_stream,
    sent,
    sent_request,
    stored,
    stream_create,
    thread_ids,
    thread_of,
    user,
    wait_response,
    weather_result,
)

MIB = 1024 * 1024
TEXT = "fake/text:3"


# -------------------------------------------------------------------------- bad bodies


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"model": TEXT, "input": "hi", "temperature": "hot"}, "temperature", "invalid_value"),
        ({"model": TEXT, "input": "hi", "temperature": 3}, "temperature", "invalid_value"),
        ({"model": TEXT, "input": 5}, "input", "invalid_value"),
        ({"model": TEXT, "input": [5]}, "input", "invalid_value"),
        ({"model": TEXT, "input": "hi", "tools": {"type": "function"}}, "tools", "invalid_value"),
        ({"model": TEXT, "input": "hi", "tool_choice": 5}, "tool_choice", "invalid_value"),
        ({"model": TEXT, "input": "hi", "conversation": 5}, "conversation", "invalid_value"),
        (
            {"model": TEXT, "input": "hi", "conversation": {"id": ""}},
            "conversation",
            "invalid_value",
        ),
        ({"model": TEXT, "input": "hi", "stream": "often"}, "stream", "invalid_value"),
        ({"model": TEXT, "input": "hi", "frobnicate": True}, "frobnicate", "unknown_parameter"),
        ({"model": TEXT, "input": [{"type": "telepathy"}]}, "input[0].type", "invalid_value"),
        (
            {"model": TEXT, "input": [user("a"), {"type": "function_call_output", "output": "x"}]},
            "input[1].call_id",
            "invalid_value",
        ),
        (
            {"model": TEXT, "input": [{"role": "robot", "content": "beep"}]},
            "input[0].role",
            "invalid_value",
        ),
        (
            {"model": TEXT, "input": "hi", "tools": [{"type": "computer_use_preview"}]},
            "tools[0].type",
            "unsupported_tool",
        ),
        ({"input": "hi"}, "model", "missing_required_parameter"),
        ({"model": TEXT}, "input", "missing_required_parameter"),
        (
            {"model": TEXT, "input": "hi", "previous_response_id": "run_x", "conversation": "c"},
            "conversation",
            "invalid_value",
        ),
    ],
    ids=lambda value: None if isinstance(value, dict) else str(value),
)
def test_bad_bodies_are_400_naming_the_field(
    http: httpx.Client, body: dict[str, Any], param: str, code: str
) -> None:
    with nothing_stored(http):
        openai_error(http.post("/responses", json=body), 400, param, code)


@pytest.mark.parametrize("raw", [b"{nope", b"", b'{"model": "fake/text:3", "input": "hi",}'])
def test_a_body_that_is_not_json_is_400(http: httpx.Client, raw: bytes) -> None:
    with nothing_stored(http):
        answer = http.post("/responses", content=raw, headers={"Content-Type": "application/json"})
        # no body at all: the body is missing, not malformed
        openai_error(answer, 400, None, "invalid_json" if raw else "invalid_value")


def test_a_body_over_the_limit_is_413(http: httpx.Client) -> None:
    with nothing_stored(http):
        answer = http.post("/responses", json={"model": TEXT, "input": "x" * (MIB + 16)})
        openai_error(answer, 413, None, None)


# ------------------------------------------------------------------ unknown and foreign


def _id_requests(response_id: str) -> list[tuple[str, str]]:
    """Every request that names a response by its id."""
    return [
        ("GET", f"/responses/{response_id}"),
        ("GET", f"/responses/{response_id}?stream=true"),
        ("DELETE", f"/responses/{response_id}"),
        ("POST", f"/responses/{response_id}/cancel"),
        ("GET", f"/responses/{response_id}/input_items"),
    ]


def test_unknown_response_ids_are_404(http: httpx.Client) -> None:
    for method, path in _id_requests("run_000000000000000000000000"):
        openai_error(http.request(method, path), 404, "response_id", None)


def test_another_users_response_is_404_everywhere(http: httpx.Client, other: httpx.Client) -> None:
    word = marker()
    theirs = create(other, model="fake/reasoning:2", input=f"secret {word}")
    their_item = theirs["output"][0]["id"]
    their_state = (stored(other), get(other, theirs["id"]))
    mine = stored(http)

    def refused(answer: httpx.Response, status: int, param: str, code: str | None) -> None:
        openai_error(answer, status, param, code)
        assert word not in answer.text  # nothing of theirs in the refusal

    for method, path in _id_requests(theirs["id"]):
        refused(http.request(method, path), 404, "response_id", None)
    answer = http.post(
        "/responses", json={"model": TEXT, "input": "hi", "previous_response_id": theirs["id"]}
    )
    refused(answer, 400, "previous_response_id", "previous_response_not_found")
    answer = http.post(
        "/responses/compact", json={"model": TEXT, "previous_response_id": theirs["id"]}
    )
    refused(answer, 400, "previous_response_id", "previous_response_not_found")
    answer = http.post(
        "/responses",
        json={"model": "fake/echo", "input": [{"type": "item_reference", "id": their_item}]},
    )
    refused(answer, 400, "input[0].id", "item_not_found")

    assert stored(http) == mine
    assert (stored(other), get(other, theirs["id"])) == their_state
    assert all(word not in str(body) for body in mine)


# --------------------------------------------------------------------------- store false


@pytest.mark.parametrize("streamed", [False, True], ids=["json", "stream"])
def test_store_false_keeps_nothing(http: httpx.Client, upstream: Any, streamed: bool) -> None:
    word = marker()
    threads = thread_ids(http)
    body = {"model": TEXT, "input": f"forget {word}", "store": False}
    if streamed:
        events = stream_create(http, **body)
        response = events[-1]["response"]
        assert deltas(events) == expected_text(3)
    else:
        response = create(http, **body)
    assert response["status"] == "completed" and response["store"] is False
    assert output_text(response) == expected_text(3)
    assert sent(upstream, word) == [("user", f"forget {word}")]

    rid = response["id"]
    wait_until(lambda: thread_ids(http) == threads, 5, "the scratch thread to go")
    for method, path in _id_requests(rid):
        openai_error(http.request(method, path), 404, "response_id", None)
    assert http.get(f"/runs/{rid}").status_code == 404
    answer = http.post(
        "/responses", json={"model": TEXT, "input": "on", "previous_response_id": rid}
    )
    openai_error(answer, 400, "previous_response_id", "previous_response_not_found")
    assert thread_ids(http) == threads


def test_store_false_after_a_stored_response_leaves_it_alone(
    http: httpx.Client, upstream: Any
) -> None:
    word = marker()
    first = create(http, model="fake/echo", input="kept")
    thread = thread_of(http, first["id"])
    before = stored(http)
    scratch = create(
        http,
        model="fake/echo",
        input=f"aside {word}",
        previous_response_id=first["id"],
        store=False,
    )
    assert output_text(scratch) == f"aside {word}"
    assert sent(upstream, word) == [
        ("user", "kept"),
        ("assistant", "kept"),
        ("user", f"aside {word}"),
    ]
    wait_until(lambda: stored(http) == before, 5, "the scratch branch to go")
    assert native_messages(http, thread) == [("user", "kept"), ("assistant", "kept")]


def test_store_false_in_a_conversation_adds_nothing_to_it(
    http: httpx.Client, upstream: Any
) -> None:
    word = marker()
    answer = http.post("/conversations", json={"items": [user("earlier")]})
    cid = answer.json()["id"]
    before = stored(http)
    scratch = create(http, model="fake/echo", input=f"aside {word}", conversation=cid, store=False)
    assert output_text(scratch) == f"aside {word}"
    assert sent(upstream, word) == [("user", "earlier"), ("user", f"aside {word}")]
    wait_until(lambda: stored(http) == before, 5, "the scratch branch to go")


# ------------------------------------------------------------------------------ branches


def test_two_responses_after_the_same_one_are_two_branches(
    http: httpx.Client, upstream: Any
) -> None:
    root, left, right, deeper = (marker() for _ in range(4))
    first = create(http, model="fake/echo", input=f"root {root}")
    a = create(http, model="fake/echo", input=f"left {left}", previous_response_id=first["id"])
    b = create(http, model="fake/echo", input=f"right {right}", previous_response_id=first["id"])
    a2 = create(http, model="fake/echo", input=f"deeper {deeper}", previous_response_id=a["id"])

    base = [("user", f"root {root}"), ("assistant", f"root {root}")]
    assert sent(upstream, left) == [*base, ("user", f"left {left}")]
    assert sent(upstream, right) == [*base, ("user", f"right {right}")]
    assert sent(upstream, deeper) == [
        *base,
        ("user", f"left {left}"),
        ("assistant", f"left {left}"),
        ("user", f"deeper {deeper}"),
    ]
    assert b["previous_response_id"] == first["id"] and output_text(b) == f"right {right}"

    # The chain that goes on from the newest response stays in its thread; the other
    # branch is a thread of its own, holding a copy of the turn it branched from.
    assert thread_of(http, first["id"]) == thread_of(http, a["id"]) == thread_of(http, a2["id"])
    assert thread_of(http, b["id"]) != thread_of(http, a["id"])
    assert native_messages(http, thread_of(http, b["id"])) == [
        *base,
        ("user", f"right {right}"),
        ("assistant", f"right {right}"),
    ]
    items = input_items(http, a2["id"])
    assert [i["content"][0]["text"] for i in items] == [f"deeper {deeper}"]


# ---------------------------------------------------------------------------- background


def test_a_background_response_runs_without_its_client(http: httpx.Client) -> None:
    answer = http.post(
        "/responses", json={"model": "fake/text:6:40", "input": "later", "background": True}
    )
    assert answer.status_code == 200, answer.text
    started = answer.json()
    assert started["status"] in ("queued", "in_progress"), started
    assert started["background"] is True and started["output"] == [] and started["usage"] is None

    done = wait_response(http, started["id"])
    assert done["status"] == "completed" and output_text(done) == expected_text(6)
    assert done["usage"]["output_tokens"] == 6 and done["completed_at"] is not None
    assert get_run(http, started["id"])["status"] == "completed"


def test_a_background_stream_is_followed_live_then_replayed(http: httpx.Client) -> None:
    started = create(http, model="fake/text:8:50", input="follow", background=True)
    live = read_stream(http, "GET", f"/responses/{started['id']}", params={"stream": "true"})
    check_sequence(live)
    assert live[-1]["type"] == "response.completed"
    assert deltas(live) == expected_text(8)
    again = read_stream(http, "GET", f"/responses/{started['id']}", params={"stream": "true"})
    assert again == live


def test_cancel_a_background_response(http: httpx.Client, upstream: Any) -> None:
    started = create(http, model="fake/stall:2", input="never ends", background=True)
    rid = started["id"]
    wait_until(lambda: output_text(get(http, rid)) == expected_text(2), 10, "the first words")
    answer = http.delete(f"/responses/{rid}")
    openai_error(answer, 409, None, "response_in_progress")

    answer = http.post(f"/responses/{rid}/cancel")
    assert answer.status_code == 200, answer.text
    cancelled = answer.json()
    assert cancelled["id"] == rid and cancelled["status"] == "cancelled"
    assert output_text(cancelled) == expected_text(2)
    assert get(http, rid)["status"] == "cancelled"
    assert get_run(http, rid)["status"] == "cancelled"
    wait_until(lambda: upstream.active_streams == 0, 5, "the upstream stream to close")

    again = http.post(f"/responses/{rid}/cancel")  # cancelling a cancelled one: no change
    assert again.status_code == 200 and again.json()["status"] == "cancelled", again.text
    events = read_stream(http, "GET", f"/responses/{rid}", params={"stream": "true"})
    assert events[-1]["type"] == "response.incomplete"
    assert events[-1]["response"] == cancelled
    assert cancelled["output"][0]["status"] == "incomplete"
    assert cancelled["incomplete_details"] == {"reason": "interrupted"}


def test_cancel_a_finished_response_is_400(http: httpx.Client) -> None:
    done = create(http, model=TEXT, input="quick")
    with nothing_stored(http):
        answer = http.post(f"/responses/{done['id']}/cancel")
        openai_error(answer, 400, "response_id", "response_not_cancellable")
        assert get(http, done["id"]) == done


def test_background_must_be_stored(http: httpx.Client) -> None:
    with nothing_stored(http):
        answer = http.post(
            "/responses", json={"model": TEXT, "input": "x", "background": True, "store": False}
        )
        openai_error(answer, 400, "store", "invalid_value")


def test_delete_a_response(http: httpx.Client) -> None:
    first = create(http, model=TEXT, input="one")
    second = create(http, model=TEXT, input="two", previous_response_id=first["id"])
    thread = thread_of(http, first["id"])

    answer = http.delete(f"/responses/{second['id']}")
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"id": second["id"], "object": "response", "deleted": True}
    openai_error(http.get(f"/responses/{second['id']}"), 404, "response_id", None)
    assert get(http, first["id"])["status"] == "completed"  # the thread stays for it

    assert http.delete(f"/responses/{first['id']}").status_code == 200
    assert thread not in thread_ids(http)  # nothing else used it
    openai_error(http.delete(f"/responses/{first['id']}"), 404, "response_id", None)


# ------------------------------------------------------------------------------- streams


def test_a_stream_resumes_after_any_event(http: httpx.Client) -> None:
    live = stream_create(http, model="fake/reasoning:3", input="resume me")
    assert [e["type"] for e in live][:2] == ["response.created", "response.in_progress"]
    assert deltas(live) == expected_text(3)
    done = [e for e in live if e["type"] == "response.reasoning.done"]
    assert [e["text"] for e in done] == [expected_reasoning(3)]
    rid = live[0]["response"]["id"]
    final = live[-1]["response"]
    assert get(http, rid) == final

    path = f"/responses/{rid}"
    whole = read_stream(http, "GET", path, params={"stream": "true"})
    assert whole == live
    for after in (-1, 0, 5, len(live) - 2):
        rest = read_stream(http, "GET", path, params={"stream": "true", "starting_after": after})
        assert rest == live[after + 1 :]
    for after in (len(live) - 1, len(live) + 100):  # nothing left: only [DONE]
        assert (
            read_stream(http, "GET", path, params={"stream": "true", "starting_after": after}) == []
        )
    answer = http.get(path, params={"stream": "true", "starting_after": "soon"})
    openai_error(answer, 400, "starting_after", "invalid_value")


def test_a_bad_query_parameter_is_named_as_sent(http: httpx.Client) -> None:
    rid = create(http, model=TEXT, input="x")["id"]
    answer = http.get(f"/responses/{rid}/input_items", params={"limit": 0})
    openai_error(answer, 400, "limit", "invalid_value")
    answer = http.get(f"/responses/{rid}", params={"stream": "true", "starting_after": -2})
    openai_error(answer, 400, "starting_after", "invalid_value")


# ---------------------------------------------------------------------------- compaction


def test_compact_needs_a_model_and_input(http: httpx.Client) -> None:
    answer = http.post("/responses/compact", json={"input": "x"})
    openai_error(answer, 400, "model", "missing_required_parameter")
    openai_error(
        http.post("/responses/compact", json={"model": TEXT}),
        400,
        "input",
        "missing_required_parameter",
    )
    answer = http.post(
        "/responses/compact",
        json={"model": TEXT, "previous_response_id": "run_000000000000000000000000"},
    )
    openai_error(answer, 400, "previous_response_id", "previous_response_not_found")


def test_a_compacted_window_carries_the_conversation_on(http: httpx.Client, upstream: Any) -> None:
    first, second, then = marker(), marker(), marker()
    before = stored(http)
    one = create(http, model="fake/echo", input=f"alpha {first}")
    two = create(http, model="fake/echo", input=f"bravo {second}", previous_response_id=one["id"])
    kept = stored(http)
    assert kept != before

    answer = http.post(
        "/responses/compact", json={"model": "fake/echo", "previous_response_id": two["id"]}
    )
    assert answer.status_code == 200, answer.text
    compacted = answer.json()
    assert compacted["object"] == "response.compaction"
    *users, item = compacted["output"]  # the kept user messages, then the compaction
    assert [u["role"] for u in users] == ["user", "user"]
    assert item["type"] == "compaction" and isinstance(item["encrypted_content"], str)
    assert compacted["usage"]["output_tokens"] > 0
    assert stored(http) == kept  # compaction stores nothing

    # The echo model's summary is the transcript it was given: every turn, in order.
    transcript = (
        f"user: alpha {first}\n\nassistant: alpha {first}\n\n"
        f"user: bravo {second}\n\nassistant: bravo {second}"
    )
    nxt = create(http, model="fake/echo", input=[item, user(f"then {then}")])
    assert output_text(nxt) == f"then {then}"
    assert sent(upstream, then) == [
        ("system", "Summary of the conversation so far:\n" + transcript),
        ("user", f"then {then}"),
    ]
    forged = {"type": "compaction", "encrypted_content": "Zm9yZ2Vk"}
    answer = http.post("/responses", json={"model": TEXT, "input": [forged, user("x")]})
    openai_error(answer, 400, "input[0].encrypted_content", "invalid_value")


# ------------------------------------------------------------------------ item references


def test_item_references_stand_for_earlier_items(http: httpx.Client, upstream: Any) -> None:
    word, asked, later = marker(), marker(), marker()
    thought = create(http, model="fake/reasoning:2", input=f"think {word}")
    reasoning, message = thought["output"]
    (question,) = input_items(http, thought["id"])
    tooled = create(http, model="fake/auto", input=f"weather {asked}", tools=[WEATHER_TOOL])
    (call,) = calls(tooled)
    answered = create(
        http, **weather_result(call["call_id"], "hail", previous_response_id=tooled["id"])
    )
    (result,) = input_items(http, answered["id"])
    assert result["type"] == "function_call_output"

    references = [
        {"type": "item_reference", "id": i["id"]}
        for i in (question, reasoning, message, call, result)
    ]
    reply = create(
        http, model="fake/echo", input=[*references, user(f"later {later}")], tools=[WEATHER_TOOL]
    )
    assert output_text(reply) == f"later {later}"
    # Consecutive reasoning, text and call items are one assistant message, as stored.
    assert sent(upstream, later) == [
        ("user", f"think {word}"),
        ("assistant", expected_text(2)),
        ("tool", "hail"),
        ("user", f"later {later}"),
    ]
    request = sent_request(upstream, later)
    assert request["messages"][1]["tool_calls"][0]["id"] == call["call_id"]
    kept = messages(http, thread_of(http, reply["id"]))
    assert kept[1]["reasoning"] == expected_reasoning(2)
    assert [c["id"] for c in kept[1]["tool_calls"]] == [call["call_id"]]


@pytest.mark.parametrize(
    "item_id", ["msg_000000000000000000000000", "fc_000000000000000000000000", "nonsense", None]
)
def test_an_unknown_item_reference_is_400(http: httpx.Client, item_id: str | None) -> None:
    reference: dict[str, Any] = {"type": "item_reference"}
    if item_id is not None:
        reference["id"] = item_id
    with nothing_stored(http):
        answer = http.post("/responses", json={"model": TEXT, "input": [user("a"), reference]})
        openai_error(answer, 400, "input[1].id", "item_not_found")


# -------------------------------------------------------------------------- function tools


def test_function_tool_round_trip_with_previous_response_id(http: httpx.Client) -> None:
    first = create(http, model="fake/auto", input="weather in Lisbon?", tools=[WEATHER_TOOL])
    assert first["status"] == "completed"
    (call,) = calls(first)
    assert call["name"] == "get_weather" and call["status"] == "completed"
    assert json.loads(call["arguments"]) == WEATHER_ARGUMENTS
    assert get_run(http, first["id"])["status"] == "requires_action"

    second = create(
        http, **weather_result(call["call_id"], "sunny", previous_response_id=first["id"])
    )
    assert output_text(second) == tool_results_text([("get_weather", "sunny")])
    assert get_run(http, first["id"])["status"] == "completed"
    thread = thread_of(http, first["id"])
    assert thread_of(http, second["id"]) == thread
    after = native_messages(http, thread)
    assert [role for role, _ in after] == ["user", "assistant", "tool", "assistant"]

    # The same output again, after either response: refused, nothing stored twice.
    with nothing_stored(http):
        for previous in (second["id"], first["id"]):
            body = weather_result(call["call_id"], "sunny", previous_response_id=previous)
            answer = http.post("/responses", json=body)
            openai_error(answer, 400, "input", "duplicate_tool_output")


def test_a_response_with_function_calls_was_completed_when_it_paused(http: httpx.Client) -> None:
    """Its ``completed_at`` is when its turn ended with the calls, live, on GET and
    replayed, before and after the next response sends their outputs; the native run
    completed when they came."""
    # The call streams in four fragments 0.4 s apart: the turn ends a second after it began.
    live = stream_create(http, model="fake/auto:1:400", input="weather?", tools=[WEATHER_TOOL])
    first = live[-1]["response"]
    assert first["completed_at"] > first["created_at"]
    assert get(http, first["id"]) == first
    (done,) = [e for e in read_events(http, f"/runs/{first['id']}/events") if e.event == "done"]
    assert done.data["ended_at"] == first["completed_at"]
    assert get_run(http, first["id"])["completed_at"] is None  # natively: waiting for outputs

    time.sleep(1.1)
    (call,) = calls(first)
    second = create(
        http, **weather_result(call["call_id"], "sunny", previous_response_id=first["id"])
    )
    assert second["created_at"] > first["completed_at"]
    assert get(http, first["id"]) == first
    path = f"/responses/{first['id']}"
    assert read_stream(http, "GET", path, params={"stream": "true"}) == live
    run = get_run(http, first["id"])
    assert run["status"] == "completed" and run["completed_at"] >= second["created_at"]


def test_function_call_outputs_for_unknown_calls_are_400(http: httpx.Client) -> None:
    first = create(http, model="fake/auto", input="weather?", tools=[WEATHER_TOOL])
    (call,) = calls(first)
    body = {"model": "fake/auto", "previous_response_id": first["id"], "tools": [WEATHER_TOOL]}
    unknown = call_output("call_unknown", "x")

    with nothing_stored(http):
        # An output for a call nobody made, beside the right one: refused as a whole.
        both = [call_output(call["call_id"], "sunny"), unknown]
        answer = http.post("/responses", json={**body, "input": both})
        openai_error(answer, 400, "input", "tool_call_not_found")
        # Only the unknown one: the pending call is left without its output.
        answer = http.post("/responses", json={**body, "input": [unknown]})
        openai_error(answer, 400, "input", "tool_output_missing")
        # A fresh response given an output for a call that is nowhere.
        answer = http.post("/responses", json={"model": TEXT, "input": [unknown]})
        openai_error(answer, 400, "input", "tool_call_not_found")
    assert get_run(http, first["id"])["status"] == "requires_action"


def posted_at_once(server: Any, key: str, body: dict[str, Any]) -> list[httpx.Response]:
    """``POST /responses`` with ``body`` from six clients released together, 5 ms apart:
    the later ones read the thread while an earlier one is storing its turn."""

    def post(http: httpx.Client, i: int) -> httpx.Response:
        time.sleep(i * 0.005)
        return http.post("/responses", json=body)

    return at_once(server, key, 6, post)


def one_winner(answers: list[httpx.Response]) -> dict[str, Any]:
    """Of concurrent submissions of one output, one was taken (its response is returned);
    the others were refused because the winner's turn was running, or because the call had
    its output by then."""
    won = [a for a in answers if a.status_code == 200]
    assert len(won) == 1, [(a.status_code, a.text) for a in answers]
    for answer in answers:
        if answer.status_code == 409:
            openai_error(answer, 409, None, "thread_busy")
        elif answer.status_code != 200:
            openai_error(answer, 400, "input", "duplicate_tool_output")
    return dict(won[0].json())


def test_concurrent_submissions_of_one_output_store_it_once(
    http: httpx.Client, server: Any, user_key: str
) -> None:
    """Sent at once with ``previous_response_id``, one output is taken once: none of the
    others starts a branch of its own (on PostgreSQL one did, from a plan that read the
    previous response before the winner stored the output and the thread after)."""
    threads = set()
    for _ in range(3):
        first = create(http, model="fake/auto", input="weather?", tools=[WEATHER_TOOL])
        (call,) = calls(first)
        body = weather_result(call["call_id"], "foggy", previous_response_id=first["id"])
        won = one_winner(posted_at_once(server, user_key, body))
        thread = thread_of(http, first["id"])
        assert thread_of(http, won["id"]) == thread
        assert [role for role, _ in native_messages(http, thread)] == [
            "user",
            "assistant",
            "tool",
            "assistant",
        ]
        threads.add(thread)
    assert thread_ids(http) == threads


def test_concurrent_outputs_for_a_call_in_a_conversation_store_it_once(
    http: httpx.Client, server: Any, user_key: str
) -> None:
    """A function call that a client put in its conversation (no response waits on it):
    outputs sent at once in the conversation are taken once (on PostgreSQL each used to
    check the conversation before the others had written to it)."""
    for _ in range(3):
        cid = conversation(http)["id"]
        call = {
            "type": "function_call",
            "call_id": f"call_{marker()}",
            "name": "get_weather",
            "arguments": json.dumps(WEATHER_ARGUMENTS),
        }
        answer = http.post(f"/conversations/{cid}/items", json={"items": [user("hi"), call]})
        assert answer.status_code == 200, answer.text
        body = weather_result(call["call_id"], "foggy", conversation=cid)
        one_winner(posted_at_once(server, user_key, body))
        assert [role for role, _ in native_messages(http, cid)] == [
            "user",
            "assistant",
            "tool",
            "assistant",
        ]


# ------------------------------------------------------------------------ busy and failed


def test_a_running_response_blocks_what_would_follow_it(http: httpx.Client) -> None:
    cid = http.post("/conversations", json={}).json()["id"]
    running = create(http, model="fake/stall:1", input="wait", conversation=cid, background=True)
    wait_until(lambda: output_text(get(http, running["id"])), 10, "the first word")

    with nothing_stored(http):
        answer = http.post(
            "/responses",
            json={"model": TEXT, "input": "x", "previous_response_id": running["id"]},
        )
        openai_error(answer, 400, "previous_response_id", "previous_response_in_progress")
        answer = http.post("/responses", json={"model": TEXT, "input": "x", "conversation": cid})
        openai_error(answer, 409, None, "thread_busy")
        answer = http.post(f"/conversations/{cid}/items", json={"items": [user("x")]})
        openai_error(answer, 409, None, "thread_busy")
        openai_error(http.delete(f"/conversations/{cid}"), 409, None, "conversation_busy")

    assert http.post(f"/responses/{running['id']}/cancel").json()["status"] == "cancelled"
    after = create(http, model=TEXT, input="now", conversation=cid)
    assert after["status"] == "completed"


@pytest.mark.parametrize("streamed", [False, True], ids=["json", "stream"])
def test_a_failed_turn_is_a_failed_response(http: httpx.Client, streamed: bool) -> None:
    body = {"model": "fake/error:500", "input": "break"}
    if streamed:
        events = stream_create(http, **body)
        assert events[-1]["type"] == "response.failed"
        response = events[-1]["response"]
    else:
        response = create(http, **body)
    assert response["status"] == "failed" and response["output"] == []
    assert response["error"]["code"] == "upstream_http_error"
    assert response["error"]["message"]
    replay = read_stream(http, "GET", f"/responses/{response['id']}", params={"stream": "true"})
    assert replay[-1]["type"] == "response.failed"
    assert replay[-1]["response"]["error"] == response["error"]
    assert get(http, response["id"])["error"] == response["error"]


def test_an_unknown_model_names_the_model_field(http: httpx.Client) -> None:
    with nothing_stored(http):
        answer = http.post("/responses", json={"model": "nope/zzz", "input": "x"})
        openai_error(answer, 400, "model", "unknown_model")


def test_a_response_cut_by_max_output_tokens_is_incomplete(http: httpx.Client) -> None:
    """Stream and stored response agree: incomplete, for ``max_output_tokens``."""
    events = stream_create(http, model="fake/text:5", input="Go on", max_output_tokens=2)
    last = events[-1]
    assert last["type"] == "response.incomplete", [e["type"] for e in events]
    streamed = last["response"]
    assert streamed["incomplete_details"] == {"reason": "max_output_tokens"}
    stored = http.get(f"/responses/{streamed['id']}").json()
    assert stored["status"] == "incomplete"
    assert stored["incomplete_details"] == {"reason": "max_output_tokens"}
    [item] = stored["output"]
    assert item["status"] == "incomplete"
    assert item["content"][0]["text"] == "".join(text_chunks(5)[:2])
