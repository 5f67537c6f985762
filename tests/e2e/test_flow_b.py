"""Flow B over HTTP, as the seed draws it: a turn is one request. Turn 1 streams until the
model asks for tools and ends with the manifest; the client submits each output with
``submit_tool_output``; turn 2 (``process`` with the run id) rebuilds the context from the
database and streams the final tokens."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from parley.testing.fake_upstream import expected_reasoning, expected_text, tool_results_text
from tests.e2e.helpers import (
    CLOCK,
    WEATHER,
    actions,
    create_assistant,
    get_run,
    marker,
    messages,
    stream_process,
    submit_outputs,
    upstream_requests,
)


def _submit_one(
    http: httpx.Client, form: str, run_id: str, item: dict[str, Any], output: str
) -> dict[str, Any]:
    if form == "action_id":
        body = {"action_id": item["action_id"], "output": output}
    else:
        body = {"run_id": run_id, "tool_call_id": item["tool_call_id"], "output": output}
    answer = http.post("/submit_tool_output", json=body)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


@pytest.mark.parametrize("form", ["action_id", "run_id+tool_call_id"])
def test_flow_b_turn_two_rebuilds_context_from_the_database(
    http: httpx.Client, upstream: Any, form: str
) -> None:
    word = marker()
    bot = create_assistant(http, "fake/tools:1", tools=[WEATHER], instructions="Be brief.")

    # [1]-[6] turn 1: the manifest, then the server ends the stream
    first = stream_process(http, assistant_id=bot["id"], content=f"weather please {word}")
    assert first.final_status == "action_required"
    assert first.types[-4:] == ["tool_calls", "usage", "run.status", "done"]
    (item,) = first.manifest
    assert item["name"] == "get_weather" and item["arguments"] == {"city": "city 0"}
    run = get_run(http, first.run_id)
    assert run["status"] == "requires_action"
    thread_id = run["thread_id"]

    # [8]-[10] submit the output
    answer = _submit_one(http, form, run["id"], item, "cloudy")
    assert answer["id"] == run["id"] and answer["status"] == "queued"

    # [11]-[16] turn 2 from the run id alone
    second = stream_process(http, run_id=run["id"])
    assert second.final_status == "completed"
    assert second.text == tool_results_text([("get_weather", "cloudy")])
    assert second.events[0].id == first.events[-1].id + 1

    # the upstream got user + assistant tool call + tool result, read from the database
    turn1, turn2 = upstream_requests(upstream, word)
    assert [m["role"] for m in turn1["messages"]][-1] == "user"
    sent = [m for m in turn2["messages"] if m["role"] != "system"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool"]
    user, call, result = sent
    assert word in user["content"]
    (tool_call,) = call["tool_calls"]
    assert tool_call["id"] == item["tool_call_id"]
    assert tool_call["function"]["name"] == "get_weather"
    assert json.loads(tool_call["function"]["arguments"]) == {"city": "city 0"}
    assert result["tool_call_id"] == item["tool_call_id"] and result["content"] == "cloudy"
    assert any("Be brief." in str(m.get("content")) for m in turn2["messages"])
    assert [t["function"]["name"] for t in turn2["tools"]] == ["get_weather"]

    stored = messages(http, thread_id)
    assert [m["role"] for m in stored] == ["user", "assistant", "tool", "assistant"]
    assert stored[-1]["content"] == second.text
    assert get_run(http, run["id"])["status"] == "completed"


def test_flow_b_turn_one_on_an_existing_thread(http: httpx.Client) -> None:
    bot = create_assistant(http, "fake/text:3")
    first = stream_process(http, assistant_id=bot["id"], content="one")
    thread_id = get_run(http, first.run_id)["thread_id"]
    again = stream_process(http, assistant_id=bot["id"], content="two", thread_id=thread_id)
    assert again.final_status == "completed" and again.text == expected_text(3)
    assert get_run(http, again.run_id)["thread_id"] == thread_id
    stored = messages(http, thread_id)
    assert [(m["role"], m["content"]) for m in stored] == [
        ("user", "one"),
        ("assistant", expected_text(3)),
        ("user", "two"),
        ("assistant", expected_text(3)),
    ]


# ------------------------------------------------------------------ parallel tool calls

PARALLEL = {
    "fake": (
        "fake/tools:2",
        "what is going on",
        [("get_weather", {"city": "city 0"}), ("get_time", {"zone": "zone 1"})],
    ),
    "demo": (
        "demo/x",
        "get_weather Paris get_time UTC",
        [("get_weather", {"city": "Paris"}), ("get_time", {"zone": "UTC"})],
    ),
}


@pytest.mark.parametrize("case", PARALLEL)
def test_two_parallel_tool_calls(http: httpx.Client, upstream: Any, case: str) -> None:
    model, said, expected_calls = PARALLEL[case]
    word = marker()
    bot = create_assistant(http, model, tools=[WEATHER, CLOCK])
    first = stream_process(
        http, assistant_id=bot["id"], content=f"{said} {word}" if case == "fake" else said
    )
    assert first.final_status == "action_required"
    manifest = first.manifest
    assert [(a["name"], a["arguments"]) for a in manifest] == expected_calls
    assert len({a["tool_call_id"] for a in manifest}) == 2
    assert len({a["action_id"] for a in manifest}) == 2

    pending = actions(http, first.run_id, status="pending")
    assert [(a["id"], a["tool_call_id"], a["name"], a["arguments"]) for a in pending] == [
        (a["action_id"], a["tool_call_id"], a["name"], a["arguments"]) for a in manifest
    ]
    run = get_run(http, first.run_id)
    assert run["required_action"]["actions"] == manifest

    outputs = {manifest[0]["tool_call_id"]: "rain", manifest[1]["tool_call_id"]: "noon"}
    assert submit_outputs(http, first.run_id, outputs)["status"] == "queued"

    second = stream_process(http, run_id=first.run_id)
    assert second.final_status == "completed"
    if case == "fake":
        assert second.text == tool_results_text([("get_weather", "rain"), ("get_time", "noon")])
        request = upstream_requests(upstream, word)[-1]
        results = [
            (m["tool_call_id"], m["content"]) for m in request["messages"] if m["role"] == "tool"
        ]
        assert results == list(outputs.items())
        (call,) = [m for m in request["messages"] if m.get("tool_calls")]
        assert [c["id"] for c in call["tool_calls"]] == list(outputs)
    else:
        assert second.text == (
            'Demo model: the tool get_weather returned "rain". '
            'Demo model: the tool get_time returned "noon".'
        )

    stored = messages(http, run["thread_id"])
    assert [m["role"] for m in stored] == ["user", "assistant", "tool", "tool", "assistant"]
    assert [c["id"] for c in stored[1]["tool_calls"]] == list(outputs)
    assert [(m["tool_call_id"], m["content"]) for m in stored[2:4]] == list(outputs.items())


def test_one_output_at_a_time_keeps_the_run_waiting(http: httpx.Client) -> None:
    bot = create_assistant(http, "fake/tools:2", tools=[WEATHER, CLOCK])
    first = stream_process(http, assistant_id=bot["id"], content="two tools")
    one, two = first.manifest
    after_one = _submit_one(http, "action_id", first.run_id, one, "first")
    assert after_one["status"] == "requires_action"
    assert after_one["required_action"]["actions"] == [two]
    assert [a["id"] for a in actions(http, first.run_id, status="pending")] == [two["action_id"]]
    after_two = _submit_one(http, "run_id+tool_call_id", first.run_id, two, "second")
    assert after_two["status"] == "queued"
    second = stream_process(http, run_id=first.run_id)
    assert second.text == tool_results_text([("get_weather", "first"), ("get_time", "second")])


# ----------------------------------------------------------------- "stream": false


def test_process_without_stream_answers_turn_results(http: httpx.Client) -> None:
    bot = create_assistant(http, "demo/x", tools=[WEATHER])
    answer = http.post(
        "/process", json={"assistant_id": bot["id"], "content": "get_weather Oslo", "stream": False}
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    first = answer.json()
    assert set(first) == {
        *("run_id", "thread_id", "message_id", "status", "text", "reasoning"),
        *("actions", "usage", "error", "items"),
    }
    assert first["status"] == "action_required" and first["error"] is None
    assert first["text"] == "" and first["reasoning"]
    (item,) = first["actions"]
    assert item["name"] == "get_weather" and item["arguments"] == {"city": "Oslo"}
    assert set(item) == {"action_id", "tool_call_id", "name", "arguments", "approval"}
    assert item["approval"] is None  # the client's own tool
    assert first["usage"]["output_tokens"] > 0
    run = get_run(http, first["run_id"])
    assert run["thread_id"] == first["thread_id"] and run["status"] == "requires_action"
    stored = messages(http, first["thread_id"])
    assert stored[-1]["id"] == first["message_id"] and stored[-1]["tool_calls"]

    submit_outputs(http, first["run_id"], {item["tool_call_id"]: "snow"})
    answer = http.post("/process", json={"run_id": first["run_id"], "stream": False})
    assert answer.status_code == 200, answer.text
    second = answer.json()
    assert second["status"] == "completed" and second["actions"] == [] and second["error"] is None
    assert second["text"] == 'Demo model: the tool get_weather returned "snow".'
    assert second["run_id"] == first["run_id"] and second["thread_id"] == first["thread_id"]
    assert messages(http, first["thread_id"])[-1]["id"] == second["message_id"]
    assert messages(http, first["thread_id"])[-1]["content"] == second["text"]


def test_completions_without_stream_answers_a_turn_result(http: httpx.Client) -> None:
    bot = create_assistant(http, "fake/reasoning:3")
    thread = http.post("/threads", json={}).json()
    http.post("/messages", json={"thread_id": thread["id"], "content": "hi"})
    run = http.post("/runs", json={"thread_id": thread["id"], "assistant_id": bot["id"]}).json()
    answer = http.post("/completions", json={"run_id": run["id"], "stream": False})
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["status"] == "completed" and result["run_id"] == run["id"]
    assert result["text"] == expected_text(3)
    assert result["reasoning"] == expected_reasoning(3)
    assert result["actions"] == [] and result["error"] is None
    assert result["usage"]["output_tokens"] > 0 and result["usage"]["input_tokens"] > 0
    usage = get_run(http, run["id"])["usage"]
    assert {k: usage[k] for k in result["usage"]} == result["usage"]
    reply = messages(http, thread["id"])[-1]
    assert reply["id"] == result["message_id"] and reply["content"] == expected_text(3)


def test_usage_counts_the_reasoning_and_cached_tokens(http: httpx.Client, upstream: Any) -> None:
    # The fake upstream counts a word of the messages as a prompt token, the words of all
    # but the newest as read from its cache, and a reasoning chunk as a reasoning token
    # among the output's chunks.
    word = marker()
    bot = create_assistant(http, "fake/reasoning:3")
    first = stream_process(http, assistant_id=bot["id"], content=f"weather {word}")
    thread_id = get_run(http, first.run_id)["thread_id"]
    turn = stream_process(http, assistant_id=bot["id"], content="and now", thread_id=thread_id)
    sent = upstream_requests(upstream, word)[-1]["messages"]
    words = [len(str(m["content"]).split()) for m in sent]
    expected = {
        "input_tokens": sum(words),
        "output_tokens": 6,
        "reasoning_tokens": 3,
        "cached_tokens": sum(words[:-1]),
    }
    assert expected["cached_tokens"] > 0
    (usage,) = turn.of_type("usage")
    assert usage.data == {"type": "usage", "run_id": turn.run_id, **expected}
    usage = get_run(http, turn.run_id)["usage"]
    assert {k: usage[k] for k in expected} == expected
    # answered as JSON, a turn result says the same
    answer = http.post(
        "/process",
        json={
            "assistant_id": bot["id"],
            "content": "and now",
            "thread_id": thread_id,
            "stream": False,
        },
    )
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["usage"]["reasoning_tokens"] == 3
    assert result["usage"]["cached_tokens"] > expected["cached_tokens"]  # a longer thread
    usage = get_run(http, result["run_id"])["usage"]
    assert {k: usage[k] for k in result["usage"]} == result["usage"]
