"""A pids cgroup per sandbox, when the server runs as root.

The kernel sets RLIMIT_NPROC inside the sandbox's user namespace, which bounds its
processes when the server runs as an ordinary user. Root's processes are exempt from
RLIMIT_NPROC, and the sandbox's uid maps to the server's, so a server run as root bounds a
sandbox with a pids cgroup (v1's ``pids`` hierarchy, or v2 with the pids controller at the
top) when it can make one; else the host counts the sandbox's processes while a call runs
(``runtime``).
"""

from __future__ import annotations

import contextlib
import itertools
import os
from pathlib import Path

_ROOTS = (Path("/sys/fs/cgroup/pids"), Path("/sys/fs/cgroup"))
_PREFIX = "parley-sandbox-"
_numbers = itertools.count(1)


def _root() -> Path | None:
    if os.geteuid() != 0:
        return None
    v1, v2 = _ROOTS
    if (v1 / "cgroup.procs").exists():
        return v1
    try:
        controllers = (v2 / "cgroup.subtree_control").read_text()
    except OSError:
        return None
    return v2 if "pids" in controllers.split() else None


class PidsGroup:
    """A pids cgroup holding one sandbox's processes, at most ``most`` at once."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def make(cls, most: int) -> PidsGroup | None:
        """A new group allowing ``most`` processes; None when this server cannot make one."""
        root = _root()
        if root is None:
            return None
        path = root / f"{_PREFIX}{os.getpid()}-{next(_numbers)}"
        try:
            path.mkdir()
            (path / "pids.max").write_text(str(most))
        except OSError:
            with contextlib.suppress(OSError):
                path.rmdir()
            return None
        return cls(path)

    def add(self, pids: list[int]) -> bool:
        """Move these processes into the group; False when one could not be moved."""
        try:
            for pid in pids:
                (self.path / "cgroup.procs").write_text(str(pid))
        except OSError:
            return False
        return True

    def pids(self) -> list[int]:
        try:
            return [int(x) for x in (self.path / "cgroup.procs").read_text().split()]
        except OSError:
            return []

    def remove(self) -> None:
        """Kill what is left in the group and remove it."""
        for _ in range(50):
            left = self.pids()
            for pid in left:
                with contextlib.suppress(OSError):
                    os.kill(pid, 9)
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                import time

                time.sleep(0.01)


def sweep() -> int:
    """Remove the empty groups of servers that are gone; how many were removed."""
    root = _root()
    if root is None:
        return 0
    removed = 0
    for path in root.glob(f"{_PREFIX}*"):
        owner = path.name.removeprefix(_PREFIX).split("-")[0]
        if owner.isdigit() and Path(f"/proc/{owner}").exists():
            continue
        group = PidsGroup(path)
        group.remove()
        removed += not path.exists()
    return removed
