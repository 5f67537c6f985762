"""The probe, the choice of the sandbox's Python, the limits from the settings, and
``parley sandbox check``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from parley.config import Settings
from parley.sandbox import cgroups
from parley.sandbox.limits import MEMORY_LIMITS, Limits
from parley.sandbox.probe import python_roots, sandbox_python, unavailable


def test_a_missing_bwrap_is_said_plainly(tmp_path: Path) -> None:
    missing = str(tmp_path / "bwrap")
    why = unavailable(missing)
    assert why is not None and why.startswith("bubblewrap") and "could not be run" in why
    assert unavailable(missing) is why  # asked once per process
    failing = tmp_path / "false-bwrap"
    failing.write_text(
        "#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n"
    )
    failing.chmod(0o755)
    assert unavailable(str(failing)) == (
        "bubblewrap cannot make a sandbox on this server (user namespaces refused?): "
        "No permissions to create new namespace"
    )


def test_bwrap_works_here(bwrap: None) -> None:
    assert unavailable() is None


def test_the_sandbox_python_is_the_configured_one_else_the_one_beside_the_server(
    tmp_path: Path,
) -> None:
    chosen = tmp_path / "py" / "bin" / "python"
    assert sandbox_python(Settings(code_interpreter_python=chosen)) == chosen
    beside = Path(sys.prefix) / "sandbox" / "bin" / "python"
    expected = beside if beside.exists() else Path(sys.executable)
    assert sandbox_python(Settings()) in (
        expected,
        Path.home() / ".local/share/parley/sandbox/bin/python",
    )


def test_a_venvs_roots_are_the_venv_and_its_base_prefix() -> None:
    roots = python_roots(Path(sys.executable))  # the test venv
    assert Path(sys.prefix) in roots
    base = Path(sys.base_prefix)
    assert base in roots or base == Path("/usr") or base.is_relative_to("/usr")
    assert not any(r == Path("/") or r.is_relative_to("/usr") for r in roots)


def test_limits_of_the_settings() -> None:
    settings = Settings(
        code_interpreter_cpu_seconds=30,
        code_interpreter_max_processes=16,
        code_interpreter_call_timeout=5.0,
        code_interpreter_max_output=2048,
        code_interpreter_disk_bytes=2 << 20,
    )
    limits = Limits.of(settings)
    assert limits.memory_bytes == 1 << 30
    assert (limits.cpu_seconds, limits.processes, limits.call_timeout) == (30, 16, 5.0)
    assert (limits.output_bytes, limits.disk_bytes) == (2048, 2 << 20)
    assert Limits.of(settings, "16g").memory_bytes == MEMORY_LIMITS["16g"] == 16 << 30
    with pytest.raises(ValueError):
        Limits.of(settings, "2g")


def test_parley_sandbox_check_says_what_runs_here(scientific: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "parley.cli.main", "sandbox", "check"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PARLEY_CODE_INTERPRETER_PYTHON": str(scientific)},
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "sandbox:    bubblewrap works here"
    found, said = cgroups.support()
    if found is not None:
        assert lines[1] == f"bounds:     memory and processes bounded by a cgroup each, {said}"
    else:
        assert lines[1].startswith("bounds:     memory and processes bounded by the host's watch")
    assert lines[2].startswith("runs as:    ") and lines[2].endswith(", on the host")
    assert lines[3] == f"python:     {scientific}"
    assert [line.split(":")[0] for line in lines[4:]] == ["numpy", "pandas", "matplotlib"]


def test_parley_sandbox_check_says_when_the_watch_bounds_memory(bwrap: None) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "parley.cli.main", "sandbox", "check"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PARLEY_CODE_INTERPRETER_CGROUP": "off"},
        check=False,
    )
    assert done.stdout.splitlines()[1] == (
        "bounds:     memory and processes bounded by the host's watch of their processes "
        "during each call (PARLEY_CODE_INTERPRETER_CGROUP=off)"
    )


def test_parley_sandbox_check_fails_without_the_libraries(bwrap: None) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "parley.cli.main", "sandbox", "check"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PARLEY_CODE_INTERPRETER_PYTHON": sys.executable},
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    # The server's own Python has numpy (the embedding model needs it), not pandas.
    assert "pandas:     does not import in a sandbox" in done.stdout
