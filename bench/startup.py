"""Start time and idle memory of ``parley serve``, two versions side by side in one run:
spawn → healthy (from spawning the process to its first 200 on ``GET /healthz``), the CPU
time the server spent until then (steadier than wall time on a busy machine), and its
resident memory after that one health check.

    .venv/bin/python bench/startup.py [--base REV] [--restarts 15] [--bytecode both]

Each side serves a copy of the ``parley`` package from a temporary folder (``PYTHONPATH``):
``--base`` (default ``HEAD``) exported with ``git archive`` (``versions.export``), the
working tree (or ``--tree DIR``'s package) copied as it is. Each copy has its own SQLite
file, brought to its newest revision first by its own ``parley users create``: every start
is a restart on an existing database. ``--bytecode source`` leaves the copies without
``.pyc`` files, so that our modules compile at every start, as they do from a checkout under
``PYTHONDONTWRITEBYTECODE``; ``compiled`` byte-compiles them first (``compileall``, as
``make``'s install step does); ``both`` (default) serves each version both ways. A restart:
spawn, poll ``/healthz`` every 5 ms, wait ``--settle`` seconds, read ``VmRSS`` and the
threads from ``/proc``, stop. One untimed start of every side first, then the sides take
turns, in an order that flips every round; the servers run on the first CPU, this process on
the second. ``--floor`` adds a side with the libraries alone: a one-route FastAPI app on the
same SQLite file under uvicorn, what no version of Parley can go below without dropping one.
Prints the quartiles of each number per side and the differences; writes
``bench/results/startup.json``. See bench/README.md.
"""

from __future__ import annotations

import argparse
import compileall
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from procs import BENCH, ROOT, BenchDatabase, Cores, Parley, Program, cpu_clock, proc_status
from report import percentile, write_json
from versions import export

MODES = {"both": ("source", "compiled"), "source": ("source",), "compiled": ("compiled",)}
#: The ``--floor`` program (``DATABASE_URL --port PORT``): the server's libraries, a
#: database connection and one route.
FLOOR = """
import sys
import pydantic_settings, sqlalchemy, uvicorn
from fastapi import FastAPI

engine = sqlalchemy.create_engine(sys.argv[1])
with engine.connect() as conn:
    conn.exec_driver_sql("SELECT 1")
app = FastAPI()


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


uvicorn.run(app, port=int(sys.argv[3]), log_level="warning", access_log=False)
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base", default="HEAD", help="the commit to compare the working tree with")
    p.add_argument("--tree", type=Path, default=ROOT, help="serve DIR/parley, not the tree's")
    p.add_argument("--restarts", type=int, default=15, help="timed starts of every side")
    p.add_argument("--bytecode", choices=tuple(MODES), default="both")
    p.add_argument("--settle", type=float, default=1.0, help="seconds idle before RSS is read")
    p.add_argument("--floor", action="store_true", help="add the libraries alone as a side")
    p.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    p.add_argument("--output", type=Path, default=BENCH / "results" / "startup.json")
    return p.parse_args(argv)


@dataclass(slots=True)
class Side:
    """One version of Parley, with or without bytecode (or the floor), and what its starts
    measured."""

    version: str  # "base", "tree" or "floor"
    mode: str  # "source" or "compiled" ("libraries" for the floor)
    server: Parley | Program
    spawn_s: list[float] = field(default_factory=list)
    cpu_s: list[float] = field(default_factory=list)
    rss_mib: list[float] = field(default_factory=list)
    threads: list[int] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.version}/{self.mode}"


def copy_tree(tree: Path, into: Path) -> None:
    """``tree``'s ``parley`` package, uncommitted changes and all, under ``into``."""
    shutil.copytree(tree / "parley", into / "parley", ignore=shutil.ignore_patterns("__pycache__"))


def prepare(args: argparse.Namespace, work: Path, cores: Cores) -> list[Side]:
    """Every side's copy of the package, its database, and its server (not started)."""
    sides = []
    for version in ("base", "tree"):
        for mode in MODES[args.bytecode]:
            folder = work / f"{version}-{mode}"
            (folder / "code").mkdir(parents=True)
            if version == "base":
                export(args.base, folder / "code")
            else:
                copy_tree(args.tree, folder / "code")
            if mode == "compiled":
                compileall.compile_dir(folder / "code" / "parley", quiet=1)
            db = BenchDatabase(folder, None)
            server = Parley(
                database_url=db.url, workdir=folder, upstream_url="http://127.0.0.1:9", cores=cores
            )
            server.env.pop("PYTHONPYCACHEPREFIX", None)
            server.env["PYTHONPATH"] = str(folder / "code")
            server.env["PYTHONDONTWRITEBYTECODE"] = "1"  # "source" stays source
            server.create_user("startup")  # the database at this version's newest revision
            sides.append(Side(version, mode, server))
    if args.floor:
        db = BenchDatabase(work, None)
        command = [sys.executable, "-c", FLOOR, db.url]
        floor = Program("the floor program", command, "/healthz", cores, work / "floor.log")
        sides.append(Side("floor", "libraries", floor))
    return sides


