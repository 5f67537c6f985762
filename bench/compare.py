"""Head-to-head: Parley against LiteLLM's proxy and a bare relay, on the same fake upstream,
side by side in one run.

    .venv/bin/python bench/run.py --compare litellm,relay [--quick] [--rounds 3]
    .venv/bin/python bench/compare.py --compare litellm,relay [--quick]   (the same)

Starts the fake upstream and ``parley serve`` as ``bench/run.py`` does (a fresh database),
then the bare relay (``bench/relay.py``) and LiteLLM's proxy (a pinned version, installed on
first use into ``bench/.venvs/litellm``; skipped with a note when it cannot be installed),
every server on the first CPU, the load client and the upstream on the second. Sides: the
upstream itself (direct), the relay, Parley's chat gateway (``POST /v1/chat/completions``),
Parley's stored turn (``POST /v1/process``) and LiteLLM (``POST /v1/chat/completions``).
Per chunk gap (0 and 20 ms), each side in turn, the order rotating every round: time to
first token at 1 client and the server's CPU per stream at 1 and at N (50) clients; then
streams/s at 100 clients with no gap; idle RSS (before the rounds) and CPU (after them, once
the servers settled); spawn to healthy. Prints one table, each value with its ratio to the
bare relay, and a markdown copy; writes JSON to ``bench/results/compare.json``. See
``bench/README.md``.

``--transport-at NAME=REV`` adds a second ``parley serve`` of this tree on the same database,
its upstream HTTP transport (``parley/providers/transport.py`` and the modules beside it,
``compare_servers.TRANSPORT_FILES``) taken from git revision ``REV``: two more sides,
Parley chat (NAME) and Parley stored (NAME).

``--postgres URL`` adds a second ``parley serve`` of this tree on a fresh database on that
PostgreSQL server (dropped afterwards): one more side, Parley stored (PostgreSQL), and a
column of its ratio to Parley stored on SQLite. The ``stored ÷ chat`` column gives, for
every row both have, Parley stored against Parley chat on the same server: what storing a
turn costs.

``--sweep 1,10,50,100`` adds the server's CPU per stream of every side at these client
counts (chunks ``--sweep-gap-ms`` 20 ms apart): one more table, and a ``sweep`` section in
the JSON that ``bench/plots.py`` draws.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import os
import statistics
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
from compare_servers import (
    LITELLM_KEY,
    LITELLM_VERSION,
    ensure_litellm,
    litellm,
    parley_at,
    parley_on,
    relay,
    tree_cpu,
    tree_rss_mib,
)
from loadclient import (
    CONTENT,
    DONE,
    FAILED,
    OTHER,
    Target,
    drive,
    open_connections,
    parley_event,
    problem_counts,
    spread,
)
from procs import BENCH, BenchDatabase, Cores, Parley, Program, Upstream, create_user
from report import (
    clients_text,
    markdown_table,
    percentile,
    report_stream_errors,
    text_table,
    write_json,
)
from run import (
    ServerBench,
    add_server_options,
    print_server_log,
    run_loop,
    run_measurement,
    serving,
    timed_rounds,
)

#: Every side, in the table's order; the ones named by ``--compare`` are optional.
SIDES = ("direct", "relay", "chat", "stored", "litellm")
OPTIONAL = ("litellm", "relay")
#: Each kind of side's name in the tables (LiteLLM's adds its version; ``title``).
TITLES = {
    "direct": "direct (upstream)",
    "relay": "bare relay",
    "chat": "Parley chat",
    "stored": "Parley stored",
    "parley": "Parley",
    "stored@pg": "Parley stored (PostgreSQL)",
    "litellm": "LiteLLM",
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/compare.py", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--compare",
        default="litellm,relay",
        help="the other servers, comma-separated: litellm, relay (default both)",
    )
    p.add_argument(
        "--litellm-version",
        default=LITELLM_VERSION,
        help=f"the litellm[proxy] to install into bench/.venvs/litellm (default {LITELLM_VERSION})",
    )
    p.add_argument(
        "--transport-at",
        default="",
        metavar="NAME=REV,...",
        help="also Parley with the upstream HTTP transport of these git revisions, "
        "e.g. lean=66f7d50 (the hand-written HTTP/1.1 client)",
    )
    p.add_argument(
        "--postgres",
        metavar="URL",
        help="also Parley stored on a fresh database on this PostgreSQL server",
    )
    p.add_argument("--quick", action="store_true", help="a smoke run (about a minute)")
    p.add_argument("--rounds", type=int, default=3, help="rounds of every phase (median shown)")
    p.add_argument("--chunks", type=int, default=22, help="content chunks per stream")
    p.add_argument("--gaps", default="0,20", help="chunk gaps in ms, comma-separated")
    p.add_argument("--clients", type=int, default=50, help="concurrent clients, CPU phase")
    p.add_argument(
        "--load-clients", type=int, default=100, help="concurrent clients, streams/s (0 ms gap)"
    )
    p.add_argument(
        "--seconds-1",
        type=float,
        default=4.0,
        help="about this long per side, gap and round at 1 client (sets each side's count)",
    )
    p.add_argument("--streams-1-max", type=int, default=200, help="at most, at 1 client")
    p.add_argument(
        "--seconds-n",
        type=float,
        default=2.5,
        help="about this long per side and round at N clients (at least 2, at most "
        "--max-waves streams per client)",
    )
    p.add_argument("--max-waves", type=int, default=20, help="N-client phases: at most N x this")
    p.add_argument("--warmup", type=int, default=20, help="untimed streams per side and gap")
    p.add_argument("--startup-samples", type=int, default=1, help="timed restarts of each server")
    p.add_argument(
        "--sweep",
        default="",
        metavar="CLIENTS",
        help="also server CPU per stream at these client counts, e.g. 1,10,50,100 "
        "(at --sweep-gap-ms; JSON for bench/plots.py)",
    )
    p.add_argument("--sweep-gap-ms", type=float, default=20.0, help="chunk gap of --sweep")
    add_server_options(p, "compare.json")
    args = p.parse_args(argv)
    args.gaps = [float(g) for g in args.gaps.split(",") if g.strip()]
    args.compare = [n.strip() for n in args.compare.split(",") if n.strip()]
    unknown = set(args.compare) - set(OPTIONAL)
    if unknown:
        p.error(f"--compare: unknown {sorted(unknown)}; choose from {', '.join(OPTIONAL)}")
    pairs = [item.strip().partition("=") for item in args.transport_at.split(",") if item.strip()]
    if any(not name or not rev or "@" in name for name, _, rev in pairs):
        p.error("--transport-at: give NAME=REV pairs, e.g. lean=66f7d50")
    args.transport_at = {name: rev for name, _, rev in pairs}
    if args.quick:
        args.rounds, args.seconds_1, args.streams_1_max = 1, 0.5, 20
        args.clients, args.load_clients, args.seconds_n, args.max_waves = 20, 40, 0.5, 4
        args.warmup, args.startup_samples = 5, 0
    if args.output is None:
        args.output = BENCH / "results" / ("compare-quick.json" if args.quick else "compare.json")
    args.sweep = _sweep_clients(p, args)
    return args


def title(side: str, args: argparse.Namespace) -> str:
    """A side's name in the tables: ``litellm`` is "LiteLLM" and ``--litellm-version``,
    ``chat@lean`` (the Parley of ``--transport-at lean=REV``) "Parley chat (lean)"."""
    if side in TITLES:
        return TITLES[side]
    kind, _, variant = side.partition("@")
    name = f"LiteLLM {args.litellm_version}" if kind == "litellm" else TITLES[kind]
    return f"{name} ({variant})" if variant else name


def chat_event(event: bytes) -> int:
    """Kind of a Chat Completions SSE event, read the same way for every side: content is a
    chunk with a non-empty ``delta.content``; a chunk with an ``error`` fails the stream."""
    event = event.strip()
    if not event.startswith(b"data:"):
        return OTHER
    data = event[5:].strip()
    if data == b"[DONE]":
        return DONE
    chunk = orjson.loads(data)
    if "error" in chunk:
        return FAILED
    choices = chunk.get("choices") or ()
    return CONTENT if choices and (choices[0].get("delta") or {}).get("content") else OTHER


# ---------------------------------------------------------------------------- phases


def _model(args: argparse.Namespace, gap: float) -> str:
    return f"text:{args.chunks}:{gap:g}"


def _all_gaps(args: argparse.Namespace) -> list[float]:
    """The gaps measured, and 0 ms for the streams/s phase."""
    return sorted({*args.gaps, 0.0})


def _phases(args: argparse.Namespace) -> list[tuple[str, float, int]]:
    """(name, gap, clients) of every phase, in running order."""
    phases = []
    for gap in args.gaps:
        phases += [(f"{gap:g}ms/c1", gap, 1), (f"{gap:g}ms/cN", gap, args.clients)]
    phases.append(("load", 0.0, args.load_clients))
    return phases + [s for s in _sweep_phases(args).values() if s not in phases]


class Compare(ServerBench[str]):
    """By side, by chunk gap: the prepared request, and the process whose CPU counts."""

    def __init__(
        self,
        args: argparse.Namespace,
        upstream: Upstream,
        parley: Parley,
        key: str,
        others: dict[str, Program],
    ) -> None:
        super().__init__(args, upstream, parley, key)
        self.others = others
        self.sides = [s for s in SIDES if s not in OPTIONAL or s in others]
        self.pids = {"direct": upstream.pid, "chat": parley.pid, "stored": parley.pid}
        self.pids |= {side: program.pid for side, program in others.items() if side in SIDES}
        #: The Parleys of ``--transport-at``, by name (``others["parley@NAME"]``).
        self.variants = {
            k.removeprefix("parley@"): p for k, p in others.items() if k.startswith("parley@")
        }
        #: The API key of each Parley server, by variant ("": the bench's own).
        self.keys = {name: key for name in ["", *self.variants]}
        for name, program in self.variants.items():
            at = self.sides.index("stored") + 1
            if name == "pg":  # the same code on PostgreSQL: only the stored turn differs
                self.sides[at:at] = ["stored@pg"]
                self.pids["stored@pg"] = program.pid
                self.keys["pg"] = program.key
                continue
            self.sides[at:at] = [f"chat@{name}", f"stored@{name}"]
            self.pids[f"chat@{name}"] = self.pids[f"stored@{name}"] = program.pid
        #: Streams per round, by side and phase (from a short calibration).
        self.counts: dict[str, dict[str, int]] = {}

    async def prepare(self) -> None:
        """Every side's requests; a warm-up; how many sequential streams fit the time."""
        for side in self.sides:
            self.targets[side] = {}
        servers = {"": self.parley.base_url}
        servers |= {name: f"http://127.0.0.1:{p.port}" for name, p in self.variants.items()}
        for gap in _all_gaps(self.args):
            model = _model(self.args, gap)
            stored: dict[str, bytes] = {}  # each server's own assistant
            for name, url in servers.items():
                async with httpx.AsyncClient(base_url=url, timeout=30) as http:
                    http.headers["Authorization"] = f"Bearer {self.keys[name]}"
                    made = await http.post(
                        "/v1/assistants",
                        json={"name": f"bench-{gap:g}", "model": f"fake/{model}"},
                    )
                    made.raise_for_status()
                body = {"assistant_id": made.json()["id"], "content": "hi"}
                stored[name] = orjson.dumps(body)
            for side in self.sides:
                variant = side.partition("@")[2]
                self.targets[side][f"{gap:g}"] = self._target(side, model, stored[variant])
        for side in self.sides:
            for gap in _all_gaps(self.args):
                await self.warm(self.targets[side][f"{gap:g}"])
            self.counts[side] = {
                name: await self._count(side, gap, clients)
                for name, gap, clients in _phases(self.args)
            }
        await self.upstream_call("POST", "/_reset")

    async def _count(self, side: str, gap: float, clients: int) -> int:
        """How many streams fill a phase's time (``--seconds-1`` / ``--seconds-n``) on this
        side, from a few streams (1 client) or one wave (N clients) sent first."""
        args, target = self.args, self.targets[side][f"{gap:g}"]
        probe = 3 if clients == 1 else clients
        connections = await open_connections(target.port, clients)
        stagger = spread(args.chunks, gap, clients)
        load = await drive(connections, target, probe, stagger_s=stagger)
        if load.failures:
            raise RuntimeError(f"calibration failed ({side}): {problem_counts(load.results)}")
        rate = probe / load.wall
        if clients == 1:
            low, high, seconds = 5, int(args.streams_1_max), float(args.seconds_1)
        else:
            low, high, seconds = 2 * clients, int(args.max_waves) * clients, float(args.seconds_n)
        return max(low, min(high, round(rate * seconds)))

    def _target(self, side: str, model: str, stored: bytes) -> Target:
        """A side's request: Parley stored's turn (``stored``) or a streamed chat completion
        of ``model`` (``fake/model`` through Parley)."""
        kind, _, variant = side.partition("@")
        parley_port = self.variants[variant].port if variant else self.parley.port
        auth = f"Bearer {self.keys[variant]}"
        if kind == "stored":
            return Target.post(
                side, parley_port, "/v1/process", stored, parley_event, Authorization=auth
            )
        if side == "direct":
            port, auth = self.upstream.port, "Bearer sk-fake"
        elif kind == "chat":
            port, model = parley_port, f"fake/{model}"
        else:
            port = self.others[side].port
            auth = f"Bearer {LITELLM_KEY}" if side == "litellm" else "Bearer none"
        chat = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": True}
        path = "/v1/chat/completions"
        return Target.post(side, port, path, orjson.dumps(chat), chat_event, Authorization=auth)

    async def phase(self, side: str, name: str, gap: float, clients: int) -> dict[str, Any]:
        """One side's streams at ``clients`` connections, their starts spread over one
        stream's length; the server's CPU (with its children) over the phase."""
        target, pid = self.targets[side][f"{gap:g}"], self.pids[side]
        total = self.counts[side][name]
        connections = await open_connections(target.port, clients)
        stagger = spread(self.args.chunks, gap, clients)
        cpu0, own0 = tree_cpu(pid), time.process_time()
        load = await drive(connections, target, total, stagger_s=stagger)
        cpu, own = tree_cpu(pid) - cpu0, time.process_time() - own0
        await self.upstream_call("POST", "/_reset")
        good = [r for r in load.results if r.ok]
        return {
            "streams": total,
            "failures": total - len(good),
            "problems": problem_counts(load.results),
            "content_events_min": min((r.content_events for r in good), default=0),
            "wall_s": load.wall,
            "streams_per_s": total / load.wall,
            "cpu_ms_per_stream": cpu * 1000 / total,
            "server_busy": cpu / load.wall,
            "client_cpu_ms_per_stream": own * 1000 / total,
            "first_token_ms": [round(r.ttfc * 1000, 4) for r in good] if clients == 1 else [],
        }

    async def one_round(self, number: int) -> dict[str, Any]:
        """Every phase, each side in turn; the sides' order rotates every round."""
        shift = number % len(self.sides)
        order = self.sides[shift:] + self.sides[:shift]
        measured: dict[str, Any] = {}
        for name, gap, clients in _phases(self.args):
            measured[name] = {side: await self.phase(side, name, gap, clients) for side in order}
        return measured

    def rss(self) -> dict[str, float]:
        """Each server's resident memory, in MiB."""
        return {side: tree_rss_mib(pid) for side, pid in self.pids.items()}

    async def idle_cpu(self, settle: float, seconds: float) -> dict[str, float]:
        """Each server's CPU per second over ``seconds`` of doing nothing, read once
        ``settle`` seconds of quiet have let the work of the last streams (their runs'
        ends, checkpoints) and of start-up finish."""
        await asyncio.sleep(settle)
        cpu0 = {side: tree_cpu(pid) for side, pid in self.pids.items()}
        await asyncio.sleep(seconds)
        return {
            side: (tree_cpu(pid) - cpu0[side]) * 1000 / seconds for side, pid in self.pids.items()
        }


