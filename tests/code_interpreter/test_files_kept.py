"""Which of a call's files are kept, through a real server and real sandboxes: a file whose
name no container can keep (a control character, bytes that are not UTF-8) is passed over
and named, escaped, to the model and in Parley's own item (``skipped``), while the files
after it are stored; a call stopped because ``/mnt/data`` passed its bytes or its entries
leaves what fits stored and the rest removed (``removed``), so the next call runs; a user
at the cap of running containers is told the setting, its value and how soon one frees,
in the call's logs and in the 400 of ``POST /v1/containers``."""

from __future__ import annotations

import time
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
#: The tests' disk bound (conftest's LIMITS), and the cap of running containers per user.
DISK = int(LIMITS["PARLEY_CODE_INTERPRETER_DISK_BYTES"])
MOST_CONTAINERS = 2
AUTO = {"type": "code_interpreter", "container": {"type": "auto"}}
INCLUDE = ["code_interpreter_call.outputs"]

ODD_NAMES = (
    "open('report.csv', 'w').write('a,b\\n1,2\\n')\n"
    "open('\\x1b[31mred.txt', 'w').write('red')\n"
    "open(b'/mnt/data/bad\\xff.bin', 'wb').write(b'x')\n"
    "open('zz-last.txt', 'w').write('last')\n"
    "print('written')"
)
#: What the model and Parley's item say of the two names passed over (sorted by path).
SKIPPED = [
    {"path": "/mnt/data/\\x1b[31mred.txt", "reason": "a control character in its name"},
    {"path": "/mnt/data/bad\\udcff.bin", "reason": "its name is not valid UTF-8"},
]
#: Lists /mnt/data and the bytes it holds, then writes and removes a file: runs to its end.
LOOK = (
    "import os\n"
    "names = sorted(os.path.join(r, f)[2:] for r, _, fs in os.walk('.') for f in fs)\n"
    "total = sum(os.path.getsize(n) for n in names)\n"
    "open('scratch.txt', 'w').write('cleaned up'); os.remove('scratch.txt')\n"
    "print(len(names), total)\n"
    "print(sorted(os.listdir('.')))"
)


class Served:
    def __init__(self, server: ParleyServer) -> None:
        self.server = server

    def user(self, name: str) -> httpx.Client:
        """A client of a new user (each test has its own: the cap counts per user)."""
        return self.server.client(self.server.new_user(name), timeout=60)

    def set_last_use(self, container_id: str, at: float) -> None:
        engine = create_engine(normalise_url(self.server.database_url))
        with engine.begin() as conn:
            conn.execute(
                update(containers).where(containers.c.id == container_id).values(last_active_at=at)
            )
        engine.dispose()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    needs_sandbox()
    tmp: Path = tmp_path_factory.mktemp("ci-kept")
    db = FreshDatabase(tmp)
    env = {
        **LIMITS,
        "PARLEY_CODE_INTERPRETER_MAX_CONTAINERS": str(MOST_CONTAINERS),
        # Room for a busy machine to make 10,000 folders before the call's time is up.
        "PARLEY_CODE_INTERPRETER_CALL_TIMEOUT": "30",
    }
    server = ParleyServer(database_url=db.url, workdir=tmp, env=env)
    try:
        server.start()
        yield Served(server)
    finally:
        server.stop()
        server.assert_clean_log()
        db.drop()


