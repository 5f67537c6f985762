"""``bench/search.py`` at a tiny scale: a row per mode, and its results file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SEARCH = Path(__file__).resolve().parents[2] / "bench" / "search.py"


def test_search_bench_at_tiny_scale(tmp_path: Path) -> None:
    output = tmp_path / "search.json"
    command = [
        *(sys.executable, str(SEARCH), "--chunks", "250", "--queries", "5", "--dim", "16"),
        *("--databases", "sqlite", "--output", str(output)),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [line.split() for line in done.stdout.splitlines()[2:5]]
    assert [row[:2] for row in rows] == [["sqlite", m] for m in ("lexical", "vector", "hybrid")]
    results = json.loads(output.read_text())["results"]["sqlite"]["modes"]
    assert list(results) == ["lexical", "vector", "hybrid"]
    for mode, measured in results.items():
        assert 0 < measured["p50_ms"] <= measured["p95_ms"], mode
        # A search's CPU time in the bench's process (SQLite's work is all there).
        assert measured["cpu_ms"] > 0, mode
        # Vectors always find 10; words only the chunks with one of the query's words.
        assert 0 < measured["mean_results"] <= 10, mode
    assert results["vector"]["mean_results"] == 10


def test_search_bench_reports_the_median_of_its_rounds(tmp_path: Path) -> None:
    output = tmp_path / "search.json"
    command = [
        *(sys.executable, str(SEARCH), "--chunks", "200", "--queries", "4", "--dim", "8"),
        *("--rounds", "3", "--databases", "sqlite", "--output", str(output)),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "the median of 3 rounds" in done.stdout
    assert "Load average (1 min): " in done.stdout
    measured = json.loads(output.read_text())["results"]["sqlite"]
    assert len(measured["rounds"]) == 3
    for mode, medians in measured["modes"].items():
        for key in ("p50_ms", "p95_ms"):
            each = sorted(r[mode][key] for r in measured["rounds"])
            assert medians[key] == round(each[1], 2), (mode, key)


def test_search_bench_refuses_no_rounds() -> None:
    command = [sys.executable, str(SEARCH), "--rounds", "0", "--databases", "sqlite"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert "--rounds must be at least 1" in done.stderr
