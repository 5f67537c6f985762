"""The names of the reasoning events of a Responses stream, chosen per request: the Open
Responses specification's (``response.reasoning.*``) by default, OpenAI's
(``response.reasoning_text.*``) for OpenAI's own SDKs (their ``X-Stainless-*`` headers) or
when ``X-Parley-Event-Names: openai`` asks; the header wins both ways. Everything else in the
stream is the same. openai-node's stream helper over the same stream is in
``tests/js_clients/test_openai_node.py``."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from tests.e2e.responses_helpers import read_stream, stream_create, websocket

OPEN_RESPONSES = ("response.reasoning.delta", "response.reasoning.done")
OPENAI = ("response.reasoning_text.delta", "response.reasoning_text.done")
STAINLESS = {"X-Stainless-Lang": "js", "X-Stainless-Package-Version": "6.0.0"}


def reasoning_names(events: list[dict[str, Any]]) -> set[str]:
    return {e["type"] for e in events if e["type"].startswith("response.reasoning")}


def without_names(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The events with the reasoning names made one, and the clock and ids taken out."""
    kept = []
    for event in events:
        event = {**event, "type": event["type"].replace("reasoning_text", "reasoning")}
        event.pop("response", None)
        event.pop("item_id", None)
        event.pop("item", None)
        kept.append(event)
    return kept


@pytest.mark.parametrize(
    ("headers", "names"),
    [
        ({}, OPEN_RESPONSES),
        (STAINLESS, OPENAI),
        ({"X-Parley-Event-Names": "openai"}, OPENAI),
        ({**STAINLESS, "x-parley-event-names": "Open-Responses"}, OPEN_RESPONSES),
    ],
)
def test_the_reasoning_events_follow_the_request(
    http: httpx.Client, headers: dict[str, str], names: tuple[str, str]
) -> None:
    events = read_stream(
        http,
        "POST",
        "/responses",
        json={"model": "demo/parley", "input": "Hello", "stream": True},
        headers=headers,
    )
    assert reasoning_names(events) == set(names)
    plain = stream_create(http, model="demo/parley", input="Hello")
    assert without_names(events) == without_names(plain)  # nothing else differs


def test_a_resumed_stream_follows_the_request_that_resumes_it(http: httpx.Client) -> None:
    [done] = [
        e
        for e in stream_create(http, model="demo/parley", input="Hello")
        if e["type"] == "response.completed"
    ]
    path = f"/responses/{done['response']['id']}"
    again = read_stream(http, "GET", path, params={"stream": "true"}, headers=STAINLESS)
    assert reasoning_names(again) == set(OPENAI)
    plain = read_stream(http, "GET", path, params={"stream": "true"})
    assert reasoning_names(plain) == set(OPEN_RESPONSES)


def test_an_unknown_dialect_is_refused(http: httpx.Client) -> None:
    answer = http.post(
        "/responses",
        json={"model": "demo/parley", "input": "Hello", "stream": True},
        headers={"X-Parley-Event-Names": "klingon"},
    )
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert "X-Parley-Event-Names" in error["message"] and "klingon" in error["message"]


def test_openais_python_sdk_gets_its_own_typed_events(server: Any, user_key: str) -> None:
    client = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key=user_key, max_retries=0)
    with client:
        stream = client.responses.create(model="demo/parley", input="Hello", stream=True)
        kinds = [type(event).__name__ for event in stream]
        with client.responses.stream(model="demo/parley", input="Hello") as helper:
            final = helper.get_final_response()
    assert "ResponseReasoningTextDeltaEvent" in kinds
    assert "ResponseReasoningTextDoneEvent" in kinds
    [reasoning] = [item for item in final.output if item.type == "reasoning"]
    assert reasoning.content and reasoning.content[0].text


@pytest.mark.parametrize(
    ("headers", "names"),
    [({}, OPEN_RESPONSES), ({"X_Stainless_Lang": "python"}, OPENAI)],
)
def test_a_websocket_streams_in_its_handshakes_dialect(
    server: Any, user_key: str, headers: dict[str, str], names: tuple[str, str]
) -> None:
    with websocket(server, user_key, **headers) as socket:
        for _ in range(2):  # every response of the connection
            events = socket.turn({"type": "response.create", "model": "demo/parley", "input": "Hi"})
            assert events[-1]["type"] == "response.completed"
            assert reasoning_names(events) == set(names)
