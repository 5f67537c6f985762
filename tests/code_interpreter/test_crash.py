"""A ``kill -9`` of the server while a container's code runs: the sandbox dies with it (no
process of the container is left), and the server started again closes the response
``incomplete``, its ``code_interpreter_call`` cut short; the container runs again there.
And a server that cannot make a sandbox (no bubblewrap on its PATH) says why when it
starts, refuses the tool with a clear 400, and serves everything else."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.code_interpreter.conftest import LIMITS, needs_sandbox, sandboxes_of
from tests.harness import FreshDatabase, ParleyServer, tuned


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ParleyServer]:
    needs_sandbox()
    db = FreshDatabase(tmp_path)
    env = tuned(
        {
            **LIMITS,
            "PARLEY_CODE_INTERPRETER_CALL_TIMEOUT": "60",
            "PARLEY_CODE_INTERPRETER_DIR": str(tmp_path / "containers"),
            "PARLEY_FILES_DIR": str(tmp_path / "files"),
            "PARLEY_LEASE_SECONDS": "1",
            "PARLEY_NODE_ID": "crash-test",
        },
        sweep_seconds=0.2,
    )
    srv = ParleyServer(database_url=db.url, workdir=tmp_path, env=env)
    try:
        yield srv.start()
    finally:
        srv.stop()
        db.drop()


def test_a_killed_server_leaves_no_sandbox_and_its_call_is_cut_short(
    server: ParleyServer,
) -> None:
    key = server.new_user("crash")
    with server.client(key) as http:
        container = http.post("/containers", json={"name": "long"}).json()["id"]
        body = {
            "model": "demo/parley",
            "input": "python import time\ntime.sleep(60)",
            "tools": [{"type": "code_interpreter", "container": container}],
            "background": True,
        }
        started = http.post("/responses", json=body)
        assert started.status_code == 200, started.text
        response_id = started.json()["id"]
        deadline = time.monotonic() + 20
        while not sandboxes_of(container) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sandboxes_of(container), "the container's sandbox never started"
        time.sleep(0.5)  # the call is under way
    server.kill()
    deadline = time.monotonic() + 10
    while sandboxes_of(container) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sandboxes_of(container) == [], "a sandbox outlived its server"
    server.start()
    with server.client(key) as http:
        deadline = time.monotonic() + 20
        response: dict[str, Any] = {}
        while time.monotonic() < deadline:
            response = http.get(f"/responses/{response_id}").json()
            if response["status"] not in ("queued", "in_progress"):
                break
            time.sleep(0.1)
        assert response["status"] == "incomplete", response
        (call,) = [i for i in response["output"] if i["type"] == "code_interpreter_call"]
        assert call["status"] == "incomplete"
        again = http.post(
            "/responses",
            json={
                **body,
                "input": "python print('alive')",
                "background": False,
                "include": ["code_interpreter_call.outputs"],
            },
        ).json()
        (call,) = [i for i in again["output"] if i["type"] == "code_interpreter_call"]
        assert call["outputs"][0]["logs"] == "alive\n"
    assert "Traceback" not in server.log()


def test_without_bubblewrap_the_tool_is_refused_and_the_rest_works(tmp_path: Path) -> None:
    db = FreshDatabase(tmp_path)
    empty = tmp_path / "bin"
    empty.mkdir()
    srv = ParleyServer(database_url=db.url, workdir=tmp_path, env={"PATH": str(empty)})
    try:
        srv.start()
        key = srv.new_user("nobwrap")
        with srv.client(key) as http:
            refused = http.post(
                "/responses",
                json={
                    "model": "demo/parley",
                    "input": "python print(1)",
                    "tools": [{"type": "code_interpreter", "container": {"type": "auto"}}],
                },
            )
            assert refused.status_code == 400, refused.text
            error = refused.json()["error"]
            assert error["param"] == "tools[0].type"
            assert "bubblewrap" in error["message"], error
            plain = http.post("/responses", json={"model": "demo/parley", "input": "hello"})
            assert plain.status_code == 200, plain.text
        log = srv.log()
        assert log.count("code_interpreter tool is unavailable") == 1, log
        assert "bubblewrap" in log
    finally:
        srv.stop()
        db.drop()


def test_switched_off_by_the_operator(tmp_path: Path) -> None:
    db = FreshDatabase(tmp_path)
    srv = ParleyServer(
        database_url=db.url, workdir=tmp_path, env={"PARLEY_CODE_INTERPRETER_ENABLED": "false"}
    )
    try:
        srv.start()
        with srv.client(srv.new_user("off")) as http:
            refused = http.post(
                "/responses",
                json={
                    "model": "demo/parley",
                    "input": "hi",
                    "tools": [{"type": "code_interpreter", "container": {"type": "auto"}}],
                },
            )
            assert refused.status_code == 400
            assert "switched the code interpreter off" in refused.json()["error"]["message"]
    finally:
        srv.stop()
        db.drop()


def test_a_sandbox_that_cannot_start_fails_the_call_not_the_turn(tmp_path: Path) -> None:
    needs_sandbox()
    db = FreshDatabase(tmp_path)
    broken = tmp_path / "python"
    broken.write_text("#!/bin/sh\nexit 3\n")
    broken.chmod(0o755)
    srv = ParleyServer(
        database_url=db.url,
        workdir=tmp_path,
        env={**LIMITS, "PARLEY_CODE_INTERPRETER_PYTHON": str(broken)},
    )
    try:
        srv.start()
        with srv.client(srv.new_user("broken")) as http:
            answer = http.post(
                "/responses",
                json={
                    "model": "demo/parley",
                    "input": "python print(1)",
                    "tools": [{"type": "code_interpreter", "container": {"type": "auto"}}],
                    "include": ["code_interpreter_call.outputs"],
                },
            )
            assert answer.status_code == 200, answer.text
            response = answer.json()
            assert response["status"] == "completed"
            (call,) = [i for i in response["output"] if i["type"] == "code_interpreter_call"]
            assert call["status"] == "failed"
            assert "could not start" in call["outputs"][0]["logs"]
        assert "Traceback" not in srv.log()
    finally:
        srv.stop()
        db.drop()


def test_a_cancel_stops_the_code_and_the_container_goes_on(
    server: ParleyServer, tmp_path: Path
) -> None:
    key = server.new_user("cancel")
    with server.client(key) as http:
        container = http.post("/containers", json={"name": "cancelled"}).json()["id"]
        tool = {"type": "code_interpreter", "container": container}
        first = {"model": "demo/parley", "input": "python x = 1", "tools": [tool]}
        assert http.post("/responses", json=first).status_code == 200
        code = "python import time\nopen('started', 'w').close()\ntime.sleep(60)"
        long = {**first, "input": code, "background": True}
        response_id = http.post("/responses", json=long).json()["id"]
        started = tmp_path / "containers" / container / "started"
        deadline = time.monotonic() + 20
        while not started.exists() and time.monotonic() < deadline:
            time.sleep(0.05)  # the call is under way
        assert started.exists()
        began = time.monotonic()
        assert http.post(f"/responses/{response_id}/cancel").status_code == 200
        while time.monotonic() - began < 20:
            status = http.get(f"/responses/{response_id}").json()
            if status["status"] not in ("queued", "in_progress"):
                break
            time.sleep(0.05)
        assert status["status"] == "cancelled", status
        assert time.monotonic() - began < 10  # the code did not run its minute out
        after = http.post(
            "/responses",
            json={
                **first,
                "input": "python print('x' in globals())",
                "include": ["code_interpreter_call.outputs"],
            },
        ).json()
        (call,) = [i for i in after["output"] if i["type"] == "code_interpreter_call"]
        assert call["outputs"] == [{"type": "logs", "logs": "False\n"}]
    assert "Traceback" not in server.log()
