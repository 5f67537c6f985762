"""Flow A over HTTP, as the seed draws it: create message, create run, stream the turn with
``completions``; the run becomes ``action_required``; the client reads the run and its
pending actions, submits the output; a second ``completions`` streams the final answer."""

from __future__ import annotations

import json

import httpx
import pytest

from parley.testing.fake_upstream import expected_reasoning, expected_text, tool_results_text
from tests.e2e.helpers import (
    WEATHER,
    actions,
    add_message,
    create_assistant,
    create_run,
    create_thread,
    flat,
    get_run,
    messages,
    stream_completion,
    submit_outputs,
)

OUTPUT = "Sunny, 21 °C, light wind from the west"

CASES = {
    "demo": (
        "demo/x",
        "What is the weather like? get_weather Paris",
        {"city": "Paris"},
        f'Demo model: the tool get_weather returned "{OUTPUT}".',
    ),
    "fake": (
        "fake/tools:1",
        "What is the weather like in Paris?",
        {"city": "city 0"},
        tool_results_text([("get_weather", OUTPUT)]),
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_flow_a_tool_round_trip(http: httpx.Client, case: str) -> None:
    model, said, arguments, answer = CASES[case]
    bot = create_assistant(http, model, tools=[WEATHER])
    thread = create_thread(http)

    # 2-5: create_message, create_run (queued)
    user_message = add_message(http, thread["id"], said)
    assert user_message["role"] == "user" and user_message["content"] == said
    assert user_message["thread_id"] == thread["id"]
    run = create_run(http, thread["id"], bot["id"])
    assert run["thread_id"] == thread["id"] and run["assistant_id"] == bot["id"]
    assert run["model"] == model and run["required_action"] is None

    # 7-8: the first stream ends with the manifest and done(action_required)
    first = stream_completion(
        http,
        run["id"],
        thread_id=thread["id"],
        assistant_id=bot["id"],
        message_id=user_message["id"],
        stream=True,
    )
    assert first.run_id == run["id"]
    assert first.types[-4:] == ["tool_calls", "usage", "run.status", "done"], first.types
    assert first.final_status == "action_required"
    assert first.events[0].id == 1
    (item,) = first.manifest
    assert item["name"] == "get_weather" and item["arguments"] == arguments
    assert item["action_id"].startswith("act_") and item["tool_call_id"]

    # 10, 13: the run shows action_required with the same actions
    seen = get_run(http, run["id"])
    assert seen["status"] == "requires_action"
    assert seen["required_action"]["actions"] == [item]
    [call] = seen["required_action"]["submit_tool_outputs"]["tool_calls"]
    assert (call["id"], call["function"]["name"]) == (item["tool_call_id"], item["name"])
    assert json.loads(call["function"]["arguments"]) == item["arguments"]
    assert seen["expires_at"] is not None

    # 14: GET /actions?run_id=&status=pending
    (pending,) = actions(http, run["id"], status="pending")
    assert pending["id"] == item["action_id"] and pending["tool_call_id"] == item["tool_call_id"]
    assert pending["run_id"] == run["id"] and pending["name"] == "get_weather"
    assert pending["arguments"] == arguments
    assert pending["status"] == "pending" and pending["output"] is None

    # 16-17: submit the output; the run goes back to queued
    after_submit = submit_outputs(http, run["id"], {item["tool_call_id"]: OUTPUT})
    assert after_submit["status"] == "queued" and after_submit["required_action"] is None
    assert after_submit["expires_at"] is None
    assert actions(http, run["id"], status="pending") == []
    (done_action,) = actions(http, run["id"])
    assert done_action["status"] == "completed" and done_action["output"] == OUTPUT

    # 21: the second stream gives the final answer that quotes the output
    second = stream_completion(http, run["id"], thread_id=thread["id"], stream=True)
    assert second.final_status == "completed"
    assert second.text == answer
    assert second.of_type("tool_calls") == []
    assert second.events[0].id == first.events[-1].id + 1  # one sequence across turns

    final = get_run(http, run["id"])
    assert final["status"] == "completed" and final["last_error"] is None
    assert final["completed_at"] is not None and final["required_action"] is None
    assert final["usage"]["output_tokens"] > 0

    # the thread: user, assistant(tool_calls), tool, assistant, in seq order
    stored = messages(http, thread["id"])
    assert [m["role"] for m in stored] == ["user", "assistant", "tool", "assistant"]
    seqs = [m["seq"] for m in stored]
    assert seqs == sorted(seqs) and len(set(seqs)) == 4
    user, call, result, reply = stored
    assert user["id"] == user_message["id"]
    assert call["tool_calls"] == [
        {"id": item["tool_call_id"], "name": "get_weather", "arguments": arguments}
    ]
    assert call["run_id"] == run["id"]
    assert result["tool_call_id"] == item["tool_call_id"] and result["content"] == OUTPUT
    assert reply["content"] == answer and reply["tool_calls"] == [] and reply["run_id"] == run["id"]
    assert {e.data["message_id"] for e in second.of_type("content.delta")} == {reply["id"]}
    assert flat(http.get(f"/messages/{reply['id']}").json()) == reply


def test_flow_a_plain_answer_without_tools(http: httpx.Client) -> None:
    bot = create_assistant(http, "fake/text:5")
    thread = create_thread(http)
    add_message(http, thread["id"], "hello")
    run = create_run(http, thread["id"], bot["id"])
    turn = stream_completion(http, run["id"])
    assert turn.types[0] == "run.status"
    assert turn.types[-3:] == ["usage", "run.status", "done"]
    assert turn.final_status == "completed"
    assert turn.text == expected_text(5)
    assert [m["role"] for m in messages(http, thread["id"])] == ["user", "assistant"]
    assert get_run(http, run["id"])["status"] == "completed"


def test_reasoning_is_streamed_and_stored(http: httpx.Client) -> None:
    bot = create_assistant(http, "fake/reasoning:4")
    thread = create_thread(http)
    add_message(http, thread["id"], "think first")
    run = create_run(http, thread["id"], bot["id"])
    turn = stream_completion(http, run["id"])
    assert turn.reasoning == expected_reasoning(4)
    assert turn.text == expected_text(4)
    reply = messages(http, thread["id"])[-1]
    assert reply["reasoning"] == expected_reasoning(4) and reply["content"] == expected_text(4)
