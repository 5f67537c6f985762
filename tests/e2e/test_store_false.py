"""``store: false`` responses leave nothing behind (docs/openai.md), on every path: a client
that goes away mid-response (a closed WebSocket, a dropped HTTP stream), a turn that fails,
and a server killed mid-response or holding a WebSocket's responses (kill -9, then a
restart: its sweep removes them). While such a response lives, nothing of it is listed or
readable through any face; once its turn has ended (on a WebSocket: once its connection has
closed too), nothing of it is left in the database. A dedicated server (short lease, fast
sweep) that the tests kill and start again on the same database."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from parley.store.db import normalise_url
from parley.testing.fake_upstream import expected_text
from tests.e2e.helpers import guarded, marker, wait_until
from tests.e2e.responses_helpers import (
    WEATHER_TOOL,
    calls,
    output_text,
    stored,
    weather_result,
    websocket,
)
from tests.harness import ParleyServer, restartable_server

#: Twenty chunks 100 ms apart: a turn that outlives a client gone after its third delta.
SLOW = "fake/text:20:100"


@pytest.fixture(scope="module")
def restartable(upstream: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ParleyServer]:
    yield from restartable_server(upstream.base_url, tmp_path_factory.mktemp("store-false"))


class User:
    """A fresh user of the server, with what the database holds of it (read directly)."""

    def __init__(self, server: ParleyServer) -> None:
        self.name = f"scratch-{marker()}"
        self.key = server.new_user(self.name)
        self.server = server
        self.engine = sa.create_engine(normalise_url(server.database_url))

    def rows(self) -> dict[str, list[str]]:
        """The ids of the user's threads, runs and messages, in the database."""
        with self.engine.connect() as conn:
            return {
                table: list(
                    conn.execute(
                        sa.text(
                            f"SELECT t.id FROM {table} t JOIN users u ON u.id = t.user_id "
                            "WHERE u.name = :name ORDER BY t.id"
                        ),
                        {"name": self.name},
                    ).scalars()
                )
                for table in ("threads", "runs", "messages")
            }

    def events_of(self, run_id: str) -> int:
        with self.engine.connect() as conn:
            query = sa.text("SELECT count(*) FROM run_events WHERE run_id = :r")
            return int(conn.execute(query, {"r": run_id}).scalar_one())

    def left(self) -> bool:
        return not any(self.rows().values())

    def wait_gone(self, run_id: str, what: str) -> None:
        wait_until(lambda: self.left() and self.events_of(run_id) == 0, 20, what)

    def close(self) -> None:
        self.engine.dispose()


@pytest.fixture
def user(restartable: ParleyServer) -> Iterator[User]:
    made = User(restartable)
    try:
        yield made
    finally:
        made.close()


def check_unreadable(http: httpx.Client, user: User, response_id: str) -> None:
    """Nothing of the user's scratch content is listed or readable, through any face,
    though the database holds it (the response is under way)."""
    rows = user.rows()
    assert rows["threads"] and response_id in rows["runs"], rows
    (thread_id,) = rows["threads"]
    assert stored(http) == ([], [], []), "a store: false response is listed"
    paths = [
        f"/threads/{thread_id}",
        f"/threads/{thread_id}/messages",
        f"/threads/{thread_id}/runs",
        f"/threads/{thread_id}/runs/{response_id}",
        f"/threads/{thread_id}/runs/{response_id}/steps",
        f"/conversations/{thread_id}",
        f"/conversations/{thread_id}/items",
        f"/runs/{response_id}",
        f"/runs/{response_id}/events",
        f"/responses/{response_id}",
        f"/responses/{response_id}/input_items",
        *(f"/messages/{m}" for m in rows["messages"]),
        *(f"/threads/{thread_id}/messages/{m}" for m in rows["messages"]),
    ]
    for path in paths:
        answer = http.get(path)
        assert answer.status_code == 404, (path, answer.status_code, answer.text[:300])
    actions = http.get("/actions", params={"run_id": response_id})
    assert actions.status_code == 404 or actions.json()["data"] == [], actions.text
    assert http.post(f"/threads/{thread_id}/messages", json={"content": "x"}).status_code == 404
    assert http.delete(f"/threads/{thread_id}").status_code == 404
    assert http.post(f"/runs/{response_id}/cancel").status_code == 404