def _idle_window(args: argparse.Namespace) -> tuple[float, float]:
    """Seconds of quiet before the idle CPU is read, and seconds it is read over: several
    rounds of an idle server's looks at its database (every 4 to 5 s each)."""
    return (1.0, 1.0) if args.quick else (5.0, 20.0)


async def _run(bench: Compare) -> dict[str, Any]:
    rss = bench.rss()
    await bench.prepare()
    rounds = await timed_rounds(bench.args.rounds, bench.one_round)
    after = bench.rss()
    cpu = await bench.idle_cpu(*_idle_window(bench.args))
    return {
        "rounds": rounds,
        "idle": {"rss_mib": rss, "cpu_ms_per_s": cpu},
        "rss_after_mib": after,
        "counts": bench.counts,
    }


# ------------------------------------------------------------------------ processes


def _start(program: Program, restarts: int) -> list[float]:
    """Spawn the program, then restart it ``restarts`` times: every spawn-to-healthy time."""
    times = [program.start()]
    for _ in range(restarts):
        program.stop()
        times.append(program.start())
    return times


@contextlib.contextmanager
def others_running(
    args: argparse.Namespace,
    cores: Cores,
    upstream: Upstream,
    parley: Parley,
    workdir: Path,
    notes: list[str],
) -> Iterator[tuple[dict[str, Program], dict[str, list[float]]]]:
    """The relay and LiteLLM (those in ``--compare``) and the Parleys of ``--transport-at``
    (``parley@NAME``) started and timed; one that does not start is left out with a note.
    Stops them at the end."""
    made: dict[str, Program] = {}
    for name, revision in args.transport_at.items():
        made[f"parley@{name}"] = parley_at(name, revision, cores, parley.env, workdir)
    pg: BenchDatabase | None = None
    if args.postgres:
        pg = BenchDatabase(workdir, args.postgres)
        made["parley@pg"] = parley_on(pg.url, cores, parley.env, workdir)
    if "relay" in args.compare:
        made["relay"] = relay(cores, upstream.url, workdir)
    if "litellm" in args.compare:
        models = [_model(args, gap) for gap in _all_gaps(args)]
        made["litellm"] = litellm(cores, upstream.url, models, workdir)
    running: dict[str, Program] = {}
    spawn: dict[str, list[float]] = {}
    try:
        for side, program in made.items():
            try:
                spawn[side] = _start(program, args.startup_samples)
            except RuntimeError as exc:
                program.stop()
                notes.append(f"{title(side, args)} left out: it did not start ({exc})")
                print(notes[-1], file=sys.stderr)
                continue
            if side == "parley@pg":  # its own database: its own user
                parley_cli = [sys.executable, "-m", "parley.cli.main"]
                program.key = create_user(parley_cli, program.env or {})
            running[side] = program
        yield running, spawn
    finally:
        for program in made.values():
            program.stop()
        if pg is not None:
            pg.drop()


