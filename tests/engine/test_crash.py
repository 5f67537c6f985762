"""SIGKILL mid-stream, then start again: every run becomes terminal within the default five
seconds, the stored text is a prefix of what the client saw (at most one checkpoint interval
short), no event id is used twice, and every follower of the run, a client resuming with
``Last-Event-ID`` or one following from another replica, receives the closing events and
``done``.

The servers here keep the default lease and sweep settings, with a one-second checkpoint
interval so that the kill lands well after the last checkpoint."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from parley.testing.fake_upstream import expected_text
from tests.e2e.helpers import read_events
from tests.e2e.sse import Event, stream_events
from tests.harness import (
    TEST_REDIS_URL,
    FreshDatabase,
    ParleyServer,
    free_port,
    provider_config,
    redis_reachable,
    tuned,
)

LONG = "fake/text:400:20"  # eight seconds of streaming, a chunk every 20 ms
CHECKPOINT_SECONDS = 1.0
#: Content chunks the fake upstream sends in one checkpoint interval, with room for jitter.
CHUNKS_PER_CHECKPOINT = int(CHECKPOINT_SECONDS / 0.020) + 10
REDIS_URL = TEST_REDIS_URL


@pytest.fixture
def database(tmp_path: Path) -> Iterator[FreshDatabase]:
    db = FreshDatabase(tmp_path)
    yield db
    db.drop()


def _server(upstream: Any, db: FreshDatabase, tmp: Path, **env: str) -> ParleyServer:
    return ParleyServer(
        database_url=db.url,
        workdir=tmp,
        config=provider_config(upstream.base_url, free_port()),
        env=tuned(env, checkpoint_seconds=CHECKPOINT_SECONDS),
    )


def _start_turn(http: httpx.Client, deltas: int) -> tuple[str, list[Event], Any, Any]:
    """Start a long turn and read it up to ``deltas`` content deltas: (run id, events seen,
    the open response and its event iterator)."""
    bot = http.post("/assistants", json={"name": "long", "model": LONG}).json()
    body = {"assistant_id": bot["id"], "content": "go"}
    response = http.send(http.build_request("POST", "/process", json=body), stream=True)
    events = stream_events(response)
    seen: list[Event] = []
    while sum(e.event == "content.delta" for e in seen) < deltas:
        seen.append(next(events))
    return str(seen[0].data["run_id"]), seen, response, events


def _text(events: list[Event]) -> str:
    return "".join(e.data["text"] for e in events if e.event == "content.delta")


def _read_log(http: httpx.Client, run_id: str, after: int | None = None) -> list[Event]:
    headers = {} if after is None else {"Last-Event-ID": str(after)}
    return read_events(http, f"/runs/{run_id}/events", headers=headers)


def _check_closing(tail: list[Event], after: int) -> None:
    """The closing events of a run whose server died, all numbered after ``after``."""
    assert [e.event for e in tail] == ["error", "run.status", "done"], tail
    assert tail[0].data["code"] == "interrupted"
    assert tail[-1].data["status"] == "incomplete"
    ids = [e.id for e in tail]
    assert all(isinstance(i, int) and i > after for i in ids), (ids, after)


def _check_stored(http: httpx.Client, run_id: str, seen: list[Event]) -> None:
    """The log and the stored text are a prefix of what the client saw, at most one
    checkpoint interval short; ids never repeat."""
    log = _read_log(http, run_id)
    ids = [e.id for e in log]
    assert ids == sorted(set(ids)), ids  # increasing: none used twice
    assert [e.event for e in log].count("done") == 1
    body = [e for e in log if e.event not in ("error", "run.status", "done", "usage")]
    live = [e for e in seen if e.event not in ("run.status",)]
    assert body == live[: len(body)], "the log is not a prefix of what the client saw"
    run = http.get(f"/runs/{run_id}").json()
    assert run["status"] == "incomplete" and run["incomplete_details"] == {"reason": "interrupted"}
    query = {"order": "asc", "all_messages": "true"}
    messages = http.get(f"/threads/{run['thread_id']}/messages", params=query).json()["data"]
    stored = "".join(p["text"]["value"] for p in messages[-1]["content"])
    assert _text(seen).startswith(stored)
    missing = sum(e.event == "content.delta" for e in seen) - len(
        [e for e in body if e.event == "content.delta"]
    )
    assert 0 <= missing <= CHUNKS_PER_CHECKPOINT, missing
    assert stored == _text(body)


def test_a_client_resuming_after_a_restart_gets_the_closing_events(
    upstream: Any, database: FreshDatabase, tmp_path: Path
) -> None:
    srv = _server(upstream, database, tmp_path).start()
    try:
        key = srv.new_user()
        with srv.client(key) as http:
            run_id, seen, response, events = _start_turn(http, deltas=30)
            srv.kill()
            with pytest.raises(httpx.HTTPError):  # the connection dies with the process
                seen.extend(events)
            response.close()
        last = max(e.id for e in seen if e.id is not None)

        srv.start()  # the same host and port: the same node, which knows the run was its own
        restarted = time.monotonic()
        with srv.client(key) as http:
            tail = _read_log(http, run_id, after=last)
            closed_in = time.monotonic() - restarted
            _check_closing(tail, last)
            _check_stored(http, run_id, seen)
        # it does not wait for the lease to run out (four seconds by default)
        assert closed_in < 4, closed_in
        srv.assert_clean_log()
    finally:
        srv.stop()


@pytest.mark.parametrize("redis", [False, True], ids=["database", "redis"])
def test_followers_on_another_replica_get_the_end_of_a_dead_replicas_run(
    upstream: Any, database: FreshDatabase, tmp_path: Path, redis: bool
) -> None:
    if redis and not redis_reachable():
        pytest.skip(f"no Redis at {REDIS_URL}")
    env = {"PARLEY_REDIS_URL": REDIS_URL} if redis else {}
    a = _server(upstream, database, tmp_path, **env).start()
    b = _server(upstream, database, tmp_path, **env).start()
    try:
        key = a.new_user()
        followed: list[Event] = []
        with a.client(key) as on_a, b.client(key) as on_b:
            run_id, seen, response, events = _start_turn(on_a, deltas=5)

            def follow() -> None:
                with on_b.stream("GET", f"/runs/{run_id}/events", timeout=30) as r:
                    followed.extend(stream_events(r))

            follower = threading.Thread(target=follow)
            follower.start()
            # the follower is live on B before A dies
            deadline = time.monotonic() + 10
            while sum(e.event == "content.delta" for e in followed) < 20:
                assert time.monotonic() < deadline, followed
                time.sleep(0.02)
            seen.extend(next(events) for _ in range(5))
            a.kill()
            killed = time.monotonic()
            with pytest.raises(httpx.HTTPError):
                seen.extend(events)
            response.close()
            follower.join(timeout=20)
            closed_in = time.monotonic() - killed
            assert not follower.is_alive()
            last = max(e.id for e in seen if e.id is not None)

            # the follower saw a prefix of the turn, then the closing events
            ids = [e.id for e in followed]
            assert ids == sorted(set(ids)), ids
            _check_closing(followed[-3:], max(i for i in ids[:-3] if i is not None))
            # a client resuming on B after the last event it saw from A
            _check_closing(_read_log(on_b, run_id, after=last), last)
            _check_stored(on_b, run_id, seen)
        # the lease (4 s) runs out and B's next sweep (every half second) closes the run
        assert closed_in < 5.5, closed_in
        b.assert_clean_log()
    finally:
        a.stop()
        b.stop()


def test_a_second_process_under_the_same_node_name_leaves_a_live_run_alone(
    upstream: Any, database: FreshDatabase, tmp_path: Path
) -> None:
    env = {"PARLEY_NODE_ID": "node-one"}
    a = _server(upstream, database, tmp_path, **env).start()
    b = _server(upstream, database, tmp_path, **env)
    try:
        key = a.new_user()
        with a.client(key) as on_a:
            run_id, seen, response, events = _start_turn(on_a, deltas=5)
            b.start()  # started by mistake under A's name, while A runs the turn
            seen.extend(events)
            response.close()
        assert seen[-1].event == "done" and seen[-1].data["status"] == "completed"
        assert _text(seen) == expected_text(400)
        with b.client(key) as on_b:
            assert on_b.get(f"/runs/{run_id}").json()["status"] == "completed"
    finally:
        a.stop()
        b.stop()
