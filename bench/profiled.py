"""``parley`` under cProfile on the thread CPU clock, switched by signals.

    python bench/profiled.py OUT serve --port N

Two profiles, each counting the CPU time of its threads, not the wall time (waits cost
nothing in them): the main thread (the server's event loop) to ``OUT``, and the jobs of the
database threads (``parley.store.workers.Workers``: a job run alone, and a group's call that
runs the jobs queued together) to ``OUT.db``. ``SIGUSR1`` starts fresh
profiles, ``SIGUSR2`` stops them and writes both (read them with ``pstats``). Used by
``bench/turn_profile.py``, which leaves the warm-up out this way.
"""

from __future__ import annotations

import cProfile
import pstats
import signal
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any


class _Threads(threading.local):
    profile: cProfile.Profile | None = None


def main() -> None:
    out, args = sys.argv[1], sys.argv[2:]
    loop = [cProfile.Profile(time.thread_time)]
    on = threading.Event()
    local = _Threads()
    lock = threading.Lock()
    used: list[cProfile.Profile] = []  # the database threads' profiles of this phase

    def start(_: int, __: FrameType | None) -> None:
        with lock:
            used.clear()
        loop[0] = cProfile.Profile(time.thread_time)
        loop[0].enable()
        on.set()

    def stop(_: int, __: FrameType | None) -> None:
        on.clear()
        loop[0].disable()
        loop[0].dump_stats(out)
        with lock:
            profiles = list(used)
        if profiles:
            stats = pstats.Stats(profiles[0])
            for profile in profiles[1:]:
                stats.add(profile)
            stats.dump_stats(out + ".db")

    from parley.store import workers

    submit = workers.Workers.submit

    def profiled(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
        def job(value: Any) -> Any:
            if not on.is_set():
                return fn(value)
            profile = local.profile
            if profile is None:
                profile = local.profile = cProfile.Profile(time.thread_time)
            with lock:
                if profile not in used:  # a fresh phase: a fresh profile
                    profile = local.profile = cProfile.Profile(time.thread_time)
                    used.append(profile)
            profile.enable()
            try:
                return fn(value)
            finally:
                profile.disable()

        return job

    # Jobs of a group run together as one call of the group's function, found by identity:
    # one wrapper for each.
    groups: dict[Callable[[Any], Any], Callable[[Any], Any]] = {}

    def profiled_submit(
        self: workers.Workers,
        fn: Callable[[Any], Any],
        arg: Any,
        *,
        group: Callable[[Any], Any] | None = None,
        **kw: Any,
    ) -> Any:
        if group is not None:
            wrapped = groups.get(group)
            if wrapped is None:
                wrapped = groups[group] = profiled(group)
            kw["group"] = wrapped
        return submit(self, profiled(fn), arg, **kw)

    workers.Workers.submit = profiled_submit  # type: ignore[method-assign]
    run_switched(start, stop, args)


def run_switched(
    start: Callable[[int, FrameType | None], None],
    stop: Callable[[int, FrameType | None], None],
    args: list[str],
) -> None:
    """Run ``parley *args`` in this process, ``start`` called on ``SIGUSR1`` and ``stop``
    on ``SIGUSR2``."""
    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)
    sys.argv = ["parley", *args]
    from parley.cli.main import main as parley

    sys.exit(parley())


if __name__ == "__main__":
    main()
