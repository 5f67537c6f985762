"""``bench/history.py`` at a tiny scale, against a real ``parley serve`` and the fake
upstream: every thread gets its row, a turn with the window unknown sends the whole thread
and its question, and a turn with a window of about 20 messages sends about 20."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HISTORY = Path(__file__).resolve().parents[2] / "bench" / "history.py"


def test_history_table_at_tiny_scale(tmp_path: Path) -> None:
    output = tmp_path / "history.json"
    command = [
        *(sys.executable, str(HISTORY), "--sizes", "10,20,50", "--turns", "1"),
        *("--window-messages", "20", "--warmup", "1", "--no-pin", "--output", str(output)),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]

    lines = done.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("window "))
    table = [line.split("  ") for line in lines[header + 2 : header + 8]]
    cells = [[c.strip() for c in row if c.strip()] for row in table]
    assert [(c[0], c[1]) for c in cells] == [
        ("unknown (all sent)", "10"),
        ("unknown (all sent)", "20"),
        ("unknown (all sent)", "50"),
        ("~20 messages", "10"),
        ("~20 messages", "20"),
        ("~20 messages", "50"),
    ]
    assert all(len(c) == 7 and c[2].isdigit() and c[3].endswith(" ms") for c in cells)
    assert "turn CPU, 50 prior messages ÷ 20, window ~20 messages:" in done.stdout
    assert "server CPU per message sent upstream, window unknown, 10 → 50" in done.stdout

    results = json.loads(output.read_text())
    rows = {(r["setting"], r["prior"]): r for r in results["summary"]["rows"]}
    assert set(rows) == {(s, n) for s in ("unknown", "window") for n in (10, 20, 50)}
    for row in rows.values():
        assert row["turns"] == 1
        assert row["failures"] == 0, row["problems"]
        assert 0 < row["ttft_p50_ms"] <= row["turn_p50_ms"] < 10_000
        assert 0 < row["cpu_p50_ms"] < 10_000
    # The whole thread and the turn's question, with the window unknown or not reached.
    assert rows["unknown", 10]["sent_p50"] == 11
    assert rows["unknown", 20]["sent_p50"] == 21
    assert rows["unknown", 50]["sent_p50"] == 51
    assert rows["window", 10]["sent_p50"] == 11
    # The window holds about 20 messages: whole turns (user, assistant) and the question.
    assert rows["window", 50]["sent_p50"] % 2 == 1
    assert 15 <= rows["window", 50]["sent_p50"] <= 25
    assert rows["unknown", 50]["request_kib_p50"] > 2 * rows["window", 50]["request_kib_p50"]
    assert "cpu_us_per_message_sent" in rows["unknown", 50]
    assert set(results["summary"]["targets"]) == {"window_cpu_ratio", "cpu_us_per_message_sent"}
