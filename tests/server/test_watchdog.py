from __future__ import annotations

import asyncio
import logging
import time

import pytest

from parley.server.watchdog import LoopWatchdog


async def test_a_blocked_loop_is_reported_with_where_it_blocked(
    caplog: pytest.LogCaptureFixture,
) -> None:
    dog = LoopWatchdog(threshold=0.2)
    dog.start()
    with caplog.at_level(logging.WARNING, logger="parley.watchdog"):
        await asyncio.sleep(0.1)
        time.sleep(0.6)  # noqa: ASYNC251 - the blocking call the watchdog must catch
        await asyncio.sleep(0.1)
    await dog.stop()
    reports = [r.getMessage() for r in caplog.records if "event loop blocked" in r.getMessage()]
    assert len(reports) == 1
    assert "test_watchdog.py" in reports[0] and "time.sleep" in reports[0]


async def test_a_loop_that_keeps_running_is_not_reported(caplog: pytest.LogCaptureFixture) -> None:
    dog = LoopWatchdog(threshold=0.2)
    dog.start()
    with caplog.at_level(logging.WARNING, logger="parley.watchdog"):
        for _ in range(10):
            await asyncio.sleep(0.05)
    await dog.stop()
    assert not [r for r in caplog.records if "event loop blocked" in r.getMessage()]