def _first_deltas(socket: Any, count: int = 3) -> str:
    """The events of a streaming response up to its ``count``-th text delta; its id."""
    response_id = ""
    seen = 0
    while seen < count:
        event = socket.receive()
        assert event["type"] != "error", event
        if event["type"] == "response.created":
            response_id = event["response"]["id"]
        seen += event["type"] == "response.output_text.delta"
    return response_id


def _stream_start(response: httpx.Response, count: int = 3) -> str:
    """Read an HTTP stream of a response up to its ``count``-th text delta; its id."""
    response_id, seen = "", 0
    for line in response.iter_lines():
        if not line.startswith("data: {"):
            continue
        event = json.loads(line[6:])
        if event["type"] == "response.created":
            response_id = event["response"]["id"]
        seen += event["type"] == "response.output_text.delta"
        if seen >= count:
            return response_id
    raise AssertionError("the stream ended early")


# ------------------------------------------------------------------------ client gone


def test_a_socket_closed_mid_response_leaves_nothing(restartable: ParleyServer, user: User) -> None:
    log_start = len(restartable.log())
    with guarded(restartable.client(user.key)) as http:
        with websocket(restartable, user.key) as socket:
            socket.send({"type": "response.create", "model": SLOW, "input": "hi", "store": False})
            response_id = _first_deltas(socket)
            check_unreadable(http, user, response_id)
        # The turn goes on without its client: still unreadable, then gone with its end.
        check_unreadable(http, user, response_id)
        user.wait_gone(response_id, "the scratch thread of a closed socket to go")
    restartable.assert_clean_log(log_start)
    assert "scratch thread" not in restartable.log()[log_start:]


def test_an_http_stream_dropped_mid_response_leaves_nothing(
    restartable: ParleyServer, user: User
) -> None:
    log_start = len(restartable.log())
    with guarded(restartable.client(user.key)) as http:
        body = {"model": SLOW, "input": "hi", "store": False, "stream": True}
        with http.stream("POST", "/responses", json=body) as response:
            response_id = _stream_start(response)
            check_unreadable(http, user, response_id)
        check_unreadable(http, user, response_id)
        user.wait_gone(response_id, "the scratch thread of a dropped stream to go")
    restartable.assert_clean_log(log_start)


@pytest.mark.parametrize("stream", [False, True])
def test_a_failed_turn_leaves_nothing(restartable: ParleyServer, user: User, stream: bool) -> None:
    with guarded(restartable.client(user.key)) as http:
        body = {"model": "fake/error:400", "input": "hi", "store": False, "stream": stream}
        answer = http.post("/responses", json=body)
        assert answer.status_code == 200, answer.text
        assert '"failed"' in answer.text, answer.text[:500]
        wait_until(user.left, 10, "the scratch thread of a failed turn to go")


def test_a_response_paused_for_tools_over_http_leaves_nothing(
    restartable: ParleyServer, user: User
) -> None:
    """Over HTTP nothing can continue a ``store: false`` response: paused for tool outputs,
    it goes at once."""
    with guarded(restartable.client(user.key)) as http:
        body = {"model": "fake/auto", "input": "weather?", "tools": [WEATHER_TOOL]}
        answer = http.post("/responses", json={**body, "store": False})
        assert answer.status_code == 200, answer.text
        assert calls(answer.json()), answer.json()
        wait_until(user.left, 10, "the scratch thread of a paused response to go")


