from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

from parley.server.watchdog import LoopWatchdog, _queued, _waited


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
    # Once (a loaded machine can hold the loop thread elsewhere too: not this test's stall).
    assert len([r for r in reports if "time.sleep" in r]) == 1, reports
    assert "test_watchdog.py" in reports[-1] and "time.sleep" in reports[-1]


async def test_a_loop_held_by_a_long_call_in_c_is_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """One C call holds the interpreter: the watchdog's own thread cannot wake either, but
    the loop thread spent the time on a CPU, so it is the loop's block."""
    started = time.thread_time()  # the CPU's time: a loaded machine stretches the wall's
    sum(range(2_000_000))
    per_item = (time.thread_time() - started) / 2_000_000
    dog = LoopWatchdog(threshold=0.2)
    dog.start()
    with caplog.at_level(logging.WARNING, logger="parley.watchdog"):
        await asyncio.sleep(0.1)
        sum(range(int(0.8 / per_item)))  # 0.8 s of CPU, never letting go of the interpreter
        await asyncio.sleep(0.1)
    await dog.stop()
    reports = [r.getMessage() for r in caplog.records if "event loop blocked" in r.getMessage()]
    spent = [float(m[1]) for r in reports if (m := re.search(r"\(([\d.]+) s of it on a CPU", r))]
    assert len([s for s in spent if s >= 0.4]) == 1, reports


def test_a_long_call_in_c_on_a_crowded_cpu_is_reported() -> None:
    """The loop thread shares its CPU with two busy processes: a C call that takes 0.6 s of
    its CPU takes about three times that of the wall, and the watchdog's thread, held by
    the interpreter meanwhile, wakes to find the loop had a third of the time. That is
    still the loop's block (a threshold's worth of its own CPU without a beat), not a
    process the machine did not run."""
    script = """
import asyncio, logging, sys, time
from parley.server.watchdog import LoopWatchdog

logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(levelname)s %(message)s")

async def main():
    started = time.thread_time()
    sum(range(2_000_000))
    per_item = (time.thread_time() - started) / 2_000_000
    dog = LoopWatchdog(threshold=0.2)
    dog.start()
    await asyncio.sleep(0.1)
    print("blocking", flush=True)
    sum(range(int(0.6 / per_item)))
    await asyncio.sleep(0.1)
    await dog.stop()

asyncio.run(main())
"""
    cpu = min(os.sched_getaffinity(0))

    def pinned(code: str) -> list[str]:  # Python running ``code`` on that one CPU
        return [sys.executable, "-c", f"import os\nos.sched_setaffinity(0, {{{cpu}}})\n{code}"]

    hogs = [subprocess.Popen(pinned("while True: pass")) for _ in range(2)]
    try:
        done = subprocess.run(
            pinned(script),
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    _, _, after = done.stdout.partition("blocking")
    spent = re.findall(r"event loop blocked for ([\d.]+) s \(([\d.]+) s of it on a CPU", after)
    assert len(spent) == 1, done.stdout + done.stderr
    blocked, busy = map(float, spent[0])
    assert busy >= 0.3 and blocked > 1.5 * busy, spent  # the wall's time was stretched


def test_a_stopped_process_is_not_a_blocked_loop(tmp_path) -> None:
    """SIGSTOP holds every thread of the process, the watchdog's too: when it runs again,
    the time it was stopped is not reported as the loop's; a loop blocked afterwards is."""
    script = """
import asyncio, logging, sys, time
from parley.server.watchdog import LoopWatchdog

logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(levelname)s %(message)s")

async def main():
    dog = LoopWatchdog(threshold=0.2)
    dog.start()
    await asyncio.sleep(0.3)
    print("ready", flush=True)
    await asyncio.sleep(float(sys.stdin.readline()))  # stopped and continued meanwhile
    print("blocking", flush=True)
    time.sleep(0.6)
    await asyncio.sleep(0.2)
    await dog.stop()

asyncio.run(main())
"""
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    proc.stdin.write("1.5\n")
    proc.stdin.flush()
    time.sleep(0.2)
    proc.send_signal(signal.SIGSTOP)
    time.sleep(0.8)
    proc.send_signal(signal.SIGCONT)
    out, _ = proc.communicate(timeout=30)
    before, _, after = out.partition("blocking")
    assert "the process was not scheduled" in before, out
    assert "event loop blocked" not in before, out
    assert after.count("event loop blocked") == 1, out


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


def test_a_server_with_web_search_imports_aiohttp_off_the_loop(tmp_path) -> None:
    """The search client's aiohttp (which reads the system's certificates as it loads:
    tenths of a second of a loaded machine's loop) is imported by start-up on a thread,
    before the engine makes the client on the loop."""
    script = f"""
import asyncio, sys, threading
from parley.config import Settings
from parley.server.app import create_app

on_loop = []

class Spy:
    def find_spec(self, name, path=None, target=None):
        if name == "aiohttp":
            on_loop.append(threading.current_thread() is threading.main_thread())
        return None

app = create_app(
    Settings(database_url="sqlite:///{tmp_path}/p.db", web_search_url="http://127.0.0.1:9")
)
sys.meta_path.insert(0, Spy())

async def main():
    async with app.router.lifespan_context(app):
        print("aiohttp" in sys.modules, on_loop)

asyncio.run(main())
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.split("\n")[0] == "True [False]", done.stdout + done.stderr


def test_the_time_a_thread_waits_for_a_cpu_is_read_from_the_kernel() -> None:
    """What the watchdog takes off a stall (``_waited``): a thread that shares its one CPU
    with a busy process waits for it, and its ``schedstat`` says how long."""
    if _queued("/proc/thread-self/schedstat") is None:
        pytest.skip("this kernel does not say how long a thread waits for a CPU")
    cpu = min(os.sched_getaffinity(0))
    hog = subprocess.Popen(
        [sys.executable, "-c", f"import os\nos.sched_setaffinity(0, {{{cpu}}})\nwhile True: pass"]
    )
    waited: list[float] = []

    def busy() -> None:
        os.sched_setaffinity(0, {cpu})  # this thread alone
        stats = f"/proc/self/task/{threading.get_native_id()}/schedstat"
        since = _queued(stats)
        end = time.thread_time() + 0.3
        while time.thread_time() < end:
            pass
        waited.append(_waited(stats, since))

    try:
        thread = threading.Thread(target=busy)
        thread.start()
        thread.join(30)
    finally:
        hog.kill()
        hog.wait()
    assert waited and waited[0] > 0.1, waited  # about as long as it ran: the CPU was shared
