"""The cgroup that bounds one sandbox as a whole: its memory (its tmpfs pages included)
and its processes, whatever the code forks.

A process's own limits (RLIMIT_AS, RLIMIT_NPROC, which the kernel sets on itself) bound
each process alone: four children of 1 GiB each hold 4 GiB. A cgroup bounds their sum,
and the kernel's OOM killer acts inside it, never on the server or the database. Parley
makes one group per sandbox under the server's own cgroup, where the host delegates it:

- **cgroup v2** (one hierarchy): the server's cgroup must list ``memory`` and ``pids`` in
  its ``cgroup.controllers`` and be writable by the server: systemd's ``Delegate=yes`` on
  its unit, or a container whose cgroup namespace is its own with ``/sys/fs/cgroup``
  mounted read-write. Controllers are enabled for children only in a cgroup without
  processes, so the server first moves itself into a leaf, ``parley-server``, beside its
  sandboxes' groups (when its cgroup holds no process but its own and its children's).
  Each group sets ``memory.max``, ``memory.swap.max`` (0) and ``pids.max``.
- **cgroup v1** (a hierarchy per controller): a group under the server's own in the
  ``memory`` hierarchy (``memory.limit_in_bytes``, and ``memory.memsw.limit_in_bytes`` where
  swap is accounted), and one in the ``pids`` hierarchy (``pids.max``) where it can.

Where neither can be made, ``support()`` says why, and the host watches the sandbox's
processes during each call instead (``parley.sandbox.watch``).
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

_ROOT = Path("/sys/fs/cgroup")
_PREFIX = "parley-sandbox-"
#: The leaf a v2 server moves itself into, so its cgroup may have children with controllers.
SERVER_LEAF = "parley-server"
_numbers = itertools.count(1)


@dataclass(frozen=True, slots=True)
class Support:
    """Where this server makes its sandboxes' groups."""

    version: int
    #: The parent of the groups that bound memory (v2: memory and processes).
    memory: Path
    #: v1's parent of the groups that bound processes (None: v2, or no pids hierarchy).
    pids: Path | None

    def describe(self) -> str:
        if self.version == 2:
            return f"cgroup v2 under {self.memory} (memory.max, memory.swap.max, pids.max)"
        bounds = "memory.limit_in_bytes" + (", pids.max" if self.pids else "")
        return f"cgroup v1 under {self.memory} ({bounds})"


_lock = threading.Lock()
_found: list[tuple[Support | None, str]] = []


def support() -> tuple[Support | None, str]:
    """The cgroups this server can make for its sandboxes, and a sentence saying so (why
    none, when None). Worked out once per process: a group is made and removed to be sure
    (and, on v2, the server may move itself into its leaf)."""
    with _lock:
        if not _found:
            _found.append(_discover())
        return _found[0]


def _discover() -> tuple[Support | None, str]:
    own = _own_groups()
    v2 = own.get("")
    if v2 is not None and (_ROOT / "cgroup.controllers").exists():
        found, why = _v2(_ROOT / v2.lstrip("/"))
    elif "memory" in own:
        found, why = _v1(own)
    else:
        return None, "no cgroup hierarchy with the memory controller is mounted here"
    if found is None:
        return None, why
    return found, found.describe()


def _own_groups() -> dict[str, str]:
    """This process's cgroup in each hierarchy: ``""`` for v2's, else by controller."""
    groups: dict[str, str] = {}
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return groups
    for line in lines:
        _, controllers, path = line.split(":", 2)
        for name in controllers.split(",") if controllers else [""]:
            groups[name] = path
    return groups


def _v2(own: Path) -> tuple[Support | None, str]:
    try:
        available = (own / "cgroup.controllers").read_text().split()
    except OSError as exc:
        return None, f"the server's cgroup ({own}) cannot be read: {exc.strerror}"
    missing = [c for c in ("memory", "pids") if c not in available]
    if missing:
        return None, (
            f"the server's cgroup ({own}) is not delegated the {' and '.join(missing)} "
            "controller (systemd: Delegate=yes on the unit)"
        )
    if not os.access(own, os.W_OK):
        return None, f"the server may not make cgroups under {own} (systemd: Delegate=yes)"
    try:
        _enable(own)
    except OSError as exc:
        return None, f"the server could not enable memory and pids under {own}: {exc}"
    found = Support(2, own, None)
    return _tried(found)


def _enable(own: Path) -> None:
    """Enable memory and pids for ``own``'s children, moving this server (and its own
    children) into the leaf SERVER_LEAF first when ``own`` holds processes."""
    control = own / "cgroup.subtree_control"
    if {"memory", "pids"} <= set(control.read_text().split()):
        return
    try:
        control.write_text("+memory +pids")
        return
    except OSError as exc:
        if exc.errno != errno.EBUSY:
            raise
    mine = {os.getpid(), *_children_of(os.getpid())}
    there = {int(p) for p in (own / "cgroup.procs").read_text().split()}
    if not there <= mine:
        raise OSError(errno.EBUSY, "its cgroup holds processes other than the server's")
    leaf = own / SERVER_LEAF
    leaf.mkdir(exist_ok=True)
    for pid in there:
        with contextlib.suppress(ProcessLookupError):
            (leaf / "cgroup.procs").write_text(str(pid))
    control.write_text("+memory +pids")


