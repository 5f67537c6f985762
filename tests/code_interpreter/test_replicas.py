"""A container across replicas, each with a sandbox directory of its own and one database
(and, in the PostgreSQL pass, Redis): a call that reaches a replica other than the
container's home starts the container again there from the files the database keeps, so
the files carry over and the variables do not; the old home, called again, sees it is no
longer the home and starts afresh the same way."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.code_interpreter.conftest import LIMITS, needs_sandbox
from tests.harness import FreshDatabase, ParleyServer


@pytest.fixture
def two(tmp_path: Path) -> Iterator[tuple[ParleyServer, ParleyServer]]:
    needs_sandbox()
    db = FreshDatabase(tmp_path)
    shared = {**LIMITS, "PARLEY_FILES_DIR": str(tmp_path / "files")}
    servers = [
        ParleyServer(
            database_url=db.url,
            workdir=tmp_path,
            env={**shared, "PARLEY_CODE_INTERPRETER_DIR": str(tmp_path / f"containers-{n}")},
        )
        for n in range(2)
    ]
    try:
        for server in servers:
            server.start()
        yield servers[0], servers[1]
        for server in servers:
            server.stop()
            server.assert_clean_log()
    finally:
        for server in servers:
            server.stop()
        db.drop()


def run(http: httpx.Client, container: str, code: str) -> str:
    answer = http.post(
        "/responses",
        json={
            "model": "demo/parley",
            "input": f"python {code}",
            "tools": [{"type": "code_interpreter", "container": container}],
            "include": ["code_interpreter_call.outputs"],
        },
    )
    assert answer.status_code == 200, answer.text
    (call,) = [i for i in answer.json()["output"] if i["type"] == "code_interpreter_call"]
    assert call["container_id"] == container
    return "".join(o["logs"] for o in call["outputs"] if o["type"] == "logs")


def test_a_container_moves_with_its_files_and_without_its_variables(
    two: tuple[ParleyServer, ParleyServer],
) -> None:
    first, second = two
    key = first.new_user("mover")
    with first.client(key) as a, second.client(key) as b:
        container = a.post("/containers", json={"name": "moving"}).json()["id"]
        assert (
            run(a, container, "x = 41\nopen('note.txt', 'w').write('kept')\nx + 1").strip() == "42"
        )
        assert run(a, container, "print(x)").strip() == "41"  # its home keeps its variables
        moved = run(b, container, "print(open('note.txt').read(), 'x' in globals())")
        assert moved.strip() == "kept False"
        assert run(b, container, "y = 7\nopen('more.txt', 'w').write('from b')").strip() == "6"
        back = run(
            a, container, "print(open('more.txt').read(), 'x' in globals(), 'y' in globals())"
        )
        assert back.strip() == "from b False False"
        listed = a.get(f"/containers/{container}/files").json()["data"]
        assert sorted(f["path"] for f in listed) == ["/mnt/data/more.txt", "/mnt/data/note.txt"]
