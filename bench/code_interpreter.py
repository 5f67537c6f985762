"""What the code interpreter's sandboxes cost: a new container's first call, a warm call, a
warm call beyond its code's own time, and the memory of idle kernels; with ``--base``, side
by side with an earlier commit.

    .venv/bin/python bench/code_interpreter.py [--base REV] [--rounds 5] [--first 30]
        [--warm 500] [--slow 40] [--idle 50] [--no-cgroup] [--strict]

Everything at the runtime level (``parley.sandbox.runtime.Kernel``), real bubblewrap
sandboxes with the sandbox Python ``parley.sandbox.probe.sandbox_python`` picks (the one at
``.venv/sandbox`` after ``make``), the default limits of ``Settings``:

- **first call**: a new container's ``Kernel.start`` (a fresh directory) and its first
  ``run("print(1)")``, timed together, ``--first`` times (each kernel closed before the
  next; one untimed container first, which pays what a server works out once per process).
- **warm call**: ``run("print(1)")`` on one started kernel, ``--warm`` times: the whole round
  trip (framing, the pipe both ways, the kernel's ``exec``, the reply's checks, and in
  today's tree the code's processes resumed with SIGCONT before and stopped with SIGSTOP
  after), an upper bound of Parley's own time per call.
- **slow call, beyond its code**: ``--slow`` calls on the same kernel whose code sleeps
  50 ms and prints the time it took itself; the round trip less that time is what Parley
  adds to a call that runs for a while (the watch's looks during the call included).
- **idle kernels** (working tree only): ``--idle`` kernels started at once, each having run
  ``print(1)``; their memory from /proc: RSS summed over every process of each sandbox
  (bwrap's two and the Python), and PSS (shared pages split among their users), a closer
  view of what they cost the machine together.
- **numpy's first import** in a new kernel (working tree only; information: imports are
  lazy, so idle kernels stay small; needs numpy in the sandbox Python).

The first, warm and slow calls are measured in ``--rounds`` rounds, each side in a process
of its own (this script, with ``PYTHONPATH`` set to the tree it measures). With ``--base
REV``, that commit's ``parley`` is exported with ``git archive`` into a temporary folder and
each round measures it and the working tree one after the other (the order flips every
round), never both at once. The table gives each side's median of the rounds' p50s and of
their p90s, and the ratio working tree / base. The script runs against either API:
``Kernel.start``'s ``cgroup`` and a kernel's ``bounded_by`` are used where they exist.

The working tree's kernels are bounded by a cgroup where this machine lets the server make
one (``parley sandbox check``); ``--no-cgroup`` starts them with ``cgroup=False``, so the
call's watch bounds their memory instead. The table says which bound was in force.

Prints a table; exits 1 on a failed call, and with ``--strict`` on a missed target of the
working tree (first call p50 ≤ 300 ms, warm call p50 ≤ 20 ms, a slow call's p50 ≤ 20 ms
beyond its code's own time, idle kernels ≤ 1.5 GiB in all).
"""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path += [str(ROOT)]

import argparse  # noqa: E402
import asyncio  # noqa: E402
import inspect  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import parley  # noqa: E402
from parley.config import Settings  # noqa: E402
from parley.sandbox.limits import Limits  # noqa: E402
from parley.sandbox.probe import sandbox_python, unavailable  # noqa: E402
from parley.sandbox.runtime import Kernel  # noqa: E402