def measure(
    args: argparse.Namespace, cores: Cores, db: BenchDatabase, workdir: Path, notes: list[str]
) -> dict[str, Any]:
    with serving(args, cores, workdir, db.url, args.startup_samples) as running:
        upstream, parley, key, startup = running
        with others_running(args, cores, upstream, parley, workdir, notes) as (others, spawn):
            time.sleep(0.2 if args.quick else 1.0)  # let the servers settle: idle memory next
            bench = Compare(args, upstream, parley, key, others)
            measured = run_loop(_run(bench))
            failed = {
                s for r in measured["rounds"] for p in r.values() for s in p if p[s]["failures"]
            }
            # The log of every server behind a side with failed streams, once ("parley@": ours).
            servers = {
                side if side in others else f"parley@{side.partition('@')[2]}": side
                for side in sorted(failed - {"direct"})
            }
            for server, side in servers.items():
                program = others.get(server)
                if program is not None:
                    print(
                        f"--- {title(side, args)} log (tail) ---\n{program.log()}", file=sys.stderr
                    )
                else:
                    print_server_log(parley)
    spawn["chat"] = spawn["stored"] = [startup["cold_s"], *startup["warm_s"]]
    for name in bench.variants:
        times = spawn.pop(f"parley@{name}")
        spawn[f"stored@{name}"] = times
        if name != "pg":
            spawn[f"chat@{name}"] = times
    measured["spawn_s"] = spawn  # every side: the first start, then the restarts
    measured["sides"] = bench.sides
    return measured


