"""A watchdog for the event loop: a thread that notices when the loop has not run for a
while (something blocked it) and logs where the loop thread was stuck.

Off by default; ``PARLEY_LOOP_WATCHDOG_SECONDS`` turns it on (the test suite runs every
server with it, and fails on its warning). ``measure_loop_lag`` is its everyday measure,
for the metrics: how late the loop runs a timer.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import NamedTuple

log = logging.getLogger("parley.watchdog")


class _Beat(NamedTuple):
    """A beat of the loop, taken on its thread (``LoopWatchdog._mark``), as one value: the
    watching thread reads all of one beat, never a part of the next."""

    #: ``time.monotonic()``.
    at: float
    #: The loop thread's CPU time (``time.thread_time()``).
    cpu: float
    #: Its time spent waiting for a CPU (``_queued``), None where the kernel does not tell.
    queued: float | None


class LoopWatchdog:
    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self._last = _Beat(time.monotonic(), 0.0, None)
        self._stop = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        #: The loop thread's ``schedstat`` (``start``).
        self._loop_stats = ""
        self._heart: asyncio.Task[None] | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._loop_stats = f"/proc/self/task/{threading.get_native_id()}/schedstat"
        self._mark()
        self._heart = asyncio.create_task(self._heartbeat())
        self._thread = threading.Thread(target=self._watch, name="parley-watchdog", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        self._stop.set()
        if self._heart is not None:
            self._heart.cancel()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 5)

    async def _heartbeat(self) -> None:
        interval = self.threshold / 4
        while True:
            self._mark()
            await asyncio.sleep(interval)

    def _mark(self) -> None:
        """A beat of the loop, on the loop's thread."""
        self._last = _Beat(time.monotonic(), time.thread_time(), _queued(self._loop_stats))

    def _watch(self) -> None:
        """Look at the loop's heartbeat every quarter of the threshold. Time the whole
        process was not running does not count: when this thread itself woke up late and
        the loop thread spent next to nothing of that time on a CPU, the machine (or a
        SIGSTOP) held both, and the loop is watched again from then on. A loop that holds
        the interpreter (a long call in C) keeps this thread from waking too, but spends
        the time on a CPU: it is reported, also on a machine so loaded that the loop thread
        had less than half of the time (a threshold's worth of its CPU time without a beat
        is a block however long the wall took). The time the loop thread was ready to run
        but waited for a CPU (the kernel's run queue, where it tells) is the machine's, not
        a block: a stall is reported when what is left of it reaches the threshold."""
        interval = self.threshold / 4
        loop_cpu = _cpu_clock(self._loop_thread)
        reported = 0.0
        woke = running_since = time.monotonic()
        while not self._stop.wait(interval):
            previous, woke = woke, time.monotonic()
            last = self._last
            beat = last.at
            busy = time.clock_gettime(loop_cpu) - last.cpu if loop_cpu is not None else None
            late = woke - previous - interval
            if (
                late > self.threshold / 2
                and busy is not None
                and busy < min(late / 2, self.threshold)
            ):
                running_since = woke
                log.info("the process was not scheduled for %.2f s", late)
                continue
            stalled = woke - max(beat, running_since)
            if stalled < self.threshold or beat == reported:
                continue
            waited = _waited(self._loop_stats, last.queued)
            if stalled - waited < self.threshold:
                continue
            reported = beat
            frame = sys._current_frames().get(self._loop_thread)
            where = "".join(traceback.format_stack(frame)) if frame is not None else "?"
            spent = f" ({busy:.2f} s of it on a CPU)" if busy is not None else ""
            if waited:
                spent += f" ({waited:.2f} s of it waiting for a CPU)"
            log.warning(
                "event loop blocked for %.2f s%s; the loop thread is at:\n%s", stalled, spent, where
            )


def _queued(stats: str) -> float | None:
    """The seconds a thread has spent ready to run but waiting for a CPU, from its
    ``schedstat`` (``stats``); None where the kernel does not tell."""
    try:
        with open(stats, "rb") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return None


def _waited(stats: str, since: float | None) -> float:
    """How long the thread of ``stats`` waited for a CPU since it had waited ``since``."""
    now = _queued(stats)
    return max(0.0, now - since) if now is not None and since is not None else 0.0


def _cpu_clock(thread: int) -> int | None:
    """The clock of ``thread``'s CPU time (``threading.get_ident()`` is its pthread id),
    or None where the platform has none."""
    try:
        return time.pthread_getcpuclockid(thread)
    except (AttributeError, OSError):
        return None


async def measure_loop_lag(report: Callable[[float], None], interval: float = 1.0) -> None:
    """Sleep ``interval`` seconds, again and again until cancelled, and ``report`` how
    much later than asked the loop woke up each time (the time it spent on other work:
    what any timer, keep-alive or stream chunk waited beside it)."""
    loop = asyncio.get_running_loop()
    while True:
        asked = loop.time() + interval
        await asyncio.sleep(interval)
        report(max(0.0, loop.time() - asked))
