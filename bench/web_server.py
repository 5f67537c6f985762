"""The WSGI server under ``parley web``, chosen by measurement: candidates side by side.

    .venv/bin/python bench/web_server.py [--clients 64] [--exchanges 384] [--rounds 3]
                                         [--model fake/text:20:25] [--servers a,b,...]

Starts the fake upstream and ``parley serve`` (fresh SQLite database, as ``bench/run.py``
does), then, for each candidate server in turn (the order flipping every round), the web app
(``parley.web.create_app``) on that server in a child process of its own, and drives it as
browsers do: ``--clients`` sessions (each loaded the page once: a cookie and a CSRF token)
POST ``/api/messages/process`` on keep-alive connections and read the event stream to its
``done``, ``--exchanges`` in all. The upstream paces its chunks like a model (``--model``:
``fake/text:N:MS``, N chunks MS apart), so every exchange holds its connection for a while.

Per server and round:

- **exchanges/s**: completed exchanges ÷ wall time of the load phase;
- **first chunk p50 / p99**: from writing the request to reading the first ``content.delta``;
- **incremental**: share of exchanges whose content events arrived spread over at least half
  of the upstream's pacing (a server that holds output back delivers them in one lump);
- **CPU / exchange**: user + system CPU of the server's processes (all threads; a gunicorn
  master and its worker added up) over the load phase ÷ exchanges;
- **RSS**: resident memory of those processes after the load (``VmRSS``), and peak;
- **drop → freed**: ``--drops`` clients start an exchange, read its first chunk and hang up.
  The child wraps the app in a counter of open responses (the server's ``close()`` on the
  response ends one); the time until the count is back to zero says when the server let go
  of them (the app finishes a run whose browser left, so it cannot be less than the rest of
  the run). ``not freed`` means some were still open after 30 s.

Medians over rounds, and each server's ratio to werkzeug's (today's server), are printed as
a markdown table; the raw numbers go to ``bench/results/web_server.json``. The machine is
noisy: compare medians, and run twice before trusting a difference under ~10 %.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from procs import BENCH, BenchDatabase, Cores, Parley, Upstream, cpu_clock, proc_status
from report import percentile

SERVERS = ("werkzeug", "waitress", "waitress-default", "gunicorn-gthread", "cheroot")
SECRET = "bench-web-secret-0123456789abcdef0123456789"
_TOKEN = re.compile(r'<meta name="csrf-token" content="([^"]+)"')
OPEN_PATH = "/_bench/open"


# ----------------------------------------------------------------- the child: one server


class OpenResponses:
    """WSGI middleware counting the responses the server has not closed yet."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.count = 0
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("PATH_INFO") == OPEN_PATH:
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [str(self.count).encode()]
        body = self.app(environ, start_response)
        with self._lock:
            self.count += 1
        return _Closing(body, self)

    def closed(self) -> None:
        with self._lock:
            self.count -= 1


class _Closing:
    def __init__(self, body: Iterable[bytes], counter: OpenResponses) -> None:
        self._body = body
        self._counter = counter

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._body)

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self._counter.closed()


def serve_child(name: str, port: int, base_url: str, api_key: str, threads: int) -> None:
    """Serve the web app on ``name`` until killed (prints ``ready`` once it listens)."""
    from parley.web import create_app

    # The app's own bound on exchanges out of the way: the servers are measured here.
    web = create_app(base_url=base_url, api_key=api_key, secret_key=SECRET, max_exchanges=10**6)
    app = OpenResponses(web)
    if name == "werkzeug":
        from werkzeug.serving import WSGIRequestHandler, make_server

        class Quiet(WSGIRequestHandler):
            def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
                return None

        make_server("127.0.0.1", port, app, threaded=True, request_handler=Quiet).serve_forever()
    elif name.startswith("waitress"):
        from waitress import serve

        extra = {} if name == "waitress-default" else {"send_bytes": 1}
        serve(app, host="127.0.0.1", port=port, threads=threads, connection_limit=4 * threads,
              _quiet=True, **extra)  # fmt: skip
    elif name == "cheroot":
        from cheroot.wsgi import Server

        server = Server(("127.0.0.1", port), app, numthreads=threads, max=threads)
        server.safe_start()
    elif name == "gunicorn-gthread":
        _gunicorn(app, port, threads)
    else:
        raise SystemExit(f"unknown server {name!r}")


