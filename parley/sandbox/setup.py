"""The sandbox's own Python environment (``parley sandbox setup``), and the check of what a
sandbox can do on this machine (``parley sandbox check``)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from parley.config import Settings

#: What the sandbox's environment gets from PyPI: known to work together on Python 3.11.
PACKAGES = ("numpy==2.2.6", "pandas==2.2.3", "matplotlib==3.10.3")

#: The libraries ``check`` imports inside a sandbox.
LIBRARIES = ("numpy", "pandas", "matplotlib")


def default_directory() -> Path:
    """Where ``parley sandbox setup`` makes the environment: ``sandbox`` in the data
    directory (where ``probe.sandbox_python`` looks first)."""
    from parley.config import data_dir

    return data_dir() / "sandbox"


def make_environment(
    directory: Path, *, python: str = sys.executable, packages: tuple[str, ...] = PACKAGES
) -> Path:
    """Make a venv at ``directory`` with the server's Python (``python -m venv``) and
    install ``packages`` into it with pip; its Python's path. CalledProcessError when
    either step fails (their output went to this process's stdout and stderr)."""
    directory = directory.absolute()
    if not (directory / "bin" / "python").exists():
        subprocess.run([python, "-m", "venv", str(directory)], check=True)
    env_python = directory / "bin" / "python"
    subprocess.run(
        [str(env_python), "-m", "pip", "install", "--disable-pip-version-check", "-q", *packages],
        check=True,
    )
    return env_python


@dataclass(frozen=True, slots=True)
class Check:
    """``parley sandbox check``'s answer."""

    #: None when a sandbox can run here; else why not.
    problem: str | None
    #: The Python sandboxes run.
    python: Path
    #: Each library: its version inside a sandbox, or None when it does not import.
    libraries: dict[str, str | None]
    #: What went wrong running the sandbox, when something did.
    error: str | None = None
    #: What bounds each container's memory and processes as a whole (a cgroup, or the
    #: host's watch), when a sandbox can run.
    bound: str | None = None

    @property
    def ok(self) -> bool:
        return (
            self.problem is None
            and self.error is None
            and all(v is not None for v in self.libraries.values())
        )


def check(settings: Settings) -> Check:
    """Whether a sandbox runs here, with which Python, and which libraries import in it."""
    from parley.sandbox.probe import code_interpreter_unavailable, memory_bound, sandbox_python

    python = sandbox_python(settings)
    problem = code_interpreter_unavailable(settings)
    missing: dict[str, str | None] = dict.fromkeys(LIBRARIES)
    if problem is not None:
        return Check(problem, python, missing)
    found = asyncio.run(_check_inside(settings, python))
    return replace(found, bound=memory_bound(settings))


async def _check_inside(settings: Settings, python: Path) -> Check:
    from parley.sandbox.limits import Limits
    from parley.sandbox.probe import sandbox_user
    from parley.sandbox.runtime import Kernel, SandboxError

    missing: dict[str, str | None] = dict.fromkeys(LIBRARIES)
    code = (
        "import importlib, json\nfound = {}\n"
        f"for name in {LIBRARIES!r}:\n"
        "    try:\n"
        "        found[name] = importlib.import_module(name).__version__\n"
        "    except Exception:\n"
        "        found[name] = None\n"
        "print(json.dumps(found))"
    )
    with tempfile.TemporaryDirectory(prefix="parley-sandbox-check-") as root:
        try:
            kernel = await Kernel.start(
                directory=Path(root) / "check",
                limits=Limits.of(settings),
                python=python,
                label="check",
                cgroup=settings.code_interpreter_cgroup != "off",
                require_cgroup=settings.code_interpreter_cgroup == "require",
                user=sandbox_user(settings)[0],
            )
        except SandboxError as exc:
            return Check(None, python, missing, str(exc))
        try:
            outcome = await kernel.run(code)
        finally:
            await kernel.close()
    if outcome.ended != "ok":
        return Check(None, python, missing, outcome.error)
    import json

    found = json.loads(outcome.logs)
    return Check(None, python, {name: found.get(name) for name in LIBRARIES})
