"""The pid file each sandbox leaves under ``<containers>/.pids``, and the sweep at start-up
that kills the sandboxes a dead server left behind.

A pid file names the sandbox's outer bwrap with its start time and name, and the server
that owns it with its own start time: a pid reused by another process is never killed,
and a sandbox whose server still runs is left alone.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from parley.sandbox import cgroups, procs

__all__ = ["sweep_orphans", "write_pid_file"]


def write_pid_file(pid_file: Path, *, pid: int, label: str, directory: Path) -> None:
    """Write (atomically) the pid file of the sandbox whose outer bwrap is ``pid``."""
    pid_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    record = {
        "pid": pid,
        "label": label,
        "directory": str(directory),
        "started": procs.started(pid),
        "owner": os.getpid(),
        "owner_started": procs.started(os.getpid()),
    }
    temporary = pid_file.with_suffix(".tmp")
    temporary.write_text(json.dumps(record))
    temporary.replace(pid_file)


def sweep_orphans(root: Path) -> int:
    """Kill the sandboxes a dead server left behind (pid files under ``root/.pids``,
    checked against the process's start time and name so a reused pid is never killed),
    remove their pid files and the cgroups of servers that are gone; return how many
    sandboxes were killed. A pid file whose server still runs is left alone. Called at
    start-up."""
    killed = 0
    for pid_file in sorted((root / ".pids").glob("*.pid")):
        try:
            record = json.loads(pid_file.read_text())
            pid = int(record["pid"])
            owner, owner_started = int(record["owner"]), record.get("owner_started")
        except (OSError, ValueError, KeyError, TypeError):
            with contextlib.suppress(OSError):
                pid_file.unlink()
            continue
        if owner_started is not None and procs.started(owner) == owner_started:
            continue  # its server (maybe this one) still runs
        # Its bwrap still, not a process that reuses the pid: the same start time.
        started = record.get("started")
        same = started is not None and procs.started(pid) == started
        if same and procs.comm(pid) == "bwrap" and procs.running(pid):
            procs.kill_tree(pid)
            killed += 1
        with contextlib.suppress(OSError):
            pid_file.unlink()
    cgroups.sweep()
    return killed
