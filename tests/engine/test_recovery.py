"""A process that dies mid-turn loses nothing it had checkpointed: on the next start the run
is ``incomplete`` with its partial text; a graceful stop settles the turn at once."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from parley.testing.fake_upstream import expected_text
from tests.harness import FreshDatabase, ParleyServer, free_port, provider_config, tuned

LONG = "fake/text:300:20"  # about six seconds of streaming


@pytest.fixture
def fragile(upstream: Any, tmp_path: Path) -> Iterator[ParleyServer]:
    db = FreshDatabase(tmp_path)
    srv = ParleyServer(
        database_url=db.url,
        workdir=tmp_path,
        config=provider_config(upstream.base_url, free_port()),
        env=tuned({"PARLEY_LEASE_SECONDS": "1"}, sweep_seconds=0.2),
    ).start()
    yield srv
    srv.stop()
    db.drop()


def _start_long_turn(srv: ParleyServer, key: str, events_wanted: int) -> tuple[str, str]:
    """Start a long turn, read ``events_wanted`` content events, return (run id, text seen)."""
    http = srv.client(key)
    bot = http.post("/assistants", json={"name": "long", "model": LONG}).json()
    seen: list[str] = []
    run_id = ""
    with http.stream("POST", "/process", json={"assistant_id": bot["id"], "content": "go"}) as r:
        run_id = r.headers["x-parley-run-id"]
        for line in r.iter_lines():
            if line.startswith("data:") and '"content.delta"' in line:
                seen.append(httpx.Response(200, content=line[5:]).json()["text"])
                if len(seen) >= events_wanted:
                    break
    http.close()
    return run_id, "".join(seen)


def _wait_status(srv: ParleyServer, key: str, run_id: str, wanted: str, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    with srv.client(key) as http:
        while time.monotonic() < deadline:
            run = http.get(f"/runs/{run_id}").json()
            if run["status"] == wanted:
                return run
            time.sleep(0.1)
    raise AssertionError(f"run {run_id} never became {wanted}: {run}")


def _assistant_text(srv: ParleyServer, key: str, run_id: str) -> str:
    with srv.client(key) as http:
        run = http.get(f"/runs/{run_id}").json()
        messages = http.get(f"/threads/{run['thread_id']}/messages").json()["data"]
    return "".join(
        p["text"]["value"] for m in messages if m["role"] == "assistant" for p in m["content"]
    )


def test_killed_server_leaves_an_incomplete_run_with_its_text(fragile: ParleyServer) -> None:
    key = fragile.new_user()
    run_id, seen = _start_long_turn(fragile, key, events_wanted=40)
    time.sleep(0.6)  # past a checkpoint after what we saw
    fragile.kill()
    fragile.start()
    run = _wait_status(fragile, key, run_id, "incomplete")
    assert run["incomplete_details"] == {"reason": "interrupted"}
    stored = _assistant_text(fragile, key, run_id)
    full = expected_text(300)
    assert full.startswith(stored)
    assert len(stored) >= len(seen), "checkpointed text lost"
    assert stored != full
    with fragile.client(key) as http:
        body = http.get(f"/runs/{run_id}/events").text
    done = json.loads(body.rstrip().rpartition("\ndata: ")[2])
    assert (done["type"], done["status"]) == ("done", "incomplete")
    assert done["ended_at"] == run["completed_at"]  # when the sweep closed it
    assert body.count("event: done") == 1


def test_graceful_stop_settles_the_running_turn(fragile: ParleyServer) -> None:
    key = fragile.new_user()
    run_id, seen = _start_long_turn(fragile, key, events_wanted=20)
    # The turn goes on without its client; stop the server while it streams.
    code = fragile.stop()
    assert code in (0, -15)
    fragile.start()
    with fragile.client(key) as http:
        run = http.get(f"/runs/{run_id}").json()
    assert run["status"] == "incomplete"  # settled by the stop itself, no lease wait
    stored = _assistant_text(fragile, key, run_id)
    assert expected_text(300).startswith(stored)
    assert len(stored) >= len(seen)
