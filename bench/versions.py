"""Two versions of Parley side by side in one run: the time to the first content of the
same streams, through a server of an earlier commit and through one of the working tree,
against the same fake upstream, with the direct baseline beside them.

    .venv/bin/python bench/versions.py [--base REV] [--face chat|native] [--streams 400]
        [--clients 50 --cpu-gap-ms 20 --rounds 5] [--database-url postgresql://...]
    .venv/bin/python bench/versions.py [--base REV] --hosted web_search,mcp,file_search
        [--calls 150]

``--base`` (default ``HEAD``) is exported with ``git archive`` into a temporary folder and
served from there (``PYTHONPATH``); the other server runs the working tree. Both servers
are pinned to the first CPU and the load client and upstream to the second, as in
``bench/run.py``. The client sends ``--block`` sequential streams to one side, then to
the next (base, working tree, direct; the order flips every block), so the two servers
never serve at once and a drift of the machine reaches all three alike. It prints the
median, quartiles and added time of each side, and the difference.

With ``--hosted KINDS``, hosted tool calls in place of the plain streams: for each kind
(``bench/versions_hosted.py``), ``--calls`` streamed ``POST /v1/responses`` per side on
``fake/auto:1`` (one model stream that calls the tool, the call, a second model stream
that answers its result), in the same alternating blocks (no direct side: the call is the
server's own). It prints each side's quartiles to the first text and to the end of the
stream (``response.completed``), and working tree ÷ base at the median. The tools'
services run in this process, on the load client's CPU. Every request of a side must have
called its tool once (counted at the service, or on the server's ``/metrics`` for
``file_search``), else the run exits 1.

With ``--clients N``, a second phase: the server's CPU per stream of each version with N
clients at once (chunks ``--cpu-gap-ms`` apart, their starts spread over one stream),
``--rounds`` rounds of ``--cpu-streams`` streams to each side in turn, the order flipping
every round; it prints the median of each side and their ratio. With ``--idle S``, first
each version's CPU while idle: both servers started and left alone, their CPU clocks read
over ``S`` seconds, three times, after the first streams warmed them up (milliseconds of
CPU per second, median). With ``--database-url``
both sides run on fresh PostgreSQL databases on that server (dropped afterwards), else on
SQLite files. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson
from loadclient import (
    Connection,
    StreamResult,
    Target,
    drive,
    open_connections,
    openai_event,
    parley_event,
    problem_counts,
    spread,
)
from procs import BENCH, BenchDatabase, Cores, Parley, Upstream, cpu_clock
from report import percentile
from versions_hosted import KINDS, HostedKind, hosted_services, parse_kinds

ROOT = BENCH.parent


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base", default="HEAD", help="the commit to compare the working tree with")
    p.add_argument("--face", choices=("chat", "native"), default="chat")
    p.add_argument(
        "--hosted",
        metavar="KINDS",
        help=f"time hosted tool calls instead of plain streams: {','.join(KINDS)}",
    )
    p.add_argument("--calls", type=int, default=150, help="timed hosted calls per side and kind")
    p.add_argument("--streams", type=int, default=400, help="timed streams per side")
    p.add_argument("--block", type=int, default=20, help="streams to one side in a row")
    p.add_argument("--gap-ms", type=float, default=5.0, help="chunk gap")
    p.add_argument("--chunks", type=int, default=22)
    p.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    p.add_argument("--clients", type=int, default=0, help="also CPU per stream at N clients")
    p.add_argument("--cpu-gap-ms", type=float, default=20.0, help="chunk gap, CPU phase")
    p.add_argument("--cpu-streams", type=int, default=500, help="streams per side and round")
    p.add_argument("--rounds", type=int, default=5, help="rounds of the CPU phase")
    p.add_argument("--idle", type=float, default=0.0, help="also CPU while idle, over S s")
    p.add_argument(
        "--database-url",
        help="a PostgreSQL server: each side gets a fresh database there (default: SQLite files)",
    )
    return p.parse_args(argv)


def export(rev: str, into: Path) -> None:
    """The ``parley`` package of ``rev``, under ``into``."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, "parley"], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)