# ---------------------------------------------------------------------------- summary


def summarise(measured: dict[str, Any]) -> dict[str, Any]:
    """Per phase and side: first token p50 over all rounds' streams (1 client); the median
    round's CPU per stream and streams/s; failures. Then idle and spawn numbers."""
    rounds = measured["rounds"]
    phases: dict[str, Any] = {}
    for phase in rounds[0]:
        phases[phase] = {}
        for side in measured["sides"]:
            runs = [r[phase][side] for r in rounds]
            firsts = [v for m in runs for v in m["first_token_ms"]]
            phases[phase][side] = {
                "streams": sum(m["streams"] for m in runs),
                "failures": sum(m["failures"] for m in runs),
                "problems": dict(sum((Counter(m["problems"]) for m in runs), Counter[str]())),
                "content_events_min": min(m["content_events_min"] for m in runs),
                "first_token_p50_ms": percentile(firsts, 0.5) if firsts else None,
                "first_token_p95_ms": percentile(firsts, 0.95) if firsts else None,
                "cpu_ms_per_stream": statistics.median(m["cpu_ms_per_stream"] for m in runs),
                "streams_per_s": statistics.median(m["streams_per_s"] for m in runs),
                # Each round's own, for ratios taken round by round (``_Table.add``).
                "cpu_rounds": [m["cpu_ms_per_stream"] for m in runs],
                "streams_per_s_rounds": [m["streams_per_s"] for m in runs],
                "server_busy": statistics.median(m["server_busy"] for m in runs),
                "client_cpu_ms_per_stream": statistics.median(
                    m["client_cpu_ms_per_stream"] for m in runs
                ),
            }
    summary: dict[str, Any] = {"phases": phases}
    summary["idle_rss_mib"] = measured["idle"]["rss_mib"]
    summary["idle_cpu_ms_per_s"] = measured["idle"]["cpu_ms_per_s"]
    summary["rss_after_mib"] = measured["rss_after_mib"]
    summary["spawn_s"] = {  # the restarts' median, or the first start without restarts
        s: statistics.median(v[1:] or v) for s, v in measured["spawn_s"].items()
    }
    return summary


