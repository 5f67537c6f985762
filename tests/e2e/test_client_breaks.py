"""What real OpenAI clients send that Parley must take: ``stream`` on the Responses
WebSocket (the Agents SDK), ``client_metadata`` and the ``generate: false`` warm-up (the
Codex CLI); and error messages free of pydantic's ``Value error, `` prefix on every face."""

from __future__ import annotations

from typing import Any

import httpx

from parley.testing.fake_upstream import expected_text, tool_results_text
from tests.e2e.helpers import marker
from tests.e2e.responses_helpers import (
    WEATHER_TOOL,
    calls,
    openai_error,
    output_text,
    weather_result,
    websocket,
)
from tests.e2e.test_responses_websocket import check_error, create_message

#: Codex's tags of a request; one of its values runs some 750 characters.
CLIENT_METADATA = {"x-codex-turn-metadata": "t" * 750, "session": "abc"}


def test_the_socket_takes_stream_and_stream_options(server: Any, user_key: str) -> None:
    with websocket(server, user_key) as socket:
        response = socket.create(
            model="fake/text:2",
            input="hi",
            stream=True,
            stream_options={"include_obfuscation": False},
            background=False,
        )
        assert response["status"] == "completed" and output_text(response) == expected_text(2)
        message = create_message(model="fake/text:2", input="x", background=True)
        check_error(socket.error(message), 400, "background", "invalid_value")


def test_client_metadata_is_taken_and_not_echoed(
    server: Any, user_key: str, http: httpx.Client
) -> None:
    body = {"model": "fake/text:2", "input": "hi", "client_metadata": CLIENT_METADATA}
    answer = http.post("/responses", json=body)
    assert answer.status_code == 200, answer.text
    assert "client_metadata" not in answer.json()
    with websocket(server, user_key) as socket:
        response = socket.create(**body)
        assert response["status"] == "completed" and "client_metadata" not in response
    for bad in (
        {f"k{i}": "v" for i in range(65)},
        {"k" * 65: "v"},
        {"k": "v" * 4097},
        {"k": 5},
    ):
        answer = http.post("/responses", json={**body, "client_metadata": bad})
        error = openai_error(answer, 400, "client_metadata", "invalid_value")
        assert "client_metadata" in error["message"], error


def test_a_warm_up_calls_no_model_and_is_continued(
    server: Any, user_key: str, upstream: Any
) -> None:
    word = marker()

    def upstream_calls() -> int:
        return sum(word in str(body.get("messages")) for body in upstream.requests)

    with websocket(server, user_key) as socket:
        events = socket.turn(
            create_message(
                model="fake/auto",
                input=f"weather? {word}",
                tools=[WEATHER_TOOL],
                generate=False,
                client_metadata=CLIENT_METADATA,
            )
        )
        assert [e["type"] for e in events] == [
            "response.created",
            "response.in_progress",
            "response.completed",
        ]
        warm = events[-1]["response"]
        assert warm["status"] == "completed" and warm["output"] == [], warm
        assert upstream_calls() == 0

        first = socket.create(
            model="fake/auto", input=[], tools=[WEATHER_TOOL], previous_response_id=warm["id"]
        )
        assert first["previous_response_id"] == warm["id"]
        (call,) = calls(first)
        second = socket.create(
            **weather_result(call["call_id"], "windy", previous_response_id=first["id"])
        )
        assert output_text(second) == tool_results_text([("get_weather", "windy")])
    assert upstream_calls() == 2


def test_no_error_message_says_value_error(server: Any, user_key: str, http: httpx.Client) -> None:
    def message(answer: httpx.Response) -> str:
        assert answer.status_code in (400, 422), answer.text
        return str(answer.json()["error"]["message"])

    too_many = {f"k{i}": "v" for i in range(17)}
    texts = [
        message(http.post("/process", json={"run_id": "run_x", "content": "both"})),
        message(http.post("/responses", json={"model": "fake/echo", "metadata": too_many})),
        message(http.post("/chat/completions", json={"model": "fake/echo", "stop": ["a"] * 5})),
        message(
            http.post(
                "/threads/runs",
                json={"assistant_id": "asst_x", "truncation_strategy": {"type": "last_messages"}},
            )
        ),
    ]
    with websocket(server, user_key) as socket:
        error = socket.error(create_message(model="fake/echo", input="x", metadata=too_many))
        texts.append(error["error"]["message"])
    for text in texts:
        assert "Value error" not in text and text, texts


def test_a_warm_up_after_an_unknown_response_is_refused(server: Any, user_key: str) -> None:
    """A warm-up starts no turn, yet it is checked as any request: a previous response
    that is not the caller's is a 400 naming the field, as it would be with a turn."""
    with websocket(server, user_key) as socket:
        message = create_message(
            model="fake/text:1", input="hi", generate=False, previous_response_id="resp_nope"
        )
        check_error(
            socket.error(message), 400, "previous_response_id", "previous_response_not_found"
        )
        # The socket goes on: the same request with a turn answers alike.
        message = create_message(model="fake/text:1", input="hi", previous_response_id="resp_nope")
        check_error(
            socket.error(message), 400, "previous_response_id", "previous_response_not_found"
        )
