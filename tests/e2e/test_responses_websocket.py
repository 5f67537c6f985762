"""The Responses API over a WebSocket on ``/v1/responses`` (Open Responses 2026-04-24):
authentication, error envelopes that leave the connection usable, sequential turns,
continuation with ``previous_response_id`` (``store: false`` responses only on the
connection that made them), and eviction of what a failed continuation named."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from parley.testing.fake_upstream import expected_text, tool_results_text
from tests.e2e.helpers import marker, openai_error_type, wait_until
from tests.e2e.responses_helpers import (
    WEATHER_TOOL,
    call_output,
    calls,
    check_error_fields,
    check_sequence,
    deltas,
    get,
    nothing_stored,
    openai_error,
    output_text,
    sent,
    thread_ids,
    thread_of,
    weather_result,
    websocket,
)


def create_message(**body: Any) -> dict[str, Any]:
    return {"type": "response.create", **body}


def check_error(
    error: dict[str, Any], status: int, param: str | None, code: str | None
) -> dict[str, Any]:
    """An ``error`` event: ``status``, and an error in OpenAI's shape, as over HTTP."""
    assert error["status"] == status, error
    body = error["error"]
    assert body["type"] == openai_error_type(status), error
    check_error_fields(body, param, code)
    return dict(body)


# ------------------------------------------------------------------------ authentication


@pytest.mark.parametrize(
    ("key", "code"), [(None, "missing_api_key"), ("pk_not_a_key", "invalid_api_key")]
)
def test_a_failed_authentication_is_an_error_then_a_close(
    server: Any, key: str | None, code: str
) -> None:
    with websocket(server, key) as socket:
        error = socket.receive()
        assert set(error) == {"type", "status", "error"} and error["type"] == "error", error
        check_error(error, 401, None, code)
        assert socket.closed() == 1008


def test_the_api_key_header_works_too(server: Any, user_key: str) -> None:
    with websocket(server, user_key, header="X-API-Key") as socket:
        response = socket.create(model="fake/text:2", input="hello")
    assert output_text(response) == expected_text(2)


# -------------------------------------------------------------------------------- errors


def test_errors_leave_the_connection_usable(server: Any, user_key: str, http: httpx.Client) -> None:
    with websocket(server, user_key) as socket:
        with nothing_stored(http):
            check_error(socket.error("{not json"), 400, None, "invalid_json")
            check_error(socket.error("[1, 2]"), 400, "type", "invalid_value")
            check_error(socket.error({"type": "response.cancel"}), 400, "type", "invalid_value")
            message = create_message(model="fake/text:2", input="x", background=True)
            check_error(socket.error(message), 400, "background", "invalid_value")
            message = create_message(model="fake/text:2", input=5)
            check_error(socket.error(message), 400, "input", "invalid_value")
            message = create_message(model="fake/text:2", input="x", temperature="hot")
            check_error(socket.error(message), 400, "temperature", "invalid_value")
            message = create_message(model="fake/text:2", input="x", surprise=1)
            check_error(socket.error(message), 400, "surprise", "unknown_parameter")
            message = create_message(input="x")
            check_error(socket.error(message), 400, "model", "missing_required_parameter")

        response = socket.create(model="fake/text:3", input="still here")
        assert response["status"] == "completed" and output_text(response) == expected_text(3)


def test_a_binary_frame_is_refused_and_the_connection_stays(server: Any, user_key: str) -> None:
    log_start = len(server.log())
    with websocket(server, user_key) as socket:
        message = json.dumps(create_message(model="fake/text:2", input="x")).encode()
        error = check_error(socket.error(message), 400, None, "unsupported_frame")
        assert "text" in error["message"], error
        response = socket.create(model="fake/text:2", input="after a binary frame")
        assert output_text(response) == expected_text(2)
    server.assert_clean_log(log_start)


def test_a_message_over_the_limit_is_refused(
    server: Any, user_key: str, http: httpx.Client
) -> None:
    threads = thread_ids(http)
    with websocket(server, user_key) as socket:
        huge = create_message(model="fake/text:2", input="x" * (1024 * 1024 + 16))
        check_error(socket.error(huge), 413, None, None)
        assert socket.create(model="fake/text:2", input="small")["status"] == "completed"
    assert len(thread_ids(http)) == len(threads) + 1


# ------------------------------------------------------------------------------- turns


def test_sequential_turns_on_one_connection(
    server: Any, user_key: str, http: httpx.Client, upstream: Any
) -> None:
    one, two = marker(), marker()
    with websocket(server, user_key) as socket:
        events = socket.turn(create_message(model="fake/echo", input=f"first {one}"))
        check_sequence(events)
        assert events[-1]["type"] == "response.completed", events[-1]
        assert deltas(events) == f"first {one}"
        first = events[-1]["response"]

        second = socket.create(
            model="fake/echo", input=f"second {two}", previous_response_id=first["id"]
        )
        third = socket.create(model="fake/text:2", input="unrelated")

    assert sent(upstream, two) == [
        ("user", f"first {one}"),
        ("assistant", f"first {one}"),
        ("user", f"second {two}"),
    ]
    assert second["previous_response_id"] == first["id"]
    # Stored responses outlive the connection, as over HTTP.
    for response in (first, second, third):
        kept = get(http, response["id"])
        assert kept["status"] == "completed" and kept["output"] == response["output"]
    answer = http.post(
        "/responses",
        json={"model": "fake/text:2", "input": "on", "previous_response_id": second["id"]},
    )
    assert answer.status_code == 200, answer.text


