"""One vocabulary for a client's answers to the calls a run waits on, on every face: an
answer to a call no one waits on is 400 ``tool_call_not_found``; a second answer to a call
(another output after the first, or the call listed twice in one request) is 400
``duplicate_tool_output``. The doors are the native ``submit_tool_outputs``, the Assistants
one, and a ``function_call_output`` item on ``/v1/responses``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import httpx
import pytest

from tests.e2e.helpers import WEATHER, assert_error, create_assistant, stream_process, wait_run
from tests.e2e.responses_helpers import WEATHER_TOOL, call_output, calls


@dataclass(frozen=True)
class Waiting:
    """A run that waits for the output of ``call_id``, and how to answer it on one face:
    ``answer(pairs)`` posts ``(call_id, output)`` pairs in one request."""

    call_id: str
    answer: Callable[[list[tuple[str, str]]], httpx.Response]


def native(http: httpx.Client) -> Waiting:
    bot = create_assistant(http, "fake/auto", tools=[WEATHER])
    turn = stream_process(http, assistant_id=bot["id"], content="weather?")
    (item,) = turn.manifest

    def answer(pairs: list[tuple[str, str]]) -> httpx.Response:
        outputs = [{"tool_call_id": c, "output": o} for c, o in pairs]
        return http.post(f"/runs/{turn.run_id}/submit_tool_outputs", json={"tool_outputs": outputs})

    return Waiting(item["tool_call_id"], answer)


def assistants(http: httpx.Client) -> Waiting:
    bot = create_assistant(http, "fake/auto", tools=[WEATHER])
    body = {"assistant_id": bot["id"], "thread": {"messages": [{"role": "user", "content": "?"}]}}
    created = http.post("/threads/runs", json=body)
    assert created.status_code == 200, created.text
    run = wait_run(http, created.json()["id"], {"requires_action"})
    (call,) = run["required_action"]["submit_tool_outputs"]["tool_calls"]
    path = f"/threads/{run['thread_id']}/runs/{run['id']}/submit_tool_outputs"

    def answer(pairs: list[tuple[str, str]]) -> httpx.Response:
        outputs = [{"tool_call_id": c, "output": o} for c, o in pairs]
        return http.post(path, json={"tool_outputs": outputs})

    return Waiting(call["id"], answer)


def responses(http: httpx.Client) -> Waiting:
    asked = http.post(
        "/responses", json={"model": "fake/auto", "input": "weather?", "tools": [WEATHER_TOOL]}
    )
    assert asked.status_code == 200, asked.text
    (call,) = calls(asked.json())

    def answer(pairs: list[tuple[str, str]]) -> httpx.Response:
        body = {
            "model": "fake/auto",
            "tools": [WEATHER_TOOL],
            "previous_response_id": asked.json()["id"],
            "input": [call_output(c, o) for c, o in pairs],
        }
        return http.post("/responses", json=body)

    return Waiting(call["call_id"], answer)


FACES = pytest.mark.parametrize("face", [native, assistants, responses])


@FACES
def test_an_answer_to_no_waiting_call_is_tool_call_not_found(
    http: httpx.Client, face: Callable[[httpx.Client], Waiting]
) -> None:
    """Beside the waiting call's output (alone, on ``/v1/responses``, it would leave that
    call unanswered first: ``tool_output_missing``)."""
    waiting = face(http)
    both = [(waiting.call_id, "sunny"), ("call_nowhere", "x")]
    assert_error(waiting.answer(both), 400, "tool_call_not_found")


@FACES
def test_a_second_answer_to_a_call_is_duplicate_tool_output(
    http: httpx.Client, face: Callable[[httpx.Client], Waiting]
) -> None:
    waiting = face(http)
    twice = [(waiting.call_id, "sunny"), (waiting.call_id, "sunny")]
    assert_error(waiting.answer(twice), 400, "duplicate_tool_output")
    first = waiting.answer([(waiting.call_id, "sunny")])
    assert first.status_code == 200, first.text
    assert_error(waiting.answer([(waiting.call_id, "rain")]), 400, "duplicate_tool_output")
