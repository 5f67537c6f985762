"""Parley's benchmark: the same streaming workload sent directly to a fake OpenAI-compatible
upstream and through Parley, side by side in one run.

    .venv/bin/python bench/run.py [--quick] [--rounds 3] [--database-url postgresql+asyncpg://...]

Starts the fake upstream (``bench/fake_upstream.py``) and ``parley serve`` on free loopback
ports with a fresh database, pins the server to one CPU and the load client and upstream to
another, then measures time to first content event, streams/s at 1 and at N clients, server
CPU per stream (``/proc/PID/stat``), server RSS (``/proc/PID/status``) and spawn-to-/healthz
time. Prints a table and a markdown copy for the README; writes JSON to
``bench/results/latest.json``. See ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, Generic, TextIO, TypeVar

import httpx
import orjson
from loadclient import (
    Target,
    drive,
    open_connections,
    openai_event,
    parley_event,
    problem_counts,
)
from procs import (
    BENCH,
    BenchDatabase,
    Cores,
    Parley,
    Upstream,
    cpu_seconds,
    memory_mib,
    steal_ticks,
)
from report import (
    CHAT_TARGETS,
    TARGETS,
    build_rows,
    median_round,
    percentile,
    report_text,
    write_json,
)

SIDES = ("direct", "parley")
T = TypeVar("T")
K = TypeVar("K")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    p.add_argument("--rounds", type=int, default=3, help="rounds of every phase (median shown)")
    p.add_argument("--chunks", type=int, default=22, help="content chunks per stream")
    p.add_argument("--mode", choices=("text", "reasoning"), default="text", help="upstream mode")
    p.add_argument(
        "--face",
        choices=("native", "chat"),
        default="native",
        help="through Parley as a native turn (/v1/process, stored) or a chat completion "
        "(/v1/chat/completions, nothing stored)",
    )
    p.add_argument("--ttfc-gap-ms", type=float, default=5.0, help="chunk gap, latency phase")
    p.add_argument("--load-gap-ms", type=float, default=0.0, help="chunk gap, load phases")
    p.add_argument("--ttfc-requests", type=int, default=80, help="sequential streams per round")
    p.add_argument("--clients", type=int, default=100, help="concurrent clients, load phase")
    p.add_argument("--streams-1", type=int, default=300, help="streams per round at 1 client")
    p.add_argument("--streams-n", type=int, default=1200, help="streams per round at N clients")
    p.add_argument("--warmup", type=int, default=40, help="untimed streams per side first")
    p.add_argument(
        "--startup-samples", type=int, default=3, help="restarts to time (0: only the first)"
    )
    p.add_argument(
        "--compare",
        metavar="NAMES",
        help="instead: Parley head to head with these (litellm,relay), by bench/compare.py "
        "with the options of its --help",
    )
    add_server_options(p, "latest.json")
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.ttfc_requests, args.streams_1 = 1, 10, 20
        args.clients, args.streams_n, args.warmup, args.startup_samples = 20, 100, 10, 0
    if args.output is None:
        name = "quick.json" if args.quick else "latest.json"
        if args.face == "chat":
            name = "chat-quick.json" if args.quick else "chat.json"
        args.output = BENCH / "results" / name
    return args


def add_server_options(p: argparse.ArgumentParser, results: str) -> None:
    """The options of every bench that runs ``parley serve`` (``results``: the JSON file's
    default name under ``bench/results/``)."""
    p.add_argument("--database-url", help="bench PostgreSQL: a fresh database on this server")
    p.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    p.add_argument("--output", type=Path, help=f"JSON results (default bench/results/{results})")
    p.add_argument(
        "--profile",
        type=Path,
        help="run the measured server under cProfile and write its profile here (slows it)",
    )
    p.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")


def _model(args: argparse.Namespace, gap_ms: float) -> str:
    return f"{args.mode}:{args.chunks}:{gap_ms:g}"


# ---------------------------------------------------------------------------- phases


class ServerBench(Generic[K]):
    """The running processes and the targets sent to them (grouped by a ``K``: a side, a
    chunk gap), and what every bench does with them: warm a target up, call the fake
    upstream's control endpoints (``GET /_requests``, ``POST /_reset``)."""

    def __init__(
        self, args: argparse.Namespace, upstream: Upstream, parley: Parley, key: str
    ) -> None:
        self.args = args
        self.upstream = upstream
        self.parley = parley
        self.key = key
        self.targets: dict[K, dict[str, Target]] = {}

    async def warm(self, target: Target) -> None:
        """``--warmup`` untimed streams from 10 connections; raises when any fails."""
        load = await drive(await open_connections(target.port, 10), target, self.args.warmup)
        if load.failures:
            raise RuntimeError(f"warm-up failed ({target.name}): {problem_counts(load.results)}")

    async def upstream_call(self, method: str, path: str) -> Any:
        async with httpx.AsyncClient(base_url=self.upstream.url, timeout=60) as http:
            answer = await http.request(method, path)
            answer.raise_for_status()
            return orjson.loads(answer.content)