def _gunicorn(app: Any, port: int, threads: int) -> None:
    from gunicorn.app.base import BaseApplication

    class Application(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            options = {
                "bind": f"127.0.0.1:{port}",
                "workers": 1,
                "worker_class": "gthread",
                "threads": threads,
                "worker_connections": 4 * threads,
                "timeout": 120,
                "loglevel": "warning",
            }
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            return app

    Application().run()


# ------------------------------------------------------------------ the parent: the load


@dataclass(slots=True)
class Exchange:
    status: int = 0
    started: float = 0.0
    first: float | None = None
    last: float | None = None
    ended: float = 0.0
    contents: int = 0
    done: bool = False
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.done and self.first is not None and not self.error


@dataclass(slots=True)
class Session:
    """One browser: its cookie and CSRF token, and the request it sends."""

    port: int
    request: bytes


def open_sessions(port: int, count: int, model: str) -> list[Session]:
    sessions = []
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        for _ in range(count):
            http.cookies.clear()
            page = http.get("/")
            token = _TOKEN.search(page.text)
            assert page.status_code == 200 and token, page.text[:300]
            cookie = "; ".join(f"{k}={v}" for k, v in http.cookies.items())
            body = json.dumps({"content": "hello", "model": model}).encode()
            head = [
                "POST /api/messages/process HTTP/1.1",
                f"Host: 127.0.0.1:{port}",
                f"Cookie: {cookie}",
                f"X-CSRF-Token: {token.group(1)}",
                "Content-Type: application/json",
                "Accept: text/event-stream",
                f"Content-Length: {len(body)}",
                "",
                "",
            ]
            sessions.append(Session(port, "\r\n".join(head).encode() + body))
    return sessions


class _Frames:
    def __init__(self, result: Exchange) -> None:
        self.result = result
        self.rest = b""

    def feed(self, data: bytes) -> None:
        *frames, self.rest = (self.rest + data).split(b"\n\n")
        now = time.perf_counter()
        for frame in frames:
            if frame.startswith(b"event: content.delta\n"):
                self.result.first = self.result.first or now
                self.result.last = now
                self.result.contents += 1
            elif frame.startswith(b"event: done\n"):
                self.result.done = True
                if b'"status":"completed"' not in frame:
                    self.result.error = "run not completed"
            elif frame.startswith(b"event: error\n") and not self.result.error:
                self.result.error = frame[:200].decode(errors="replace")


async def exchange(
    session: Session, conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None,
    *, hang_up_after_first: bool = False,
) -> tuple[Exchange, tuple[asyncio.StreamReader, asyncio.StreamWriter] | None]:  # fmt: skip
    """One exchange on ``conn`` (a new connection when None); answers the connection when it
    can be used again."""
    if conn is None:
        conn = await asyncio.open_connection("127.0.0.1", session.port, limit=1 << 20)
    reader, writer = conn
    result = Exchange(started=time.perf_counter())
    writer.write(session.request)
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower()
    result.status = int(head.split(" ", 2)[1])
    frames = _Frames(result)
    keep = "connection: close" not in head
    try:
        if "transfer-encoding: chunked" in head:
            while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
                frames.feed((await reader.readexactly(size + 2))[:-2])
                if hang_up_after_first and result.first is not None:
                    raise _HangUp
            await reader.readuntil(b"\r\n")
        elif match := re.search(r"content-length: (\d+)", head):
            frames.feed(await reader.readexactly(int(match.group(1))))
        else:
            keep = False
            while data := await reader.read(65536):
                frames.feed(data)
                if hang_up_after_first and result.first is not None:
                    raise _HangUp
    except _HangUp:
        writer.transport.abort()
        return result, None
    result.ended = time.perf_counter()
    if not keep:
        writer.close()
    return result, (conn if keep else None)


class _HangUp(Exception):
    pass


async def load(sessions: list[Session], total: int) -> tuple[list[Exchange], float]:
    """``total`` exchanges from the sessions at once; answers them and the wall seconds."""
    remaining = [total]
    results: list[Exchange] = []

    async def browser(session: Session) -> None:
        conn = None
        while remaining[0] > 0:
            remaining[0] -= 1
            try:
                result, conn = await exchange(session, conn)
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                result, conn = Exchange(error=f"{type(exc).__name__}: {exc}"), None
            results.append(result)
        if conn is not None:
            conn[1].close()

    started = time.perf_counter()
    await asyncio.gather(*(browser(s) for s in sessions))
    return results, time.perf_counter() - started


async def drop(sessions: list[Session], port: int) -> float | None:
    """Each session starts an exchange and hangs up after its first chunk: the seconds from
    the last hang-up until the server closed every response (None: not within 30 s)."""
    await asyncio.gather(*(exchange(s, None, hang_up_after_first=True) for s in sessions))
    hung_up = time.perf_counter()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        while time.perf_counter() - hung_up < 30:
            if (await http.get(OPEN_PATH)).text.strip() == "0":
                return time.perf_counter() - hung_up
            await asyncio.sleep(0.02)
    return None


# ----------------------------------------------------------------- a server's processes


def tree(pid: int) -> list[int]:
    """``pid`` and its descendants."""
    pids = [pid]
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError):
            for child in Path(f"/proc/{pid}/task/{tid}/children").read_text().split():
                pids += tree(int(child))
    return pids


