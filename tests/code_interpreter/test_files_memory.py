"""A call's files go between ``/mnt/data`` and the file storage a chunk at a time: three
files of 60 MiB written by one call are stored, and given back whole to a fresh
``/mnt/data`` when the container starts again, while the server's peak memory (its
``VmHWM``, reset before each step) grows by far less than one of them. The files read back
byte for byte through ``GET /v1/containers/{id}/files/{file_id}/content``."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, update

from parley.store.db import normalise_url
from parley.store.tables import containers
from tests.code_interpreter.conftest import LIMITS, needs_sandbox
from tests.harness import FreshDatabase, ParleyServer

MIB = 1 << 20
#: Three files of this size; the server's peak memory may grow by ``MOST`` while they are
#: stored or fetched (a file held whole would take more than its size).
SIZE = 60 * MIB
MOST = 32 * MIB
ENV = {
    **LIMITS,
    "PARLEY_CODE_INTERPRETER_CALL_TIMEOUT": "60",
    "PARLEY_CODE_INTERPRETER_DISK_BYTES": str(512 * MIB),
    "PARLEY_CODE_INTERPRETER_MAX_FILE_BYTES": str(64 * MIB),
}
AUTO = {"type": "code_interpreter", "container": {"type": "auto"}}
INCLUDE = ["code_interpreter_call.outputs"]

WRITE = (
    "import hashlib, json, os\n"
    "sums = {}\n"
    "for name in ('one.bin', 'two.bin', 'three.bin'):\n"
    "    digest = hashlib.sha256()\n"
    "    with open(name, 'wb') as out:\n"
    f"        for _ in range({SIZE // MIB}):\n"
    f"            block = os.urandom({MIB})\n"
    "            digest.update(block)\n"
    "            out.write(block)\n"
    "    sums['/mnt/data/' + name] = digest.hexdigest()\n"
    "print(json.dumps(sums))\n"
)
READ = (
    "import hashlib, json\n"
    "sums = {}\n"
    "for name in ('one.bin', 'two.bin', 'three.bin'):\n"
    "    digest = hashlib.sha256()\n"
    "    with open(name, 'rb') as f:\n"
    f"        while block := f.read({MIB}):\n"
    "            digest.update(block)\n"
    "    sums['/mnt/data/' + name] = digest.hexdigest()\n"
    "print(json.dumps(sums))\n"
)


class Served:
    def __init__(self, server: ParleyServer, http: httpx.Client) -> None:
        self.server, self.http = server, http

    @property
    def pid(self) -> int:
        assert self.server.proc is not None
        return self.server.proc.pid

    def reset_peak(self) -> None:
        """The server's peak memory starts again from what it holds now."""
        with open(f"/proc/{self.pid}/clear_refs", "w") as f:
            f.write("5")

    def memory(self, field: str) -> int:
        """``VmRSS`` or ``VmHWM`` of the server, in bytes."""
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
        raise AssertionError(f"no {field} for the server")

    def run(self, code: str, **more: Any) -> dict[str, Any]:
        """The ``code_interpreter_call`` of a response running ``code``."""
        answer = self.http.post(
            "/responses",
            json={"model": "demo/parley", "input": f"python {code}", "tools": [AUTO]}
            | {"include": INCLUDE, **more},
        )
        assert answer.status_code == 200, answer.text
        response = answer.json()
        assert response["status"] == "completed", response
        (call,) = [i for i in response["output"] if i["type"] == "code_interpreter_call"]
        return {"response": response, "call": call}

    def move_home(self, container_id: str) -> None:
        """Make the container's Python another replica's: its next call here starts it
        again, its files written afresh from the storage."""
        engine = create_engine(normalise_url(self.server.database_url))
        with engine.begin() as conn:
            conn.execute(
                update(containers).where(containers.c.id == container_id).values(home="elsewhere")
            )
        engine.dispose()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    needs_sandbox()
    tmp: Path = tmp_path_factory.mktemp("ci-memory")
    db = FreshDatabase(tmp)
    server = ParleyServer(database_url=db.url, workdir=tmp, env=ENV)
    try:
        server.start()
        with server.client(server.new_user("big files"), timeout=180) as http:
            yield Served(server, http)
    finally:
        server.stop()
        server.assert_clean_log()
        db.drop()


def logs_of(call: dict[str, Any]) -> str:
    return "".join(o["logs"] for o in call["outputs"] or () if o["type"] == "logs")


def test_large_files_are_stored_and_given_back_a_chunk_at_a_time(served: Served) -> None:
    # Warm: the paths a call and its files take are loaded before anything is measured.
    warm = served.run("open('warm.bin', 'wb').write(b'x' * (2 << 20))")
    previous = warm["response"]["id"]
    served.reset_peak()
    before = served.memory("VmRSS")
    wrote = served.run(WRITE, previous_response_id=previous)
    grew = served.memory("VmHWM") - before
    call = wrote["call"]
    sums = json.loads(logs_of(call).strip().splitlines()[-1])
    assert grew < MOST, f"the server's peak memory grew by {grew / MIB:.0f} MiB storing the files"
    container_id = call["container_id"]
    listed = served.http.get(f"/containers/{container_id}/files").json()["data"]
    by_path = {f["path"]: f for f in listed}
    for path, digest in sums.items():
        assert by_path[path]["bytes"] == SIZE
        url = f"/containers/{container_id}/files/{by_path[path]['id']}/content"
        read = hashlib.sha256()
        with served.http.stream("GET", url) as answer:
            assert answer.status_code == 200
            for chunk in answer.iter_bytes():
                read.update(chunk)
        assert read.hexdigest() == digest, path
    # Started again elsewhere and back: the files come from the storage into a new
    # /mnt/data, as they were, and just as lightly.
    served.move_home(container_id)
    served.reset_peak()
    before = served.memory("VmRSS")
    again = served.run(READ, previous_response_id=wrote["response"]["id"])
    grew = served.memory("VmHWM") - before
    assert again["call"]["container_id"] == container_id
    assert json.loads(logs_of(again["call"]).strip().splitlines()[-1]) == sums
    assert grew < MOST, f"the server's peak memory grew by {grew / MIB:.0f} MiB fetching the files"