class Bench(ServerBench[str]):
    """Direct and through Parley, by side: the latency and the load target of each."""

    def pid(self, side: str) -> int:
        return self.parley.pid if side == "parley" else self.upstream.pid

    async def prepare(self) -> None:
        """Assistants, warm-up, and direct requests identical to what Parley sends."""
        port, auth = self.parley.port, f"Bearer {self.key}"
        models = {
            "ttfc": _model(self.args, self.args.ttfc_gap_ms),
            "load": _model(self.args, self.args.load_gap_ms),
        }
        parley: dict[str, Target] = {}
        async with httpx.AsyncClient(base_url=self.parley.base_url, timeout=30) as http:
            for label, model in models.items():
                if self.args.face == "chat":
                    chat = {
                        "model": f"fake/{model}",
                        "messages": [{"role": "user", "content": "hi"}],
                        "stream": True,
                    }
                    parley[label] = Target.post(
                        "parley",
                        port,
                        "/v1/chat/completions",
                        orjson.dumps(chat),
                        openai_event,
                        Authorization=auth,
                    )
                    continue
                made = await http.post(
                    "/v1/assistants",
                    json={"name": f"bench-{label}", "model": f"fake/{model}"},
                    headers={"Authorization": auth},
                )
                made.raise_for_status()
                body = orjson.dumps({"assistant_id": made.json()["id"], "content": "hi"})
                parley[label] = Target.post(
                    "parley", port, "/v1/process", body, parley_event, Authorization=auth
                )
        self.targets["parley"] = parley
        for target in parley.values():
            await self.warm(target)
        sent = await self.upstream_call("GET", "/_requests")
        direct: dict[str, Target] = {}
        for label, model in models.items():
            upstream_body = next((b for b in reversed(sent) if b.get("model") == model), None)
            if upstream_body is None:
                raise RuntimeError(f"Parley sent no request for model {model!r} upstream")
            direct[label] = Target.post(
                "direct",
                self.upstream.port,
                "/v1/chat/completions",
                orjson.dumps(upstream_body),
                openai_event,
                Authorization="Bearer sk-fake",
            )
        self.targets["direct"] = direct
        for target in direct.values():
            await self.warm(target)
        await self.upstream_call("POST", "/_reset")

    async def phase(self, side: str, label: str, clients: int, total: int) -> dict[str, Any]:
        """``total`` streams from ``clients`` keep-alive connections, with the server's CPU."""
        target, pid = self.targets[side][label], self.pid(side)
        connections = await open_connections(target.port, clients)
        cpu0, main0 = cpu_seconds(pid), cpu_seconds(pid, pid)
        up0, own0 = cpu_seconds(self.upstream.pid), time.process_time()
        load = await drive(connections, target, total)
        cpu, main = cpu_seconds(pid) - cpu0, cpu_seconds(pid, pid) - main0
        upstream_cpu = cpu_seconds(self.upstream.pid) - up0
        own = time.process_time() - own0
        await self.upstream_call("POST", "/_reset")
        good = [r for r in load.results if r.ok]
        ttfc = [r.ttfc * 1000 for r in good]
        durations = [r.duration * 1000 for r in good]
        heads = [r.to_head * 1000 for r in good]
        return {
            "clients": clients,
            "streams": total,
            "failures": len(load.failures),
            "content_events_min": min((r.content_events for r in good), default=0),
            "wall_s": load.wall,
            "streams_per_s": total / load.wall,
            "ttfc_p50_ms": percentile(ttfc, 0.5),
            "ttfc_p95_ms": percentile(ttfc, 0.95),
            "head_p50_ms": percentile(heads, 0.5),
            "stream_p50_ms": percentile(durations, 0.5),
            "cpu_ms_per_stream": cpu * 1000 / total,
            "server_busy": cpu / load.wall,
            "server_main_thread_share": main / cpu if cpu else 1.0,
            "upstream_cpu_ms_per_stream": upstream_cpu * 1000 / total,
            "client_cpu_ms_per_stream": own * 1000 / total,
        }

    async def one_round(self) -> dict[str, Any]:
        args = self.args
        measured: dict[str, Any] = {"ttfc": {}}
        for side in SIDES:
            measured["ttfc"][side] = await self.phase(side, "ttfc", 1, args.ttfc_requests)
        for clients, total in ((1, args.streams_1), (args.clients, args.streams_n)):
            measured[f"c{clients}"] = {
                side: await self.phase(side, "load", clients, total) for side in SIDES
            }
        return measured