FIRST_TARGET = 0.300
WARM_TARGET = 0.020
IDLE_TARGET = 1.5 * (1 << 30)
#: The slow call's code: it sleeps 50 ms and prints how long it took, by its own clock.
SLOW_CODE = (
    "import time as _t\n_b = _t.perf_counter()\n_t.sleep(0.05)\nprint(_t.perf_counter() - _b)"
)
#: The measures taken in each round, in the table's order.
MEASURES = {
    "first": "first call (start + print(1))",
    "warm": "warm call (print(1) round trip)",
    "slow": "sleep(0.05) call, beyond its code",
}


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _pss(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
        except (OSError, ValueError):
            pass
    return total


# ---------------------------------------------------------------- one side, one round


def _start_options(cgroup: bool) -> dict[str, Any]:
    """``Kernel.start``'s ``cgroup`` where this tree's ``Kernel.start`` takes one."""
    if "cgroup" in inspect.signature(Kernel.start).parameters:
        return {"cgroup": cgroup}
    return {}


def _support() -> str | None:
    """What this tree's ``cgroups.support()`` says, where it has one."""
    try:
        from parley.sandbox import cgroups
    except ImportError:
        return None
    support = getattr(cgroups, "support", None)
    return str(support()[1]) if support is not None else None


async def _start(root: Path, name: str, cgroup: bool) -> Kernel:
    settings = Settings()
    return await Kernel.start(
        directory=root / name,
        limits=Limits.of(settings),
        python=sandbox_python(settings),
        label=name,
        **_start_options(cgroup),
    )


async def _check(kernel: Kernel) -> None:
    outcome = await kernel.run("print(1)")
    if outcome.ended != "ok" or outcome.logs != "1\n":
        raise SystemExit(f"a call failed: {outcome}")


async def _firsts(root: Path, count: int, cgroup: bool) -> list[float]:
    """Seconds from ``Kernel.start`` of a fresh container to its first reply, ``count``
    times, after one untimed container."""
    times = []
    for i in range(count + 1):
        began = time.perf_counter()
        kernel = await _start(root, f"first_{i}", cgroup)
        await _check(kernel)
        if i:
            times.append(time.perf_counter() - began)
        await kernel.close()
    return times


async def _warm(kernel: Kernel, count: int) -> list[float]:
    """Seconds of ``count`` round trips of ``print(1)``, after 20 untimed ones."""
    for _ in range(20):
        await _check(kernel)
    times = []
    for _ in range(count):
        began = time.perf_counter()
        await _check(kernel)
        times.append(time.perf_counter() - began)
    return times


async def _slow(kernel: Kernel, count: int) -> list[float]:
    """Seconds each of ``count`` calls of SLOW_CODE took beyond the code's own time."""
    beyond = []
    for _ in range(count):
        began = time.perf_counter()
        outcome = await kernel.run(SLOW_CODE)
        took = time.perf_counter() - began
        if outcome.ended != "ok":
            raise SystemExit(f"a call failed: {outcome}")
        beyond.append(took - float(outcome.logs))
    return beyond


async def measure_side(args: argparse.Namespace) -> dict[str, Any]:
    """One round of one side, in this process: the first, warm and slow calls' times
    (seconds), what bounded the warm kernel, and where ``parley`` came from."""
    cgroup = not args.no_cgroup
    with tempfile.TemporaryDirectory(prefix="parley-bench-ci-") as tmp:
        root = Path(tmp)
        found: dict[str, Any] = {"first": await _firsts(root, args.first, cgroup)}
        kernel = await _start(root, "warm", cgroup)
        try:
            found["warm"] = await _warm(kernel, args.warm)
            found["slow"] = await _slow(kernel, args.slow)
            found["bounded_by"] = getattr(kernel, "bounded_by", None)
        finally:
            await kernel.close()
    found["support"] = _support()
    found["parley"] = str(Path(parley.__file__).parent)
    return found


# ---------------------------------------------------------------- the rounds


def _run_side(tree: Path, args: argparse.Namespace, cgroup: bool) -> dict[str, Any]:
    """One round of one side: this script in a process whose ``parley`` is ``tree``'s."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tree), env.get("PYTHONPATH")]))
    command = [sys.executable, str(Path(__file__).resolve()), "--json"]
    command += [f"--first={args.first}", f"--warm={args.warm}", f"--slow={args.slow}"]
    if not cgroup:
        command.append("--no-cgroup")
    done = subprocess.run(command, env=env, stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise SystemExit(f"the side at {tree} failed (exit {done.returncode})")
    found: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


def rounds(sides: dict[str, Path], args: argparse.Namespace) -> dict[str, list[dict[str, Any]]]:
    """``--rounds`` rounds of every side, one after the other, the order flipping every
    round. Only the working tree ("tree") takes ``--no-cgroup``."""
    found: dict[str, list[dict[str, Any]]] = {side: [] for side in sides}
    names = list(sides)
    for number in range(args.rounds):
        for side in names if number % 2 == 0 else reversed(names):
            cgroup = side != "tree" or not args.no_cgroup
            found[side].append(_run_side(sides[side], args, cgroup))
            print(f"  round {number + 1}/{args.rounds}: {side} done", file=sys.stderr)
    return found


def summary(results: list[dict[str, Any]]) -> dict[str, tuple[float, float]]:
    """Each measure's median of the rounds' p50s and median of their p90s."""
    return {
        measure: (
            statistics.median(statistics.median(r[measure]) for r in results),
            statistics.median(_quantile(r[measure], 0.9) for r in results),
        )
        for measure in MEASURES
    }


# ---------------------------------------------------------------- idle kernels, numpy


async def measure_idle(args: argparse.Namespace) -> dict[str, float]:
    """The working tree's idle kernels' memory, and numpy's first import in a kernel."""
    cgroup = not args.no_cgroup
    found: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="parley-bench-ci-") as tmp:
        root = Path(tmp)
        kernel = await _start(root, "numpy", cgroup)
        numpy = await kernel.run(
            "import time as _t\n_b = _t.perf_counter()\nimport numpy\nprint(_t.perf_counter() - _b)"
        )
        found["numpy_import"] = float(numpy.logs) if numpy.ended == "ok" else float("nan")
        await kernel.close()
        idle = []
        try:
            for i in range(args.idle):
                idle.append(await _start(root, f"idle_{i}", cgroup))
                await _check(idle[-1])
            await asyncio.sleep(0.5)
            rss = [k.memory_bytes() for k in idle]
            found["idle_kernels"] = len(idle)
            found["idle_rss_total"] = sum(rss)
            found["idle_rss_each"] = statistics.mean(rss) if rss else 0.0
            found["idle_pss_total"] = _pss([pid for k in idle for pid in k.processes()])
        finally:
            for k in idle:
                await k.close()
    return found


