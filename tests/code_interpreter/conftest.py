"""The code interpreter through the API: a ``parley serve`` whose sandboxes are real
(bubblewrap), with short limits so the abuse cases end quickly.

Without bwrap, or where it cannot make a sandbox, these tests skip and say why; under CI
(``CI`` set) they fail. The same for the sandbox's scientific stack (``.venv/sandbox``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from parley.sandbox.probe import unavailable as sandbox_unavailable
from tests.unavailable import unavailable

#: The limits of the tests' servers: a call may run 4 s, print 8 KiB, write 32 MiB.
LIMITS = {
    "PARLEY_CODE_INTERPRETER_CALL_TIMEOUT": "4",
    "PARLEY_CODE_INTERPRETER_MAX_OUTPUT": "8192",
    "PARLEY_CODE_INTERPRETER_DISK_BYTES": str(32 * 1024 * 1024),
    "PARLEY_CODE_INTERPRETER_MAX_FILE_BYTES": str(16 * 1024 * 1024),
    "PARLEY_CODE_INTERPRETER_MAX_PROCESSES": "48",
}


def sandbox_python() -> Path:
    beside = Path(sys.prefix) / "sandbox" / "bin" / "python"
    return beside if beside.exists() else Path(sys.executable)


def needs_sandbox() -> None:
    """Skip (fail under CI) when no sandbox can run here."""
    why = sandbox_unavailable()
    if why is not None:
        unavailable(why)


def needs_stack() -> None:
    """Skip (fail under CI) without numpy, pandas and matplotlib in the sandbox's Python."""
    done = subprocess.run(
        [str(sandbox_python()), "-c", "import numpy, pandas, matplotlib"],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        unavailable("the sandbox's Python has no numpy, pandas and matplotlib (make installs them)")


@pytest.fixture(scope="session")
def sandbox() -> None:
    needs_sandbox()


def sandboxes_of(container_id: str) -> list[int]:
    """The pids of processes running in ``container_id``'s sandbox: those whose mount table
    binds the container's folder at /mnt/data (bwrap takes its options on a pipe, so no
    command line names it)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/mountinfo", "rb") as fh:
                table = fh.read().decode("utf-8", "replace")
        except OSError:
            continue
        for line in table.splitlines():
            fields = line.split()
            if len(fields) > 4 and fields[4] == "/mnt/data":
                if fields[3].endswith("/" + container_id):
                    found.append(int(entry))
                break
    return found