class _Table:
    """Rows of one value per side; every contender's cell also gives its ratio to the
    relay's value (when the relay ran). Two more columns compare sides of Parley: stored
    against chat (what storing a turn costs), and stored on PostgreSQL against stored on
    SQLite (with ``--postgres``): a ratio, or for a time a difference. A ratio of a row
    measured every round is the median of the rounds' own ratios: the two sides of one
    round ran minutes apart at most, so the machine's drift from round to round (the same
    side's CPU moves by a third between runs here) cancels out of it."""

    def __init__(self, sides: list[str], titles: list[str]) -> None:
        self.sides = sides
        #: (column title, side, the side it is set against)
        self.pairs = [("stored ÷ chat", "stored", "chat")]
        if "stored@pg" in sides:
            self.pairs.append(("PostgreSQL ÷ SQLite", "stored@pg", "stored"))
        self.header = ("metric", *titles, *(t for t, _, _ in self.pairs))
        self.rows: list[tuple[str, ...]] = []

    def add(
        self,
        metric: str,
        values: dict[str, float | None],
        fmt: str,
        ratio: bool = True,
        versus: str | None = "ratio",
        rounds: dict[str, list[float]] | None = None,
    ) -> None:
        """A row; ``versus``: how the pair columns set sides against each other ("ratio",
        "difference" in ms, or None: not at all); ``rounds``: each side's value in each
        round, for ratios taken round by round."""
        base = values.get("relay") if "relay" in self.sides else None
        cells = [metric]
        for side in self.sides:
            value = values.get(side)
            if value is None:
                cells.append("—")
                continue
            cell = fmt.format(value)
            if ratio and base and side not in ("direct", "relay"):
                cell += f" ({_ratio(value / base)})"
            cells.append(cell)
        for _, side, other in self.pairs:
            a, b = values.get(side), values.get(other)
            if versus is None or a is None or b is None or (versus == "ratio" and not b):
                cells.append("—")
            elif versus == "ratio" and rounds is not None:
                paired = [x / y for x, y in zip(rounds[side], rounds[other], strict=True) if y]
                cells.append(f"{statistics.median(paired):.2f}x" if paired else "—")
            elif versus == "ratio":
                cells.append(f"{a / b:.2f}x")
            else:
                cells.append(f"{a - b:+.2f} ms")
        self.rows.append(tuple(cells))