def test_a_function_tool_round_trip(server: Any, user_key: str) -> None:
    with websocket(server, user_key) as socket:
        first = socket.create(model="fake/auto", input="weather?", tools=[WEATHER_TOOL])
        (call,) = calls(first)
        second = socket.create(
            **weather_result(call["call_id"], "windy", previous_response_id=first["id"])
        )
        assert output_text(second) == tool_results_text([("get_weather", "windy")])
        again = weather_result(call["call_id"], "windy", previous_response_id=second["id"])
        check_error(socket.error(create_message(**again)), 400, "input", "duplicate_tool_output")


# ------------------------------------------------------------------------- continuation


def test_store_false_continues_only_on_its_connection(
    server: Any, user_key: str, http: httpx.Client, upstream: Any
) -> None:
    one, two, three = marker(), marker(), marker()
    threads = thread_ids(http)
    with websocket(server, user_key) as socket:
        first = socket.create(model="fake/echo", input=f"one {one}", store=False)
        second = socket.create(
            model="fake/echo", input=f"two {two}", store=False, previous_response_id=first["id"]
        )
        assert second["store"] is False and output_text(second) == f"two {two}"
        assert sent(upstream, two) == [
            ("user", f"one {one}"),
            ("assistant", f"one {one}"),
            ("user", f"two {two}"),
        ]
        # Not over HTTP, and not on another connection.
        openai_error(http.get(f"/responses/{first['id']}"), 404, "response_id", None)
        answer = http.post(
            "/responses",
            json={"model": "fake/echo", "input": "x", "previous_response_id": second["id"]},
        )
        openai_error(answer, 400, "previous_response_id", "previous_response_not_found")
        with websocket(server, user_key) as elsewhere:
            message = create_message(
                model="fake/echo", input="x", store=False, previous_response_id=second["id"]
            )
            check_error(
                elsewhere.error(message), 400, "previous_response_id", "previous_response_not_found"
            )
        # A stored response may follow a scratch one: it starts a thread of its own.
        third = socket.create(
            model="fake/echo", input=f"three {three}", previous_response_id=second["id"]
        )
        assert len(sent(upstream, three)) == 5
        assert get(http, third["id"])["status"] == "completed"

    # Once the connection is gone, so are its scratch threads; the stored branch stays.
    kept = threads | {thread_of(http, third["id"])}
    wait_until(lambda: thread_ids(http) == kept, 5, "the scratch threads to go")


def test_an_unknown_previous_response_is_an_error(server: Any, user_key: str) -> None:
    with websocket(server, user_key) as socket:
        message = create_message(
            model="fake/echo", input="x", previous_response_id="run_000000000000000000000000"
        )
        error = socket.error(message)
        check_error(error, 400, "previous_response_id", "previous_response_not_found")
        assert "run_000000000000000000000000" in error["error"]["message"]
        assert socket.create(model="fake/text:2", input="fine")["status"] == "completed"


def test_another_users_response_is_not_found(
    server: Any, user_key: str, other: httpx.Client
) -> None:
    theirs = other.post("/responses", json={"model": "fake/text:2", "input": "mine"}).json()
    with websocket(server, user_key) as socket:
        message = create_message(model="fake/echo", input="x", previous_response_id=theirs["id"])
        check_error(
            socket.error(message), 400, "previous_response_id", "previous_response_not_found"
        )


@pytest.mark.parametrize("failure", ["upstream", "request"])
def test_a_failed_continuation_evicts_the_response_it_named(
    server: Any, user_key: str, http: httpx.Client, failure: str
) -> None:
    with websocket(server, user_key) as socket:
        first = socket.create(model="fake/echo", input="keep me", store=False)
        if failure == "upstream":  # the model fails: a 5xx failure of the turn
            failed = socket.create(
                model="fake/error:500",
                input="break",
                store=False,
                previous_response_id=first["id"],
            )
            assert failed["status"] == "failed" and failed["error"]["code"], failed
        else:  # the request is refused: a 4xx failure of the turn
            message = create_message(
                model="fake/echo",
                input=[call_output("call_nowhere", "x")],
                store=False,
                previous_response_id=first["id"],
            )
            check_error(socket.error(message), 400, "input", "tool_call_not_found")

        message = create_message(
            model="fake/echo", input="again", store=False, previous_response_id=first["id"]
        )
        check_error(
            socket.error(message), 400, "previous_response_id", "previous_response_not_found"
        )
        # The connection itself goes on.
        assert socket.create(model="fake/text:2", input="fresh", store=False)["store"] is False
    wait_until(lambda: thread_ids(http) == set(), 5, "the scratch threads to go")


def test_a_stored_response_survives_a_failed_continuation(server: Any, user_key: str) -> None:
    """Eviction forgets the connection's copy; a stored response is still read from the
    store (the specification lets a server hydrate stored ones)."""
    with websocket(server, user_key) as socket:
        first = socket.create(model="fake/echo", input="stored")
        message = create_message(
            model="fake/echo",
            input=[call_output("call_nowhere", "x")],
            previous_response_id=first["id"],
        )
        check_error(socket.error(message), 400, "input", "tool_call_not_found")
        after = socket.create(model="fake/echo", input="after", previous_response_id=first["id"])
        assert output_text(after) == "after"
