"""What the host reads of a sandbox's processes in /proc, and how it stops them.

Everything here is read from the host's side: the sandboxed code cannot change what a
process's ``/proc`` entry says of its memory, its state or its children. A process that is
gone reads as nothing (an empty list, 0 bytes, None), never as an error.
"""

from __future__ import annotations

import contextlib
import os
import signal

#: The most processes a walk of a tree lists (a sandbox's are bounded far below it).
_MOST = 100_000


def descendants(pid: int) -> list[int]:
    """The host pids under ``pid``, breadth first (from /proc/PID/task/TID/children)."""
    found: list[int] = []
    queue = [pid]
    while queue and len(found) < _MOST:
        parent = queue.pop(0)
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                with open(f"/proc/{parent}/task/{tid}/children") as f:
                    children = [int(x) for x in f.read().split()]
            except (OSError, ValueError):
                continue
            found += children
            queue += children
    return found


def state(pid: int) -> str | None:
    """The process's state letter (``R``, ``S``, ``T`` stopped, ``Z`` zombie...); None
    when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rpartition(b")")[2].split()[0].decode("ascii")
    except (OSError, IndexError, UnicodeDecodeError):
        return None


def running(pid: int) -> bool:
    """The process exists and is no zombie (its exit may not be reaped yet)."""
    found = state(pid)
    return found is not None and found != "Z"


def rss(pid: int) -> int:
    """The process's resident memory in bytes (pages shared with others counted whole)."""
    return _status_kib(pid, "VmRSS:") * 1024


def pss(pid: int) -> int:
    """The process's proportional share of memory in bytes: each page shared by n
    processes counts 1/n in each, so a sum over processes counts it once. Dearer to read
    than ``rss`` (the kernel walks the process's pages)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _status_kib(pid: int, key: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def started(pid: int) -> int | None:
    """A process's start time (clock ticks since boot), to tell it from a reused pid."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            after = f.read().rpartition(b")")[2].split()
        return int(after[19])
    except (OSError, ValueError, IndexError):
        return None


def kill_tree(pid: int) -> None:
    """SIGKILL a sandbox: its bwrap's process group, and every process under it (killing
    the sandbox's init, bwrap's child, ends all of its pid namespace, whatever sessions or
    groups the code made). A stopped process dies of SIGKILL too."""
    tree = descendants(pid)
    with contextlib.suppress(OSError):
        os.killpg(pid, signal.SIGKILL)
    for each in [pid, *tree]:
        with contextlib.suppress(OSError):
            os.kill(each, signal.SIGKILL)


def signal_all(pids: list[int], signum: int) -> None:
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signum)
