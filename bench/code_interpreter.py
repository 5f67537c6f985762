"""What the code interpreter's sandboxes cost: a new container's first call, a warm call, and
the memory of idle kernels.

    .venv/bin/python bench/code_interpreter.py [--first 30] [--warm 500] [--idle 50] [--strict]

Everything at the runtime level (``parley.sandbox.runtime.Kernel``), real bubblewrap
sandboxes with the sandbox Python ``parley.sandbox.probe.sandbox_python`` picks (the one at
``.venv/sandbox`` after ``make``), the default limits of ``Settings``:

- **first call**: a new container's ``Kernel.start`` (a fresh directory) and its first
  ``run("print(1)")``, timed together, ``--first`` times (each kernel closed before the next).
- **warm call**: ``run("print(1)")`` on one started kernel, ``--warm`` times: the whole round
  trip (framing, the pipe both ways, the kernel's ``exec``, the reply's checks), an upper
  bound of Parley's own time per call.
- **idle kernels**: ``--idle`` kernels started at once, each having run ``print(1)``; their
  memory from /proc: RSS summed over every process of each sandbox (bwrap's two and the
  Python), and PSS (shared pages split among their users), a closer view of what they cost
  the machine together.
- **numpy's first import** in a new kernel (information: imports are lazy, so idle kernels
  stay small; needs numpy in the sandbox Python).

Prints a table; exits 1 on a failed call, and with ``--strict`` on a missed target
(first call p50 ≤ 300 ms, warm call p50 ≤ 20 ms, idle kernels ≤ 1.5 GiB in all).
"""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path += [str(ROOT)]

import argparse  # noqa: E402
import asyncio  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from parley.config import Settings  # noqa: E402
from parley.sandbox.limits import Limits  # noqa: E402
from parley.sandbox.probe import sandbox_python, unavailable  # noqa: E402
from parley.sandbox.runtime import Kernel  # noqa: E402

FIRST_TARGET = 0.300
WARM_TARGET = 0.020
IDLE_TARGET = 1.5 * (1 << 30)


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


async def _check(kernel: Kernel) -> None:
    outcome = await kernel.run("print(1)")
    if outcome.ended != "ok" or outcome.logs != "1\n":
        raise SystemExit(f"a call failed: {outcome}")


async def bench(args: argparse.Namespace) -> dict[str, float]:
    settings = Settings()
    limits = Limits.of(settings)
    python = sandbox_python(settings)
    print(f"sandbox Python: {python}")
    found: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="parley-bench-ci-") as tmp:
        root = Path(tmp)
        firsts = []
        for i in range(args.first):
            began = time.perf_counter()
            kernel = await Kernel.start(
                directory=root / f"first_{i}", limits=limits, python=python, label=f"first_{i}"
            )
            await _check(kernel)
            firsts.append(time.perf_counter() - began)
            await kernel.close()
        found["first_p50"], found["first_p90"] = (
            statistics.median(firsts),
            _quantile(firsts, 0.9),
        )

        kernel = await Kernel.start(
            directory=root / "warm", limits=limits, python=python, label="warm"
        )
        for _ in range(20):
            await _check(kernel)
        warm = []
        for _ in range(args.warm):
            began = time.perf_counter()
            await _check(kernel)
            warm.append(time.perf_counter() - began)
        found["warm_p50"], found["warm_p90"] = statistics.median(warm), _quantile(warm, 0.9)
        numpy = await kernel.run(
            "import time as _t\n_b = _t.perf_counter()\nimport numpy\nprint(_t.perf_counter() - _b)"
        )
        found["numpy_import"] = float(numpy.logs) if numpy.ended == "ok" else float("nan")
        await kernel.close()

        idle = []
        for i in range(args.idle):
            k = await Kernel.start(
                directory=root / f"idle_{i}", limits=limits, python=python, label=f"idle_{i}"
            )
            await _check(k)
            idle.append(k)
        await asyncio.sleep(0.5)
        rss = [k.memory_bytes() for k in idle]
        pss = _pss([pid for k in idle for pid in k.processes()])
        found["idle_kernels"] = len(idle)
        found["idle_rss_total"] = sum(rss)
        found["idle_rss_each"] = statistics.mean(rss)
        found["idle_pss_total"] = pss
        for k in idle:
            await k.close()
    return found


def _table(found: dict[str, float], args: argparse.Namespace) -> bool:
    mib = 1 << 20
    rows = [
        ("first call (start + print(1))", f"p50 {found['first_p50'] * 1000:.1f} ms, p90 {found['first_p90'] * 1000:.1f} ms", "p50 ≤ 300 ms", found["first_p50"] <= FIRST_TARGET),
        ("warm call (print(1) round trip)", f"p50 {found['warm_p50'] * 1000:.2f} ms, p90 {found['warm_p90'] * 1000:.2f} ms", "≤ 20 ms", found["warm_p50"] <= WARM_TARGET),
        (f"{args.idle} idle kernels, RSS summed", f"{found['idle_rss_total'] / mib:.0f} MiB ({found['idle_rss_each'] / mib:.1f} MiB each)", "≤ 1.5 GiB", found["idle_rss_total"] <= IDLE_TARGET),
        (f"{args.idle} idle kernels, PSS", f"{found['idle_pss_total'] / mib:.0f} MiB", "", True),
        ("numpy's first import in a kernel", f"{found['numpy_import'] * 1000:.0f} ms", "", True),
    ]  # fmt: skip
    width = max(len(r[0]) for r in rows)
    met = True
    for name, value, target, ok in rows:
        mark = "" if not target else ("  ok" if ok else "  MISSED")
        print(f"{name:<{width}}  {value:<36} {target}{mark}")
        met = met and ok
    return met


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--first", type=int, default=30, help="new containers timed (default 30)")
    parser.add_argument("--warm", type=int, default=500, help="warm calls timed (default 500)")
    parser.add_argument("--idle", type=int, default=50, help="idle kernels at once (default 50)")
    parser.add_argument("--strict", action="store_true", help="exit 1 on a missed target")
    args = parser.parse_args(argv)
    why = unavailable()
    if why is not None:
        print(f"no sandbox here: {why}", file=sys.stderr)
        return 1
    found = asyncio.run(bench(args))
    met = _table(found, args)
    return 0 if met or not args.strict else 1


if __name__ == "__main__":
    sys.exit(main())
