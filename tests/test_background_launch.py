"""The suite passes when it is launched in the background, as ``nohup make test &`` from a
script does: such a launch starts it with SIGINT and SIGQUIT ignored."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _ignore_ctrl_c() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGQUIT, signal.SIG_IGN)


def test_a_ctrl_c_test_passes_in_a_suite_started_with_ctrl_c_ignored() -> None:
    # One test that presses Ctrl+C on a child (`parley serve` must stop with 130).
    case = "tests/cli/test_commands.py::test_ctrl_c_stops_serve_cleanly"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", case],
        cwd=ROOT,
        preexec_fn=_ignore_ctrl_c,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "1 passed" in done.stdout
