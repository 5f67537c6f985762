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

log = logging.getLogger("parley.watchdog")


class LoopWatchdog:
    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self._beat = time.monotonic()
        self._stop = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._heart: asyncio.Task[None] | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
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
            self._beat = time.monotonic()
            await asyncio.sleep(interval)

    def _watch(self) -> None:
        reported = 0.0
        while not self._stop.wait(self.threshold / 4):
            stalled = time.monotonic() - self._beat
            if stalled < self.threshold or self._beat == reported:
                continue
            reported = self._beat
            frame = sys._current_frames().get(self._loop_thread)
            where = "".join(traceback.format_stack(frame)) if frame is not None else "?"
            log.warning("event loop blocked for %.2f s; the loop thread is at:\n%s", stalled, where)


async def measure_loop_lag(report: Callable[[float], None], interval: float = 1.0) -> None:
    """Sleep ``interval`` seconds, again and again until cancelled, and ``report`` how
    much later than asked the loop woke up each time (the time it spent on other work:
    what any timer, keep-alive or stream chunk waited beside it)."""
    loop = asyncio.get_running_loop()
    while True:
        asked = loop.time() + interval
        await asyncio.sleep(interval)
        report(max(0.0, loop.time() - asked))