# ---------------------------------------------------------------- the table


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}" if seconds < 0.01 else f"{seconds * 1000:.1f}"


def _bound_line(label: str, results: list[dict[str, Any]]) -> str:
    bounds = sorted({str(r["bounded_by"]) for r in results})
    said = "no bounded_by (before the cgroup change)" if bounds == ["None"] else "/".join(bounds)
    support = results[-1]["support"]
    line = f"{label} (parley from {results[-1]['parley']}): memory bounded by {said}"
    return line + (f"; cgroups: {support}" if support else "")


def _targets(tree: dict[str, tuple[float, float]]) -> dict[str, tuple[str, bool]]:
    """Each measure's target, and whether the working tree's p50 met it."""
    return {
        "first": ("p50 ≤ 300 ms", tree["first"][0] <= FIRST_TARGET),
        "warm": ("p50 ≤ 20 ms", tree["warm"][0] <= WARM_TARGET),
        "slow": ("p50 ≤ 20 ms", tree["slow"][0] <= WARM_TARGET),
    }


def _print_rows(rows: list[list[str]]) -> None:
    """Columns aligned: the first to the left, the last as it is, the rest to the right."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        middle = [cell.rjust(width) for cell, width in zip(row[1:-1], widths[1:-1], strict=True)]
        print("  ".join([row[0].ljust(widths[0]), *middle, row[-1]]))


def table(found: dict[str, list[dict[str, Any]]], labels: dict[str, str]) -> bool:
    """Print the calls' table; whether the working tree met its targets."""
    sums = {side: summary(results) for side, results in found.items()}
    targets = _targets(sums["tree"])
    ratio = "base" in found
    head = ["ms (median of rounds)"]
    for side in found:
        head += [f"{labels[side]} p50", "p90"]
    rows = [[*head, *(["tree/base p50"] if ratio else []), "target"]]
    for measure, name in MEASURES.items():
        row = [name]
        for side in found:
            row += [_ms(sums[side][measure][0]), _ms(sums[side][measure][1])]
        if ratio:
            row.append(f"{sums['tree'][measure][0] / sums['base'][measure][0]:.2f}x")
        target, ok = targets[measure]
        rows.append([*row, f"{target}  {'ok' if ok else 'MISSED'}"])
    _print_rows(rows)
    print("rounds' p50s, ms:")
    for side, results in found.items():
        for measure in MEASURES:
            values = ", ".join(_ms(statistics.median(r[measure])) for r in results)
            print(f"  {labels[side]:<14} {measure:<6} {values}")
    for side, results in found.items():
        print(_bound_line(labels[side], results))
    return all(ok for _, ok in targets.values())


