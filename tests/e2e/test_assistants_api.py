"""The Assistants v2 face over HTTP, on the suite's server and its fake upstream: what a
run sends the model (its overrides over the assistant), the ``thread.*`` stream event by
event, bad requests named, runs and threads shared with the native API and the Responses
face, and a streamed create retried with its ``Idempotency-Key``."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from parley.testing.fake_upstream import (
    expected_text,
    text_chunks,
    tool_arguments,
    tool_results_text,
)
from tests.e2e.helpers import WEATHER, assert_error, upstream_requests, wait_until

CHAT_WEATHER = WEATHER


def assistant(http: httpx.Client, model: str, **fields: Any) -> dict[str, Any]:
    answer = http.post("/assistants", json={"model": model, **fields})
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def thread(http: httpx.Client, *texts: str, **fields: Any) -> dict[str, Any]:
    body = {"messages": [{"role": "user", "content": t} for t in texts], **fields}
    answer = http.post("/threads", json=body)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def events_of(answer: httpx.Response) -> list[tuple[str, Any]]:
    """The ``(event, data)`` pairs of an Assistants stream; it must end with ``done``."""
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/event-stream")
    pairs = []
    for block in answer.text.split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in lines:
            data = lines["data"]
            pairs.append((lines["event"], data if data == "[DONE]" else json.loads(data)))
    assert pairs[-1] == ("done", "[DONE]"), pairs[-3:]
    return pairs


def message_events(deltas: int) -> list[str]:
    """The events of a message streamed in ``deltas`` deltas, with its step around it."""
    return [
        "thread.run.step.created",
        "thread.run.step.in_progress",
        "thread.message.created",
        "thread.message.in_progress",
        *["thread.message.delta"] * deltas,
        "thread.message.completed",
        "thread.run.step.completed",
    ]


def finished(http: httpx.Client, thread_id: str, run_id: str) -> dict[str, Any]:
    def ended() -> dict[str, Any] | None:
        run = http.get(f"/threads/{thread_id}/runs/{run_id}").json()
        return run if run["status"] not in ("queued", "in_progress") else None

    return dict(wait_until(ended, what=f"run {run_id} to end"))


def test_a_run_sends_its_overrides_over_the_assistant(http: httpx.Client, upstream: Any) -> None:
    bot = assistant(
        http,
        "fake/text:3",
        instructions="Be brief.",
        temperature=0.5,
        tools=[CHAT_WEATHER],
        response_format={"type": "json_object"},
    )
    t = thread(http, "overrides one", "overrides two", "overrides three")
    answer = http.post(
        f"/threads/{t['id']}/runs",
        json={
            "assistant_id": bot["id"],
            "additional_instructions": "Answer in French.",
            "additional_messages": [{"role": "user", "content": "overrides four"}],
            "top_p": 0.5,
            "max_completion_tokens": 300,
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
            "parallel_tool_calls": False,
            "truncation_strategy": {"type": "last_messages", "last_messages": 2},
        },
    )
    assert answer.status_code == 200, answer.text
    run = finished(http, t["id"], answer.json()["id"])
    assert run["truncation_strategy"] == {"type": "last_messages", "last_messages": 2}
    assert run["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert run["response_format"] == {"type": "json_object"} and run["top_p"] == 0.5
    assert run["parallel_tool_calls"] is False and run["max_completion_tokens"] == 300
    [sent] = upstream_requests(upstream, "overrides four")
    assert sent["messages"][0] == {"role": "system", "content": "Be brief.\n\nAnswer in French."}
    assert [m["content"] for m in sent["messages"][1:]] == ["overrides three", "overrides four"]
    assert (sent["temperature"], sent["top_p"], sent["max_tokens"]) == (0.5, 0.5, 300)
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert sent["parallel_tool_calls"] is False
    assert sent["response_format"] == {"type": "json_object"}


def test_the_stream_of_a_text_run(http: httpx.Client) -> None:
    bot = assistant(http, "fake/text:4")
    t = thread(http, "Hello")
    pairs = events_of(
        http.post(f"/threads/{t['id']}/runs", json={"assistant_id": bot["id"], "stream": True})
    )
    names = [name for name, _ in pairs]
    assert names == [
        "thread.run.created",
        "thread.run.queued",
        "thread.run.in_progress",
        *message_events(4),
        "thread.run.completed",
        "done",
    ]
    data = dict(pairs)
    run_id = data["thread.run.created"]["id"]
    assert data["thread.run.created"]["status"] == "queued"
    assert data["thread.run.in_progress"]["status"] == "in_progress"
    created, completed = data["thread.message.created"], data["thread.message.completed"]
    assert created["content"] == [] and created["status"] == "in_progress"
    assert created["id"] == completed["id"] and completed["run_id"] == run_id
    text = "".join(
        d["delta"]["content"][0]["text"]["value"]
        for name, d in pairs
        if name == "thread.message.delta"
    )
    assert text == expected_text(4) == completed["content"][0]["text"]["value"]
    step = data["thread.run.step.completed"]
    assert step["step_details"]["message_creation"]["message_id"] == created["id"]
    assert step["status"] == "completed" and step["id"] == data["thread.run.step.created"]["id"]
    final = data["thread.run.completed"]
    assert final["status"] == "completed" and final["usage"]["completion_tokens"] == 4
    listed = http.get(f"/threads/{t['id']}/runs/{run_id}/steps").json()["data"]
    assert [s["id"] for s in listed] == [step["id"]]


def test_the_stream_of_a_tool_call_and_its_outputs(http: httpx.Client) -> None:
    bot = assistant(http, "fake/auto", tools=[CHAT_WEATHER])
    t = thread(http, "Paris?")
    pairs = events_of(
        http.post(f"/threads/{t['id']}/runs", json={"assistant_id": bot["id"], "stream": True})
    )
    # As OpenAI streams a call: named first (its arguments still empty), then the
    # arguments in pieces, each delta with the call's index and type only.
    step_deltas = [d for name, d in pairs if name == "thread.run.step.delta"]
    delta = step_deltas[0]
    assert {d["id"] for d in step_deltas} == {delta["id"]} and "id" not in delta["delta"]
    [call, *more] = [c for d in step_deltas for c in d["delta"]["step_details"]["tool_calls"]]
    assert call == {
        "index": 0,
        "id": call["id"],
        "type": "function",
        "function": {"name": "get_weather", "arguments": "", "output": None},
    }
    assert len(more) > 1 and all(p.keys() == {"index", "type", "function"} for p in more)
    assert {(p["index"], p["type"]) for p in more} == {(0, "function")}
    arguments = "".join(p["function"]["arguments"] for p in more)
    assert json.loads(arguments) == tool_arguments(CHAT_WEATHER, 0)
    name, run = pairs[-2]
    assert name == "thread.run.requires_action" and run["status"] == "requires_action"
    [required] = run["required_action"]["submit_tool_outputs"]["tool_calls"]
    assert required["id"] == call["id"]
    [action] = run["required_action"]["actions"]  # Parley's: flow B takes its action_id
    assert action["tool_call_id"] == call["id"]
    native = http.get(f"/runs/{run['id']}").json()
    assert (
        native["status"] == "requires_action"
        and native["required_action"] == run["required_action"]
    )
    resumed = events_of(
        http.post(
            f"/threads/{t['id']}/runs/{run['id']}/submit_tool_outputs",
            json={"tool_outputs": [{"tool_call_id": call["id"], "output": "warm"}], "stream": True},
        )
    )
    names = [n for n, _ in resumed]
    assert names[:3] == ["thread.run.step.completed", "thread.run.queued", "thread.run.in_progress"]
    step = resumed[0][1]
    assert step["id"] == delta["id"] and step["status"] == "completed"
    assert step["step_details"]["tool_calls"][0]["function"]["output"] == "warm"
    assert names[-2] == "thread.run.completed"
    completed = dict(resumed)["thread.message.completed"]
    assert completed["content"][0]["text"]["value"] == tool_results_text([("get_weather", "warm")])


def steps_one_at_a_time(pairs: list[tuple[str, Any]]) -> list[dict[str, Any]]:
    """The steps a stream creates, in order, checked as OpenAI's SDKs take them (Node's
    ``AssistantStream`` refuses any other order): a step is created once and ends before
    the next one is created, a message likewise, and each delta is of the open one."""
    step = message = None
    created: list[dict[str, Any]] = []
    for name, data in pairs:
        if name == "thread.run.step.created":
            assert step is None, f"{data['id']} created while {step} is open"
            assert data["id"] not in [s["id"] for s in created]
            step = data["id"]
            created.append(data)
        elif name == "thread.run.step.delta":
            assert data["id"] == step, (data["id"], step)
        elif name.startswith("thread.run.step.") and name != "thread.run.step.in_progress":
            if data["id"] == step:  # (after tool outputs: a step of an earlier stream ends)
                step = None
        elif name == "thread.message.created":
            assert message is None, f"{data['id']} created while {message} is open"
            message = data["id"]
        elif name == "thread.message.delta":
            assert data["id"] == message, (data["id"], message)
        elif name in ("thread.message.completed", "thread.message.incomplete"):
            assert data["id"] == message, (data["id"], message)
            message = None
    assert step is None or pairs[-2][0] == "thread.run.requires_action", step
    assert message is None, message
    return created


def test_text_before_a_function_call_ends_before_the_calls_step(http: httpx.Client) -> None:
    bot = assistant(http, "fake/preface:3", tools=[CHAT_WEATHER])
    t = thread(http, "Paris?")
    pairs = events_of(
        http.post(f"/threads/{t['id']}/runs", json={"assistant_id": bot["id"], "stream": True})
    )
    steps = steps_one_at_a_time(pairs)
    assert [s["type"] for s in steps] == ["message_creation", "tool_calls"]
    names = [name for name, _ in pairs]
    start = names.index("thread.run.step.created")
    assert names[start:] == [
        *message_events(3),
        "thread.run.step.created",
        "thread.run.step.in_progress",
        *["thread.run.step.delta"] * (len(names) - start - 13),
        "thread.run.requires_action",
        "done",
    ], names
    data = dict(pairs)
    assert data["thread.message.completed"]["content"][0]["text"]["value"] == expected_text(3)
    written = data["thread.run.step.completed"]
    assert written["id"] == steps[0]["id"] and written["usage"] is not None
    run = data["thread.run.requires_action"]
    listed = http.get(f"/threads/{t['id']}/runs/{run['id']}/steps?order=asc").json()["data"]
    assert [s["id"] for s in listed] == [s["id"] for s in steps]


def test_text_before_a_call_the_server_runs_and_the_answer_after_it(http: httpx.Client) -> None:
    """The model writes, calls the code interpreter, and answers after its result: the
    first message and its step end before the call's step starts, which ends before the
    answer's starts, as the run's steps list them."""
    bot = assistant(http, "fake/preface:3", tools=[{"type": "code_interpreter"}])
    t = thread(http, "Run it")
    pairs = events_of(
        http.post(f"/threads/{t['id']}/runs", json={"assistant_id": bot["id"], "stream": True})
    )
    steps = steps_one_at_a_time(pairs)
    assert [s["type"] for s in steps] == ["message_creation", "tool_calls", "message_creation"]
    assert pairs[-2][0] == "thread.run.completed", [name for name, _ in pairs]
    run_id = pairs[-2][1]["id"]
    completed = [d for name, d in pairs if name == "thread.message.completed"]
    assert [m["content"][0]["text"]["value"] for m in completed[:1]] == [expected_text(3)]
    assert completed[1]["content"][0]["text"]["value"].startswith("Fake upstream got tool results")
    assert [m["id"] for m in completed] == [
        s["step_details"]["message_creation"]["message_id"] for s in steps[::2]
    ]
    calls = [
        c
        for name, d in pairs
        if name == "thread.run.step.delta"
        for c in d["delta"]["step_details"]["tool_calls"]
    ]
    assert calls[0]["type"] == "code_interpreter" and calls[0]["code_interpreter"]["input"] == ""
    assert "".join(c["code_interpreter"].get("input", "") for c in calls) == "code 0"
    assert calls[-1]["code_interpreter"]["outputs"], calls[-1]  # what running it said
    listed = http.get(f"/threads/{t['id']}/runs/{run_id}/steps?order=asc").json()["data"]
    assert [s["id"] for s in listed] == [s["id"] for s in steps]
    [call] = listed[1]["step_details"]["tool_calls"]
    assert call["id"] == calls[0]["id"] and call["code_interpreter"]["input"] == "code 0"


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        (
            "/assistants",
            {"model": "demo/x", "tools": [{"type": "web_search"}]},
            "tools[0].type",
        ),
        (
            "/assistants",
            {"model": "demo/x", "tool_resources": {"code_interpreter": {"file_ids": "f"}}},
            "tool_resources.code_interpreter.file_ids",
        ),
        ("/assistants", {"model": "demo/x", "response_format": "yaml"}, "response_format"),
        (
            "/threads",
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image_file", "image_file": {"file_id": "f"}}],
                    }
                ]
            },
            "content[0].image_file.file_id",  # not a file's id
        ),
        (
            "/threads",
            {
                "messages": [
                    {
                        "role": "user",
                        "content": "Hi",
                        "attachments": [{"file_id": "f", "tools": [{"type": "web_search"}]}],
                    }
                ]
            },
            "attachments[0].tools[0].type",
        ),
    ],
)
def test_what_parley_cannot_do_is_refused_by_name(
    http: httpx.Client, path: str, body: dict[str, Any], param: str
) -> None:
    error = assert_error(http.post(path, json=body), 400)
    assert error["param"] == param and error["message"], error


def test_bad_runs_are_refused_and_change_nothing(http: httpx.Client) -> None:
    bot = assistant(http, "fake/text:2", tools=[CHAT_WEATHER])
    t = thread(http, "Hi")
    path = f"/threads/{t['id']}/runs"
    for body, status, param, code in (
        (
            {
                "assistant_id": bot["id"],
                "tool_choice": {"type": "function", "function": {"name": "nope"}},
            },
            400,
            "tool_choice.function.name",
            "invalid_value",
        ),
        (
            {"assistant_id": bot["id"], "truncation_strategy": {"type": "last_messages"}},
            400,
            "truncation_strategy",
            "invalid_value",
        ),
        ({"assistant_id": bot["id"], "temperature": 3}, 400, "temperature", "invalid_value"),
        (
            {"assistant_id": bot["id"], "tools": [{"type": "web_search"}]},
            400,
            "tools[0].type",
            "unsupported_tool",
        ),
        ({"assistant_id": "asst_" + "0" * 24}, 404, None, "assistant_not_found"),
        ({"assistant_id": bot["id"], "model": "nowhere/x"}, 400, "model", "unknown_model"),
    ):
        error = assert_error(http.post(path, json=body), status, code)  # OpenAI's shape
        assert error["param"] == param, (body, error)
    assert http.get(path).json()["data"] == []
    missing = http.post("/threads/thread_" + "0" * 24 + "/runs", json={"assistant_id": bot["id"]})
    assert_error(missing, 404, "thread_not_found")
    run = http.post(path, json={"assistant_id": bot["id"]}).json()
    other = thread(http)
    assert_error(http.get(f"/threads/{other['id']}/runs/{run['id']}"), 404, "run_not_found")
    finished(http, t["id"], run["id"])
    answer = http.post(
        f"/threads/{t['id']}/runs/{run['id']}/submit_tool_outputs",
        json={"tool_outputs": [{"tool_call_id": "call_x", "output": "x"}]},
    )
    assert_error(answer, 400, "tool_call_not_found")


def test_one_thread_whatever_face_reaches_it(http: httpx.Client) -> None:
    """A thread made through the Assistants API goes on as a conversation, and through
    the native API; each face sees every turn."""
    bot = assistant(http, "fake/text:2")
    t = thread(http, "From assistants")
    run = http.post(f"/threads/{t['id']}/runs", json={"assistant_id": bot["id"]}).json()
    finished(http, t["id"], run["id"])
    answer = http.post(
        "/responses",
        json={"model": "fake/text:3", "conversation": t["id"], "input": "From responses"},
    )
    assert answer.status_code == 200, answer.text
    answer = http.post(
        "/process",
        json={
            "assistant_id": bot["id"],
            "thread_id": t["id"],
            "content": "From native",
            "stream": False,
        },
    )
    assert answer.status_code == 200, answer.text
    listed = http.get(f"/threads/{t['id']}/messages", params={"order": "asc"}).json()["data"]
    texts = [(m["role"], m["content"][0]["text"]["value"]) for m in listed]
    assert texts == [
        ("user", "From assistants"),
        ("assistant", expected_text(2)),
        ("user", "From responses"),
        ("assistant", expected_text(3)),
        ("user", "From native"),
        ("assistant", expected_text(2)),
    ]
    items = http.get(f"/conversations/{t['id']}/items", params={"order": "asc"}).json()["data"]
    assert [i["role"] for i in items if i["type"] == "message"] == [r for r, _ in texts]
    runs = http.get(f"/threads/{t['id']}/runs", params={"order": "asc"}).json()["data"]
    assert len(runs) == 3 and runs[0]["id"] == run["id"]
    assert [r["assistant_id"] for r in runs] == [bot["id"], None, bot["id"]]


def test_a_run_waiting_for_outputs_has_its_required_action_on_every_path(
    http: httpx.Client,
) -> None:
    """Retrieved or listed, under its thread or among the user's runs (the native
    ``/v1/runs``, with or without ``thread_id``), a run waiting for tool outputs shows the
    calls it waits for."""
    bot = assistant(http, "fake/auto", tools=[CHAT_WEATHER])
    t = thread(http, "Oslo?")
    created = http.post(f"/threads/{t['id']}/runs", json={"assistant_id": bot["id"]}).json()
    run = finished(http, t["id"], created["id"])
    assert run["status"] == "requires_action"
    [call] = run["required_action"]["submit_tool_outputs"]["tool_calls"]
    assert call["function"]["name"] == "get_weather"
    of_thread = {"thread_id": t["id"]}
    answers = {
        "native retrieve": [http.get(f"/runs/{run['id']}").json()],
        "thread list": http.get(f"/threads/{t['id']}/runs").json()["data"],
        "native list": http.get("/runs").json()["data"],
        "native list of the thread": http.get("/runs", params=of_thread).json()["data"],
    }
    for path, listed in answers.items():
        assert [r["id"] for r in listed] == [run["id"]], path
        assert listed[0]["required_action"] == run["required_action"], path


def test_tool_messages_are_steps_unless_every_message_is_asked_for(http: httpx.Client) -> None:
    bot = assistant(http, "fake/auto", tools=[CHAT_WEATHER])
    t = thread(http, "Lisbon?")
    run = http.post(f"/threads/{t['id']}/runs", json={"assistant_id": bot["id"]}).json()
    run = finished(http, t["id"], run["id"])
    [call] = run["required_action"]["submit_tool_outputs"]["tool_calls"]
    http.post(
        f"/threads/{t['id']}/runs/{run['id']}/submit_tool_outputs",
        json={"tool_outputs": [{"tool_call_id": call["id"], "output": "mild"}]},
    )
    finished(http, t["id"], run["id"])
    path = f"/threads/{t['id']}/messages"
    plain = http.get(path, params={"order": "asc"}).json()["data"]
    assert [m["role"] for m in plain] == ["user", "assistant"]
    every = http.get(path, params={"order": "asc", "all_messages": "true"}).json()["data"]
    assert [m["role"] for m in every] == ["user", "assistant", "tool", "assistant"]
    assert every[1]["tool_calls"][0]["id"] == call["id"] and every[1]["content"] == []
    assert every[2]["tool_call_id"] == call["id"]


def test_a_streamed_create_retried_with_its_key_streams_the_same_run(
    http: httpx.Client,
) -> None:
    bot = assistant(http, "fake/text:3")
    t = thread(http, "Once")
    headers = {"Idempotency-Key": "assistants-stream-1"}
    body = {"assistant_id": bot["id"], "stream": True}
    first = events_of(http.post(f"/threads/{t['id']}/runs", json=body, headers=headers))
    again = http.post(f"/threads/{t['id']}/runs", json=body, headers=headers)
    assert again.headers.get("Idempotent-Replayed") == "true"
    second = events_of(again)
    assert [n for n, _ in second] == [n for n, _ in first]
    assert dict(second)["thread.run.created"]["id"] == dict(first)["thread.run.created"]["id"]
    assert len(http.get(f"/threads/{t['id']}/runs").json()["data"]) == 1


def test_a_run_cut_by_its_token_limit_is_incomplete(http: httpx.Client) -> None:
    bot = assistant(http, "fake/text:5")
    t = thread(http, "Long answer please")
    pairs = events_of(
        http.post(
            f"/threads/{t['id']}/runs",
            json={"assistant_id": bot["id"], "stream": True, "max_completion_tokens": 2},
        )
    )
    name, run = pairs[-2]
    assert name == "thread.run.incomplete", [n for n, _ in pairs]
    assert run["incomplete_details"] == {"reason": "max_completion_tokens"}
    message = dict(pairs)["thread.message.incomplete"]
    assert message["status"] == "incomplete"
    assert message["incomplete_details"] == {"reason": "max_tokens"}
    assert message["content"][0]["text"]["value"] == "".join(text_chunks(5)[:2])
    stored = http.get(f"/threads/{t['id']}/messages/{message['id']}").json()
    assert stored["status"] == "incomplete" and stored["content"] == message["content"]
    again = http.get(f"/threads/{t['id']}/runs/{run['id']}").json()
    assert (
        again["status"] == "incomplete" and again["incomplete_details"] == run["incomplete_details"]
    )


def test_max_prompt_tokens_sends_the_newest_messages_that_fit(
    http: httpx.Client, upstream: Any
) -> None:
    bot = assistant(http, "fake/text:2")
    words = " ".join(["budget"] * 40)  # about 70 tokens each, as Parley estimates
    t = thread(http, f"first {words}", f"second {words}", f"third {words}")
    run = http.post(
        f"/threads/{t['id']}/runs",
        json={"assistant_id": bot["id"], "max_prompt_tokens": 160},
    ).json()
    run = finished(http, t["id"], run["id"])
    assert run["max_prompt_tokens"] == 160 and run["status"] == "completed"
    [sent] = upstream_requests(upstream, "third budget")
    assert [m["content"].split()[0] for m in sent["messages"]] == ["second", "third"]
