"""Durability: a run belongs to the engine, not to the HTTP connection. A client that drops
the stream loses nothing; the run's event log replays the turn, from any point, and a second
connection can follow a running turn live."""

from __future__ import annotations

import httpx

from parley.testing.fake_upstream import expected_text, tool_results_text
from tests.e2e.helpers import (
    WEATHER,
    assert_error,
    check_ids,
    create_assistant,
    get_run,
    joined,
    messages,
    open_stream,
    read_events,
    stream_process,
    submit_outputs,
    wait_run,
)
from tests.e2e.sse import Event

SLOW = "fake/text:40:25"  # 40 chunks, 25 ms apart: about one second


def _start_and_drop(
    http: httpx.Client, model: str = SLOW, keep: int = 4
) -> tuple[str, list[Event]]:
    bot = create_assistant(http, model)
    seen: list[Event] = []
    with open_stream(
        http, "POST", "/process", json={"assistant_id": bot["id"], "content": "hi"}
    ) as (
        response,
        events,
    ):
        for event in events:
            seen.append(event)
            if len(seen) == keep:
                break
        response.close()  # the client goes away mid-turn
    assert seen[-1].event == "content.delta", seen
    return str(seen[0].data["run_id"]), seen


def test_a_dropped_client_loses_nothing(http: httpx.Client) -> None:
    run_id, seen = _start_and_drop(http)
    assert get_run(http, run_id)["status"] == "in_progress"  # still going without the client
    run = wait_run(http, run_id, {"completed", "failed", "cancelled", "incomplete"})
    assert run["status"] == "completed", run
    stored = messages(http, run["thread_id"])
    assert [m["role"] for m in stored] == ["user", "assistant"]
    assert stored[1]["content"] == expected_text(40)

    replay = read_events(http, f"/runs/{run_id}/events")
    check_ids(replay)
    assert [e.id for e in replay] == list(range(1, len(replay) + 1))
    assert joined(replay, "content.delta") == expected_text(40)
    types = [e.event for e in replay]
    assert (
        types.count("done") == 1
        and types[-1] == "done"
        and replay[-1].data["status"] == "completed"
    )
    assert types[0] == "run.status" and types[-2:] == ["run.status", "done"]
    assert replay[: len(seen)] == seen  # what the client saw is the start of the log
    assert {e.data["message_id"] for e in replay if e.event == "content.delta"} == {stored[1]["id"]}


def test_replay_after_a_sequence_number(http: httpx.Client) -> None:
    bot = create_assistant(http, "fake/text:12")
    turn = stream_process(http, assistant_id=bot["id"], content="hi")
    everything = read_events(http, f"/runs/{turn.run_id}/events")
    assert everything == turn.events
    for k in (0, 1, 5, len(everything) - 1, len(everything)):
        by_header = read_events(
            http, f"/runs/{turn.run_id}/events", headers={"Last-Event-ID": str(k)}
        )
        by_query = read_events(http, f"/runs/{turn.run_id}/events", params={"after": k})
        expected = [e for e in everything if e.id is not None and e.id > k]
        assert by_header == expected, k
        assert by_query == expected, k


def test_bad_last_event_id_is_400(http: httpx.Client) -> None:
    bot = create_assistant(http, "fake/text:2")
    turn = stream_process(http, assistant_id=bot["id"], content="hi")
    assert_error(http.get(f"/runs/{turn.run_id}/events", headers={"Last-Event-ID": "seven"}), 400)
    assert_error(http.get(f"/runs/{turn.run_id}/events", params={"after": -1}), 422)
    # digits that are not ASCII (header bytes are Latin-1), and numbers past any sequence
    # number the log can hold
    for value in ("²", "1³", "¹", "2147483648", "9" * 31, "-1", "1e3"):
        header = {"Last-Event-ID": value.encode("latin-1")}
        assert_error(http.get(f"/runs/{turn.run_id}/events", headers=header), 400)
    for value in ("2147483648", "9" * 31):
        assert_error(http.get(f"/runs/{turn.run_id}/events", params={"after": value}), 422)


def test_a_cursor_at_the_largest_sequence_number_is_a_normal_empty_stream(
    http: httpx.Client,
) -> None:
    bot = create_assistant(http, "fake/text:2")
    turn = stream_process(http, assistant_id=bot["id"], content="hi")
    top = "2147483647"
    assert read_events(http, f"/runs/{turn.run_id}/events", params={"after": top}) == []
    by_header = read_events(http, f"/runs/{turn.run_id}/events", headers={"Last-Event-ID": top})
    assert by_header == []


def test_a_bad_last_event_id_on_another_users_run_is_still_a_clean_answer(
    http: httpx.Client, other: httpx.Client
) -> None:
    bot = create_assistant(http, "fake/text:2")
    turn = stream_process(http, assistant_id=bot["id"], content="hi")
    path = f"/runs/{turn.run_id}/events"
    assert_error(other.get(path, headers={"Last-Event-ID": "²".encode("latin-1")}), 400)
    assert_error(other.get(path, headers={"Last-Event-ID": "3"}), 404)


def test_a_second_connection_follows_a_running_turn_live(
    http: httpx.Client, server: object
) -> None:
    bot = create_assistant(http, SLOW)
    with open_stream(
        http, "POST", "/process", json={"assistant_id": bot["id"], "content": "hi"}
    ) as (_, events):
        first = [next(events), next(events)]
        run_id = str(first[0].data["run_id"])
        assert get_run(http, run_id)["status"] == "in_progress"
        followed = read_events(http, f"/runs/{run_id}/events")
        # the follower ends only when the turn ends, so the original is still readable
        rest = list(events)
    original = first + rest
    check_ids(original)
    assert followed == original
    assert followed[-1].event == "done" and joined(followed, "content.delta") == expected_text(40)


def test_joining_a_running_turn_midway_with_last_event_id(http: httpx.Client) -> None:
    bot = create_assistant(http, SLOW)
    with open_stream(
        http, "POST", "/process", json={"assistant_id": bot["id"], "content": "hi"}
    ) as (_, events):
        head = [next(events) for _ in range(6)]
        run_id = str(head[0].data["run_id"])
        tail = read_events(http, f"/runs/{run_id}/events", headers={"Last-Event-ID": "3"})
        rest = list(events)
    original = head + rest
    assert tail == [e for e in original if e.id is not None and e.id > 3]


def test_the_log_of_a_tool_run_covers_every_turn(http: httpx.Client) -> None:
    bot = create_assistant(http, "fake/tools:1", tools=[WEATHER])
    first = stream_process(http, assistant_id=bot["id"], content="weather")
    (item,) = first.manifest
    submit_outputs(http, first.run_id, {item["tool_call_id"]: "fog"})
    second = stream_process(http, run_id=first.run_id)
    replay = read_events(http, f"/runs/{first.run_id}/events")
    assert replay == first.events + second.events
    assert [e.event for e in replay].count("done") == 2
    assert [e.id for e in replay] == list(range(1, len(replay) + 1))
    assert joined(replay, "content.delta") == tool_results_text([("get_weather", "fog")])
    after_first = read_events(
        http, f"/runs/{first.run_id}/events", params={"after": first.events[-1].id}
    )
    assert after_first == second.events