def test_a_socket_holds_its_paused_responses_until_it_closes(
    restartable: ParleyServer, user: User
) -> None:
    """A ``store: false`` response paused for tool outputs goes on on its connection, and
    is never readable meanwhile; the connection gone, nothing is left."""
    with guarded(restartable.client(user.key)) as http:
        with websocket(restartable, user.key) as socket:
            first = socket.create(
                model="fake/auto", input="weather?", tools=[WEATHER_TOOL], store=False
            )
            check_unreadable(http, user, first["id"])
            (call,) = calls(first)
            second = socket.create(
                store=False,
                **weather_result(call["call_id"], "windy", previous_response_id=first["id"]),
            )
            assert second["status"] == "completed", second
            assert user.rows()["threads"], "the connection's thread went while it is open"
            assert stored(http) == ([], [], [])
        wait_until(user.left, 10, "the scratch thread of a closed socket to go")


def test_a_stored_conversation_keeps_only_its_own(restartable: ParleyServer, user: User) -> None:
    """A ``store: false`` response on a conversation works on a scratch copy: the
    conversation is listed as before, and the copy goes."""
    with guarded(restartable.client(user.key)) as http:
        conversation = http.post("/conversations", json={"items": []}).json()
        word = marker()
        answer = http.post(
            "/responses",
            json={
                "model": "fake/echo",
                "input": f"aside {word}",
                "conversation": conversation["id"],
                "store": False,
            },
        )
        assert output_text(answer.json()) == f"aside {word}"
        wait_until(lambda: user.rows()["threads"] == [conversation["id"]], 10, "the copy to go")
        assert http.get(f"/conversations/{conversation['id']}/items").json()["data"] == []


# ----------------------------------------------------------------------- server killed


@pytest.mark.parametrize("face", ["websocket", "http", "held"])
def test_a_killed_server_leaves_nothing_after_its_restart(
    restartable: ParleyServer, user: User, upstream: Any, face: str
) -> None:
    """kill -9 mid-response (a WebSocket's, an HTTP stream's) or while a WebSocket holds a
    finished ``store: false`` response: once the server is back, its sweep removes it."""
    with guarded(restartable.client(user.key)) as http:
        if face == "http":
            body = {"model": "fake/stall:3", "input": "hi", "store": False, "stream": True}
            with http.stream("POST", "/responses", json=body) as response:
                response_id = _stream_start(response)
                check_unreadable(http, user, response_id)
                restartable.kill()
        else:
            with websocket(restartable, user.key) as socket:
                if face == "held":
                    done = socket.create(model="fake/text:2", input="hi", store=False)
                    assert output_text(done) == expected_text(2)
                    response_id = done["id"]
                else:
                    model = "fake/stall:3"
                    socket.send({"type": "response.create", "model": model, "store": False,
                                 "input": "hi"})  # fmt: skip
                    response_id = _first_deltas(socket)
                check_unreadable(http, user, response_id)
                restartable.kill()
        wait_until(lambda: upstream.active_streams == 0, 10, "the upstream connection to close")
        assert user.rows()["runs"] == [response_id], "the killed server deleted it"
        restartable.start()
        user.wait_gone(response_id, "the restarted server's sweep to remove the scratch thread")


def test_a_stopped_server_lets_go_of_what_its_sockets_held(
    restartable: ParleyServer, user: User
) -> None:
    """SIGTERM with a WebSocket open on a finished ``store: false`` response and another
    mid-response: the server deletes both before it exits."""
    log_start = len(restartable.log())
    with websocket(restartable, user.key) as idle, websocket(restartable, user.key) as busy:
        done = idle.create(model="fake/text:2", input="hi", store=False)
        busy.send({"type": "response.create", "model": SLOW, "input": "hi", "store": False})
        running = _first_deltas(busy)
        assert {done["id"], running} <= set(user.rows()["runs"])
        restartable.stop()
    try:
        assert user.left() and user.events_of(running) == 0, user.rows()
        restartable.assert_clean_log(log_start)
    finally:
        restartable.start()
