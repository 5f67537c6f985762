"""A server that stops under a running turn: killed, the run becomes ``incomplete`` once its
lease runs out, with the checkpointed text kept; stopped with SIGTERM, the turn ends
``incomplete`` at once and its stream says so. A dedicated server (short lease, fast sweep)
that the tests kill and start again on the same database."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from parley.testing.fake_upstream import expected_text
from tests.e2e.helpers import (
    check_sse_response,
    create_assistant,
    get_run,
    guarded,
    joined,
    messages,
    read_events,
    stream_process,
    wait_run,
    wait_until,
)
from tests.e2e.sse import Event, stream_events
from tests.harness import ParleyServer, restartable_server


@pytest.fixture(scope="module")
def restartable(upstream: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ParleyServer]:
    yield from restartable_server(upstream.base_url, tmp_path_factory.mktemp("restart"))


def _stalled_turn(http: httpx.Client, response: httpx.Response) -> tuple[str, list[Event], Any]:
    """Read a ``fake/stall:3`` turn up to its third content delta."""
    check_sse_response(response)
    events = stream_events(response)
    seen = [next(events)]
    while sum(e.event == "content.delta" for e in seen) < 3:
        seen.append(next(events))
    return str(seen[0].data["run_id"]), seen, events


def test_a_killed_server_leaves_the_run_incomplete_with_its_text(
    restartable: ParleyServer, upstream: Any
) -> None:
    log_start = len(restartable.log())
    with guarded(restartable.client(restartable.new_user())) as http:
        bot = create_assistant(http, "fake/stall:3")
        body = {"assistant_id": bot["id"], "content": "hello"}
        with http.stream("POST", "/process", json=body) as response:
            run_id, seen, events = _stalled_turn(http, response)
            thread_id = get_run(http, run_id)["thread_id"]
            # the text is checkpointed while the model is silent
            wait_until(
                lambda: messages(http, thread_id)[-1]["content"] == expected_text(3),
                3,
                "the streamed text to be checkpointed",
            )
            restartable.kill()
            with pytest.raises(httpx.HTTPError):  # the connection dies with the process
                seen.extend(events)
        assert "done" not in [e.event for e in seen]
        wait_until(lambda: upstream.active_streams == 0, 5, "the upstream connection to close")

        restartable.start()
        run = wait_run(http, run_id, {"incomplete"}, timeout=10)
        assert (
            run["incomplete_details"] == {"reason": "interrupted"}
            and run["completed_at"] is not None
        )
        assert [(m["role"], m["content"]) for m in messages(http, thread_id)] == [
            ("user", "hello"),
            ("assistant", expected_text(3)),
        ]
        replay = read_events(http, f"/runs/{run_id}/events")
        types = [e.event for e in replay]
        assert types[-3:] == ["error", "run.status", "done"] and types.count("done") == 1, types
        assert (
            replay[-1].data["status"] == "incomplete" and replay[-3].data["code"] == "interrupted"
        )
        assert joined(replay, "content.delta") == expected_text(3)
        assert replay[: len(seen)] == seen

        good = create_assistant(http, "fake/text:2")
        nxt = stream_process(http, assistant_id=good["id"], content="again", thread_id=thread_id)
        assert nxt.final_status == "completed" and nxt.text == expected_text(2)
    restartable.assert_clean_log(log_start)


def test_sigterm_ends_running_turns_promptly(restartable: ParleyServer) -> None:
    log_start = len(restartable.log())
    key = restartable.new_user()
    with guarded(restartable.client(key, timeout=5)) as http:
        bot = create_assistant(http, "fake/stall:3")
        body = {"assistant_id": bot["id"], "content": "hello"}
        with http.stream("POST", "/process", json=body) as response:
            run_id, seen, events = _stalled_turn(http, response)
            thread_id = get_run(http, run_id)["thread_id"]
            assert restartable.proc is not None
            started = time.monotonic()
            restartable.proc.send_signal(signal.SIGTERM)
            try:
                seen.extend(events)
            except httpx.HTTPError as exc:
                seen.append(Event(None, "client-error", {"error": type(exc).__name__}))
            try:
                restartable.proc.wait(timeout=5)
                stopped_in = time.monotonic() - started
            except subprocess.TimeoutExpired:
                stopped_in = float("inf")
            restartable.stop()
    restartable.start()
    with guarded(restartable.client(key)) as http:
        run = get_run(http, run_id)
        assert run["status"] == "incomplete", run
        assert messages(http, thread_id)[-1]["content"] == expected_text(3)
    tail = [(e.event, e.data.get("status")) for e in seen[-2:]]
    assert tail == [("run.status", "incomplete"), ("done", "incomplete")], seen[-3:]
    assert stopped_in < 5, stopped_in
    restartable.assert_clean_log(log_start)