async def target(
    side: str, server: Parley, key: str, args: argparse.Namespace, model: str
) -> Target:
    auth = f"Bearer {key}"
    if args.face == "chat":
        body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": True}
        path, classify = "/v1/chat/completions", openai_event
    else:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
            made = await http.post(
                "/v1/assistants",
                json={"name": "versions", "model": model},
                headers={"Authorization": auth},
            )
            made.raise_for_status()
        body = {"assistant_id": made.json()["id"], "content": "hi"}
        path, classify = "/v1/process", parley_event
    return Target.post(side, server.port, path, orjson.dumps(body), classify, Authorization=auth)


@dataclass(slots=True)
class Timed:
    """What one alternation of blocks gave: each side's timed responses, and how many
    requests each side got in all (warm-up included) and calls its tool service answered
    meanwhile (hosted calls only)."""

    results: dict[str, list[StreamResult]]
    sent: dict[str, int] = field(default_factory=dict)
    called: dict[str, int] = field(default_factory=dict)

    def ms(self, side: str, of: str = "ttfc") -> list[float]:
        """A side's times in ms: to first content (``ttfc``) or to the end (``duration``)."""
        return [getattr(result, of) * 1000 for result in self.results[side]]


async def measure(
    targets: dict[str, Target], count: int, block: int, calls: Callable[[], int] | None = None
) -> Timed:
    """``count`` timed responses of each side, ``block`` to one side in a row, the order of
    the sides flipping every block; with ``calls``, the tool calls counted per side."""
    sides = list(targets)
    timed = Timed({side: [] for side in sides}, dict.fromkeys(sides, 0), dict.fromkeys(sides, 0))
    blocks = -(-count // block) + 2  # two untimed blocks to warm up
    for number in range(blocks):
        for side in sides if number % 2 else reversed(sides):
            before = calls() if calls else 0
            connection = await Connection.open(targets[side].port)
            try:
                for _ in range(block):
                    result = await connection.stream(targets[side])
                    if not result.ok:
                        raise RuntimeError(f"{side}: {result.problem}")
                    if number >= 2:
                        timed.results[side].append(result)
            finally:
                await connection.close()
            timed.sent[side] += block
            timed.called[side] += (calls() - before) if calls else 0
    return timed


async def measure_cpu(
    targets: dict[str, Target], pids: dict[str, int], args: argparse.Namespace
) -> dict[str, list[float]]:
    """Each side's server CPU per stream (ms), one value a round, at ``--clients``."""
    cpu: dict[str, list[float]] = {side: [] for side in targets}
    stagger = spread(args.chunks, args.cpu_gap_ms, args.clients)
    for number in range(args.rounds + 1):  # the first round warms up
        for side in list(targets) if number % 2 else reversed(targets):
            connections = await open_connections(targets[side].port, args.clients)
            before = cpu_clock(pids[side])
            load = await drive(connections, targets[side], args.cpu_streams, stagger_s=stagger)
            used = cpu_clock(pids[side]) - before
            if load.failures:
                raise RuntimeError(f"{side}: {problem_counts(load.failures)}")
            if number:
                cpu[side].append(used / args.cpu_streams * 1000)
    return cpu


def report_cpu(cpu: dict[str, list[float]], args: argparse.Namespace) -> None:
    print(
        f"\nserver CPU per stream, ms ({args.clients} clients, {args.cpu_gap_ms:g} ms gap, "
        f"median of {args.rounds} rounds of {args.cpu_streams} streams)"
    )
    for side, values in cpu.items():
        print(
            f"{side:24s} {statistics.median(values):7.3f}  ({', '.join(f'{v:.2f}' for v in values)})"
        )
    ratio = statistics.median(cpu["tree"]) / statistics.median(cpu["base"])
    print(f"working tree / base: {ratio:.2f}x")


def measure_idle(pids: dict[str, int], seconds: float) -> dict[str, list[float]]:
    """Each server's CPU while nobody uses it, ms per second: three windows of
    ``seconds``, both servers read over the same windows, after a settling pause."""
    if seconds <= 0:
        return {}
    time.sleep(min(seconds, 5.0))  # what the last streams left (their ends, a sweep)
    found: dict[str, list[float]] = {side: [] for side in pids}
    for _ in range(3):
        before = {side: cpu_clock(pid) for side, pid in pids.items()}
        began = time.monotonic()
        time.sleep(seconds)
        took = time.monotonic() - began
        for side, pid in pids.items():
            found[side].append((cpu_clock(pid) - before[side]) * 1000 / took)
    return found


def report(times: dict[str, list[float]], base: str) -> None:
    direct = percentile(times["direct"], 0.5)
    print(f"time to first content, ms ({len(times['direct'])} streams per side)")
    print(f"{'side':24s} {'p25':>7s} {'p50':>7s} {'p75':>7s} {'added p50':>10s}")
    for side, values in times.items():
        p25, p50, p75 = (percentile(values, q) for q in (0.25, 0.5, 0.75))
        added = "" if side == "direct" else f"{p50 - direct:+.3f}"
        print(f"{side_name(side, base):24s} {p25:7.3f} {p50:7.3f} {p75:7.3f} {added:>10s}")
    tree, was = percentile(times["tree"], 0.5), percentile(times["base"], 0.5)
    print(f"working tree - base, p50: {tree - was:+.3f} ms ({tree / was:.3f}x)")


def side_name(side: str, base: str) -> str:
    return {"base": f"base ({base})", "tree": "working tree"}.get(side, side)


def report_hosted(kind: str, timed: Timed, base: str) -> None:
    """One kind's hosted calls: quartiles of each side to first content and to the end of
    the stream, and working tree ÷ base at the median."""
    sent = ", ".join(f"{side} {timed.sent[side]}" for side in timed.sent)
    called = ", ".join(f"{side} {timed.called[side]}" for side in timed.called)
    print(
        f"\nhosted {kind}: streamed POST /v1/responses, one call each "
        f"({len(timed.results['tree'])} timed per side; requests {sent}; calls {called})"
    )
    print(f"{'ms':24s} {'side':24s} {'p25':>7s} {'p50':>7s} {'p75':>7s}")
    ratios = []
    for of, label in (("ttfc", "to first content"), ("duration", "to response.completed")):
        for side in timed.results:
            values = timed.ms(side, of)
            p25, p50, p75 = (percentile(values, q) for q in (0.25, 0.5, 0.75))
            print(f"{label:24s} {side_name(side, base):24s} {p25:7.3f} {p50:7.3f} {p75:7.3f}")
            label = ""
        tree, was = (percentile(timed.ms(side, of), 0.5) for side in ("tree", "base"))
        ratios.append(f"{'first content' if of == 'ttfc' else 'completed'} {tree / was:.3f}x")
    print(f"working tree / base, p50: {', '.join(ratios)}")


def missed_calls(kind: str, timed: Timed) -> list[str]:
    """Why a kind's run does not count: a side whose requests did not each call the tool
    once."""
    return [
        f"{kind}, {side}: {timed.called[side]} tool calls for {timed.sent[side]} requests"
        for side in timed.sent
        if timed.called[side] != timed.sent[side]
    ]


def start_servers(
    stack: ExitStack,
    work: Path,
    upstream: Upstream,
    cores: Cores,
    args: argparse.Namespace,
    env: dict[str, str],
    config: str,
) -> dict[str, Parley]:
    """Both servers, ``--base`` exported and the working tree, each on a fresh database,
    with ``env`` and the config file's extra tables ``config``; stopped and their databases
    dropped when ``stack`` closes."""
    base_tree = work / "base-tree"
    base_tree.mkdir()
    export(args.base, base_tree)
    servers: dict[str, Parley] = {}
    for side in ("base", "tree"):
        folder = work / side
        folder.mkdir(exist_ok=True)
        db = BenchDatabase(folder, args.database_url)
        stack.callback(db.drop)
        server = Parley(
            database_url=db.url,
            workdir=folder,
            upstream_url=upstream.url,
            cores=cores,
            extra_config=config,
        )
        server.env.update(env)
        if side == "base":
            server.env["PYTHONPATH"] = str(base_tree)
        servers[side] = server
        stack.callback(server.stop)
        server.start()
    return servers


def stream_times(
    servers: dict[str, Parley], keys: dict[str, str], upstream: Upstream, args: argparse.Namespace
) -> dict[str, list[float]]:
    """The stream phase: each side's time to first content (ms), the direct one's too."""
    model_id = f"text:{args.chunks}:{args.gap_ms:g}"
    targets = {
        side: asyncio.run(target(side, server, keys[side], args, f"fake/{model_id}"))
        for side, server in servers.items()
    }
    direct = {
        "model": model_id,
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    targets["direct"] = Target.post(
        "direct",
        upstream.port,
        "/v1/chat/completions",
        orjson.dumps(direct),
        openai_event,
        Authorization="Bearer sk-fake",
    )
    timed = asyncio.run(measure(targets, args.streams, args.block))
    return {side: timed.ms(side) for side in targets}


def hosted_times(
    servers: dict[str, Parley],
    keys: dict[str, str],
    kinds: dict[str, HostedKind],
    args: argparse.Namespace,
) -> dict[str, Timed]:
    """The hosted phase: each kind's calls through both sides, one kind after the other."""
    found = {}
    for name, kind in kinds.items():
        targets = {
            side: asyncio.run(kind.target(side, server.port, keys[side]))
            for side, server in servers.items()
        }
        found[name] = asyncio.run(measure(targets, args.calls, args.block, kind.calls))
    return found


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        kinds = parse_kinds(args.hosted) if args.hosted else []
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    cores = Cores.pick(not args.no_pin)
    cores.pin_self()  # before the tool services' threads start: they inherit it
    load = os.getloadavg()
    times: dict[str, list[float]] = {}
    hosted: dict[str, Timed] = {}
    idle: dict[str, list[float]] = {}
    cpu = None
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="parley-versions-")))
        services = stack.enter_context(hosted_services(kinds))
        upstream = Upstream(cores, args.chunks)
        stack.callback(upstream.stop)
        env = {name: value for kind in services.values() for name, value in kind.env.items()}
        config = "".join(kind.config for kind in services.values())
        servers = start_servers(stack, work, upstream, cores, args, env, config)
        keys = {side: server.create_user("versions") for side, server in servers.items()}
        try:
            if services:
                hosted = hosted_times(servers, keys, services, args)
            else:
                times = stream_times(servers, keys, upstream, args)
        except RuntimeError:
            for side, server in servers.items():
                print(f"--- {side} server's log\n{server.log()}", file=sys.stderr)
            raise
        idle = measure_idle({s: p.pid for s, p in servers.items()}, args.idle)
        if args.clients:
            cpu_model = f"fake/text:{args.chunks}:{args.cpu_gap_ms:g}"
            cpu_targets = {
                side: asyncio.run(target(side, server, keys[side], args, cpu_model))
                for side, server in servers.items()
            }
            pids = {side: server.pid for side, server in servers.items()}
            cpu = asyncio.run(measure_cpu(cpu_targets, pids, args))
    print(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; {cores.describe()}")
    if times:
        report(times, args.base)
    for kind, timed in hosted.items():
        report_hosted(kind, timed, args.base)
    if idle:
        print(f"CPU while idle, ms per second (median of 3 windows of {args.idle:g} s)")
        for side, values in idle.items():
            print(f"{side:24s} {statistics.median(values):7.2f}")
    if cpu is not None:
        report_cpu(cpu, args)
    missed = [why for kind, timed in hosted.items() for why in missed_calls(kind, timed)]
    for why in missed:
        print(f"error: {why}", file=sys.stderr)
    return 1 if missed else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
