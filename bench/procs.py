"""The benchmark's processes: the fake upstream, ``parley serve``, any other HTTP server
(``Program``), their databases, CPU pinning, and what ``/proc`` says about them (CPU time,
resident memory)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from parley.testing.databases import ScratchDatabase

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
_TICK = os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------------------------ /proc


def cpu_seconds(pid: int, tid: int | None = None) -> float:
    """User + system CPU time of a process (all its threads), or of one of its threads."""
    path = f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat"
    data = Path(path).read_text()
    fields = data[data.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime


def cpu_clock(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads, ended ones included) to the
    nanosecond: the kernel's CPU clock of the process (``clock_getcpuclockid``), where
    ``cpu_seconds`` counts 10 ms ticks. Falls back to ``cpu_seconds`` where that clock
    cannot be read."""
    try:
        return time.clock_gettime(((~pid) << 3) | 2)  # CPUCLOCK_SCHED of the process
    except OSError:
        return cpu_seconds(pid)


def steal_ticks() -> tuple[int, int]:
    """(steal, total) CPU ticks of the machine so far: a VM's time taken by its host."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (fields[7] if len(fields) > 7 else 0), sum(fields[:8])


def proc_status(pid: int, *names: str) -> dict[str, int]:
    """The first number of each of ``names`` in ``/proc/PID/status`` (sizes in kB)."""
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in names:
            values[name] = int(rest.split()[0])
    return values


def memory_mib(pid: int) -> dict[str, float]:
    """``VmRSS`` (resident now) and ``VmHWM`` (peak resident) of a process, in MiB."""
    return {name: kb / 1024 for name, kb in proc_status(pid, "VmRSS", "VmHWM").items()}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- pinning


@dataclass(frozen=True, slots=True)
class Cores:
    """Where each side runs: the server alone on one core, everything else on another."""

    server: int | None
    client: int | None

    @classmethod
    def pick(cls, enabled: bool) -> Cores:
        cpus = sorted(os.sched_getaffinity(0))
        if not enabled or len(cpus) < 2 or shutil.which("taskset") is None:
            return cls(None, None)
        return cls(cpus[0], cpus[1])

    def prefix(self, core: int | None) -> list[str]:
        """``taskset -c CORE`` for a child command (``taskset`` execs, so the pid stays)."""
        return [] if core is None else ["taskset", "-c", str(core)]

    def pin_self(self) -> None:
        if self.client is not None:
            os.sched_setaffinity(0, {self.client})

    def describe(self) -> str:
        if self.server is None:
            return "not pinned (needs taskset and two CPUs)"
        return f"server on CPU {self.server}; load client and fake upstream on CPU {self.client}"


# ------------------------------------------------------------------------- databases


class BenchDatabase(ScratchDatabase):
    """A fresh database: a new SQLite file, or a new PostgreSQL database dropped afterwards."""

    def __init__(self, workdir: Path, base_url: str | None) -> None:
        super().__init__(workdir, base_url, prefix="parley_bench")


# ------------------------------------------------------------------------- processes


def stop_process(
    proc: subprocess.Popen[bytes], timeout: float = 20.0, sig: int = signal.SIGTERM
) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Upstream:
    """``bench/fake_upstream.py`` in a child process."""

    def __init__(self, cores: Cores, chunks: int) -> None:
        command = [sys.executable, str(BENCH / "fake_upstream.py"), "--port", "0"]
        self.proc = subprocess.Popen(
            [*cores.prefix(cores.client), *command, "--chunks", str(chunks)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode().strip()
        if not line.startswith("listening on "):
            stop_process(self.proc)
            raise RuntimeError(f"the fake upstream did not start: {line!r}")
        self.url = line.removeprefix("listening on ")
        self.port = int(self.url.rsplit(":", 1)[1])
        self.pid = self.proc.pid

    def stop(self) -> None:
        stop_process(self.proc)


class Parley:
    """``parley serve`` in a child process, on the bench database and provider config (the
    provider ``fake`` on the upstream, then ``extra_config``)."""

    def __init__(
        self,
        *,
        database_url: str,
        workdir: Path,
        upstream_url: str,
        cores: Cores,
        extra_config: str = "",
    ) -> None:
        self.workdir = workdir
        self.cores = cores
        config = workdir / "parley-bench.toml"
        fake = (
            f'[providers.fake]\nkind = "openai-chat"\nbase_url = "{upstream_url}/v1"\n'
            'api_key = "sk-fake"\n'
        )
        config.write_text(f"{fake}\n{extra_config}" if extra_config else fake)
        self.env = {
            **os.environ,
            "PARLEY_DATABASE_URL": database_url,
            "PARLEY_CONFIG": str(config),
            "PARLEY_LOG_LEVEL": "warning",
        }
        for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY", "GEMINI_API_KEY"):
            self.env.pop(name, None)
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.pid = 0
        self.profiling = False

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def create_user(self, name: str) -> str:
        """``parley users create NAME --admin``; answers the API key."""
        return create_user(self._parley(), self.env, name)

    def start(
        self,
        timeout: float = 60.0,
        profile: Path | None = None,
        switched: bool = False,
        wrapper: str = "profiled.py",
    ) -> float:
        """Spawn the server; answers the seconds from spawn to the first 200 on /healthz.

        With ``profile``, the server runs under cProfile, which writes there when it stops;
        with ``switched`` too, under ``bench/profiled.py`` instead (or another ``wrapper``
        of ``bench/`` that takes the same arguments, such as ``counted.py``): the thread
        CPU clock of the event loop, started by ``SIGUSR1`` and written by ``SIGUSR2``.
        """
        self.port = free_port()
        log = (self.workdir / f"server-{self.port}.log").open("ab")
        parley = self._parley()
        self.profiling = profile is not None and not switched
        if profile is not None and switched:
            parley = [sys.executable, str(BENCH / wrapper), str(profile)]
        elif profile is not None:
            parley = [sys.executable, "-m", "cProfile", "-o", str(profile), "-m", "parley.cli.main"]
        command = [*parley, "serve", "--port", str(self.port)]
        started = time.perf_counter()
        self.proc = subprocess.Popen(
            [*self.cores.prefix(self.cores.server), *command],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.pid = self.proc.pid
        return wait_healthy(self.proc, self.port, "parley serve", self.log, started, timeout)

    def stop(self) -> None:
        if self.proc is not None:
            # uvicorn re-raises the signal it stopped on: SIGINT lets cProfile write its file.
            stop_process(self.proc, sig=signal.SIGINT if self.profiling else signal.SIGTERM)
            self.proc = None

    def log(self) -> str:
        path = self.workdir / f"server-{self.port}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    @staticmethod
    def _parley() -> list[str]:
        script = Path(sys.executable).parent / "parley"
        if script.exists():
            return [str(script)]
        return [sys.executable, "-m", "parley.cli.main"]


def create_user(parley: list[str], env: dict[str, str], name: str = "bench") -> str:
    """``parley users create NAME --admin`` (``parley``: the command) on the database of
    ``env``; answers the API key."""
    done = subprocess.run(
        [*parley, "users", "create", name, "--admin"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"parley users create failed:\n{done.stderr}")
    return done.stdout.strip().splitlines()[-1]


@dataclass(slots=True)
class Program:
    """An HTTP server in a child process on the server's CPU, healthy when ``GET health``
    answers 200; its output goes to ``log_path``. ``command`` gets ``--port PORT``."""

    name: str
    command: list[str]
    health: str
    cores: Cores
    log_path: Path
    env: dict[str, str] | None = None
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    #: An API key of its own, for a server with a database of its own.
    key: str = ""

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 120.0) -> float:
        """Spawn on a free port; answers the seconds from spawn to the first 200."""
        self.port = free_port()
        command = [*self.cores.prefix(self.cores.server), *self.command, "--port", str(self.port)]
        with self.log_path.open("ab") as log:
            started = time.perf_counter()
            self.proc = subprocess.Popen(
                command,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.log_path.parent,
            )
        try:
            return wait_healthy(
                self.proc, self.port, self.name, self.log, started, timeout, self.health
            )
        except RuntimeError:
            self.stop()
            raise

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None

    def log(self) -> str:
        if not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-3000:]


def wait_healthy(
    proc: subprocess.Popen[bytes],
    port: int,
    name: str,
    log: Callable[[], str],
    started: float,
    timeout: float,
    path: str = "/healthz",
) -> float:
    """Poll ``GET path`` every 5 ms until it answers 200: the seconds since ``started``.
    Raises ``RuntimeError`` with the tail of ``log()`` when the process exits first or
    ``timeout`` passes."""
    while time.perf_counter() - started < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited:\n{log()}")
        if healthy(port, path):
            return time.perf_counter() - started
        time.sleep(0.005)
    raise RuntimeError(f"{name} did not answer {path} in {timeout} s:\n{log()}")


def healthy(port: int, path: str = "/healthz") -> bool:
    """One ``GET path`` on a new connection: ``True`` on a 200."""
    request = f"GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n".encode()
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1) as s:
        s.settimeout(1)
        s.sendall(request)
        return s.recv(64).startswith(b"HTTP/1.1 200")
    return False