def idle_table(found: dict[str, float]) -> bool:
    """Print the working tree's idle kernels and numpy import; whether memory met its target."""
    mib = 1 << 20
    count = int(found["idle_kernels"])
    ok = found["idle_rss_total"] <= IDLE_TARGET
    rows = [
        (f"{count} idle kernels, RSS summed", f"{found['idle_rss_total'] / mib:.0f} MiB ({found['idle_rss_each'] / mib:.1f} MiB each)", f"≤ 1.5 GiB  {'ok' if ok else 'MISSED'}"),
        (f"{count} idle kernels, PSS", f"{found['idle_pss_total'] / mib:.0f} MiB", ""),
        ("numpy's first import in a kernel", f"{found['numpy_import'] * 1000:.0f} ms", ""),
    ]  # fmt: skip
    width = max(len(r[0]) for r in rows)
    for name, value, target in rows:
        print(f"{name:<{width}}  {value:<28} {target}".rstrip())
    return ok


# ---------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--base", help="also measure this commit, side by side (default: none)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of each side (default 5)")
    parser.add_argument(
        "--first", type=int, default=30, help="new containers timed a round (default 30)"
    )
    parser.add_argument("--warm", type=int, default=500, help="warm calls a round (default 500)")
    parser.add_argument(
        "--slow", type=int, default=40, help="sleep(0.05) calls a round (default 40)"
    )
    parser.add_argument("--idle", type=int, default=50, help="idle kernels at once (default 50)")
    parser.add_argument(
        "--no-cgroup",
        action="store_true",
        help="the working tree's kernels without a cgroup (the watch bounds their memory)",
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 on a missed target")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)  # one side
    return parser.parse_args(argv)


def compare(args: argparse.Namespace) -> bool:
    """The rounds of the working tree (and of ``--base``), then the idle kernels; print
    the tables; whether the working tree met every target."""
    print(f"sandbox Python: {sandbox_python(Settings())}")
    tree_label = "tree (watch)" if args.no_cgroup else "tree"
    with tempfile.TemporaryDirectory(prefix="parley-bench-ci-base-") as tmp:
        sides: dict[str, Path] = {}
        labels = {"tree": tree_label}
        if args.base:
            from versions import export  # bench/, this script's folder

            export(args.base, Path(tmp))
            sides["base"], labels["base"] = Path(tmp), f"base {args.base}"
        sides["tree"] = ROOT
        found = rounds(sides, args)
    met = table(found, labels)
    idle = asyncio.run(measure_idle(args))
    print()
    return idle_table(idle) and met


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    why = unavailable()
    if why is not None:
        print(f"no sandbox here: {why}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(asyncio.run(measure_side(args))))
        return 0
    met = compare(args)
    return 0 if met or not args.strict else 1


if __name__ == "__main__":
    sys.exit(main())
