from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
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


def test_the_server_imports_anyios_backend_before_its_first_request(tmp_path) -> None:
    """Starlette's first sync hand-off imports anyio's backend on the loop; a cold import held
    a loaded machine's loop for a second. Start-up imports it off the loop first (a fresh
    interpreter, since this one has it already)."""
    script = f"""
import asyncio, sys
from parley.config import Settings
from parley.server.app import create_app

app = create_app(Settings(database_url="sqlite:///{tmp_path}/p.db"))
before = "anyio._backends._asyncio" in sys.modules

async def main():
    async with app.router.lifespan_context(app):
        print(before, "anyio._backends._asyncio" in sys.modules)

asyncio.run(main())
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.split() == ["False", "True"], done.stdout + done.stderr