def respond(http: httpx.Client, code: str, **more: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """A response running ``code`` (Responses API): the response, and its call."""
    body = {"model": "demo/parley", "input": f"python {code}", "tools": [AUTO], "include": INCLUDE}
    answer = http.post("/responses", json=body | more)
    assert answer.status_code == 200, answer.text
    response = answer.json()
    assert response["status"] == "completed", response
    (call,) = [i for i in response["output"] if i["type"] == "code_interpreter_call"]
    return response, call


def text_of(response: dict[str, Any]) -> str:
    return "".join(
        p["text"] for i in response["output"] if i["type"] == "message" for p in i["content"]
    )


def logs_of(call: dict[str, Any]) -> str:
    return "".join(o["logs"] for o in call["outputs"] or () if o["type"] == "logs")


class Native:
    """A thread of Parley's own API whose assistant has the tool: each turn's result shows
    the items of the calls as the server keeps them."""

    def __init__(self, http: httpx.Client) -> None:
        self.http = http
        made = http.post("/assistants", json={"model": "demo/parley", "tools": [AUTO]})
        assert made.status_code == 200, made.text
        self.assistant_id = made.json()["id"]
        self.thread_id: str | None = None

    def run(self, code: str) -> tuple[str, dict[str, Any]]:
        """The answer's text, and the call's item."""
        body = {"assistant_id": self.assistant_id, "content": f"python {code}", "stream": False}
        if self.thread_id is not None:
            body["thread_id"] = self.thread_id
        answer = self.http.post("/process", json=body)
        assert answer.status_code == 200, answer.text
        result = answer.json()
        assert result["status"] == "completed", result
        self.thread_id = result["thread_id"]
        (item,) = [i for i in result["items"] if i["type"] == "code_interpreter_call"]
        return result["text"], item


def paths_in(http: httpx.Client, container_id: str) -> list[str]:
    listed = http.get(f"/containers/{container_id}/files", params={"limit": 100})
    assert listed.status_code == 200, listed.text
    return sorted(f["path"] for f in listed.json()["data"])


def test_an_odd_name_is_passed_over_and_said_and_the_rest_are_kept(served: Served) -> None:
    with served.user("odd names") as http:
        response, call = respond(http, ODD_NAMES)
        assert "written" in logs_of(call)
        kept = ["/mnt/data/report.csv", "/mnt/data/zz-last.txt"]
        assert paths_in(http, call["container_id"]) == kept
        # The model is told which were passed over and why, their names escaped.
        told = text_of(response)
        assert (
            "[files not kept: '/mnt/data/\\x1b[31mred.txt' (a control character in its name), "
            "'/mnt/data/bad\\udcff.bin' (its name is not valid UTF-8)]"
        ) in told, told
        assert "\x1b" not in told
        # OpenAI's shape has no such field; Parley's own item has it.
        assert "skipped" not in call and "removed" not in call
        again = http.get(f"/responses/{response['id']}", params={"include[]": INCLUDE})
        assert again.json()["output"] == response["output"]
        thread = Native(http)
        text, item = thread.run(ODD_NAMES)
        assert item["skipped"] == SKIPPED
        assert [f["path"] for f in item["files"]] == kept
        assert "[files not kept: '/mnt/data/\\x1b[31mred.txt'" in text
        assert paths_in(http, item["container_id"]) == kept
        # Those files stay in /mnt/data for the code, which may remove them later.
        gone = "import os\nos.remove('\\x1b[31mred.txt'); os.remove(b'bad\\xff.bin')\nprint('gone')"
        _, item = thread.run(gone)
        assert logs_of(item) == "gone\n" and "skipped" not in item, item
        assert paths_in(http, item["container_id"]) == kept


def test_a_full_disk_is_brought_back_within_its_bounds(served: Served) -> None:
    fill = (
        "import os\n"
        "os.makedirs('empty/inside')\n"
        "os.symlink('/etc/passwd', 'link')\n"
        "os.makedirs('out')\n"
        "for n in range(40):\n"
        f"    open(f'out/f{{n:02}}.bin', 'wb').write(b'x' * {3 * MIB})\n"
        "print('never here')"
    )
    with served.user("full disk") as http:
        thread = Native(http)
        said, stopped = thread.run(fill)
        logs = logs_of(stopped)
        assert "never here" not in logs
        assert "passed the container's 32 MiB" in logs, logs
        stored = paths_in(http, stopped["container_id"])
        assert stored and all(p.startswith("/mnt/data/out/f") for p in stored), stored
        assert sum(f["bytes"] for f in stopped["files"]) <= DISK
        # The next call runs to its end, within the bound, with the files that were stored.
        _, item = thread.run(LOOK)
        assert item.get("error") is None and "removed" not in item, item
        count, total = logs_of(item).splitlines()[0].split()
        assert int(count) == len(stored) and int(total) <= DISK
        assert "['out']" in logs_of(item)
        # The model and Parley's item were told what was removed.
        removed = stopped["removed"]
        assert removed["count"] >= 4, removed  # a file not stored, the folders and the link
        assert {"/mnt/data/empty/", "/mnt/data/link"} <= set(removed["paths"]), removed
        assert "[/mnt/data passed the container's bounds:" in said, said


def test_too_many_entries_are_brought_back_within_their_bound(served: Served) -> None:
    many = (
        "import os\n"
        "os.makedirs('many/folders')\n"
        "for n in range(150):\n"
        "    open(f'many/{n:03}', 'w').close()\n"
        "for n in range(20_000):\n"
        "    os.mkdir(f'many/folders/{n:05}')\n"
        "print('never here')"
    )
    with served.user("many files") as http:
        thread = Native(http)
        said, stopped = thread.run(many)
        assert "never here" not in logs_of(stopped)
        assert "holds more than 10,000 files" in logs_of(stopped), logs_of(stopped)
        _, item = thread.run(LOOK)
        assert item.get("error") is None, item
        assert logs_of(item).splitlines()[0] == "100 0"
        assert len(stopped["files"]) == 100  # the most one call stores
        skipped = stopped["skipped"]
        assert skipped[0]["reason"] == "past the 100 files one call may store"
        assert len(skipped) == 20 and stopped["skipped_total"] == 50, stopped["skipped_total"]
        removed = stopped["removed"]
        assert removed["count"] > 10_000 - 100, removed  # the folders, and 50 files
        assert len(removed["paths"]) == 10, removed
        assert all(p.startswith("/mnt/data/many/") for p in removed["paths"]), removed
        assert "more]" in said and "passed the container's bounds" in said


def test_the_cap_of_containers_says_its_setting_and_when_one_frees(served: Served) -> None:
    with served.user("capped") as http:
        made = [respond(http, "print('here')")[1]["container_id"] for _ in range(MOST_CONTAINERS)]
        assert len(set(made)) == MOST_CONTAINERS
        # A third conversation's own container cannot be made: the call says why, and the
        # response still completes.
        response, call = respond(http, "print('not run')")
        logs = logs_of(call)
        assert call["status"] == "failed" and "not run" not in logs
        for said in (
            f"({MOST_CONTAINERS}: PARLEY_CODE_INTERPRETER_MAX_CONTAINERS",
            "max_containers in the config file's [code_interpreter] table",
            "the soonest frees in 20 minutes",
        ):
            assert said in logs, logs
        assert "the soonest frees in 20 minutes" in text_of(response)
        # The containers API says the same; a container about to expire frees in under a
        # minute.
        refused = http.post("/containers", json={"name": "one more"})
        assert refused.status_code == 400, refused.text
        error = refused.json()["error"]
        assert error["code"] == "too_many_containers"
        assert "PARLEY_CODE_INTERPRETER_MAX_CONTAINERS" in error["message"]
        assert "the soonest frees in 20 minutes" in error["message"]
        served.set_last_use(made[0], time.time() - 20 * 60 + 30)
        refused = http.post("/containers", json={"name": "one more"})
        assert "the soonest frees in under a minute" in refused.json()["error"]["message"]
        served.set_last_use(made[0], time.time() - 20 * 60 + 5 * 60 + 30)
        refused = http.post("/containers", json={"name": "one more"})
        assert "the soonest frees in 6 minutes" in refused.json()["error"]["message"]
