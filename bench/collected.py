"""``parley`` with its garbage collector's passes timed, switched by signals.

    python bench/collected.py OUT serve --port N

While switched on, each pass of the collector is timed (the thread CPU clock of the thread
it ran on, and the wall clock: a pass holds the interpreter, so its wall time is a stall of
the event loop) with the generation it collected and the objects it found unreachable:
those left in reference cycles, which only a pass frees. ``SIGUSR1`` starts fresh (after
a full pass, so that what is counted came after it), ``SIGUSR2`` counts what a last full
pass frees and writes it all to ``OUT`` as JSON (``{"passes": [[generation, cpu s, wall
s, freed], ...], "left": freed by the last pass}``). Used by ``bench/collector.py``.
"""

from __future__ import annotations

import gc
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

import orjson
from profiled import run_switched


def main() -> None:
    out, args = Path(sys.argv[1]), sys.argv[2:]
    passes: list[tuple[int, float, float, int]] = []
    began = [0.0, 0.0]
    on = [False]

    def timed(phase: str, info: dict[str, Any]) -> None:
        if not on[0]:
            return
        if phase == "start":
            began[:] = [time.thread_time(), time.perf_counter()]
        else:
            cpu, wall = time.thread_time() - began[0], time.perf_counter() - began[1]
            passes.append((info["generation"], cpu, wall, info["collected"]))

    gc.callbacks.append(timed)

    def start(_: int, __: FrameType | None) -> None:
        gc.collect()
        passes.clear()
        on[0] = True

    def stop(_: int, __: FrameType | None) -> None:
        on[0] = False
        left = gc.collect()
        out.write_bytes(orjson.dumps({"passes": passes, "left": left}))

    run_switched(start, stop, args)


if __name__ == "__main__":
    main()
