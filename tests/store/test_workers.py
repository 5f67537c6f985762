"""The database threads' two lines of work (``parley.store.workers.Workers``): what a client waits
on goes first, bookkeeping still gets its turn, and nothing is lost or reordered within a
line."""

from __future__ import annotations

import threading
import time

import pytest

from parley.store.workers import Workers


def blocked(workers: Workers) -> threading.Event:
    """Occupy the (one) thread until the answered event is set."""
    release, busy = threading.Event(), threading.Event()

    def hold(_: None) -> None:
        busy.set()
        release.wait(10)

    workers.submit(hold, None)
    assert busy.wait(10)
    return release


def test_first_goes_before_later_but_later_is_not_starved() -> None:
    workers = Workers(1, "test-db")
    done: list[str] = []
    release = blocked(workers)
    futures = [workers.submit(done.append, f"L{i}", later=True) for i in range(1, 4)]
    futures += [workers.submit(done.append, f"F{i}") for i in range(1, 7)]
    release.set()
    for future in futures:
        future.result(10)
    # Four first in a row, then one waiting later; within each line, submission order.
    assert done == ["F1", "F2", "F3", "F4", "L1", "F5", "F6", "L2", "L3"]
    workers.shutdown()


def test_a_later_job_alone_runs_at_once() -> None:
    workers = Workers(1, "test-db")
    assert workers.submit(lambda x: x * 2, 21, later=True).result(10) == 42
    workers.shutdown()


def test_errors_reach_the_caller_and_the_thread_goes_on() -> None:
    workers = Workers(1, "test-db")

    def fail(_: None) -> None:
        raise ValueError("no")

    with pytest.raises(ValueError, match="no"):
        workers.submit(fail, None).result(10)
    assert workers.submit(str, 7).result(10) == "7"
    workers.shutdown()


def test_shutdown_finishes_the_queued_work_then_refuses_more() -> None:
    workers = Workers(2, "test-db")
    done: list[int] = []
    release = blocked(workers)
    futures = [workers.submit(done.append, i, later=i % 2 == 0) for i in range(20)]
    release.set()
    workers.shutdown()
    assert all(f.done() for f in futures)
    assert sorted(done) == list(range(20))
    with pytest.raises(RuntimeError, match="stopped"):
        workers.submit(done.append, 99)


def test_a_cancelled_job_is_skipped() -> None:
    workers = Workers(1, "test-db")
    done: list[int] = []
    release = blocked(workers)
    skipped = workers.submit(done.append, 1)
    kept = workers.submit(done.append, 2)
    assert skipped.cancel()
    release.set()
    kept.result(10)
    assert done == [2]
    workers.shutdown()


def _all_idle(workers: Workers) -> None:
    """Wait until every thread waits for work (a job's thread sets its result first)."""
    deadline = time.monotonic() + 10
    while not workers.quiet():
        assert time.monotonic() < deadline, "the threads did not go idle"
        time.sleep(0.001)


def test_the_thread_idle_last_runs_the_next_job() -> None:
    workers = Workers(4, "test-db")
    _all_idle(workers)
    ran_on = []
    for _ in range(20):  # one job at a time, as under a light load
        ran_on.append(workers.submit(lambda _: threading.get_ident(), None).result(10))
        _all_idle(workers)
    assert len(set(ran_on)) == 1  # not each of the four in turn
    workers.shutdown()


def test_jobs_from_many_threads_at_once_all_run() -> None:
    workers = Workers(3, "test-db")
    results: list[list[int]] = [[] for _ in range(4)]

    def submitter(index: int) -> None:
        futures = [workers.submit(lambda n: n * 2, n) for n in range(500)]
        results[index] = [f.result(10) for f in futures]

    threads = [threading.Thread(target=submitter, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert results == [[n * 2 for n in range(500)]] * 4
    workers.shutdown()