def _ratio(value: float) -> str:
    """``0.04x``, ``0.7x``, ``48x``: two significant digits, about."""
    if value >= 10:
        return f"{value:.0f}x"
    return f"{value:.1f}x" if value >= 0.1 else f"{value:.2f}x"


def build_table(args: argparse.Namespace, summary: dict[str, Any], sides: list[str]) -> _Table:
    table, phases = _Table(sides, [title(s, args) for s in sides]), summary["phases"]
    n, load = args.clients, args.load_clients
    for gap in args.gaps:
        c1 = phases[f"{gap:g}ms/c1"]
        floor = c1["direct"]["first_token_p50_ms"]
        added = {s: c1[s]["first_token_p50_ms"] - floor for s in sides if s != "direct"}
        table.add(
            f"added time to first token, p50 (1 client, {gap:g} ms gap)",
            added,
            "+{:.2f} ms",
            versus="difference",
        )
        table.rows[-1] = (table.rows[-1][0], f"{floor:.2f} ms", *table.rows[-1][2:])
    for gap in args.gaps:
        for label, clients in (("c1", 1), ("cN", n)):
            phase = phases[f"{gap:g}ms/{label}"]
            cpu = {s: phase[s]["cpu_ms_per_stream"] for s in sides}
            who = f"{clients_text(clients)}, {gap:g} ms gap"
            per_round = {s: phase[s]["cpu_rounds"] for s in sides}
            table.add(f"server CPU per stream ({who})", cpu, "{:.2f} ms", rounds=per_round)
    phase = phases["load"]
    who = f"{clients_text(load)}, 0 ms gap"
    table.add(
        f"streams/s on one core ({who})",
        {s: phase[s]["streams_per_s"] for s in sides},
        "{:.0f}",
        rounds={s: phase[s]["streams_per_s_rounds"] for s in sides},
    )
    table.add(
        f"server CPU per stream ({who})",
        {s: phase[s]["cpu_ms_per_stream"] for s in sides},
        "{:.2f} ms",
        rounds={s: phase[s]["cpu_rounds"] for s in sides},
    )
    busy = {s: phase[s]["server_busy"] * 100 for s in sides}
    table.add(f"server core busy ({who})", busy, "{:.0f}%", ratio=False, versus=None)
    table.add("RSS, idle", summary["idle_rss_mib"], "{:.1f} MiB", versus=None)
    table.add("RSS, after the rounds", summary["rss_after_mib"], "{:.1f} MiB", versus=None)
    table.add(
        "CPU while idle, per second",
        summary["idle_cpu_ms_per_s"],
        "{:.2f} ms",
        ratio=False,
        versus=None,
    )
    samples = args.startup_samples
    which = f"median of {samples} restart{'s' * (samples > 1)}" if samples else "first start"
    spawn = {s: v for s, v in summary["spawn_s"].items() if s != "direct"}
    table.add(f"spawn → healthy ({which})", spawn, "{:.2f} s", versus=None)
    failed = {s: sum(phase[s]["failures"] for phase in phases.values()) for s in sides}
    table.add("failed streams", failed, "{:.0f}", ratio=False, versus=None)
    return table


