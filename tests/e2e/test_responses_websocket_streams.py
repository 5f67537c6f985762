"""Streams on the Responses WebSocket: ``response.create`` messages with a ``stream_id`` run
side by side, one at a time per stream id, and every event of a stream's responses (its
errors too) carries its ``stream_id``; the streams a connection runs, and the messages a
stream keeps waiting, are bounded; a connection closed mid-response leaves its responses to
end as over HTTP. A message without ``stream_id`` is answered as it always was
(tests/e2e/test_responses_websocket.py)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from parley.server.faces.responses.websocket import MAX_STREAMS, MAX_WAITING
from parley.testing.fake_upstream import expected_text
from tests.e2e.helpers import marker, wait_until
from tests.e2e.responses_helpers import (
    TERMINAL,
    Socket,
    check_sequence,
    deltas,
    get,
    output_text,
    sent,
    thread_ids,
    websocket,
)
from tests.e2e.test_responses_websocket import check_error, create_message
from tests.harness import ParleyServer, replicas

#: A model that streams six chunks 60 ms apart: two at once overlap.
PACED = "fake/text:6:60"


def on(stream_id: str, **body: Any) -> dict[str, Any]:
    return {"type": "response.create", "stream_id": stream_id, **body}


def read_until(socket: Socket, ends: dict[str, int]) -> list[dict[str, Any]]:
    """Events until each stream of ``ends`` has had that many responses end (or errors)."""
    events: list[dict[str, Any]] = []
    left = dict(ends)
    while any(left.values()):
        event = socket.receive()
        events.append(event)
        if event["type"] in TERMINAL or event["type"] == "error":
            stream_id = event.get("stream_id")
            assert left.get(stream_id, 0) > 0, (event, left)
            left[stream_id] -= 1
    return events


def by_response(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """A stream's events, response by response (each starts at ``response.created``)."""
    responses: dict[str, list[dict[str, Any]]] = {}
    current: list[dict[str, Any]] = []
    for event in events:
        if event["type"] == "response.created":
            current = responses.setdefault(event["response"]["id"], [])
        current.append(event)
    return responses


