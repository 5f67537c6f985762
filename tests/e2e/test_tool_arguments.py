"""Tool calls whose arguments cannot be read go back to the model as tool errors: they are
stored, answered by an ``Error:`` tool message, and kept out of the manifest. The model's
answers here are replayed from SSE files in the Chat Completions wire format."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from parley.testing.fake_upstream import BAD_ARGUMENTS, tool_results_text
from tests.e2e.helpers import (
    WEATHER,
    actions,
    create_assistant,
    marker,
    messages,
    replayed_tool_calls,
    stream_process,
    submit_outputs,
    upstream_requests,
)


def test_unreadable_arguments_are_answered_and_left_out_of_the_manifest(
    http: httpx.Client, upstream: Any, tmp_path: Path
) -> None:
    model = replayed_tool_calls(
        tmp_path / "mixed.sse",
        ("call_good", "get_weather", '{"city": "Oslo"}'),
        ("call_bad", "get_weather", '{"city": "Par'),
    )
    word = marker()
    bot = create_assistant(http, model, tools=[WEATHER])
    turn = stream_process(http, assistant_id=bot["id"], content=f"weather {word}")
    assert turn.final_status == "action_required"
    (item,) = turn.manifest  # only the readable call is the client's to run
    assert (item["tool_call_id"], item["arguments"]) == ("call_good", {"city": "Oslo"})
    assert [a["tool_call_id"] for a in actions(http, turn.run_id)] == ["call_good"]

    thread_id = http.get(f"/runs/{turn.run_id}").json()["thread_id"]
    _, assistant, error = messages(http, thread_id)
    assert [c["id"] for c in assistant["tool_calls"]] == ["call_good", "call_bad"]
    assert assistant["tool_calls"][1]["arguments"] == {}
    assert error["role"] == "tool" and error["tool_call_id"] == "call_bad"
    assert error["content"].startswith("Error: the tool get_weather was not run")
    assert '{"city": "Par' in error["content"]

    submit_outputs(http, turn.run_id, {"call_good": "sunny"})
    again = stream_process(http, run_id=turn.run_id)
    # the next model call sees both calls answered: the error and the client's output
    *_, second = upstream_requests(upstream, word)
    results = {m["tool_call_id"]: m["content"] for m in second["messages"] if m["role"] == "tool"}
    assert results == {"call_good": "sunny", "call_bad": error["content"]}
    # the model used the same call ids again: they are replaced, the run goes on
    assert again.final_status == "action_required"
    (repeat,) = again.manifest
    assert repeat["tool_call_id"] not in ("call_good", "call_bad")
    assert repeat["arguments"] == {"city": "Oslo"}


def test_a_model_that_only_sends_unreadable_calls_is_asked_again_then_fails(
    http: httpx.Client, upstream: Any, tmp_path: Path
) -> None:
    model = replayed_tool_calls(tmp_path / "bad.sse", ("call_x", "get_weather", "[1, 2]"))
    word = marker()
    bot = create_assistant(http, model, tools=[WEATHER])
    turn = stream_process(http, assistant_id=bot["id"], content=f"weather {word}")
    assert turn.final_status == "failed"
    (error,) = turn.of_type("error")
    assert error.data["code"] == "malformed_tool_call"
    assert turn.types.count("done") == 1 and "tool_calls" not in turn.types

    calls = upstream_requests(upstream, word)
    assert len(calls) == 3  # three model calls in one turn
    # each retry carries the earlier calls and their tool errors
    last = calls[-1]["messages"]
    assert [m["role"] for m in last if m["role"] != "system"] == [
        "user",
        "assistant",
        "tool",
        "assistant",
        "tool",
    ]
    assert all("a JSON list, not an object" in m["content"] for m in last if m["role"] == "tool")

    thread_id = http.get(f"/runs/{turn.run_id}").json()["thread_id"]
    stored = messages(http, thread_id)
    # every call is kept and answered, the last ones too: the thread can go on
    assert [m["role"] for m in stored] == ["user", *["assistant", "tool"] * 3]
    assert all(m["run_id"] == turn.run_id for m in stored[1:])
    ids = [m["tool_calls"][0]["id"] for m in stored if m["role"] == "assistant"]
    assert ids[0] == "call_x" and len(set(ids)) == 3  # repeated ids were replaced
    assert [m["tool_call_id"] for m in stored if m["role"] == "tool"] == ids


def test_the_model_reads_the_tool_error_and_answers_in_the_same_turn(
    http: httpx.Client, upstream: Any
) -> None:
    word = marker()
    bot = create_assistant(http, "fake/badargs", tools=[WEATHER])
    turn = stream_process(http, assistant_id=bot["id"], content=f"weather {word}")
    assert turn.final_status == "completed", turn.types
    assert "tool_calls" not in turn.types  # nothing was the client's to run

    thread_id = http.get(f"/runs/{turn.run_id}").json()["thread_id"]
    _, call, error, answer = messages(http, thread_id)
    (bad,) = call["tool_calls"]
    assert error["tool_call_id"] == bad["id"] and BAD_ARGUMENTS in error["content"]
    # the second model call got the error as the tool's result, and answered
    assert answer["content"] == tool_results_text([("get_weather", error["content"])])
    assert turn.text == answer["content"]
    assert {e.data["message_id"] for e in turn.of_type("content.delta")} == {answer["id"]}
    _, second = upstream_requests(upstream, word)
    assert [m["role"] for m in second["messages"]][-2:] == ["assistant", "tool"]
    # usage covers both model calls
    (usage,) = turn.of_type("usage")
    assert usage.data["input_tokens"] > 0
    run = http.get(f"/runs/{turn.run_id}").json()
    assert run["usage"]["input_tokens"] == usage.data["input_tokens"]


def test_a_turn_answered_as_json_counts_the_usage_of_every_model_call(
    http: httpx.Client, upstream: Any
) -> None:
    word = marker()
    bot = create_assistant(http, "fake/badargs", tools=[WEATHER])
    response = http.post(
        "/process",
        json={"assistant_id": bot["id"], "content": f"weather {word}", "stream": False},
    )
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["status"] == "completed"
    assert len(upstream_requests(upstream, word)) == 2  # the bad call, then the answer
    run = http.get(f"/runs/{result['run_id']}").json()
    # the whole turn's tokens, as stored on the run: both model calls, not the last one
    assert result["usage"] == {k: run["usage"][k] for k in result["usage"]}
    first, second = (len(r["messages"]) for r in upstream_requests(upstream, word))
    assert first < second and result["usage"]["input_tokens"] > 0


def test_tool_call_ids_and_names_too_long_to_store(http: httpx.Client, tmp_path: Path) -> None:
    long_id, long_name = "call_" + "x" * 300, "get_weather" * 20
    model = replayed_tool_calls(
        tmp_path / "long.sse",
        (long_id, "get_weather", '{"city": "Oslo"}'),
        ("call_named", long_name, '{"city": "Rome"}'),
    )
    bot = create_assistant(http, model, tools=[WEATHER])
    turn = stream_process(http, assistant_id=bot["id"], content="weather")
    assert turn.final_status == "action_required", turn.types
    (item,) = turn.manifest  # the long id got a fresh one; the long name is not a tool
    assert item["tool_call_id"] != long_id and len(item["tool_call_id"]) <= 128
    assert (item["name"], item["arguments"]) == ("get_weather", {"city": "Oslo"})
    thread_id = http.get(f"/runs/{turn.run_id}").json()["thread_id"]
    *_, error = messages(http, thread_id)
    assert error["role"] == "tool" and error["tool_call_id"] == "call_named"
    assert "longer than 128 characters" in error["content"]
    submit_outputs(http, turn.run_id, {item["tool_call_id"]: "sunny"})
