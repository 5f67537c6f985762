"""Real sandboxes (bubblewrap, real processes) for the tests of ``parley.sandbox``.

Without bwrap, or where it cannot make a sandbox, the tests that need one skip and say why;
under CI (``CI`` set) they fail. The same for the sandbox's scientific stack (numpy,
matplotlib), which ``make`` installs in ``.venv/sandbox``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from parley.sandbox.limits import Limits
from parley.sandbox.probe import unavailable as sandbox_unavailable
from parley.sandbox.runtime import Kernel
from tests.unavailable import unavailable

SMALL = Limits(
    memory_bytes=512 << 20,
    cpu_seconds=60,
    processes=32,
    open_files=128,
    file_bytes=16 << 20,
    disk_bytes=20 << 20,
    call_timeout=2.0,
    output_bytes=4096,
    disk_files=500,
)


def sandbox_python() -> Path:
    """The sandbox environment beside the test venv, else the venv's own Python."""
    beside = Path(sys.prefix) / "sandbox" / "bin" / "python"
    return beside if beside.exists() else Path(sys.executable)


@pytest.fixture(scope="session")
def bwrap() -> None:
    why = sandbox_unavailable()
    if why is not None:
        unavailable(why)


_stack: dict[str, str | None] = {}


@pytest.fixture
def scientific(bwrap: None) -> Path:
    """The sandbox Python, when it has numpy and matplotlib."""
    python = sandbox_python()
    if "answer" not in _stack:
        done = subprocess.run(
            [str(python), "-c", "import numpy, matplotlib"], capture_output=True, check=False
        )
        _stack["answer"] = None if done.returncode == 0 else done.stderr.decode()[-300:]
    if _stack["answer"] is not None:
        unavailable(
            f"{python} has no numpy or matplotlib (make the sandbox env: make, or "
            f"parley sandbox setup): {_stack['answer']}"
        )
    return python


@pytest.fixture
def containers(tmp_path: Path) -> Path:
    root = tmp_path / "containers"
    root.mkdir()
    return root


async def started(root: Path, label: str, limits: Limits = SMALL, *, cgroup: bool = True) -> Kernel:
    return await Kernel.start(
        directory=root / label, limits=limits, python=sandbox_python(), label=label, cgroup=cgroup
    )


@pytest.fixture
async def kernel(bwrap: None, containers: Path) -> AsyncIterator[Kernel]:
    k = await started(containers, "cntr_test")
    pids = k.processes()
    yield k
    await k.close()
    assert_gone(pids)


@pytest.fixture
async def neighbour(bwrap: None, containers: Path) -> AsyncIterator[Kernel]:
    """Another container's kernel, which what one container does must leave unharmed."""
    k = await started(containers, "cntr_neighbour")
    outcome = await k.run("kept = 41")
    assert outcome.ended == "ok"
    yield k
    outcome = await k.run("kept + 1")
    assert (outcome.ended, outcome.logs, outcome.restarted) == ("ok", "42\n", False)
    await k.close()


def alive(pid: int) -> bool:
    """The process runs (a zombie is not running)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def assert_gone(pids: list[int], within: float = 5.0) -> None:
    """None of these processes runs any more (waiting up to ``within`` seconds)."""
    deadline = time.monotonic() + within
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.02)
    left = [p for p in pids if alive(p)]
    assert not left, f"still running: {[(p, _cmd(p)) for p in left]}"


def wait_down_to(kernel: Kernel, count: int, within: float = 5.0) -> None:
    """Wait (up to ``within`` seconds) until the sandbox runs ``count`` processes at most."""
    deadline = time.monotonic() + within
    while len(kernel.processes()) > count and time.monotonic() < deadline:
        time.sleep(0.02)


def _cmd(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ")[:200].decode("utf-8", "replace")
    except OSError:
        return "?"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def read_text(path: str | Path) -> str:
    """A small file of /proc or of the host, read at once."""
    return Path(path).read_text()


#: Room for the JSON reports the attacks print, and time for the slower ones (a walk of
#: the whole sandbox's tree).
ROOMY = replace(SMALL, output_bytes=256 << 10, call_timeout=20.0)


@pytest.fixture
async def roomy(bwrap: None, containers: Path) -> AsyncIterator[Kernel]:
    """A kernel with room for long reports, closed (all its processes gone) after."""
    k = await started(containers, "cntr_attacked", ROOMY)
    pids = k.processes()
    yield k
    await k.close()
    assert_gone(pids)
