"""``bench/hosted_mcp.py`` at a tiny scale, against a real ``parley serve``, the fake upstream and a
real MCP server on loopback: every response of both sides is measured and checked, the table
has its rows, and a conversation whose first response listed the tools lists them no more."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "hosted_mcp.py"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, dict[str, Any]]]:
    output = tmp_path_factory.mktemp("mcp-bench") / "mcp.json"
    command = [
        *(sys.executable, str(BENCH), "--conversations", "2", "--turns", "2"),
        *("--clients", "2", "--floor-calls", "3", "--warmup", "0", "--no-pin"),
        *("--output", str(output)),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert output.exists(), done.stderr[-3000:]
    yield done, json.loads(output.read_text())


def test_every_response_is_measured_on_both_sides(run: tuple[Any, dict[str, Any]]) -> None:
    done, results = run
    assert results["failures"] == [], done.stderr[-3000:]
    summary = results["summary"]
    assert set(summary["phases"]) == {"s", "c"}
    for phase in summary["phases"].values():
        # 2 conversations of 2 responses per side; the first of each lists the tools.
        assert phase["mcp"]["n"] == phase["function"]["n"] == 4
        assert phase["mcp_first"]["n"] == phase["mcp_next"]["n"] == 2
        assert phase["listings"]["first"] == 2
        assert 0 < phase["mcp"]["p50"] <= phase["mcp"]["p90"] < 10_000
        assert 0 < phase["function"]["p50"] < 10_000
        # The MCP server handled each call (its time is subtracted), and the client's own
        # time between its two requests was taken out of the baseline.
        assert phase["mcp_server_ms"]["p50"] > 0
        assert phase["client_think_ms"]["p50"] > 0
        assert "tools/call" in phase["legs_first"]["requests"]
        assert "tools/call" in phase["legs_next"]["requests"]
    assert summary["phases"]["s"]["cpu_mcp_ms"] > 0
    assert set(summary["floor"]) == {"new session + call", "call, open session"}
    assert all(f["n"] == 3 and f["p50"] > 0 for f in summary["floor"].values())
    assert "Parley's time around a call, p50, 1 client (n=4/4)" in done.stdout
    assert "tools/list on the next responses of a conversation, 2 clients" in done.stdout
    assert "| measure | hosted MCP | client function tool |" in done.stdout


def test_a_listed_tool_set_costs_no_request_later(run: tuple[Any, dict[str, Any]]) -> None:
    done, results = run
    assert results["failures"] == []
    assert results["summary"]["next_listings"] == 0
    assert done.returncode == 0, done.stderr[-3000:]
