from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from parley.events import ContentDelta, encode_event, encode_frame, parse_event
from parley.server.faces.kit.sse import PING
from tests.harness import FreshDatabase, ParleyServer, free_port, provider_config


def test_a_frame_has_id_event_and_one_data_line() -> None:
    event = ContentDelta(run_id="run_1", message_id="msg_1", text="line one\nline two")
    frame = encode_event(event, 7).decode()
    lines = frame.split("\n")
    assert lines[0] == "id: 7"
    assert lines[1] == "event: content.delta"
    assert lines[2].startswith("data: ")
    assert frame.endswith("\n\n") and frame.count("\n") == 4  # newlines in text stay escaped
    assert parse_event(lines[2][6:]) == event
    assert encode_frame(7, "content.delta", event.model_dump_json()) == frame.encode()
    assert PING == b": ping\n\n"


@pytest.fixture
def chatty(upstream: Any, tmp_path: Path) -> Iterator[ParleyServer]:
    db = FreshDatabase(tmp_path)
    srv = ParleyServer(
        database_url=db.url,
        workdir=tmp_path,
        config=provider_config(upstream.base_url, free_port()),
        env={"PARLEY_KEEPALIVE_SECONDS": "0.3"},
    ).start()
    yield srv
    srv.stop()
    db.drop()


def test_a_silent_stream_gets_keepalive_comments(chatty: ParleyServer) -> None:
    key = chatty.new_user()
    with chatty.client(key) as http:
        bot = http.post("/assistants", json={"name": "s", "model": "fake/stall:1"}).json()
        pings = 0
        with http.stream("POST", "/process", json={"assistant_id": bot["id"], "content": "x"}) as r:
            run_id = r.headers["x-parley-run-id"]
            for line in r.iter_lines():
                if line == ": ping":
                    pings += 1
                    if pings == 2:
                        break
        assert pings == 2
        # The events endpoint keeps a silent run's stream alive the same way.
        with http.stream("GET", f"/runs/{run_id}/events") as r:
            for line in r.iter_lines():
                if line == ": ping":
                    break
        assert http.post(f"/runs/{run_id}/cancel").json()["status"] == "cancelled"
