"""One thread, whichever face reaches it: a conversation made through the Responses API is
read and continued by the native API and then by the Responses API again; a thread made
natively is a conversation; a response is a run; a native tool call is answered with a
``function_call_output`` item."""

from __future__ import annotations

from typing import Any

import httpx

from parley.testing.fake_upstream import expected_text, tool_results_text
from tests.e2e.helpers import (
    WEATHER,
    actions,
    add_message,
    at_once,
    create_assistant,
    create_thread,
    get_run,
    joined,
    marker,
    read_events,
    stream_process,
)
from tests.e2e.responses_helpers import (
    WEATHER_TOOL,
    call_output,
    calls,
    conversation,
    conversation_items,
    create,
    get,
    input_items,
    native_messages,
    output_text,
    sent,
    texts,
    thread_ids,
)


def test_a_conversation_goes_on_natively_and_back(http: httpx.Client, upstream: Any) -> None:
    one, two, three = marker(), marker(), marker()
    cid = conversation(http, metadata={"made": "responses"})["id"]
    first = create(http, model="fake/echo", input=f"one {one}", conversation=cid)
    assert native_messages(http, cid) == [("user", f"one {one}"), ("assistant", f"one {one}")]
    run = get_run(http, first["id"])
    assert (run["thread_id"], run["status"], run["model"]) == (cid, "completed", "fake/echo")

    bot = create_assistant(http, "fake/echo")
    turn = stream_process(http, assistant_id=bot["id"], content=f"two {two}", thread_id=cid)
    assert turn.final_status == "completed" and turn.text == f"two {two}"
    assert turn.headers["x-parley-thread-id"] == cid

    third = create(http, model="fake/echo", input=f"three {three}", conversation={"id": cid})
    assert output_text(third) == f"three {three}"
    assert sent(upstream, three) == [
        ("user", f"one {one}"),
        ("assistant", f"one {one}"),
        ("user", f"two {two}"),
        ("assistant", f"two {two}"),
        ("user", f"three {three}"),
    ]
    every_turn = [
        ("user", f"one {one}"),
        ("assistant", f"one {one}"),
        ("user", f"two {two}"),
        ("assistant", f"two {two}"),
        ("user", f"three {three}"),
        ("assistant", f"three {three}"),
    ]
    assert texts(conversation_items(http, cid)) == every_turn
    assert native_messages(http, cid) == every_turn

    # The native turn is a response too, whose input is its own turn's message.
    native = get(http, turn.run_id)
    assert native["status"] == "completed" and output_text(native) == f"two {two}"
    items = input_items(http, turn.run_id)
    assert texts(items) == [("user", f"two {two}")]


def test_a_native_thread_is_a_conversation(http: httpx.Client, upstream: Any) -> None:
    word = marker()
    thread = create_thread(http, metadata={"made": "natively"})
    add_message(http, thread["id"], f"native {word}")
    made = http.get(f"/conversations/{thread['id']}")
    assert made.status_code == 200, made.text
    assert made.json()["object"] == "conversation"
    assert made.json()["metadata"] == {"made": "natively"}
    assert texts(conversation_items(http, thread["id"])) == [("user", f"native {word}")]

    reply = create(http, model="fake/echo", input=f"then {word}", conversation=thread["id"])
    assert reply["conversation"] == {"id": thread["id"]}
    assert sent(upstream, f"then {word}") == [
        ("user", f"native {word}"),
        ("user", f"then {word}"),
    ]
    assert native_messages(http, thread["id"]) == [
        ("user", f"native {word}"),
        ("user", f"then {word}"),
        ("assistant", f"then {word}"),
    ]
    # A native turn's run continues as a previous response, too.
    bot = create_assistant(http, "fake/text:3")
    turn = stream_process(http, assistant_id=bot["id"], content="native turn")
    after = create(http, model="fake/echo", input=f"after {word}", previous_response_id=turn.run_id)
    assert sent(upstream, f"after {word}") == [
        ("user", "native turn"),
        ("assistant", expected_text(3)),
        ("user", f"after {word}"),
    ]
    assert get_run(http, after["id"])["thread_id"] == get_run(http, turn.run_id)["thread_id"]


def test_a_response_is_a_run_with_its_events(http: httpx.Client) -> None:
    response = create(http, model="fake/text:4", input="events")
    run = get_run(http, response["id"])
    assert run["status"] == "completed"
    events = read_events(http, f"/runs/{response['id']}/events")
    assert joined(events, "content.delta") == expected_text(4) == output_text(response)
    assert events[-1].event == "done" and events[-1].data["status"] == "completed"


def test_a_native_tool_call_is_answered_through_responses(http: httpx.Client) -> None:
    bot = create_assistant(http, "fake/tools", tools=[WEATHER])
    turn = stream_process(http, assistant_id=bot["id"], content="weather please")
    assert turn.final_status == "action_required"
    (action,) = turn.manifest
    thread_id = get_run(http, turn.run_id)["thread_id"]

    # The waiting run is a response whose output ends with the call.
    waiting = get(http, turn.run_id)
    assert waiting["status"] == "completed"
    assert [c["call_id"] for c in calls(waiting)] == [action["tool_call_id"]]

    reply = create(
        http,
        model="fake/text:2",
        input=[call_output(action["tool_call_id"], "hot")],
        conversation=thread_id,
        tools=[WEATHER_TOOL],
    )
    assert output_text(reply) == tool_results_text([("get_weather", "hot")])
    assert get_run(http, turn.run_id)["status"] == "completed"
    (done,) = actions(http, turn.run_id)
    assert (done["status"], done["output"]) == ("completed", "hot")
    assert [role for role, _ in native_messages(http, thread_id)] == [
        "user",
        "assistant",
        "tool",
        "assistant",
    ]


def test_an_output_sent_through_both_faces_at_once_is_stored_once(
    http: httpx.Client, server: Any, user_key: str
) -> None:
    """The same output for a response's call, sent at once as the input of a next response
    and to the run natively: stored once, whichever face takes it. The native submissions
    are answered (a repeat is a no-op); the responses that do not take it are refused."""
    first = create(http, model="fake/auto", input="weather?", tools=[WEATHER_TOOL])
    (call,) = calls(first)
    output = call_output(call["call_id"], "foggy")
    body = {"model": "fake/auto", "input": [output], "tools": [WEATHER_TOOL]}
    native = {"tool_outputs": [{"tool_call_id": call["call_id"], "output": "foggy"}]}

    def send(client: httpx.Client, i: int) -> httpx.Response:
        if i % 2:
            return client.post("/responses", json={**body, "previous_response_id": first["id"]})
        return client.post(f"/runs/{first['id']}/submit_tool_outputs", json=native)

    results = at_once(server, user_key, 6, send)
    refusals = {
        (409, "thread_busy"),
        (400, "duplicate_tool_output"),
        (400, "previous_response_in_progress"),
    }
    for i, answer in enumerate(results):
        if answer.status_code != 200:
            assert i % 2 and (answer.status_code, answer.json()["error"]["code"]) in refusals, (
                answer.text
            )
    thread_id = get_run(http, first["id"])["thread_id"]
    roles = [role for role, _ in native_messages(http, thread_id)]
    assert roles[:3] == ["user", "assistant", "tool"] and roles.count("tool") == 1, roles
    assert thread_ids(http) == {thread_id}
