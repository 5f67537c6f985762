"""Test harness: a real ``parley serve`` process on loopback, on a fresh database.

``PARLEY_TEST_DATABASE_URL`` (a PostgreSQL URL) makes every server of the session use a new
database created on that server and dropped afterwards; without it each server gets a new
SQLite file.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import random
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx

from parley.config import TUNING_VARIABLE
from parley.testing.databases import ScratchDatabase

PG_ENV = "PARLEY_TEST_DATABASE_URL"
#: When set, every server of the suite streams across replicas through this Redis.
REDIS_ENV = "PARLEY_TEST_REDIS_URL"


#: The Redis of the tests that need one: ``PARLEY_TEST_REDIS_URL``, else the local default.
TEST_REDIS_URL = os.environ.get(REDIS_ENV) or "redis://127.0.0.1:6379/15"


def redis_reachable(url: str = TEST_REDIS_URL) -> bool:
    """Whether a Redis server answers TCP at ``url``'s address."""
    u = urlparse(url)
    try:
        with socket.create_connection((u.hostname or "127.0.0.1", u.port or 6379), timeout=1):
            return True
    except OSError:
        return False


#: The ports a test server may listen on: below the kernel's range for the local ports of
#: outgoing connections, so that no client socket of another test process takes a port
#: between its choice and the server's bind (a port from ``bind(0)`` comes from that range).
_PORTS = range(20000, 32000)


def _ephemeral_ports() -> range:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return range(int(low), int(high) + 1)
    except (OSError, ValueError):
        return range(32768, 61000)


def free_port() -> int:
    """A loopback port nothing listens on now, outside the ephemeral range when it can be."""
    ephemeral = _ephemeral_ports()
    ports = [p for p in random.sample(_PORTS, 64) if p not in ephemeral]
    for port in ports:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def postgres_url() -> str | None:
    return os.environ.get(PG_ENV) or None


class FreshDatabase(ScratchDatabase):
    """A database nobody else uses: on the PostgreSQL server of ``PARLEY_TEST_DATABASE_URL``
    when it is set, else a new SQLite file."""

    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp, postgres_url(), prefix="parley_test")


# ----------------------------------------------------------------- forked servers

#: ``PARLEY_TEST_FORK=0`` spawns every server afresh instead (``python -m parley.cli.main``).
FORK_ENV = "PARLEY_TEST_FORK"


def parley_command(*args: str) -> list[str]:
    """``python -m parley.cli.main ARGS...``, with the suite's interpreter."""
    return [sys.executable, "-m", "parley.cli.main", *args]


def forkable(env: dict[str, str]) -> bool:
    """Whether a server with this environment may be forked from ``tests/forkserver.py``:
    not when it sets anything the interpreter reads as it starts (``PYTHONPATH``, a
    ``sitecustomize``, ``-X importtime``...), which only a fresh one would honour."""
    if os.environ.get(FORK_ENV, "1") == "0":
        return False
    names = {n for n in (*env, *os.environ) if n.startswith(("PYTHON", "LD_", "MALLOC_"))}
    return all(env.get(n) == os.environ.get(n) for n in names)


