"""Upstream failures: every way the model's server can fail ends the run ``failed`` with a
typed ``error`` event, in a 200 stream that ends with exactly one ``done``; the text so far is
kept, and the thread takes the next run."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from parley.testing.fake_upstream import expected_text
from tests.e2e.helpers import (
    Turn,
    add_message,
    create_assistant,
    create_run,
    create_thread,
    get_run,
    marker,
    messages,
    read_events,
    stream_completion,
    stream_process,
    upstream_requests,
)

#: model -> (error code, text the assistant message keeps)
FAILURES = {
    "fake/error:500": ("upstream_http_error", ""),
    "fake/error:401": ("upstream_auth", ""),
    "dead/x": ("upstream_unreachable", ""),
    "slowpoke/hang": ("upstream_timeout", ""),
    "fake/malformed": ("upstream_malformed", None),
    "fake/truncate:3": ("upstream_truncated", expected_text(3)),
    "fake/cut:3": ("upstream_truncated", expected_text(3)),
    "slowpoke/stall:3": ("upstream_timeout", expected_text(3)),
    # first-token and idle timeouts (1 s) end the turn long before the read timeout (30 s)
    "quiet/hang": ("upstream_timeout", ""),
    "quiet/stall:3": ("upstream_timeout", expected_text(3)),
}


def check_failed_turn(turn: Turn, code: str) -> dict[str, Any]:
    """error -> (usage) -> run.status failed -> done failed; answers the error's data."""
    assert turn.status_code == 200
    types = turn.types
    assert types.count("error") == 1, types
    assert types[-2:] == ["run.status", "done"], types
    assert turn.events[-2].data["status"] == "failed" and turn.final_status == "failed"
    between = types[types.index("error") + 1 : -2]
    assert set(between) <= {"usage"}, types
    error = turn.of_type("error")[0].data
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"].strip(), error
    assert error["run_id"] == turn.run_id
    return dict(error)


@pytest.mark.parametrize("model", FAILURES)
def test_upstream_failure_fails_the_run_cleanly(
    http: httpx.Client, upstream: Any, model: str
) -> None:
    code, kept = FAILURES[model]
    bot = create_assistant(http, model)
    turn = stream_process(http, assistant_id=bot["id"], content="hello")
    error = check_failed_turn(turn, code)
    if kept is not None:
        assert turn.text == kept

    run = get_run(http, turn.run_id)
    assert run["status"] == "failed" and run["completed_at"] is not None
    assert run["last_error"] == {"code": code, "message": error["message"]}
    stored = messages(http, run["thread_id"])
    assert [m["role"] for m in stored] == ["user", "assistant"]
    if kept is not None:
        assert stored[1]["content"] == kept
    else:
        assert stored[1]["content"] == turn.text

    # the event log says the same
    replay = read_events(http, f"/runs/{run['id']}/events")
    assert [(e.id, e.event, e.data) for e in replay] == [
        (e.id, e.event, e.data) for e in turn.events
    ]

    # the next run on the same thread works, and sees the kept text
    word = marker()
    good = create_assistant(http, "fake/text:2")
    nxt = stream_process(
        http, assistant_id=good["id"], content=f"again {word}", thread_id=run["thread_id"]
    )
    assert nxt.final_status == "completed" and nxt.text == expected_text(2)
    (request,) = upstream_requests(upstream, word)
    sent = [(m["role"], m.get("content")) for m in request["messages"]]
    if kept:
        assert ("assistant", kept) in sent, sent
    assert sent[-1] == ("user", f"again {word}")


def test_failure_in_flow_a_completions(http: httpx.Client) -> None:
    bot = create_assistant(http, "fake/error:503")
    thread = create_thread(http)
    add_message(http, thread["id"], "hi")
    run = create_run(http, thread["id"], bot["id"])
    turn = stream_completion(http, run["id"])
    check_failed_turn(turn, "upstream_http_error")
    assert get_run(http, run["id"])["status"] == "failed"


@pytest.mark.parametrize(
    ("model", "code"),
    [("fake/error:500", "upstream_http_error"), ("dead/x", "upstream_unreachable")],
)
def test_failure_without_stream_is_a_200_turn_result(
    http: httpx.Client, model: str, code: str
) -> None:
    bot = create_assistant(http, model)
    answer = http.post(
        "/process", json={"assistant_id": bot["id"], "content": "hi", "stream": False}
    )
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["status"] == "failed" and result["actions"] == []
    assert result["error"]["code"] == code and result["error"]["message"]
    assert get_run(http, result["run_id"])["last_error"] == result["error"]


def test_failure_after_tool_outputs_keeps_the_tool_messages(http: httpx.Client) -> None:
    """A failing second turn leaves the run failed; the next run starts from the same thread."""
    from tests.e2e.helpers import WEATHER, submit_outputs

    bot = create_assistant(http, "fake/tools:1", tools=[WEATHER])
    first = stream_process(http, assistant_id=bot["id"], content="weather")
    (item,) = first.manifest
    submit_outputs(http, first.run_id, {item["tool_call_id"]: "hail"})
    broken = http.post(f"/assistants/{bot['id']}", json={"model": "dead/x"})
    assert broken.status_code == 200, broken.text
    second = stream_process(http, run_id=first.run_id)  # the run keeps its own model
    assert second.final_status == "completed"
    thread_id = get_run(http, first.run_id)["thread_id"]
    failing = stream_process(http, assistant_id=bot["id"], content="again", thread_id=thread_id)
    check_failed_turn(failing, "upstream_unreachable")
    roles = [m["role"] for m in messages(http, thread_id)]
    assert roles == ["user", "assistant", "tool", "assistant", "user", "assistant"]


@pytest.mark.parametrize(
    ("model", "named"),
    [("quiet/hang", "first_token_timeout"), ("quiet/stall:3", "idle_timeout")],
)
def test_first_token_and_idle_timeouts_are_their_own(
    http: httpx.Client, model: str, named: str
) -> None:
    bot = create_assistant(http, model)
    started = time.monotonic()
    turn = stream_process(http, assistant_id=bot["id"], content="hello")
    elapsed = time.monotonic() - started
    error = check_failed_turn(turn, "upstream_timeout")
    assert named in error["message"], error
    assert elapsed < 15, elapsed  # the provider's read timeout is 30 s


def test_an_idle_timeout_shorter_than_the_first_token_one_applies_after_the_start(
    http: httpx.Client,
) -> None:
    # first token 20 s, idle 1 s: a stall after three chunks fails at the idle deadline
    bot = create_assistant(http, "jumpy/stall:3")
    started = time.monotonic()
    turn = stream_process(http, assistant_id=bot["id"], content="hello")
    elapsed = time.monotonic() - started
    error = check_failed_turn(turn, "upstream_timeout")
    assert "sent nothing for 1 s" in error["message"], error
    assert turn.text == expected_text(3)
    assert elapsed < 10, elapsed


def test_a_slow_but_steady_stream_is_not_idle(http: httpx.Client) -> None:
    # 6 chunks 400 ms apart: 2.4 s in all, each gap under the 1 s idle timeout
    bot = create_assistant(http, "quiet/text:6:400")
    turn = stream_process(http, assistant_id=bot["id"], content="hello")
    assert turn.final_status == "completed", turn.types
    assert turn.text == expected_text(6)