def _children_of(pid: int) -> list[int]:
    from parley.sandbox.procs import descendants

    return descendants(pid)


def _v1(own: dict[str, str]) -> tuple[Support | None, str]:
    memory = _ROOT / "memory" / own["memory"].lstrip("/")
    pids = _ROOT / "pids" / own["pids"].lstrip("/") if "pids" in own else None
    if pids is not None and not (pids / "cgroup.procs").exists():
        pids = None
    if not (memory / "memory.limit_in_bytes").exists():
        return None, f"the memory controller's cgroup of the server ({memory}) is not mounted"
    return _tried(Support(1, memory, pids))


def _tried(found: Support) -> tuple[Support | None, str]:
    """``found`` when a group can be made there, limited and removed; else why not."""
    group = Group.make(found, memory_bytes=64 << 20, processes=8)
    if isinstance(group, str):
        return None, group
    group.remove()
    if found.pids is not None and group.pids_path is None:
        found = Support(found.version, found.memory, None)
    return found, ""


class Group:
    """The cgroup (v1: the two) of one sandbox."""

    def __init__(self, version: int, memory_path: Path, pids_path: Path | None) -> None:
        self.version = version
        self.memory_path = memory_path
        self.pids_path = pids_path

    @classmethod
    def make(cls, found: Support, *, memory_bytes: int, processes: int) -> Group | str:
        """A new group bounding its processes to ``memory_bytes`` in all (no swap) and
        ``processes`` at once; why not, as a sentence, when it cannot be made."""
        name = f"{_PREFIX}{os.getpid()}-{next(_numbers)}"
        memory = found.memory / name
        try:
            memory.mkdir()
        except OSError as exc:
            return f"a cgroup cannot be made under {found.memory}: {exc.strerror}"
        group = cls(found.version, memory, None)
        try:
            if found.version == 2:
                _write(memory / "memory.max", memory_bytes)
                _write(memory / "memory.swap.max", 0, missing_ok=True)
                _write(memory / "pids.max", processes)
            else:
                _write(memory / "memory.limit_in_bytes", memory_bytes)
                _write(memory / "memory.memsw.limit_in_bytes", memory_bytes, missing_ok=True)
        except OSError as exc:
            group.remove()
            return f"a cgroup's limits cannot be set under {found.memory}: {exc.strerror}"
        if found.pids is not None:
            pids = found.pids / name
            try:
                pids.mkdir()
                _write(pids / "pids.max", processes)
                group.pids_path = pids
            except OSError:
                with contextlib.suppress(OSError):
                    pids.rmdir()
        return group

    def add(self, pids: list[int]) -> bool:
        """Move these processes into the group; False when one could not be moved."""
        try:
            for path in self._paths():
                for pid in pids:
                    (path / "cgroup.procs").write_text(str(pid))
        except ProcessLookupError:
            return True  # gone already: nothing of it to bound
        except OSError:
            return False
        return True

    @property
    def bounds_processes(self) -> bool:
        return self.version == 2 or self.pids_path is not None

    def oom_kills(self) -> int:
        """How many of the group's processes the OOM killer has killed so far."""
        name = "memory.events" if self.version == 2 else "memory.oom_control"
        try:
            for line in (self.memory_path / name).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        except (OSError, ValueError):
            pass
        return 0

    def memory_bytes(self) -> int:
        """The memory the group's processes use now (their tmpfs pages included)."""
        name = "memory.current" if self.version == 2 else "memory.usage_in_bytes"
        try:
            return int((self.memory_path / name).read_text())
        except (OSError, ValueError):
            return 0

    def pids(self) -> list[int]:
        try:
            return [int(x) for x in (self.memory_path / "cgroup.procs").read_text().split()]
        except (OSError, ValueError):
            return []

    def remove(self) -> None:
        """Kill what is left in the group and remove it (v1: both groups)."""
        for path in self._paths():
            _remove(path)

    def _paths(self) -> list[Path]:
        return [self.memory_path, *([self.pids_path] if self.pids_path else [])]


def _write(path: Path, value: int, *, missing_ok: bool = False) -> None:
    try:
        path.write_text(str(value))
    except FileNotFoundError:
        if not missing_ok:
            raise


def _remove(path: Path) -> None:
    for _ in range(100):
        try:
            left = [int(x) for x in (path / "cgroup.procs").read_text().split()]
        except (OSError, ValueError):
            left = []
        for pid in left:
            with contextlib.suppress(OSError):
                os.kill(pid, 9)
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.01)


def sweep() -> int:
    """Remove the groups of servers that are gone (with what runs in them); how many."""
    found, _ = support()
    if found is None:
        return 0
    removed = 0
    for parent in (found.memory, found.pids):
        if parent is None:
            continue
        for path in parent.glob(f"{_PREFIX}*"):
            owner = path.name.removeprefix(_PREFIX).split("-")[0]
            if owner.isdigit() and Path(f"/proc/{owner}").exists():
                continue
            _remove(path)
            removed += not path.exists()
    return removed
