"""``parley.wake.Wake``: set, cleared and waited for as an ``asyncio.Event``, with a wait that
may end after a time without a task of its own (what ``asyncio.wait_for`` makes)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from parley.wake import Wake


async def test_a_wait_ends_when_set_or_when_its_time_is_up() -> None:
    wake = Wake()
    assert await wake.wait(0.01) is False
    waiting = [asyncio.create_task(wake.wait(5)), asyncio.create_task(wake.wait())]
    await asyncio.sleep(0)
    wake.set()
    assert await asyncio.gather(*waiting) == [True, True]
    assert wake.is_set()
    assert await wake.wait(0) is True  # set: at once
    wake.clear()
    assert not wake.is_set()
    assert await wake.wait(0.01) is False
    assert wake._waiters == []  # the waits that ended left nothing behind


async def test_a_timed_wait_makes_no_task() -> None:
    wake = Wake()
    before = len(asyncio.all_tasks())
    seen: list[int] = []

    async def look() -> None:
        await asyncio.sleep(0.005)
        seen.append(len(asyncio.all_tasks()))
        wake.set()

    looking = asyncio.create_task(look())
    assert await wake.wait(5) is True
    await looking
    assert seen == [before + 1]  # the looker's own, and none for the wait


async def test_a_cancelled_wait_is_cancelled_and_forgotten() -> None:
    wake = Wake()
    task = asyncio.create_task(wake.wait(5))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert wake._waiters == []
    wake.set()  # nothing left to wake


async def test_set_from_another_thread_through_the_loop() -> None:
    wake = Wake()
    loop = asyncio.get_running_loop()
    threading.Timer(0.01, lambda: loop.call_soon_threadsafe(wake.set)).start()
    assert await wake.wait(5) is True
