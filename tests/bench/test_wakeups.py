"""``bench/wakeups.py`` at a tiny scale: it counts, per stream, the tasks and the database
jobs of a real ``parley serve``, a stored turn's claim, end and task among them."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

WAKEUPS = Path(__file__).resolve().parents[2] / "bench" / "wakeups.py"


def test_a_stored_turns_tasks_and_jobs_are_counted_per_stream() -> None:
    command = [sys.executable, str(WAKEUPS), "--streams", "4", "--gap-ms", "0", "--settle", "1"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    rows = {
        name: (float(chat), float(stored))
        for name, chat, stored in re.findall(
            r"^\| (.+?) \| ([\d.]+) \| ([\d.]+) \|$", done.stdout, re.M
        )
    }

    def anywhere(job: str) -> tuple[float, float]:
        """A job's count on the database thread and on the event loop (SQLite's thread
        idle) together."""
        thread, loop = rows.get(f"job: {job}", (0.0, 0.0)), rows.get(f"job: {job} on the loop")
        return thread if loop is None else (thread[0] + loop[0], thread[1] + loop[1])

    # One claim and one end a stored stream, none for a chat completion.
    assert anywhere("claim_first") == (0.0, 1.0), done.stdout
    assert anywhere("Settler._settle.<locals>.write later") == (0.0, 1.0), done.stdout
    assert rows["task: Launcher._drive"] == (0.0, 1.0), done.stdout
    chat_jobs, stored_jobs = rows["**jobs, all**"]
    assert stored_jobs > chat_jobs, done.stdout