def _notes(args: argparse.Namespace, env: dict[str, Any], measured: dict[str, Any]) -> str:
    phases, sides = measured["summary"]["phases"], measured["sides"]
    counts = "; ".join(
        f"{title(s, args)} {', '.join(str(n) for n in measured['counts'][s].values())}"
        for s in sides
    )
    phases_text = ", ".join(
        f"{clients_text(clients)} at {gap:g} ms" for _, gap, clients in _phases(args)
    )
    client = [phases["load"][s]["client_cpu_ms_per_stream"] for s in sides]
    ratios = " In brackets: the ratio to the bare relay." if "relay" in sides else ""
    idle_quiet, idle_read = _idle_window(args)
    text = (
        f"{env['cpu']}; Python {env['python']}; {env['database']}; {env['pinning']}; "
        f"load average before: {env['load_average_before']:.2f}, after: "
        f"{env['load_average_after']:.2f}; CPU steal during the run: {env['steal_share']:.1%}. "
        f"Versions: {env['versions']}.\n"
        f"{args.rounds} round(s), the sides' order rotating every round; {args.chunks} chunks "
        f"per stream. Streams per round ({phases_text}), each side's count set by a short "
        f"calibration to fill about {args.seconds_1:g} s at 1 client and {args.seconds_n:g} s "
        f"at N: {counts}. At N clients the clients' starts spread over one stream's "
        f"length. First token: from writing the request to reading the first chunk with text "
        f"(a content.delta event for Parley stored), p50 over all rounds; added: less the "
        f"direct p50. Server CPU: user + system of the server process and its children over "
        f"the phase ÷ streams, median round (direct: the fake upstream's).{ratios} The pair "
        f"columns of a CPU or streams/s row: the median of the rounds' own ratios (both "
        f"sides measured in the same round). CPU while idle: over {idle_read:g} s, after the "
        f"rounds and {idle_quiet:g} s of quiet. Server "
        f"core busy: the server's CPU seconds ÷ the phase's wall seconds; well under 100% "
        f"means something else (the load client's core, other work on the machine) held the "
        f"streams/s down. Parley chat and Parley stored are one `parley serve` "
        f"({env['database']}; the stored turn writes the run before its `done`), so they share the RSS, "
        f"idle and spawn rows. Load client CPU per stream at {args.load_clients} clients: "
        f"{min(client):.2f} to {max(client):.2f} ms."
    )
    for name, revision in args.transport_at.items():
        if f"chat@{name}" not in sides:
            continue  # it did not start: a note below says so
        text += (
            f"\nParley chat ({name}) and Parley stored ({name}): a second `parley serve` of "
            f"this tree on the same database, with parley/providers/transport.py and the "
            f"modules beside it of git revision {revision}."
        )
    if "stored@pg" in sides:
        text += (
            "\nParley stored (PostgreSQL): a second `parley serve` of this tree on a fresh "
            "database on the `--postgres` server (loopback; its backends are not pinned and "
            "their CPU is not counted, as they would run on a database host of their own)."
        )
    for note in measured["notes"]:
        text += f"\n{note}"
    return text


