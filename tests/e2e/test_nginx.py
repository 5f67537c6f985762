"""Two replicas behind nginx, as deploy/ ships them: nginx runs ``deploy/nginx/parley.conf``
itself (only the replicas' addresses, the port it listens on and its log's path replaced),
and the replicas are started with ``deploy/Dockerfile``'s ``CMD`` on one PostgreSQL database
with Redis.

A turn streamed through nginx loses its replica (SIGKILL) mid-stream; the client resumes
through nginx with ``Last-Event-ID`` and gets, from the other replica, the rest of the run:
it is not continued elsewhere, it is closed ``incomplete`` (``interrupted``) once its lease
runs out, and the client's text, the event log and the stored message agree.

A client cannot choose the address the failed-authentication limit counts (nginx sends the
replicas its own view of the client, whatever ``X-Forwarded-For`` the client wrote). A
rolling restart loses nothing: a replica that was restarted takes traffic as soon as it is
back, even when the other one dies moments later.

Those tests (marked ``postgres``) need PostgreSQL, Redis and nginx (``.ci/run`` installs
Debian's); without nginx they skip, and fail under ``CI=true``. The others check that the
image's install and the docs' unit file match what is tested and shipped.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx
import pytest
from packaging.requirements import Requirement

from parley.config import Settings
from parley.errors import PayloadTooLarge
from parley.server.errors import openai_error, openai_path
from parley.testing.fake_upstream import expected_text
from tests.e2e.helpers import check_sse_response, get_run, joined, read_events, wait_until
from tests.e2e.responses_helpers import read_stream
from tests.e2e.sse import Event, stream_events
from tests.harness import (
    TEST_REDIS_URL,
    FreshDatabase,
    ParleyServer,
    free_port,
    postgres_url,
    provider_config,
    redis_reachable,
)

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
#: 60 chunks 30 ms apart: 1.8 s of streaming, long enough to kill the replica midway.
SLOW = "fake/text:60:30"
#: A short lease, so that the dead replica's run is closed soon (the sweep runs every 0.5 s).
LEASE_SECONDS = 2.0
#: Failed authentications an address may make (per 60 s) before it is refused.
AUTH_FAILURES = 5


# ------------------------------------------------------------------- the Dockerfile


def dockerfile_lines() -> list[str]:
    """The Dockerfile's instructions, continuation lines joined, comments left out."""
    text = re.sub(r"\\\n\s*", " ", (DEPLOY / "Dockerfile").read_text())
    return [line.strip() for line in text.splitlines() if line.strip()[:1] not in ("", "#")]


def image_install() -> list[str]:
    """The arguments of pip in the image's one ``RUN pip install``."""
    installs = [shlex.split(line)[2:] for line in dockerfile_lines() if line.startswith("RUN pip ")]
    assert len(installs) == 1, installs
    return installs[0]


def image_command() -> list[str]:
    """The image's ``CMD`` (exec form)."""
    (cmd,) = [line.removeprefix("CMD ") for line in dockerfile_lines() if line.startswith("CMD ")]
    command = json.loads(cmd)
    assert isinstance(command, list) and all(isinstance(a, str) for a in command), command
    return command