def per_stream(events: list[dict[str, Any]]) -> dict[str | None, list[dict[str, Any]]]:
    streams: dict[str | None, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        streams[event.get("stream_id")].append(event)
    return streams


def test_two_streams_interleave_each_event_tagged(server: Any, user_key: str) -> None:
    with websocket(server, user_key) as socket:
        socket.send(on("left", model=PACED, input="one"))
        socket.send(on("right.2", model=PACED, input="two"))
        events = read_until(socket, {"left": 1, "right.2": 1})

    streams = per_stream(events)
    assert set(streams) == {"left", "right.2"}, [e["type"] for e in events]
    for stream_id, mine in streams.items():
        assert all(e["stream_id"] == stream_id for e in mine)
        check_sequence(mine)  # numbered per response, from 0, without gaps
        assert mine[-1]["type"] == "response.completed", mine[-1]
        assert deltas(mine) == expected_text(6)
        assert len({e["response"]["id"] for e in mine if "response" in e}) == 1
    # Side by side: each stream had events between the other's first and last.
    order = [e["stream_id"] for e in events]
    first_right = order.index("right.2")
    last_left = len(order) - 1 - order[::-1].index("left")
    assert first_right < last_left, order
    assert "left" in order[first_right:] and "right.2" in order[:last_left], order


def test_one_stream_answers_in_order(server: Any, user_key: str, http: httpx.Client) -> None:
    with websocket(server, user_key) as socket:
        socket.send(on("a", model=PACED, input="first"))
        socket.send(on("a", model="fake/text:2", input="second"))
        socket.send(on("b", model="fake/text:2", input="aside"))
        events = read_until(socket, {"a": 2, "b": 1})

    streams = per_stream(events)
    kinds = [e["type"] for e in streams["a"]]
    assert kinds.count("response.created") == 2, kinds
    # The second starts only once the first has ended.
    assert kinds.index("response.completed") < kinds.index("response.created", 1), kinds
    first, second = by_response(streams["a"]).values()
    check_sequence(first)
    check_sequence(second)
    assert deltas(first) == expected_text(6) and deltas(second) == expected_text(2)
    assert get(http, second[-1]["response"]["id"])["status"] == "completed"
    # The other stream did not wait for either.
    order = [(e.get("stream_id"), e["type"]) for e in events]
    assert order.index(("b", "response.completed")) < order.index(("a", "response.completed"))


def test_an_error_names_its_stream_and_the_others_go_on(server: Any, user_key: str) -> None:
    with websocket(server, user_key) as socket:
        socket.send(on("slow", model=PACED, input="keep going"))
        socket.send(on("bad", model="fake/text:2", input="x", temperature="hot"))
        socket.send(on("bad", model="fake/text:2", input="x", surprise=1))
        socket.send(on("bad", model="fake/text:2", input="after the errors"))
        events = read_until(socket, {"slow": 1, "bad": 3})

    streams = per_stream(events)
    hot, surprise = streams["bad"][:2]
    for error in (hot, surprise):
        assert set(error) == {"type", "status", "error", "stream_id"}, error
        assert error["type"] == "error" and error["stream_id"] == "bad", error
    check_error(hot, 400, "temperature", "invalid_value")
    check_error(surprise, 400, "surprise", "unknown_parameter")
    after = streams["bad"][2:]
    check_sequence(after)
    assert deltas(after) == expected_text(2)
    check_sequence(streams["slow"])
    assert streams["slow"][-1]["type"] == "response.completed"
    # The errors came while the slow stream was still streaming.
    order = [(e.get("stream_id"), e["type"]) for e in events]
    assert order.index(("bad", "error")) < order.index(("slow", "response.completed")), order


@pytest.mark.parametrize(
    "stream_id", ["", "a b", "x" * 257, "ümlaut", 5, None], ids=lambda v: repr(v)[:12]
)
def test_a_malformed_stream_id_is_refused(server: Any, user_key: str, stream_id: Any) -> None:
    with websocket(server, user_key) as socket:
        error = socket.error(on(stream_id, model="fake/text:2", input="x"))
        check_error(error, 400, "stream_id", "invalid_value")
        assert socket.create(model="fake/text:2", input="still here")["status"] == "completed"


def test_the_streams_of_a_connection_are_bounded(server: Any, user_key: str) -> None:
    names = [f"s{i}" for i in range(MAX_STREAMS)]
    with websocket(server, user_key) as socket:
        for name in names:
            socket.send(on(name, model="fake/text:4:150", input=name))
        socket.send(on("one_too_many", model="fake/text:2", input="x"))
        socket.send(on("s0", model="fake/text:2", input="waits its turn"))
        events = read_until(socket, {**dict.fromkeys(names, 1), "s0": 2, "one_too_many": 1})

        streams = per_stream(events)
        (error,) = streams["one_too_many"]
        assert error["stream_id"] == "one_too_many", error
        body = check_error(error, 400, "stream_id", "websocket_stream_limit_reached")
        assert str(MAX_STREAMS) in body["message"], body
        for name in names:
            assert streams[name][-1]["type"] == "response.completed", streams[name][-1]
        assert output_text(streams["s0"][-1]["response"]) == expected_text(2)
        # Once the streams have ended, a new one is taken.
        socket.send(on("one_too_many", model="fake/text:2", input="now"))
        events = read_until(socket, {"one_too_many": 1})
        assert events[-1]["type"] == "response.completed", events[-1]


def test_the_messages_a_stream_keeps_waiting_are_bounded(server: Any, user_key: str) -> None:
    with websocket(server, user_key) as socket:
        socket.send(on("q", model="fake/text:4:200", input="first"))
        for i in range(MAX_WAITING + 1):
            socket.send(on("q", model="fake/text:1", input=f"next {i}"))
        events = read_until(socket, {"q": MAX_WAITING + 2})

    errors = [e for e in events if e["type"] == "error"]
    assert len(errors) == 1, errors
    (error,) = errors
    assert error["stream_id"] == "q", error
    body = check_error(error, 400, "stream_id", "websocket_stream_limit_reached")
    assert str(MAX_WAITING) in body["message"], body
    answered = [e["response"] for e in events if e["type"] == "response.completed"]
    assert len(answered) == MAX_WAITING + 1
    assert output_text(answered[0]) == expected_text(4)


def test_a_message_without_a_stream_id_is_untagged_beside_streams(
    server: Any, user_key: str
) -> None:
    with websocket(server, user_key) as socket:
        socket.send(on("tagged", model=PACED, input="beside"))
        socket.send(create_message(model="fake/text:2", input="plain"))
        events = read_until(socket, {"tagged": 1, None: 1})

    streams = per_stream(events)
    assert set(streams) == {"tagged", None}
    check_sequence(streams[None])
    assert all("stream_id" not in e for e in streams[None])
    assert deltas(streams[None]) == expected_text(2)
    check_sequence(streams["tagged"])


def test_store_false_and_warm_ups_continue_across_streams(
    server: Any, user_key: str, upstream: Any
) -> None:
    one, two, three = marker(), marker(), marker()
    with websocket(server, user_key) as socket:
        socket.send(on("a", model="fake/echo", input=f"one {one}", store=False))
        (first,) = by_response(read_until(socket, {"a": 1})).values()
        first_id = first[-1]["response"]["id"]

        socket.send(
            on(
                "b",
                model="fake/echo",
                input=f"two {two}",
                store=False,
                previous_response_id=first_id,
            )
        )
        (second,) = by_response(read_until(socket, {"b": 1})).values()
        assert second[-1]["type"] == "response.completed", second[-1]
        assert second[-1]["response"]["previous_response_id"] == first_id
        assert sent(upstream, two) == [
            ("user", f"one {one}"),
            ("assistant", f"one {one}"),
            ("user", f"two {two}"),
        ]

        socket.send(on("c", model="fake/echo", input=f"warm {three}", generate=False))
        warm = read_until(socket, {"c": 1})
        assert [e["type"] for e in warm] == [
            "response.created",
            "response.in_progress",
            "response.completed",
        ]
        assert all(e["stream_id"] == "c" for e in warm)
        socket.send(
            on("d", model="fake/echo", input=[], previous_response_id=warm[-1]["response"]["id"])
        )
        (after,) = by_response(read_until(socket, {"d": 1})).values()
        assert deltas(after) == f"warm {three}"


def test_a_continuation_waits_for_the_response_another_stream_answers(
    server: Any, user_key: str
) -> None:
    """Sent while the response it continues still streams on another stream, a
    continuation starts once that one has ended (and the connection holds it)."""
    with websocket(server, user_key) as socket:
        socket.send(on("a", model=PACED, input="first", store=False))
        created = socket.receive()
        assert created["type"] == "response.created" and created["stream_id"] == "a", created
        first_id = created["response"]["id"]
        socket.send(
            on("b", model="fake/echo", input="next", store=False, previous_response_id=first_id)
        )
        events = [created, *read_until(socket, {"a": 1, "b": 1})]

    order = [(e["stream_id"], e["type"]) for e in events]
    assert order.index(("a", "response.completed")) < order.index(("b", "response.created"))
    streams = per_stream(events)
    check_sequence(streams["a"])
    check_sequence(streams["b"])
    assert streams["b"][-1]["type"] == "response.completed", streams["b"][-1]
    assert streams["b"][-1]["response"]["previous_response_id"] == first_id
    assert deltas(streams["b"]) == "next"


def test_a_connection_closed_mid_stream_leaves_its_responses_to_end(
    server: Any, user_key: str, http: httpx.Client
) -> None:
    log_start = len(server.log())
    threads = thread_ids(http)
    with websocket(server, user_key) as socket:
        socket.send(on("x", model="fake/text:6:100", input="one"))
        socket.send(on("y", model="fake/text:6:100", input="two"))
        socket.send(on("x", model="fake/text:2", input="never started"))
        socket.send(create_message(model="fake/text:6:100", input="untagged"))
        started: dict[str | None, str] = {}
        while len(started) < 3:
            event = socket.receive()
            if event["type"] == "response.created":
                started[event.get("stream_id")] = event["response"]["id"]
    # Gone mid-response: what started ends in the engine, as over HTTP; what waited never starts.
    for response_id in started.values():
        wait_until(
            lambda response_id=response_id: get(http, response_id)["status"] == "completed",
            10,
            "the response to complete",
        )
    assert len(thread_ids(http) - threads) == 3
    server.assert_clean_log(log_start)


@pytest.fixture
def limited(upstream: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ParleyServer]:
    """A server whose keys make at most 5 requests every 30 seconds."""
    env = {
        "PARLEY_RATE_LIMIT_REQUESTS": "5",
        "PARLEY_RATE_LIMIT_WINDOW_SECONDS": "30",
        "PARLEY_REDIS_URL": "",
    }
    for servers in replicas(upstream.base_url, tmp_path_factory.mktemp("ws_streams"), 1, env):
        yield servers[0]


def test_a_rate_limited_message_names_its_stream(limited: ParleyServer) -> None:
    made = limited.cli("users", "create", "u")
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip().splitlines()[-1]
    names = [f"r{i}" for i in range(6)]
    with websocket(limited, key) as socket:  # the handshake is the key's first request
        for name in names:
            socket.send(on(name, model="fake/text:2", input=name, store=False))
        events = read_until(socket, dict.fromkeys(names, 1))

    streams = per_stream(events)
    ends = {name: streams[name][-1] for name in names}
    refused = [name for name, end in ends.items() if end["type"] == "error"]
    assert len(refused) == 2, ends
    for name in refused:
        (error,) = streams[name]
        assert error["stream_id"] == name and error["status"] == 429, error
        assert error["error"]["code"] == "rate_limit_exceeded", error
    for name in set(names) - set(refused):
        check_sequence(streams[name])
        assert deltas(streams[name]) == expected_text(2)
