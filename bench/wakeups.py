"""Hand-offs per stream, and an idle server's: the asyncio tasks ``parley serve`` creates
and the jobs it hands to its database threads, counted (``bench/counted.py``).

Each task and each database job is a wake-up: a task's first step and its end are rounds
of the event loop, a job wakes a database thread and then the loop. A stored turn makes
more of them than a chat completion of the same answer; this counts them per stream, both
ways, at ``--clients`` clients (22 chunks ``--gap-ms`` apart), and then, with ``--idle``,
those of the same server left alone: after its start (``--settle`` seconds on), and after
a load of 2,000 stored and 2,000 chat streams at 100 clients (5 s on). Its CPU while idle
comes beside each (``/proc/PID/task/TID/schedstat``).

    .venv/bin/python bench/wakeups.py [--clients 1] [--streams 40] [--idle 60]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import orjson
from procs import Cores, Parley
from run import run_loop
from turn_profile import Profiler, switched_server, thread_times


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=1)
    p.add_argument("--streams", type=int, default=40, help="streams per face")
    p.add_argument("--gap-ms", type=float, default=20.0)
    p.add_argument("--chunks", type=int, default=22)
    p.add_argument("--idle", type=float, default=0.0, help="seconds of each idle window (0: none)")
    p.add_argument("--settle", type=float, default=10.0, help="seconds after start, unmeasured")
    p.add_argument("--no-pin", action="store_true")
    return p.parse_args(argv)


class Counter:
    def __init__(self, parley: Parley, out: Path) -> None:
        self.parley, self.out = parley, out

    async def window(self, action: Any) -> tuple[dict[str, dict[str, int]], float]:
        """The counts while ``action`` (a coroutine) runs, and its wall seconds."""
        os.kill(self.parley.pid, signal.SIGUSR1)
        await asyncio.sleep(0.2)
        began = time.monotonic()
        await action
        took = time.monotonic() - began
        os.kill(self.parley.pid, signal.SIGUSR2)
        await asyncio.sleep(0.3)
        return orjson.loads(self.out.read_bytes()), took

    async def idle(self, seconds: float) -> tuple[dict[str, dict[str, int]], float]:
        """The counts over ``seconds`` of an idle server, and its CPU in ms a second."""
        before = thread_times(self.parley.pid)
        counts, took = await self.window(asyncio.sleep(seconds))
        after = thread_times(self.parley.pid)
        cpu = sum(after[k] - before.get(k, 0.0) for k in after if ":" not in k)
        return counts, cpu * 1e3 / took


def table(title: str, counts: dict[str, dict[str, dict[str, int]]], per: dict[str, float]) -> str:
    """One row a task or job, one column a face or window: counts ÷ ``per[column]``."""
    lines = [f"\n\n{title}\n", "| " + " | ".join(["", *counts]) + " |"]
    lines.append("|---|" + "---:|" * len(counts))
    for kind in ("tasks", "jobs"):
        names = sorted({n for c in counts.values() for n in c[kind]})
        for name in names:
            cells = [f"{c[kind].get(name, 0) / per[col]:.2f}" for col, c in counts.items()]
            lines.append(f"| {kind[:-1]}: {name} | " + " | ".join(cells) + " |")
        totals = [f"{sum(c[kind].values()) / per[col]:.2f}" for col, c in counts.items()]
        lines.append(f"| **{kind}, all** | " + " | ".join(totals) + " |")
    return "\n".join(lines)


async def measure(args: argparse.Namespace, parley: Parley, key: str, out: Path) -> str:
    profiler = Profiler(
        argparse.Namespace(chunks=args.chunks, gap_ms=args.gap_ms), parley, key, out
    )
    await profiler.prepare()
    counter = Counter(parley, out)
    faces: dict[str, dict[str, dict[str, int]]] = {}
    for face in ("chat", "stored"):
        target = profiler.targets[face]
        faces[face], _ = await counter.window(profiler._drive(target, args.clients, args.streams))
    report = table(
        f"Per stream ({args.clients} client(s), {args.chunks} chunks {args.gap_ms:g} ms apart, "
        f"{args.streams} streams a face)",
        faces,
        {face: args.streams for face in faces},
    )
    if args.idle:
        windows, cpu = {}, {}
        windows["idle after start"], cpu["idle after start"] = await counter.idle(args.idle)
        for face in ("stored", "chat"):
            await profiler._drive(profiler.targets[face], 100, 2000)
        await asyncio.sleep(5.0)
        windows["idle after load"], cpu["idle after load"] = await counter.idle(args.idle)
        report += table(
            f"Per second of an idle server ({args.idle:g} s windows)",
            windows,
            {w: args.idle for w in windows},
        )
        report += "\n\n" + ", ".join(f"{w}: {c:.2f} ms of CPU a second" for w, c in cpu.items())
    return report


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cores = Cores.pick(not args.no_pin)
    cores.pin_self()
    with switched_server(cores, args.chunks, None, "counts.json", "counted.py") as server:
        parley, key, out = server
        time.sleep(args.settle)
        report = run_loop(measure(args, parley, key, out))
    print(f"# Tasks and database jobs; SQLite; {cores.describe()}")
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