def required_by(extras: set[str]) -> list[Requirement]:
    """What installing this source tree with ``extras`` installs (pyproject.toml), one level
    deep; the project's own extras named in an extra are followed."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    found = [Requirement(r) for r in project["dependencies"]]
    todo, seen = set(extras), set()
    while todo:
        extra = todo.pop()
        seen.add(extra)
        for spec in project["optional-dependencies"][extra]:
            requirement = Requirement(spec)
            if requirement.name == project["name"]:
                todo |= requirement.extras - seen
            else:
                found.append(requirement)
    return found


def test_the_tests_environment_has_what_the_image_installs() -> None:
    """The replicas below run from this venv: it must hold everything the image's install
    brings, at versions that install allows, or the image could differ from what is tested."""
    args = image_install()
    assert args[0] == "install", args
    (target,) = [a for a in args[1:] if not a.startswith("-")]
    match = re.fullmatch(r"\.\[([a-z,]+)\]", target)
    assert match, f"the image installs {target!r}, not this source tree with extras"
    extras = set(match.group(1).split(","))
    assert "server" in extras, extras
    for requirement in required_by(extras):
        installed = metadata.version(requirement.name)
        assert requirement.specifier.contains(installed, prereleases=True), (
            requirement,
            installed,
        )


def test_the_deploy_docs_show_the_shipped_unit_file() -> None:
    doc = (REPO / "docs" / "deploy.md").read_text()
    (unit,) = re.findall(r"```ini\n(.*?)```", doc, re.S)
    assert unit == (DEPLOY / "parley.service").read_text()


# ------------------------------------------------------------------------ the parts


def nginx_binary() -> str:
    """Debian's nginx; skip (fail under ``CI=true``) without PostgreSQL, Redis or nginx."""
    if postgres_url() is None:
        pytest.skip("needs PostgreSQL: set PARLEY_TEST_DATABASE_URL (and PARLEY_TEST_REDIS_URL)")
    if not redis_reachable():
        pytest.skip(f"needs Redis: none at {TEST_REDIS_URL} (set PARLEY_TEST_REDIS_URL)")
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if found is None:
        reason = "no nginx on PATH or in /usr/sbin (apt-get install nginx; .ci/run does)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return found


def compose_trusted_proxies() -> str:
    """The replicas' ``FORWARDED_ALLOW_IPS`` in ``deploy/compose.yaml``, with nginx's address
    there (its one ``ipv4_address``) replaced by the one the test's nginx connects from."""
    compose = (DEPLOY / "compose.yaml").read_text()
    (trusted,) = re.findall(r'^\s+FORWARDED_ALLOW_IPS: "([^"]*)"$', compose, re.M)
    nginx_at = re.findall(r"^\s+ipv4_address: (\S+)$", compose, re.M)
    assert len(nginx_at) <= 1, nginx_at
    here = {address: "127.0.0.1" for address in nginx_at}
    return ",".join(here.get(a.strip(), a.strip()) for a in trusted.split(","))


class ImageReplica(ParleyServer):
    """A replica started as the image starts it: its ``CMD``, with ``PARLEY_PORT`` set."""

    def start(self) -> ImageReplica:
        self.admin_key = self._new_admin()
        return self.launch()

    def launch(self) -> ImageReplica:
        """Start the process (again, after a stop: on the same port)."""
        program, *args = image_command()
        beside = Path(sys.executable).with_name(program)  # the venv's console script
        command = [str(beside) if beside.exists() else program, *args]
        self.env["PARLEY_PORT"] = str(self.port)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(command, env=self.env, stdout=log, stderr=log)
        self.wait_healthy()
        return self