class Forked:
    """A server forked by the fork server, with what the suite uses of ``subprocess.Popen``:
    its exit status comes on the connection that asked for it."""

    def __init__(self, conn: socket.socket, argv: list[str]) -> None:
        self._conn = conn
        self._lines = conn.makefile("rb")
        self.args = argv
        self.pid = int(json.loads(self._lines.readline())["pid"])
        self.returncode: int | None = None

    def _ended(self, timeout: float | None) -> bool:
        if self.returncode is None:
            # The fork server closes the connection after the exit status: the socket is
            # readable then, even when the pid's read took that line into its buffer.
            if not select.select([self._conn], [], [], timeout)[0]:
                return False
            line = self._lines.readline()
            # No line: the fork server itself was killed, and its children with it.
            self.returncode = int(json.loads(line)["returncode"]) if line else -signal.SIGKILL
            self._lines.close()
            self._conn.close()
        return True

    def poll(self) -> int | None:
        self._ended(0)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if not self._ended(timeout):
            raise subprocess.TimeoutExpired(self.args, timeout or 0)
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class ForkServer:
    """``tests/forkserver.py``, started at this process's first server; it ends with it."""

    def __init__(self) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="parley-fork-")) / "socket"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.forkserver", str(self.path)],
            cwd=Path(__file__).resolve().parents[1],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self.proc.stdout is not None
        ready = self.proc.stdout.readline()
        if ready.strip() != b"ready":
            raise RuntimeError(f"the fork server did not start: {ready!r}")
        atexit.register(self.close)

    def close(self) -> None:
        """End the fork server (its standard input closed) and wait for it: it kills the
        servers still running, and removes its socket. Left to the interpreter's exit, its
        ``Popen`` would be collected while it still ran, with a warning."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        with contextlib.suppress(OSError):
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()

    def fork(self, args: list[str], env: dict[str, str], stdout: Path, stderr: Path) -> Forked:
        """``parley ARGS...`` in a fork, its output appended to the files ``stdout`` and
        ``stderr`` (they may be one)."""
        request = {
            "args": args,
            "env": env,
            "cwd": os.getcwd(),
            "stdout": str(stdout),
            "stderr": str(stderr),
        }
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.connect(str(self.path))
        conn.sendall(json.dumps(request).encode() + b"\n")
        return Forked(conn, parley_command(*args))

    def run(self, args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        """``parley ARGS...`` in a fork, to its end: as ``subprocess.run`` gives it."""
        with tempfile.TemporaryDirectory(prefix="parley-run-") as tmp:
            out, err = Path(tmp, "stdout"), Path(tmp, "stderr")
            code = self.fork(args, env, out, err).wait(timeout=60)
            return subprocess.CompletedProcess(
                parley_command(*args), code, out.read_text(), err.read_text()
            )


_fork_server: ForkServer | None = None
_fork_server_lock = threading.Lock()


def fork_server() -> ForkServer:
    global _fork_server
    with _fork_server_lock:
        if _fork_server is None or _fork_server.proc.poll() is not None:
            _fork_server = ForkServer()
        return _fork_server


class ParleyServer:
    """``python -m parley.cli.main serve`` in a child process."""

    def __init__(
        self,
        *,
        database_url: str,
        workdir: Path,
        config: str = "",
        env: dict[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.database_url = database_url
        self.workdir = workdir
        self.log_path = workdir / f"server-{self.port}.log"
        self.config_path = workdir / f"parley-{self.port}.toml"
        self.config_path.write_text(config)
        redis = {"PARLEY_REDIS_URL": os.environ[REDIS_ENV]} if os.environ.get(REDIS_ENV) else {}
        self.env = {
            **os.environ,
            **redis,
            "PARLEY_DATABASE_URL": database_url,
            "PARLEY_CONFIG": str(self.config_path),
            "PARLEY_LOG_LEVEL": "warning",
            # A loop blocked this long is logged with its stack: the suite fails on it.
            "PARLEY_LOOP_WATCHDOG_SECONDS": "1",
            # A stop ends running turns at once (tests/e2e/test_drain.py sets its own drain).
            "PARLEY_DRAIN_SECONDS": "0",
            # Room for the servers of two test processes at once under PostgreSQL's 100
            # connections (SQLite has one).
            "PARLEY_DATABASE_POOL_SIZE": "6",
            # Bodies past the limit stay small in the tests (the default is 16 MiB).
            "PARLEY_MAX_BODY_BYTES": str(1024 * 1024),
            # The containers' directories of its own (not the machine user's data directory).
            "PARLEY_CODE_INTERPRETER_DIR": str(workdir / f"containers-{self.port}"),
            # Vector stores searched by their words, as the tests of search results expect,
            # and no embedding model loaded in every server of the suite: a test that wants
            # vectors names a model (tests/file_search/test_local_embeddings.py runs the
            # default, the local MiniLM).
            "PARLEY_EMBEDDING_MODEL": "",
            **(env or {}),
        }
        for name in (
            "OPENAI_API_KEY",
            "OPENAI_BASE_URL",
            "ANTHROPIC_API_KEY",
            "PARLEY_TEST_DATABASE_URL",
        ):
            self.env.pop(name, None)
        self.proc: subprocess.Popen[bytes] | Forked | None = None
        self.admin_key = ""

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            parley_command(*args),
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def start(self) -> ParleyServer:
        self.admin_key = self._new_admin()
        tries = 3
        while True:
            since = len(self.log())
            self._spawn()
            try:
                self.wait_healthy()
                return self
            except RuntimeError:
                # Another process took the port between its choice and the bind: a new one.
                tries -= 1
                if not tries or " is taken by " not in self.log()[since:]:
                    raise
                self.port = free_port()

    def _new_admin(self) -> str:
        """``parley users create admin --admin`` (the database migrated first); its key."""
        args = ["users", "create", "admin", "--admin"]
        created = fork_server().run(args, self.env) if forkable(self.env) else self.cli(*args)
        assert created.returncode == 0, created.stderr
        return created.stdout.strip().splitlines()[-1]

    def _spawn(self) -> None:
        args = ["serve", "--port", str(self.port)]
        if forkable(self.env):
            self.proc = fork_server().fork(args, self.env, self.log_path, self.log_path)
            return
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            parley_command(*args), env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_healthy(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"parley serve exited:\n{self.log()}")
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"parley serve did not answer /healthz:\n{self.log()}")

    def assert_clean_log(self, since: int = 0) -> None:
        """No traceback and no blocked event loop in the server's log (after ``since``)."""
        log = self.log()[since:]
        assert "Traceback" not in log, log
        assert "event loop blocked" not in log, log

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        code = self.proc.returncode
        self.proc = None
        return code

    def kill(self) -> None:
        """Die at once, as a crashed process would."""
        self.stop(signal.SIGKILL)

    def client(self, key: str, **kwargs: Any) -> httpx.Client:
        return httpx.Client(
            base_url=f"{self.base_url}/v1",
            headers={"Authorization": f"Bearer {key}"},
            timeout=kwargs.pop("timeout", 30.0),
            **kwargs,
        )

    def new_user(self, name: str = "user") -> str:
        """A new (non-admin) user; returns its API key."""
        with self.client(self.admin_key) as http:
            answer = http.post("/users", json={"name": name})
            answer.raise_for_status()
            return str(answer.json()["api_key"]["key"])


