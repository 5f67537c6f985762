"""``bench/ingest.py`` at a tiny scale: a row per kind, and its results file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

INGEST = Path(__file__).resolve().parents[2] / "bench" / "ingest.py"


def test_ingest_bench_at_tiny_scale(tmp_path: Path) -> None:
    output = tmp_path / "ingest.json"
    command = [
        *(sys.executable, str(INGEST), "--pages", "3", "--documents", "1", "--rounds", "1"),
        *("--no-pin", "--output", str(output)),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [line.split() for line in done.stdout.splitlines()[2:7]]
    assert [row[0] for row in rows] == ["text", "markdown", "html", "pdf", "docx"]
    results = json.loads(output.read_text())["results"]
    assert list(results) == ["text", "markdown", "html", "pdf", "docx"]
    for kind, measured in results.items():
        assert 2 <= measured["pages"] <= 3.5, kind  # 3 pages of about 3,000 characters
        assert measured["pages_per_s"] > 0
        assert measured["chunks"] >= 2, kind