def tree_cpu(pid: int) -> float:
    return sum(cpu_clock(p) for p in tree(pid))


def tree_memory(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of the tree, MiB."""
    rss = hwm = 0
    for p in tree(pid):
        status = proc_status(p, "VmRSS", "VmHWM")
        rss += status.get("VmRSS", 0)
        hwm += status.get("VmHWM", 0)
    return rss / 1024, hwm / 1024


@dataclass(slots=True)
class Child:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    @classmethod
    def start(cls, name: str, parley: Parley, key: str, threads: int, workdir: Path) -> Child:
        from procs import free_port, healthy, stop_process

        port = free_port()
        log = workdir / f"web-{name}.log"
        command = [sys.executable, __file__, "--serve", name, "--port", str(port),
                   "--base-url", parley.base_url, "--api-key", key, "--threads", str(threads)]  # fmt: skip
        with log.open("ab") as out:
            proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while not healthy(port, OPEN_PATH):
            if proc.poll() is not None or time.monotonic() > deadline:
                stop_process(proc)
                raise RuntimeError(f"{name} did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.02)
        return cls(name, port, proc, log)

    def stop(self) -> None:
        from procs import stop_process

        stop_process(self.proc)


@dataclass(slots=True)
class Round:
    server: str
    values: dict[str, float | None] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)


def measure(child: Child, args: argparse.Namespace, gap_ms: float, chunks: int) -> Round:
    sessions = open_sessions(child.port, args.clients, args.model)
    asyncio.run(load(sessions[: min(8, len(sessions))], 16))  # warm-up
    cpu0 = tree_cpu(child.proc.pid)
    results, wall = asyncio.run(load(sessions, args.exchanges))
    cpu = tree_cpu(child.proc.pid) - cpu0
    rss, peak = tree_memory(child.proc.pid)
    good = [r for r in results if r.ok]
    ttfc = [(r.first or 0) - r.started for r in good]
    pacing = (chunks - 1) * gap_ms / 1000
    spread = [r for r in good if (r.last or 0) - (r.first or 0) >= 0.5 * pacing]
    freed = asyncio.run(drop(sessions[: args.drops], child.port))
    out = Round(child.name)
    out.failures = [r.error or f"status {r.status}" for r in results if not r.ok]
    out.values = {
        "exchanges_per_s": len(good) / wall,
        "ttfc_p50_ms": percentile(ttfc, 0.5) * 1000,
        "ttfc_p99_ms": percentile(ttfc, 0.99) * 1000,
        "incremental_pct": 100 * len(spread) / max(1, len(good)),
        "cpu_ms_per_exchange": 1000 * cpu / max(1, len(good)),
        "rss_mib": rss,
        "peak_rss_mib": peak,
        "drop_freed_s": freed,
        "failed": float(len(out.failures)),
    }
    return out


# ------------------------------------------------------------------------------ report

COLUMNS = [
    ("exchanges_per_s", "exchanges/s", "{:.1f}"),
    ("ttfc_p50_ms", "first chunk p50 ms", "{:.0f}"),
    ("ttfc_p99_ms", "first chunk p99 ms", "{:.0f}"),
    ("incremental_pct", "incremental %", "{:.0f}"),
    ("cpu_ms_per_exchange", "CPU ms/exchange", "{:.2f}"),
    ("rss_mib", "RSS MiB", "{:.0f}"),
    ("peak_rss_mib", "peak RSS MiB", "{:.0f}"),
    ("drop_freed_s", "drop → freed s", "{:.2f}"),
    ("failed", "failed", "{:.0f}"),
]
RATIOS = ("exchanges_per_s", "ttfc_p50_ms", "cpu_ms_per_exchange", "rss_mib")


def median_of(rounds: list[Round], server: str, key: str) -> float | None:
    values = [r.values[key] for r in rounds if r.server == server]
    if any(v is None for v in values):
        return None
    return statistics.median(v for v in values if v is not None)


def table(rounds: list[Round], servers: list[str]) -> str:
    lines = [
        "| server | " + " | ".join(title for _, title, _ in COLUMNS) + " |",
        "|---" * (len(COLUMNS) + 1) + "|",
    ]
    for server in servers:
        cells = []
        for key, _, form in COLUMNS:
            value = median_of(rounds, server, key)
            cells.append("not freed" if value is None else form.format(value))
        lines.append(f"| {server} | " + " | ".join(cells) + " |")
    if "werkzeug" in servers:
        lines += ["", "Ratio to werkzeug (medians): " + ", ".join(title for key, title, _ in
                  COLUMNS if key in RATIOS), ""]  # fmt: skip
        for server in servers:
            ratios = []
            for key in RATIOS:
                base, value = median_of(rounds, "werkzeug", key), median_of(rounds, server, key)
                ratios.append(f"{value / base:.2f}" if base and value is not None else "-")
            lines.append(f"- {server}: " + " / ".join(ratios))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", default=",".join(SERVERS))
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--exchanges", type=int, default=384)
    parser.add_argument("--drops", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="server threads (clients + 16)")
    parser.add_argument("--model", default="fake/text:20:25")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    parser.add_argument("--api-key", help=argparse.SUPPRESS)
    args = parser.parse_args()
    threads = args.threads or args.clients + 16
    if args.serve:
        serve_child(args.serve, args.port, args.base_url, args.api_key, threads)
        return 0
    _, chunks, gap = args.model.split(":")
    servers = args.servers.split(",")
    rounds: list[Round] = []
    with tempfile.TemporaryDirectory(prefix="parley-bench-web-") as tmp:
        workdir = Path(tmp)
        cores = Cores(None, None)
        upstream = Upstream(cores, chunks=int(chunks))
        database = BenchDatabase(workdir, None)
        parley = Parley(
            database_url=database.url, workdir=workdir, upstream_url=upstream.url, cores=cores
        )
        try:
            key = parley.create_user("bench-web")
            parley.start()
            for n in range(args.rounds):
                for server in servers if n % 2 == 0 else servers[::-1]:
                    child = Child.start(server, parley, key, threads, workdir)
                    try:
                        result = measure(child, args, float(gap), int(chunks))
                    finally:
                        child.stop()
                    rounds.append(result)
                    shown = {k: (round(v, 2) if v is not None else None)
                             for k, v in result.values.items()}  # fmt: skip
                    print(f"round {n + 1} {server}: {shown}", file=sys.stderr, flush=True)
                    for failure in sorted(set(result.failures))[:3]:
                        print(f"  failure: {failure}", file=sys.stderr)
        finally:
            parley.stop()
            upstream.stop()
            database.drop()
    print(
        f"\n{args.clients} browsers, {args.exchanges} exchanges of {args.model} per round, "
        f"{args.drops} drops, {threads} server threads, {args.rounds} rounds (medians):\n"
    )
    print(table(rounds, servers))
    out = BENCH / "results" / "web_server.json"
    out.parent.mkdir(exist_ok=True)
    raw = [{"server": r.server, **r.values, "failures": r.failures[:10]} for r in rounds]
    out.write_text(json.dumps({"args": vars(args), "rounds": raw}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
