"""What a code interpreter call costs Parley itself, around the sandbox: the engine's side.

    .venv/bin/python bench/code_interpreter_engine.py [--calls 300] [--firsts 20] [--postgres URL]

``engine.hosted.containers.Containers`` on a real database (SQLite in a temporary folder,
and PostgreSQL when ``--postgres`` is given), real sandboxes (bubblewrap, the sandbox
Python ``make`` sets up), the default settings. Side by side in one run:

- **kernel round trip** (the baseline): ``Kernel.run("print(1)")`` on a started kernel,
  what the sandbox itself takes;
- **warm call**: ``Containers.run(container, "print(1)")`` on a container whose Python runs
  here: the container's home claimed, its files checked against the database, its
  ``/mnt/data`` scanned before and after, the kernel's round trip, the result built.
  Parley's own time is the call less its kernel round trip (``Result.took``);
- **first call**: a new container (``container_for``: its row made) and its first
  ``Containers.run``: the sandbox started, then ``print(1)``.

Prints p50/p90 of each, and exits 1 with ``--strict`` when a target is missed: a warm
call's own time p50 ≤ 20 ms, a first call p50 ≤ 300 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path += [str(BENCH.parent)]

from parley.config import Settings  # noqa: E402
from parley.engine.hosted.code_interpreter import Interpreter  # noqa: E402
from parley.engine.hosted.containers import Containers  # noqa: E402
from parley.metrics import Metrics  # noqa: E402
from parley.sandbox.probe import unavailable  # noqa: E402
from parley.store import users  # noqa: E402
from parley.store.db import Database  # noqa: E402

AUTO = Interpreter(None, (), None, False)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=300, help="warm calls (default 300)")
    parser.add_argument("--firsts", type=int, default=20, help="new containers (default 20)")
    parser.add_argument(
        "--postgres", help="a PostgreSQL URL to measure on too (a scratch database)"
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    return parser.parse_args(argv)


def p(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0]


async def measure(url: str, folder: Path, calls: int, firsts: int) -> dict[str, list[float]]:
    settings = Settings(
        database_url=url,
        code_interpreter_dir=folder / "containers",
        files_dir=folder / "files",
        code_interpreter_max_containers=0,
    )
    db = Database(settings.database_url)
    await db.migrate()
    user = await db.write(users.create_user, name="bench")
    containers = Containers(db, settings, Metrics())
    out: dict[str, list[float]] = {"kernel": [], "warm": [], "own": [], "first": []}
    try:
        box = await containers.container_for(AUTO, user_id=user.id, thread_id="warm", key_hash=None)
        await containers.run(box, "print(1)")
        kernel = containers.live[box.id].kernel
        for _ in range(calls):  # alternate: the baseline, then the call
            began = time.perf_counter()
            await kernel.run("print(1)")
            out["kernel"].append((time.perf_counter() - began) * 1000)
            began = time.perf_counter()
            result = await containers.run(box, "print(1)")
            took = time.perf_counter() - began
            assert result.logs == "1\n" and result.error is None, result
            out["warm"].append(took * 1000)
            out["own"].append((took - result.took) * 1000)
        for n in range(firsts):
            began = time.perf_counter()
            made = await containers.container_for(
                AUTO, user_id=user.id, thread_id=f"first-{n}", key_hash=None
            )
            result = await containers.run(made, "print(1)")
            out["first"].append((time.perf_counter() - began) * 1000)
            assert result.logs == "1\n", result
            await containers.forget(made.id)
    finally:
        await containers.aclose()
        await db.dispose()
    return out


def report(name: str, out: dict[str, list[float]]) -> list[str]:
    rows = [f"{name}:"]
    for key, label in (
        ("kernel", "kernel round trip (baseline)"),
        ("warm", "warm call, all of it"),
        ("own", "warm call, Parley's own time"),
        ("first", "first call of a new container"),
    ):
        values = out[key]
        rows.append(
            f"  {label:34} p50 {statistics.median(values):7.2f} ms   p90 {p(values, 90):7.2f} ms"
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    why = unavailable()
    if why is not None:
        print(f"no sandbox here: {why}", file=sys.stderr)
        return 1
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        results["SQLite"] = asyncio.run(
            measure(f"sqlite:///{folder / 'bench.db'}", folder / "sqlite", args.calls, args.firsts)
        )
        if args.postgres:
            results["PostgreSQL"] = asyncio.run(
                measure(args.postgres, folder / "postgres", args.calls, args.firsts)
            )
    missed = []
    for name, out in results.items():
        print("\n".join(report(name, out)))
        if statistics.median(out["own"]) > 20:
            missed.append(f"{name}: a warm call's own time")
        if statistics.median(out["first"]) > 300:
            missed.append(f"{name}: a first call")
    if missed:
        print("missed: " + "; ".join(missed))
    return 1 if missed and args.strict else 0


if __name__ == "__main__":
    raise SystemExit(main())