def replace_once(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"deploy/nginx/parley.conf has {old!r} {text.count(old)} times"
    return text.replace(old, new)


class Nginx:
    """nginx in the foreground, in ``workdir``, with the shipped site config."""

    def __init__(self, binary: str, workdir: Path, replicas: list[ParleyServer]) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.workdir = workdir
        self.access_log = workdir / "access.log"
        self.error_log = workdir / "error.log"
        site = (DEPLOY / "nginx" / "parley.conf").read_text()
        for name, replica in zip(("parley-1", "parley-2"), replicas, strict=True):
            site = replace_once(site, f"server {name}:8700 ", f"server 127.0.0.1:{replica.port} ")
        site = replace_once(site, "listen 80;", f"listen 127.0.0.1:{self.port};")
        site = replace_once(site, "/var/log/nginx/parley.access.log", str(self.access_log))
        (workdir / "parley.conf").write_text(site)
        # As root, workers would run as nobody, who cannot enter the test's temporary folder.
        user = "user root;" if os.geteuid() == 0 else ""
        temp = "\n".join(
            f"    {kind}_temp_path {workdir / kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        (workdir / "nginx.conf").write_text(
            f"{user}\nworker_processes 1;\nevents {{ worker_connections 256; }}\n"
            f"http {{\n{temp}\n    include {workdir / 'parley.conf'};\n}}\n"
        )
        self.command = [
            binary,
            *("-p", str(workdir), "-c", str(workdir / "nginx.conf"), "-e", str(self.error_log)),
            *("-g", f"daemon off; pid {workdir / 'nginx.pid'};"),
        ]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Nginx:
        self.proc = subprocess.Popen(
            self.command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited: {self.log()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"nginx did not listen: {self.log()}")

    def log(self) -> str:
        return self.error_log.read_text() if self.error_log.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # a fast shutdown
            self.proc.wait(timeout=10)

    def client(self, key: str) -> httpx.Client:
        return httpx.Client(
            base_url=f"{self.base_url}/v1",
            headers={"Authorization": f"Bearer {key}"},
            timeout=30.0,
        )


@pytest.fixture
def site(upstream: Any, tmp_path: Path) -> Iterator[tuple[Nginx, list[ParleyServer]]]:
    """nginx in front of two replicas on one fresh PostgreSQL database with Redis."""
    binary = nginx_binary()
    db = FreshDatabase(tmp_path)
    config = provider_config(upstream.base_url, free_port())
    env = {
        "PARLEY_REDIS_URL": TEST_REDIS_URL,
        "PARLEY_LEASE_SECONDS": str(LEASE_SECONDS),
        "PARLEY_AUTH_FAILURE_LIMIT": str(AUTH_FAILURES),
        "PARLEY_AUTH_FAILURE_WINDOW_SECONDS": "60",
        # As compose runs the replicas: forwarded headers trusted from nginx's address.
        "FORWARDED_ALLOW_IPS": compose_trusted_proxies(),
        # The default body limit, which the config's client_max_body_size matches (the
        # other tests' servers keep a smaller one).
        "PARLEY_MAX_BODY_BYTES": str(Settings.model_fields["max_body_bytes"].default),
    }
    replicas: list[ParleyServer] = []
    nginx: Nginx | None = None
    try:
        for _ in range(2):
            replica = ImageReplica(database_url=db.url, workdir=tmp_path, config=config, env=env)
            replicas.append(replica.start())
        (tmp_path / "nginx").mkdir()
        nginx = Nginx(binary, tmp_path / "nginx", replicas).start()
        yield nginx, replicas
        for replica in replicas:
            replica.assert_clean_log()
        assert "[emerg]" not in nginx.log() and "[alert]" not in nginx.log(), nginx.log()
    finally:
        if nginx is not None:
            nginx.stop()
        for replica in replicas:
            replica.stop()
        db.drop()


# ------------------------------------------------------------------------ the tests


def open_streams(replica: ParleyServer, route: str = "/v1/process") -> float:
    """The streams of ``route`` open on ``replica`` now, from its ``/metrics``."""
    text = httpx.get(f"{replica.base_url}/metrics", timeout=5).text
    found = re.search(rf'^parley_open_streams\{{route="{route}"\}} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


@pytest.mark.postgres
def test_a_stream_whose_replica_dies_is_resumed_through_nginx_on_the_other(
    site: tuple[Nginx, list[ParleyServer]],
) -> None:
    nginx, replicas = site
    key = replicas[0].new_user()
    with nginx.client(key) as http:
        bot = http.post("/assistants", json={"name": "slow", "model": SLOW}).json()
        body = {"assistant_id": bot["id"], "content": "go"}
        seen: list[Event] = []
        with http.stream("POST", "/process", json=body) as response:
            check_sse_response(response)
            events = stream_events(response)
            while sum(e.event == "content.delta" for e in seen) < 10:
                seen.append(next(events))
            (serving,) = [r for r in replicas if open_streams(r) == 1]
            (other,) = [r for r in replicas if r is not serving]
            serving.kill()
            killed = time.monotonic()
            # nginx passes on what the replica wrote before it died, then cuts the stream:
            # no done, and no clean end of the body.
            with pytest.raises(httpx.HTTPError):
                seen.extend(events)
        assert "done" not in [e.event for e in seen]
        run_id = str(seen[0].data["run_id"])
        last = max(e.id for e in seen if e.id is not None)
        text = joined(seen, "content.delta")
        assert expected_text(60).startswith(text), text
        assert 10 <= sum(e.event == "content.delta" for e in seen) < 60

        # Resumed through nginx (which passes on to the other replica what the dead one
        # refuses): the other replica follows the run until it closes it once its lease ran
        # out, and sends what came after the client's last event.
        tail = read_events(http, f"/runs/{run_id}/events", headers={"Last-Event-ID": str(last)})
        closed_in = time.monotonic() - killed
        assert [e.event for e in tail] == ["error", "run.status", "done"], tail
        assert all(e.id is not None and e.id > last for e in tail), (last, tail)
        assert tail[0].data["code"] == "interrupted"
        assert tail[-1].data["status"] == "incomplete"
        assert closed_in < LEASE_SECONDS + 2.5, closed_in

        run = get_run(http, run_id)
        assert run["status"] == "incomplete", run
        assert run["incomplete_details"] == {"reason": "interrupted"}, run
        # What was stored is what the client saw, up to the last checkpoint before the kill.
        log = read_events(http, f"/runs/{run_id}/events")
        stored = joined(log, "content.delta")
        assert text.startswith(stored), (stored, text)
        query = {"order": "asc", "all_messages": "true"}
        messages = http.get(f"/threads/{run['thread_id']}/messages", params=query).json()["data"]
        assert "".join(p["text"]["value"] for p in messages[-1]["content"]) == stored

        # The site goes on with one replica: a new turn through nginx streams to its end.
        again = {"assistant_id": bot["id"], "content": "again", "thread_id": run["thread_id"]}
        with http.stream("POST", "/process", json=again) as response:
            check_sse_response(response)
            turn = list(stream_events(response))
        assert turn[-1].event == "done" and turn[-1].data["status"] == "completed", turn[-2:]
        assert joined(turn, "content.delta") == expected_text(60)

    # After the kill, nginx sent every request to the other replica: those it first tried
    # on the dead one (round robin; a replica is never taken out of rotation) were passed on
    # when the connection was refused.
    # nginx writes a request's line after it has sent the answer: wait for the last one.
    def requests_after_the_kill() -> list[str]:
        access = nginx.access_log.read_text().splitlines()
        first = next(i for i, line in enumerate(access) if "POST /v1/process" in line)
        after = access[first + 1 :]
        return after if len(after) >= 5 else []

    after = wait_until(requests_after_the_kill, 5, "nginx's access log of the requests")
    dead, alive = f"127.0.0.1:{serving.port}", f"127.0.0.1:{other.port}"
    assert len(after) == 5, after
    assert sum(f"upstream={dead}, {alive} upstream_status=502, 200 " in line for line in after) >= 1
    assert all(f"upstream={alive} " in line or f", {alive} " in line for line in after), after
    other.assert_clean_log()


@pytest.mark.postgres
def test_a_response_whose_replica_dies_resumes_through_nginx_with_its_terminal_event(
    site: tuple[Nginx, list[ParleyServer]],
) -> None:
    """The Responses face's resume: the client holds the numbers of the events the dead
    replica sent, some of them never checkpointed; the other replica numbers the closing
    events past all of them."""
    nginx, replicas = site
    key = replicas[0].new_user()
    with nginx.client(key) as http:
        body = {"model": SLOW, "input": "go", "stream": True, "background": True}
        seen: list[dict[str, Any]] = []
        with http.stream("POST", "/responses", json=body) as response:
            check_sse_response(response)
            events = stream_events(response)
            while sum(e["type"] == "response.output_text.delta" for e in seen) < 10:
                seen.append(next(events).data)
            (serving,) = [r for r in replicas if open_streams(r, "/v1/responses") == 1]
            serving.kill()
            with pytest.raises(httpx.HTTPError):
                seen.extend(e.data for e in events)
        response_id = seen[0]["response"]["id"]
        last = seen[-1]["sequence_number"]
        assert [e["sequence_number"] for e in seen] == list(range(last + 1))

        params = {"stream": "true", "starting_after": last}
        tail = read_stream(http, "GET", f"/responses/{response_id}", params=params)
        assert tail and tail[-1]["type"] == "response.incomplete", tail
        assert all(e["sequence_number"] > last for e in tail), (last, tail)
        assert tail[-1]["response"]["incomplete_details"] == {"reason": "interrupted"}
        text = "".join(e["delta"] for e in seen if e["type"] == "response.output_text.delta")
        (item,) = tail[-1]["response"]["output"]
        assert text.startswith(item["content"][0]["text"]), (item, text)


@pytest.mark.postgres
def test_request_ids_and_large_bodies_pass_through_nginx(
    site: tuple[Nginx, list[ParleyServer]],
) -> None:
    nginx, replicas = site
    key = replicas[0].new_user()
    with nginx.client(key) as http:
        mine = http.get("/assistants", headers={"X-Request-ID": "req-from-the-client"})
        assert mine.status_code == 200, mine.text
        assert mine.headers["x-request-id"] == "req-from-the-client"
        given = http.get("/assistants")
        assert re.fullmatch(r"[0-9a-f]{32}", given.headers["x-request-id"]), given.headers
        # A body over the limit: nginx refuses it with the error a replica gives, on
        # Parley's own paths and on the OpenAI-compatible ones. (Not compared with a
        # replica's answer over the wire: the replica answers without reading the body,
        # so the client may fail to send it.)
        limit = Settings.model_fields["max_body_bytes"].default
        error = PayloadTooLarge(f"The request body is larger than {limit} bytes.")
        for path in ("/process", "/assistants", "/threads/x/messages"):
            refused = http.post(path, content=b'{"content": "' + b"x" * limit + b'"}')
            assert refused.status_code == 413, refused.text
            assert refused.headers["content-type"] == "application/json"
            expected = openai_error(error)[1] if openai_path(f"/v1{path}") else error.to_dict()
            assert refused.json() == expected, path
        # a body of exactly the limit reaches the replica
        body = b'{"content": "' + b"x" * (limit - 15) + b'"}'
        assert len(body) == limit
        assert http.post("/process", content=body).status_code == 422
    assert "rid=req-from-the-client " in nginx.access_log.read_text()


def own_loopback_address() -> str:
    """A loopback address of this test's own: Redis, where the failed-authentication counts
    live, is shared with the other tests that run meanwhile."""
    return f"127.{os.getpid() % 250 + 1}.{int(time.time()) % 250 + 1}.29"


@pytest.mark.postgres
def test_a_client_cannot_choose_the_address_its_failed_authentications_count_against(
    site: tuple[Nginx, list[ParleyServer]],
) -> None:
    nginx, replicas = site
    transport = httpx.HTTPTransport(local_address=own_loopback_address())
    with httpx.Client(base_url=f"{nginx.base_url}/v1", transport=transport, timeout=30) as http:

        def me(n: int, key: str = "pk_wrong") -> httpx.Response:
            """``GET /me`` claiming to come from a new address each time, in every header a
            proxy may be told a client's address by."""
            claimed = f"198.51.100.{n % 250 + 1}"
            headers = {
                "Authorization": f"Bearer {key}",
                "X-Forwarded-For": f"{claimed}, 203.0.113.{n % 250 + 1}",
                "X-Real-IP": claimed,
                "Forwarded": f"for={claimed}",
            }
            return http.get("/me", headers=headers)

        statuses = [me(n).status_code for n in range(3 * AUTH_FAILURES)]
        assert statuses == [401] * AUTH_FAILURES + [429] * (2 * AUTH_FAILURES), statuses
        # Blocked: a right key, from yet another claimed address, is refused too.
        key = replicas[0].new_user()
        refused = me(99, key)
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"]["code"] == "too_many_auth_failures", refused.text
    # Others are not blocked: the test's plain client (from 127.0.0.1) gets in.
    with nginx.client(key) as http:
        assert http.get("/me").status_code == 200


@pytest.mark.postgres
def test_a_restarted_replica_takes_traffic_at_once_when_the_other_dies(
    site: tuple[Nginx, list[ParleyServer]],
) -> None:
    """The rolling restart of docs/deploy.md: replica A is restarted (nginx finds it
    refusing meanwhile), and replica B dies moments after A is back. Resumes and new turns
    go to A at once: nginx does not keep a ready replica out of rotation."""
    nginx, (a, b) = site
    key = a.new_user()
    with nginx.client(key) as http:
        bot = http.post("/assistants", json={"name": "quick", "model": "fake/text:8"}).json()
        body = {"assistant_id": bot["id"], "content": "go"}
        with http.stream("POST", "/process", json=body) as response:
            check_sse_response(response)
            turn = list(stream_events(response))
        assert turn[-1].event == "done", turn[-3:]
        middle = turn[len(turn) // 2].id
        assert middle is not None

        a.stop()  # SIGTERM, as an orchestrator stops it; its port now refuses
        # Round robin: of two requests, one is sent to A first, refused, and passed on.
        for _ in range(2):
            assert http.get("/assistants").status_code == 200
        refused_at = time.monotonic()
        a.launch()
        wait_until(lambda: httpx.get(f"{a.base_url}/readyz").status_code == 200, 30, "A ready")
        b.kill()
        # Inside the 10 s the old configuration kept a refusing replica out (so this test
        # tells the two apart).
        assert time.monotonic() - refused_at < 9, time.monotonic() - refused_at

        tail = read_events(
            http, f"/runs/{turn[0].data['run_id']}/events", headers={"Last-Event-ID": str(middle)}
        )
        assert [e.id for e in tail] == [e.id for e in turn if e.id is not None and e.id > middle]
        with http.stream("POST", "/process", json={**body, "content": "again"}) as response:
            check_sse_response(response)
            again = list(stream_events(response))
        assert again[-1].event == "done" and again[-1].data["status"] == "completed", again[-2:]
        for _ in range(4):
            assert http.get("/assistants").status_code == 200

    access = nginx.access_log.read_text()
    refused_a = f"upstream=127.0.0.1:{a.port}, 127.0.0.1:{b.port} upstream_status=502, 200 "
    assert refused_a in access, access


@pytest.mark.postgres
def test_a_draining_replicas_503_sends_gets_to_the_other_and_never_resends_a_post(
    site: tuple[Nginx, list[ParleyServer]],
) -> None:
    nginx, (a, b) = site
    # A drains for a while: a long turn keeps it draining once it got SIGTERM.
    a.stop()
    a.env["PARLEY_DRAIN_SECONDS"] = "30"
    a.launch()
    key = a.new_user()
    with a.client(key) as on_a, nginx.client(key) as http:
        slow = on_a.post("/assistants", json={"name": "slow", "model": "fake/text:400:50"})
        with on_a.stream(
            "POST", "/process", json={"assistant_id": slow.json()["id"], "content": "go"}
        ) as held:
            check_sse_response(held)
            next(stream_events(held))
            assert a.proc is not None
            a.proc.send_signal(signal.SIGTERM)
            wait_until(lambda: httpx.get(f"{a.base_url}/readyz").status_code == 503, 10, "drain")

            # A GET answered 503 by the draining replica goes on to the other one.
            for _ in range(4):
                ready = httpx.get(f"{nginx.base_url}/readyz", timeout=10)
                assert ready.status_code == 200, ready.text
            # A POST is never sent twice: the draining replica's refusal reaches the client,
            # which sends it again (round robin: to the other replica).
            bot = http.post("/assistants", json={"name": "quick", "model": "fake/text:3"}).json()
            turn = {"assistant_id": bot["id"], "content": "hi"}
            statuses: list[int] = []
            for _ in range(4):
                answer = http.post("/process", json={**turn, "stream": False})
                if answer.status_code == 503:
                    assert answer.json()["error"]["code"] == "server_draining", answer.text
                statuses.append(answer.status_code)
            assert set(statuses) == {200, 503}, statuses

    def posts() -> list[str]:
        lines = nginx.access_log.read_text().splitlines()
        found = [line for line in lines if "POST /v1/process" in line]
        return found if len(found) == 4 else []

    refused = [line for line in wait_until(posts, 5, "the POSTs logged") if " 503 " in line]
    assert refused and all(f"upstream=127.0.0.1:{a.port} " in line for line in refused), refused
    access = nginx.access_log.read_text()
    assert f"127.0.0.1:{a.port}, 127.0.0.1:{b.port} upstream_status=503, 200 " in access, access
