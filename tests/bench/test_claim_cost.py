"""``bench/claim_cost.py`` at a tiny scale: it measures claims on a real SQLite database and
names the tables and indexes whose pages a claim's commit writes."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

CLAIM_COST = Path(__file__).resolve().parents[2] / "bench" / "claim_cost.py"


def test_claims_are_measured_and_their_pages_named() -> None:
    command = [sys.executable, str(CLAIM_COST), "--claims", "50", "--pages-of", "4"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    median = re.search(r"thread CPU per claim: median (\d+) µs", done.stdout)
    assert median is not None and int(median.group(1)) > 0, done.stdout
    frames = re.search(r"WAL pages per claim: ([\d.]+)", done.stdout)
    assert frames is not None and float(frames.group(1)) >= 4, done.stdout
    named = dict(re.findall(r"^  (\w+): ([\d.]+)$", done.stdout, re.M))
    # Each claim's commit writes a page of each table it inserts into, and of their keys.
    for tree in ("threads", "runs", "messages", "uq_runs_active_thread"):
        assert float(named.get(tree, 0)) >= 1, done.stdout
