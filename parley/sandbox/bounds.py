"""The host's looks at a sandbox's bounds, and the pause of its processes between calls.

Each look answers a ``Breach`` (the bound passed, said plainly) or None: the files of
/mnt/data (their bytes and their count), the sandbox's processes, and, where no cgroup
bounds it, their memory with what its tmpfs hold. ``Kernel`` makes its ``Watched`` looks
of these. Between calls every process of the code's is stopped (``pause``), so nothing
it left running goes on unwatched; ``resume`` lets them run as the next call starts.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

from parley.sandbox import files, procs, walk
from parley.sandbox.command import SHM_BYTES, TMP_BYTES
from parley.sandbox.limits import Limits, size_text
from parley.sandbox.watch import Breach

__all__ = [
    "PAUSE_WITHIN",
    "files_breach",
    "memory_breach",
    "memory_why",
    "pause",
    "processes_breach",
    "resume",
]

#: Seconds the code's processes have to stop after a call before the sandbox is killed.
PAUSE_WITHIN = 1.0
#: States of a process that runs no code: stopped, traced, a zombie, gone.
_STILL = {"T", "t", "Z", "X", None}
#: Walks of /mnt/data a look tries before it fails closed (a folder moved as it passed).
_WALKS = 3
#: Looks at once for the code's processes to stop, before a pause sleeps between looks.
_SPINS = 20


def files_breach(
    directory: Path, limits: Limits, every: Callable[[], bool] | None = None
) -> tuple[Breach | None, int]:
    """A breach of /mnt/data's bounds, or None; and the bytes its files hold. Raises
    OSError when the files cannot be walked (the watch then stops the sandbox), and
    files.Interrupted when ``every`` (called on the way) answers True."""
    size, count = _tally(directory, most=limits.disk_files + 1, every=every)
    if size > limits.disk_bytes:
        room = size_text(limits.disk_bytes)
        return Breach("disk", f"the files in /mnt/data passed the container's {room}"), size
    if count > limits.disk_files:
        return Breach("files", f"/mnt/data holds more than {limits.disk_files:,} files"), size
    return None, size


def processes_breach(pid: int | None, limits: Limits) -> Breach | None:
    """A breach when the processes under ``pid`` (bwrap's init in the sandbox included) are
    at their bound: a fork bomb, or children left holding every slot."""
    bound = limits.processes
    if pid is not None and len(procs.descendants(pid)) >= bound:
        return Breach("processes", f"the code reached the container's limit of {bound} processes")
    return None


def memory_breach(pid: int | None, inner: int | None, limits: Limits) -> Breach | None:
    """A breach when the processes from ``pid`` down and the tmpfs of the sandbox whose
    Python is ``inner`` hold more than the memory bound (each page shared between
    processes counted once): the look where no cgroup bounds the sandbox."""
    if pid is None:
        return None
    most = limits.memory_bytes
    pids = [pid, *procs.descendants(pid)]
    held = _tmpfs_bytes(inner)
    if held + sum(procs.rss(p) for p in pids) <= most:
        return None
    if held + sum(procs.pss(p) for p in pids) <= most:
        return None  # pages the processes share, counted once
    return Breach("memory", memory_why(limits))


def memory_why(limits: Limits) -> str:
    """What a breach of the memory bound says."""
    size = size_text(limits.memory_bytes)
    return f"the container's processes used more than its {size} of memory"


def pause(init: int | None) -> Breach | None:
    """Stop (SIGSTOP) every process under ``init`` (bwrap's init in the sandbox), the
    kernel's included, until the next call: a thread or a child the code left running
    would otherwise write files, fork and allocate while nothing watches it. A breach when
    they do not all stop within PAUSE_WITHIN (a process forking as fast as it is stopped)."""
    if init is None:
        return None
    deadline = time.monotonic() + PAUSE_WITHIN
    while True:
        moving = [p for p in procs.descendants(init) if procs.state(p) not in _STILL]
        if not moving:
            return None
        if time.monotonic() > deadline:
            return Breach("processes", "the code's processes did not stop after the call")
        procs.signal_all(moving, signal.SIGSTOP)
        # The signal lands as soon as each process is scheduled: look again at once a
        # few times (a kernel blocked on its pipe stops within microseconds), then
        # sleep between looks.
        for _ in range(_SPINS):
            os.sched_yield()
            if all(procs.state(p) in _STILL for p in moving):
                break
        else:
            time.sleep(0.0002)


def resume(init: int | None) -> None:
    """Let the processes under ``init`` run again (SIGCONT), as a call starts."""
    if init is not None:
        procs.signal_all(procs.descendants(init), signal.SIGCONT)


def _tmpfs_bytes(inner: int | None) -> int:
    """Bytes held in the sandbox's /tmp and /dev/shm (memory, not disk); both counted
    full when the host cannot look."""
    held = 0
    for path, size in (("tmp", TMP_BYTES), ("dev/shm", SHM_BYTES)):
        try:
            usage = os.statvfs(f"/proc/{inner}/root/{path}")
            held += (usage.f_blocks - usage.f_bfree) * usage.f_frsize
        except OSError:
            held += size
    return held


def _tally(directory: Path, *, most: int, every: Callable[[], bool] | None) -> tuple[int, int]:
    """``files.tally``, tried again when a folder moved under the walk (code that moves a
    folder as the walk passes it): hostile code that keeps moving them still fails it,
    and the watch stops the sandbox (fail closed)."""
    for _ in range(_WALKS - 1):
        try:
            return files.tally(directory, most=most, every=every)
        except walk.WalkError:
            continue
    return files.tally(directory, most=most, every=every)
