"""The ``code_interpreter`` tool on Parley's own API: a run given the tool runs the code the
demo model's message gives, and the run's stream (``POST /v1/completions``) shows the call
as ``hosted_tool`` events: started with its code, done with its logs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.code_interpreter.conftest import LIMITS, needs_sandbox
from tests.harness import FreshDatabase, ParleyServer


@pytest.fixture(scope="module")
def http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    needs_sandbox()
    tmp: Path = tmp_path_factory.mktemp("ci-native")
    db = FreshDatabase(tmp)
    server = ParleyServer(database_url=db.url, workdir=tmp, env=LIMITS)
    try:
        server.start()
        with server.client(server.new_user("native")) as client:
            yield client
    finally:
        server.stop()
        server.assert_clean_log()
        db.drop()


def streamed(http: httpx.Client, body: dict[str, Any]) -> list[tuple[str, Any]]:
    events: list[tuple[str, Any]] = []
    with http.stream("POST", "/completions", json=body) as answer:
        assert answer.status_code == 200, answer.read()
        name = ""
        for line in answer.iter_lines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                events.append((name, json.loads(line.removeprefix("data: "))))
    return events


def test_a_run_runs_the_code_and_streams_the_call(http: httpx.Client) -> None:
    thread = http.post("/threads", json={}).json()
    said = {"thread_id": thread["id"], "content": "python print(sum(range(10)))"}
    assert http.post("/messages", json=said).status_code == 201
    assistant = http.post(
        "/assistants",
        json={
            "model": "demo/parley",
            "tools": [{"type": "code_interpreter", "container": {"type": "auto"}}],
        },
    )
    assert assistant.status_code == 200, assistant.text
    run = http.post(
        "/runs", json={"thread_id": thread["id"], "assistant_id": assistant.json()["id"]}
    )
    assert run.status_code == 201, run.text
    events = streamed(http, {"run_id": run.json()["id"]})
    hosted = [(d["phase"], d["item"]) for e, d in events if e == "hosted_tool"]
    assert [(phase, item["type"]) for phase, item in hosted] == [
        ("started", "code_interpreter_call"),
        ("done", "code_interpreter_call"),
    ]
    started, done = hosted[0][1], hosted[1][1]
    assert started["code"] == "print(sum(range(10)))" and started["outputs"] is None
    assert done["status"] == "completed" and done["outputs"] == [{"type": "logs", "logs": "45\n"}]
    said_back = "".join(d["text"] for e, d in events if e == "content.delta")
    assert "45" in said_back
    bad = http.post(
        "/runs",
        json={
            "thread_id": thread["id"],
            "assistant_id": assistant.json()["id"],
            "tools": [{"type": "code_interpreter", "container": "cntr_nothing"}],
        },
    )
    assert bad.status_code == 404, bad.text
