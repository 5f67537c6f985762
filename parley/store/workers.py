"""The database threads and their work in two lines (``Workers``), on which ``Database``
runs every transaction (``parley.store.db``)."""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

__all__ = ["Failed", "Workers", "answer"]

T = TypeVar("T")
A = TypeVar("A")


class Failed:
    """A write of a group that raised (``Database._run_group``): its error, for its caller."""

    __slots__ = ("error",)

    def __init__(self, error: Exception) -> None:
        self.error = error


def answer(future: Future[Any] | asyncio.Future[Any], result: Any) -> None:
    """Give ``future`` the result of its write in a group (``Failed``: its error)."""
    if isinstance(result, Failed):
        future.set_exception(result.error)
    else:
        future.set_result(result)


class Workers:
    """The database threads and their work, in two lines. ``first``: work a client waits
    on (starting a turn, a request's reads and writes). ``later``: bookkeeping whose client
    is not waiting for it to begin (the end of a turn, checkpoints, heartbeats, sweeps).

    A thread takes the next ``first`` job, except that after ``FIRST_RUN`` of them taken in
    a row while ``later`` work waits, it takes a ``later`` one. With SQLite's one thread
    busy, a new turn's claim does not queue behind every other stream's end (under
    load the time to the first token is mostly that queue), and the ends still get a fifth
    of the thread at least. Within a line, jobs run in the order they came.

    The thread woken for a job is the one that went idle last: under a light load the same
    few threads run every job, on warm caches, instead of each of the pool's threads in
    turn (as a condition variable wakes them).

    The threads are daemons, as ``Database.dispose`` stops them: a process that exits
    without it does not wait for queued work, and a transaction cut off is rolled back.
    """

    FIRST_RUN = 4

    def __init__(self, count: int, name: str) -> None:
        self._lines: tuple[deque[_Job], deque[_Job]] = (deque(), deque())
        self._lock = threading.Lock()
        #: How to wake each thread waiting for work (a lock it waits to acquire), the one
        #: that began to wait last at the end.
        self._idle: list[threading.Lock] = []
        self._run = 0
        self._closed = False
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True)
            for i in range(count)
        ]
        for thread in self._threads:
            thread.start()

    #: The most jobs of one group run together.
    GROUP = 32

    def submit(
        self,
        fn: Callable[[A], T],
        arg: A,
        *,
        later: bool = False,
        group: Callable[[list[A]], list[Any]] | None = None,
    ) -> Future[T]:
        """``fn(arg)`` on a database thread, in the ``later`` line or the ``first``. With
        ``group``, jobs of the same group queued one after another in a line run together
        as ``group([arg, ...])``, which answers each one's result (``Failed``: its
        error)."""
        job: _Job = (Future(), fn, arg, group)
        with self._lock:
            if self._closed:
                raise RuntimeError("the database threads have stopped")
            self._lines[later].append(job)
            if self._idle:
                self._idle.pop().release()
        return job[0]

    def quiet(self) -> bool:
        """Whether every thread waits for work (read without the lock: a hint)."""
        return not self._lines[0] and not self._lines[1] and len(self._idle) == len(self._threads)

    def shutdown(self) -> None:
        """Stop the threads once the work already queued is done."""
        with self._lock:
            self._closed = True
            while self._idle:
                self._idle.pop().release()
        for thread in self._threads:
            thread.join()

    def _next(self) -> list[_Job] | None:
        first, later = self._lines
        with self._lock:
            while not first and not later:
                if self._closed:
                    return None
                self._wait()
            if first and (not later or self._run < self.FIRST_RUN):
                self._run += 1 if later else 0  # a run counts while later work waits
                line = first
            else:
                self._run = 0
                line = later
            jobs = [line.popleft()]
            group = jobs[0][3]
            while group is not None and line and line[0][3] is group and len(jobs) < self.GROUP:
                jobs.append(line.popleft())
            return jobs

    def _wait(self) -> None:
        """Wait (holding ``_lock``, released meanwhile) until ``submit`` or ``shutdown``
        wakes this thread; a thread woken may find the work taken by another already."""
        wake = threading.Lock()
        wake.acquire()
        self._idle.append(wake)
        self._lock.release()
        try:
            wake.acquire()
        finally:
            self._lock.acquire()

    def _work(self) -> None:
        while (jobs := self._next()) is not None:
            jobs = [job for job in jobs if job[0].set_running_or_notify_cancel()]
            if len(jobs) == 1:
                future, fn, arg, _ = jobs[0]
                try:
                    result = fn(arg)
                except BaseException as exc:  # noqa: BLE001 - the caller's to handle
                    future.set_exception(exc)
                else:
                    future.set_result(result)
                del future, fn, arg
            elif jobs:
                group = jobs[0][3]
                assert group is not None
                try:
                    results = group([arg for _, _, arg, _ in jobs])
                except BaseException as exc:  # noqa: BLE001 - the callers' to handle
                    for future, *_ in jobs:
                        future.set_exception(exc)
                    del jobs
                    continue
                for (future, *_), result in zip(jobs, results, strict=True):
                    answer(future, result)
                del results
            del jobs


_Job = tuple[Future[Any], Callable[[Any], Any], Any, Callable[[list[Any]], list[Any]] | None]
