"""A response whose server is killed mid-stream, resumed on the restarted server: the
closing events are numbered past anything the dead server may have sent, so a client
resuming with ``starting_after`` at the last number it holds always gets the terminal event,
over HTTP and for a response started over the WebSocket alike.

The server checkpoints nothing while the tests read (a checkpoint every 60 s), so the deltas
the client holds were never stored: the worst case of the dead server's unsaved tail."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from parley.testing.fake_upstream import expected_text
from tests.e2e.helpers import check_sse_response, guarded
from tests.e2e.responses_helpers import TERMINAL, read_stream, sse_events, websocket
from tests.e2e.sse import parse
from tests.harness import ParleyServer, restartable_server, tuned


@pytest.fixture(scope="module")
def crashing(upstream: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ParleyServer]:
    yield from restartable_server(
        upstream.base_url, tmp_path_factory.mktemp("resume"), tuned(checkpoint_seconds=60)
    )


def _read_until_deltas(lines: Iterator[str], count: int) -> list[dict[str, Any]]:
    """Events of a Responses SSE stream up to its ``count``-th text delta."""
    seen: list[dict[str, Any]] = []
    frame: list[str] = []
    for line in lines:
        if line:
            frame.append(line)
            continue
        seen += [e.data for e in parse("\n".join(frame) + "\n\n")]
        frame = []
        if sum(e["type"] == "response.output_text.delta" for e in seen) == count:
            return seen
    raise AssertionError(f"the stream ended early: {seen}")


def _check_resumed(
    http: httpx.Client, response_id: str, seen: list[dict[str, Any]], upstream: Any
) -> None:
    """What a client holding ``seen`` gets from the restarted server."""
    last = seen[-1]["sequence_number"]
    rest = read_stream(
        http, "GET", f"/responses/{response_id}", params={"stream": "true", "starting_after": last}
    )
    numbers = [e["sequence_number"] for e in rest]
    assert rest and rest[-1]["type"] == "response.incomplete", rest
    assert all(n > last for n in numbers) and numbers == sorted(set(numbers)), numbers
    assert sum(e["type"] in TERMINAL for e in rest) == 1
    final = rest[-1]["response"]
    assert final["status"] == "incomplete"
    assert final["incomplete_details"] == {"reason": "interrupted"}

    # The whole stream again: one number per event, increasing; what the client was sent
    # before the crash keeps its numbers, and no closing event reuses one of them.
    whole = read_stream(http, "GET", f"/responses/{response_id}", params={"stream": "true"})
    numbers = [e["sequence_number"] for e in whole]
    assert numbers == sorted(set(numbers)), numbers
    held = {e["sequence_number"]: e for e in seen}
    assert held.keys() & set(numbers), (held, numbers)  # the loop below checks something
    for event in whole:
        if event["sequence_number"] in held:
            assert event == held[event["sequence_number"]], (event, held)
    assert whole[-1] == rest[-1]
    assert upstream.active_streams == 0


def test_a_killed_stream_resumes_with_its_terminal_event(
    crashing: ParleyServer, upstream: Any
) -> None:
    key = crashing.new_user()
    with guarded(crashing.client(key)) as http:
        body = {"model": "fake/stall:3", "input": "hello", "stream": True, "background": True}
        with http.stream("POST", "/responses", json=body) as answer:
            check_sse_response(answer)
            lines = answer.iter_lines()
            seen = _read_until_deltas(lines, 3)
            crashing.kill()
            with pytest.raises(httpx.HTTPError):  # the connection dies with the process
                for _ in lines:
                    pass
        assert "".join(
            e["delta"] for e in seen if e["type"] == "response.output_text.delta"
        ) == expected_text(3)
        crashing.start()
        _check_resumed(http, seen[0]["response"]["id"], seen, upstream)


def test_a_response_made_over_the_websocket_resumes_over_http(
    crashing: ParleyServer, upstream: Any
) -> None:
    key = crashing.new_user()
    seen: list[dict[str, Any]] = []
    with websocket(crashing, key) as socket:
        socket.send({"type": "response.create", "model": "fake/stall:3", "input": "hello"})
        while sum(e["type"] == "response.output_text.delta" for e in seen) < 3:
            seen.append(socket.receive())
        crashing.kill()
    crashing.start()
    with guarded(crashing.client(key)) as http:
        _check_resumed(http, seen[0]["response"]["id"], seen, upstream)


def test_a_stream_that_ends_normally_numbers_without_gaps(crashing: ParleyServer) -> None:
    """The jump is for a dead turn's log only: a finished stream replays 0, 1, 2, …"""
    with guarded(crashing.client(crashing.new_user())) as http:
        body = {"model": "fake/text:3", "input": "hi", "stream": True}
        with http.stream("POST", "/responses", json=body) as answer:
            live = sse_events(answer.read().decode())
        again = read_stream(
            http, "GET", f"/responses/{live[0]['response']['id']}", params={"stream": "true"}
        )
    assert [e["sequence_number"] for e in live] == list(range(len(live)))
    assert [e["type"] for e in again] == [e["type"] for e in live]
    assert [e["sequence_number"] for e in again] == list(range(len(live)))