# ------------------------------------------------------------------------- the run


def _start_processes(
    args: argparse.Namespace,
    cores: Cores,
    workdir: Path,
    db_url: str,
    restarts: int,
    config: Callable[[str], str] | None,
) -> tuple[Upstream, Parley, str, dict[str, Any]]:
    """The fake upstream and the Parley server; answers them and the start-up timings."""
    upstream = Upstream(cores, args.chunks)
    parley = Parley(
        database_url=db_url,
        workdir=workdir,
        upstream_url=upstream.url,
        cores=cores,
        extra_config=config(upstream.url) if config else "",
    )
    try:
        cold = parley.start()  # a blank database: migrations included
        key = parley.create_user("bench")
        warm: list[float] = []
        for _ in range(restarts):
            parley.stop()
            warm.append(parley.start())
        if args.profile:
            parley.stop()
            parley.start(profile=args.profile.resolve())
    except BaseException:
        parley.stop()
        upstream.stop()
        raise
    return upstream, parley, key, {"cold_s": cold, "warm_s": warm}


@contextlib.contextmanager
def serving(
    args: argparse.Namespace,
    cores: Cores,
    workdir: Path,
    db_url: str,
    restarts: int = 0,
    config: Callable[[str], str] | None = None,
) -> Iterator[tuple[Upstream, Parley, str, dict[str, Any]]]:
    """The fake upstream (``--chunks``) and the Parley server running, after ``restarts``
    timed restarts and under cProfile with ``--profile``: answers them, the API key and the
    start-up timings. ``config(upstream_url)``, when given, is more TOML for the server's
    config file (providers of a bench's own). Prints the server's log if the block raises;
    stops both at the end."""
    upstream, parley, key, startup = _start_processes(
        args, cores, workdir, db_url, restarts, config
    )
    try:
        yield upstream, parley, key, startup
    except BaseException:
        print_server_log(parley)
        raise
    finally:
        parley.stop()
        upstream.stop()


def print_server_log(parley: Parley) -> None:
    print(f"--- parley server log (tail) ---\n{parley.log()}", file=sys.stderr)


def measure(
    args: argparse.Namespace, cores: Cores, db: BenchDatabase, workdir: Path
) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
    with serving(args, cores, workdir, db.url, args.startup_samples) as running:
        upstream, parley, key, startup = running
        time.sleep(0.2 if args.quick else 1.0)  # let the server settle: idle memory next
        memory: dict[str, Any] = {"idle": {"direct": memory_mib(upstream.pid)}}
        memory["idle"]["parley"] = memory_mib(parley.pid)
        rounds = run_loop(_rounds(Bench(args, upstream, parley, key)))
        if any(r[p][side]["failures"] for r in rounds for p in r for side in SIDES):
            print_server_log(parley)
        memory["after"] = {"direct": memory_mib(upstream.pid), "parley": memory_mib(parley.pid)}
    return rounds, startup, memory


async def _rounds(bench: Bench) -> list[dict[str, Any]]:
    await bench.prepare()
    return await timed_rounds(bench.args.rounds, lambda _: bench.one_round())


async def timed_rounds(
    count: int, one_round: Callable[[int], Awaitable[T]], file: TextIO | None = None
) -> list[T]:
    """``one_round(number)`` ``count`` times, saying how long each took (on ``file``,
    standard output by default)."""
    rounds = []
    for number in range(count):
        started = time.perf_counter()
        rounds.append(await one_round(number))
        took = time.perf_counter() - started
        print(f"round {number + 1}/{count} done in {took:.1f} s", file=file, flush=True)
    return rounds