#: The context window of ``small/text:3``, in tokens.
SMALL_WINDOW = 2000


def tuned(*envs: Mapping[str, str] | None, **seconds: float) -> dict[str, str]:
    """The variables of ``envs`` in one, a later one winning, and the server's internal
    intervals (``PARLEY_TUNING``, ``parley.config.tuning``) merged name by name, with
    ``seconds`` over them all: ``tuned(WEBHOOK_ENV, webhook_poll_seconds=3600)``."""
    merged: dict[str, str] = {}
    intervals: dict[str, float] = {}
    for env in envs:
        env = env or {}
        merged.update(env)
        intervals.update(json.loads(env.get(TUNING_VARIABLE, "{}")))
    intervals.update(seconds)
    if intervals:
        merged[TUNING_VARIABLE] = json.dumps(intervals)
    return merged


def restartable_server(
    upstream_base_url: str, tmp: Path, env: dict[str, str] | None = None
) -> Iterator[ParleyServer]:
    """A server of its own on a fresh database under ``tmp``, for tests that kill it and
    start it again: a lease of 1 s and a sweep every 0.2 s, so that a dead turn is closed
    soon after the restart (``env`` adds to that). Yields it started; stops it and drops
    the database after."""
    db = FreshDatabase(tmp)
    srv = ParleyServer(
        database_url=db.url,
        workdir=tmp,
        config=provider_config(upstream_base_url, free_port()),
        env=tuned({"PARLEY_LEASE_SECONDS": "1"}, tuned(sweep_seconds=0.2), env),
    )
    try:
        yield srv.start()
    finally:
        srv.stop()
        db.drop()


def replicas(
    upstream_base_url: str, tmp: Path, count: int, env: dict[str, str] | None = None
) -> Iterator[list[ParleyServer]]:
    """``count`` servers started on one fresh database under ``tmp``, with ``env``. Yields
    them; then stops each, checks its log is clean, and drops the database."""
    db = FreshDatabase(tmp)
    config = provider_config(upstream_base_url, free_port())
    servers = [
        ParleyServer(database_url=db.url, workdir=tmp, config=config, env=env).start()
        for _ in range(count)
    ]
    try:
        yield servers
        for srv in servers:
            srv.stop()
            srv.assert_clean_log()
    finally:
        for srv in servers:
            srv.stop()
        db.drop()


def provider_config(upstream_base_url: str, dead_port: int) -> str:
    """Providers every server of the suite knows: the fake upstream, one that refuses
    connections, one whose reads time out quickly, one whose first-token and idle timeouts
    are short, one whose idle timeout is much shorter than its first-token one (none of them
    retries), one that retries, and one whose models ``text:3`` and ``text:3:500`` have a small context
    window (``SMALL_WINDOW``)."""
    return f"""
[providers.fake]
kind = "openai-chat"
base_url = "{upstream_base_url}"
api_key = "sk-fake"
max_retries = 0

[providers.dead]
kind = "openai-chat"
base_url = "http://127.0.0.1:{dead_port}/v1"
api_key = "sk-fake"
max_retries = 0

[providers.slowpoke]
kind = "openai-chat"
base_url = "{upstream_base_url}"
api_key = "sk-fake"
read_timeout = 1.0
max_retries = 0

[providers.quiet]
kind = "openai-chat"
base_url = "{upstream_base_url}"
api_key = "sk-fake"
read_timeout = 30.0
first_token_timeout = 1.0
idle_timeout = 1.0
max_retries = 0

[providers.jumpy]
kind = "openai-chat"
base_url = "{upstream_base_url}"
api_key = "sk-fake"
read_timeout = 30.0
first_token_timeout = 20.0
idle_timeout = 1.0
max_retries = 0

[providers.patient]
kind = "openai-chat"
base_url = "{upstream_base_url}"
api_key = "sk-fake"
max_retries = 2
retry_backoff = 0.05

[providers.small]
kind = "openai-chat"
base_url = "{upstream_base_url}"
api_key = "sk-fake"
max_retries = 0

[providers.small.models."text:3"]
context_window = {SMALL_WINDOW}

[providers.small.models."text:3:500"]
context_window = {SMALL_WINDOW}
"""
