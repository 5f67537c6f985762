"""What the garbage collector costs a stream: its passes, their CPU and the longest stall
of the event loop, by generation, for a stored turn and for a chat completion of the same
answer on one server; and the objects each leaves in reference cycles, which only a pass
frees (a cycle keeps everything it reaches for the collector: a turn's run, context and
events).

    .venv/bin/python bench/collector.py [--clients 50] [--streams 900] [--rounds 3]

Each face runs ``--streams`` streams of 22 chunks ``--gap-ms`` apart at ``--clients``
clients, ``--rounds`` times in turn, after an untimed wave of each; the server runs under
``bench/collected.py``. The server's CPU per stream (``/proc/PID/stat``) comes beside
each round.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Any

from procs import Cores, cpu_seconds
from run import run_loop
from turn_profile import Profiler, switched_server
from wakeups import Counter


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--streams", type=int, default=900, help="streams per face and round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--gap-ms", type=float, default=20.0)
    p.add_argument("--chunks", type=int, default=22)
    p.add_argument("--no-pin", action="store_true")
    return p.parse_args(argv)


async def measure(args: argparse.Namespace, profiler: Profiler) -> list[dict[str, Any]]:
    await profiler.prepare()
    parley = profiler.parley
    window = Counter(parley, profiler.out).window
    for face in ("chat", "stored"):
        await profiler._drive(profiler.targets[face], args.clients, args.clients * 4)

    async def drive(row: dict[str, Any]) -> None:
        """``row["face"]``'s streams, with the server's CPU seconds over them."""
        cpu = cpu_seconds(parley.pid)
        await profiler._drive(profiler.targets[row["face"]], args.clients, args.streams)
        row["cpu"] = cpu_seconds(parley.pid) - cpu

    rounds = []
    for _ in range(args.rounds):
        for face in ("chat", "stored"):
            row: dict[str, Any] = {"face": face}
            found, _ = await window(drive(row))
            rounds.append({**row, **found})
    return rounds


def report(args: argparse.Namespace, rounds: list[dict[str, Any]]) -> str:
    n = args.streams
    lines = [
        f"Per stream ({args.clients} clients, {args.chunks} chunks {args.gap_ms:g} ms apart, "
        f"{n} streams a face and round; median of {args.rounds} rounds)",
        "",
        "| | chat | stored |",
        "|---|---:|---:|",
    ]

    def row(name: str, value: Any, fmt: str) -> None:
        cells = []
        for face in ("chat", "stored"):
            values = [value(r) for r in rounds if r["face"] == face]
            cells.append(fmt % statistics.median(values))
        lines.append(f"| {name} | {' | '.join(cells)} |")

    row("server CPU, ms", lambda r: r["cpu"] * 1e3 / n, "%.2f")
    for gen in range(3):
        row(
            f"passes of generation {gen}, per 1,000 streams",
            lambda r, g=gen: sum(1 for p in r["passes"] if p[0] == g) * 1000 / n,
            "%.1f",
        )
    row("the passes' CPU, ms", lambda r: sum(p[1] for p in r["passes"]) * 1e3 / n, "%.3f")
    row(
        "longest pass (the loop stalled), ms",
        lambda r: max([p[2] for p in r["passes"]] or [0.0]) * 1e3,
        "%.1f",
    )
    row(
        "objects left in reference cycles (freed by a pass)",
        lambda r: (sum(p[3] for p in r["passes"]) + r["left"]) / n,
        "%.1f",
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cores = Cores.pick(not args.no_pin)
    cores.pin_self()
    with switched_server(cores, args.chunks, None, "collected.json", "collected.py") as server:
        parley, key, out = server
        time.sleep(3.0)
        profiler = Profiler(
            argparse.Namespace(chunks=args.chunks, gap_ms=args.gap_ms), parley, key, out
        )
        rounds = run_loop(measure(args, profiler))
    print(f"# The garbage collector; SQLite; {cores.describe()}")
    print(report(args, rounds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