def run_loop(coro: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


_LOAD_KEYS = (
    "streams_per_s",
    "cpu_ms_per_stream",
    "server_busy",
    "server_main_thread_share",
    "client_cpu_ms_per_stream",
    "upstream_cpu_ms_per_stream",
)


def summarise(
    args: argparse.Namespace,
    rounds: list[dict[str, Any]],
    startup: dict[str, Any],
    memory: dict[str, Any],
) -> dict[str, Any]:
    concurrency = [1, args.clients]
    s: dict[str, Any] = {
        "chunks": args.chunks,
        "ttfc_gap_ms": args.ttfc_gap_ms,
        "load_gap_ms": args.load_gap_ms,
        "concurrency": concurrency,
        "startup_samples": len(startup["warm_s"] or [startup["cold_s"]]),
        "healthz_s": statistics.median(startup["warm_s"] or [startup["cold_s"]]),
        "healthz_cold_s": startup["cold_s"],
    }
    for key in ("ttfc_p50_ms", "ttfc_p95_ms", "head_p50_ms", "stream_p50_ms"):
        s[key] = {side: median_round(rounds, "ttfc", side, key) for side in SIDES}
    for c in concurrency:
        for key in _LOAD_KEYS:
            s[f"{key}_c{c}"] = {side: median_round(rounds, f"c{c}", side, key) for side in SIDES}
    s["rss_idle_mib"] = {side: memory["idle"][side]["VmRSS"] for side in SIDES}
    s["rss_after_mib"] = {side: memory["after"][side]["VmRSS"] for side in SIDES}
    s["rss_peak_mib"] = {side: memory["after"][side]["VmHWM"] for side in SIDES}
    s["failures"] = sum(r[p][side]["failures"] for r in rounds for p in r for side in SIDES)
    return s


def environment(args: argparse.Namespace, cores: Cores, db: BenchDatabase) -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "command": shlex.join([f"bench/{Path(sys.argv[0]).name}", *sys.argv[1:]]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "python": platform.python_version(),
        "cpu": cpu,
        "pinning": cores.describe(),
        "database": db.kind,
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
    }


def _notes(env: dict[str, Any], s: dict[str, Any], args: argparse.Namespace) -> str:
    n = args.clients
    client_cpu, main_share = (
        s[f"client_cpu_ms_per_stream_c{n}"],
        s[f"server_main_thread_share_c{n}"],
    )
    return (
        f"{env['cpu']}; Python {env['python']}; {env['database']}; {env['pinning']}; "
        f"load average before: {env['load_average_before']:.2f}; "
        f"CPU steal during the run: {env['steal_share']:.1%}.\n"
        f"{args.rounds} round(s), median shown. Latency: {args.ttfc_requests} sequential "
        f"streams per side per round, {args.chunks} chunks {args.ttfc_gap_ms:g} ms apart. "
        f"Load: {args.streams_1} streams at 1 client, {args.streams_n} at {n} clients, "
        f"{args.chunks} chunks {args.load_gap_ms:g} ms apart. "
        f"Load client CPU per stream at {n} clients: {client_cpu['parley']:.2f} ms (through "
        f"Parley), {client_cpu['direct']:.2f} ms (direct). Direct 'server' = the fake upstream. "
        f"Share of Parley's CPU on its main (event-loop) thread at {n} clients: "
        f"{main_share['parley']:.0%} (the rest: the database thread)."
    )


def run_measurement(
    args: argparse.Namespace,
    measure: Callable[[argparse.Namespace, Cores, BenchDatabase, Path], T],
) -> tuple[T, dict[str, Any]]:
    """Pins this process to the client's CPU and runs ``measure`` on a fresh database in a
    temporary directory; answers what it answered and the environment (``environment``,
    with the load average before and the machine's CPU steal during)."""
    cores = Cores.pick(not args.no_pin)
    cores.pin_self()
    load_average, (steal0, total0) = os.getloadavg()[0], steal_ticks()
    with tempfile.TemporaryDirectory(prefix="parley-bench-") as tmp:
        db = BenchDatabase(Path(tmp), args.database_url)
        try:
            measured = measure(args, cores, db, Path(tmp))
        finally:
            db.drop()
    steal1, total1 = steal_ticks()
    env = environment(args, cores, db)
    env["load_average_before"] = load_average
    env["steal_share"] = (steal1 - steal0) / max(1, total1 - total0)
    return measured, env


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if any(a == "--compare" or a.startswith("--compare=") for a in argv):
        import compare  # the head-to-head has options of its own

        return compare.main(argv)
    args = parse_args(argv)
    (rounds, startup, memory), env = run_measurement(args, measure)
    summary = summarise(args, rounds, startup, memory)
    targets = CHAT_TARGETS if args.face == "chat" else TARGETS
    results = {"environment": env, "targets": targets, "summary": summary, "rounds": rounds}
    results["startup"], results["memory"] = startup, memory
    write_json(args.output, results)
    rows = build_rows(summary, targets)
    print(report_text(rows, _notes(env, summary, args), env))
    print(f"results: {args.output}")
    if summary["failures"]:
        print(f"error: {summary['failures']} stream(s) failed", file=sys.stderr)
        return 1
    missed = [r.metric for r in rows if r.verdict == "FAIL"]
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