def measure(sides: list[Side], restarts: int, settle: float) -> None:
    for number in range(restarts + 1):
        for side in sides if number % 2 else reversed(sides):
            spawn = side.server.start()
            cpu = cpu_clock(side.server.pid)
            time.sleep(settle)
            now = proc_status(side.server.pid, "VmRSS", "Threads")
            side.server.stop()
            if number == 0:  # untimed: the files are in the page cache from now on
                continue
            side.spawn_s.append(spawn)
            side.cpu_s.append(cpu)
            side.rss_mib.append(now["VmRSS"] / 1024)
            side.threads.append(now["Threads"])


def summary(sides: list[Side]) -> dict[str, dict[str, float]]:
    out = {}
    for side in sides:
        out[side.name] = {
            **{f"spawn_p{q}_s": percentile(side.spawn_s, q / 100) for q in (25, 50, 75)},
            "cpu_p50_s": percentile(side.cpu_s, 0.5),
            **{f"rss_p{q}_mib": percentile(side.rss_mib, q / 100) for q in (25, 50, 75)},
            "threads_p50": percentile([float(t) for t in side.threads], 0.5),
        }
    return out


def report(sides: list[Side], table: dict[str, dict[str, float]], args: argparse.Namespace) -> None:
    names = {"base": f"base ({args.base})", "tree": "working tree", "floor": "floor"}
    print(f"parley serve, SQLite, existing database: {len(sides[0].spawn_s)} restarts per side")
    print(
        f"{'side':28s} {'spawn → healthy, s':>20s}  {'CPU, s':>6s}  "
        f"{'RSS after /healthz, MiB':>23s}  threads"
    )
    quartiles = " ".join(f"{q:>6s}" for q in ("p25", "p50", "p75"))
    print(f"{'':28s} {quartiles}  {'p50':>6s}  {quartiles.replace('  p', '   p')}")
    for side in sides:
        row = table[side.name]
        spawns = " ".join(f"{row[f'spawn_p{q}_s']:6.3f}" for q in (25, 50, 75))
        rsses = " ".join(f"{row[f'rss_p{q}_mib']:7.1f}" for q in (25, 50, 75))
        title = f"{names[side.version]}, {side.mode}"
        print(f"{title:28s} {spawns}  {row['cpu_p50_s']:6.3f}  {rsses}  {row['threads_p50']:7.0f}")
    pairs = [(f"base/{m}", f"tree/{m}", f"both {m}") for m in MODES[args.bytecode]]
    if args.bytecode == "both":
        pairs.append(("base/source", "tree/compiled", "base from source, tree compiled"))
    for before, after, what in pairs:
        a, b = table[after], table[before]
        spawn, cpu = a["spawn_p50_s"] - b["spawn_p50_s"], a["cpu_p50_s"] - b["cpu_p50_s"]
        rss = a["rss_p50_mib"] - b["rss_p50_mib"]
        print(
            f"working tree - base ({what}), p50: spawn {spawn * 1000:+.0f} ms, "
            f"CPU {cpu * 1000:+.0f} ms, RSS {rss:+.1f} MiB"
        )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cores = Cores.pick(not args.no_pin)
    cores.pin_self()
    with tempfile.TemporaryDirectory(prefix="parley-startup-") as tmp:
        sides = prepare(args, Path(tmp), cores)
        try:
            measure(sides, args.restarts, args.settle)
        finally:
            for side in sides:
                side.server.stop()
    table = summary(sides)
    report(sides, table, args)
    results: dict[str, Any] = {
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "pinning": cores.describe(),
        "raw": {
            s.name: {
                "spawn_s": s.spawn_s,
                "cpu_s": s.cpu_s,
                "rss_mib": s.rss_mib,
                "threads": s.threads,
            }
            for s in sides
        },
        "summary": table,
    }
    write_json(args.output, results)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
