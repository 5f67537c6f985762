"""``bench/file_search.py`` at a tiny scale, against a real ``parley serve`` and the fake
upstream: every response searched, the server timed each search, and the table has its
rows."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "file_search.py"


def test_the_bench_measures_each_search(tmp_path: Path) -> None:
    output = tmp_path / "file_search.json"
    command = [
        *(sys.executable, str(BENCH), "--responses", "3", "--chunks", "40", "--warmup", "0"),
        *("--no-pin", "--output", str(output)),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(output.read_text())
    assert results["search_mean_ms"] > 0 and results["around_mean_ms"] > 0
    assert set(results["p50_ms"]) == {"around", "server", "own", "ttft_search", "ttft_plain"}
    assert "Parley's own time around the search" in done.stdout