def _versions(sides: list[str], litellm_version: str) -> str:
    found = [f"aiohttp {importlib.metadata.version('aiohttp')} (relay)"] if "relay" in sides else []
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        found.append(f"uvloop {importlib.metadata.version('uvloop')}")
    if "litellm" in sides:
        found.append(f"litellm[proxy] {litellm_version} (uvicorn, one worker, no database)")
    return ", ".join(found)


# ----------------------------------------------------------------------------- sweep


def _sweep_clients(p: argparse.ArgumentParser, args: argparse.Namespace) -> list[int]:
    """The client counts of ``--sweep``, whose gap must be one of ``--gaps``."""
    clients = sorted({int(n) for n in args.sweep.split(",") if n.strip()})
    if clients and (clients[0] < 1 or args.sweep_gap_ms not in args.gaps):
        p.error("--sweep: client counts of 1 or more, at a --sweep-gap-ms among --gaps")
    return clients


def _sweep_phases(args: argparse.Namespace) -> dict[int, tuple[str, float, int]]:
    """By client count, the phase that measures it: the gap's own 1-client and N-client
    phases where they are the same, one more phase for each other count."""
    gap = args.sweep_gap_ms
    named = {1: f"{gap:g}ms/c1", args.clients: f"{gap:g}ms/cN"}
    return {n: (named.get(n, f"{gap:g}ms/c{n}"), gap, n) for n in args.sweep}


def sweep_results(
    args: argparse.Namespace, summary: dict[str, Any], sides: list[str]
) -> dict[str, Any]:
    """Each side's server CPU per stream and streams/s at every ``--sweep`` client count
    (median rounds): what ``bench/plots.py`` draws."""
    names = [name for name, _, _ in _sweep_phases(args).values()]
    phases = summary["phases"]
    return {
        "gap_ms": args.sweep_gap_ms,
        "chunks": args.chunks,
        "clients": args.sweep,
        "titles": {s: title(s, args) for s in sides},
        **{
            key: {s: [phases[name][s][key] for name in names] for s in sides}
            for key in ("cpu_ms_per_stream", "streams_per_s")
        },
    }


def sweep_table(sweep: dict[str, Any]) -> str:
    sides = list(sweep["cpu_ms_per_stream"])
    rows = [
        (f"{clients}", *(f"{sweep['cpu_ms_per_stream'][s][i]:.2f} ms" for s in sides))
        for i, clients in enumerate(sweep["clients"])
    ]
    header = ("clients", *(sweep["titles"][s] for s in sides))
    return (
        f"Server CPU per stream against concurrent clients ({sweep['chunks']} chunks "
        f"{sweep['gap_ms']:g} ms apart, median round):\n\n{markdown_table(rows, header)}\n"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    notes: list[str] = []
    if "litellm" in args.compare:
        why = ensure_litellm(args.litellm_version)
        if why is not None:
            args.compare.remove("litellm")
            notes.append(f"LiteLLM left out: it could not be installed ({why}).")
            print(notes[-1], file=sys.stderr)
    measured, env = run_measurement(
        args, lambda a, cores, db, workdir: measure(a, cores, db, workdir, notes)
    )
    env["load_average_after"] = os.getloadavg()[0]
    env["versions"] = _versions(measured["sides"], args.litellm_version)
    measured["notes"] = notes
    measured["summary"] = summary = summarise(measured)
    table = build_table(args, summary, measured["sides"])
    text = _notes(args, env, measured)
    if args.sweep:  # server CPU per stream against clients, for bench/plots.py
        measured["sweep"] = sweep_results(args, summary, measured["sides"])
    write_json(args.output, {"environment": env, **measured})
    print(f"{text_table(table.rows, table.header)}\n\n{text}\n")
    print(f"Markdown (for bench/README.md):\n\nCommand: `{env['command']}` ({env['date']})\n")
    print(f"{markdown_table(table.rows, table.header)}\n\n{text}\n")
    if args.sweep:
        print(sweep_table(measured["sweep"]))
    print(f"results: {args.output}")
    failed = report_stream_errors(summary["phases"], measured["sides"], args.chunks, "text chunks")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
