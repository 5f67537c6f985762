"""``bench/local_model.py`` at its tiny size, against the real local model server (a real
``parley serve`` running llama-server, and the in-process MiniLM): its JSON has every
measure, each side and verdict, and its table every row. The numbers are the machine's and
are not judged here (benchmarks judge them, never tests)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from parley.config import ProviderConfig
from parley.providers.local_models import server_spec
from tests.unavailable import unavailable

pytestmark = pytest.mark.real_model

BENCH = Path(__file__).resolve().parents[2] / "bench" / "local_model.py"
#: The measures with a target: Parley against the direct side, their ratio, the verdict.
JUDGED = (
    "ttft_ms_c1",
    "tokens_per_s_c1",
    "ttft_ms_c2",
    "tokens_per_s_c2",
    "embedding_passages_per_s",
)
TOOL_CALLS = ("tool_call_ms_direct", "tool_call_ms_chat", "tool_call_ms_responses")


def test_the_bench_reports_every_measure(tmp_path: Path) -> None:
    spec = server_spec(ProviderConfig(kind="local"))
    if isinstance(spec, str):
        unavailable(f"the local model cannot run here ({spec}): run make test-real")
    output = tmp_path / "local_model.json"
    # One thread: two that wait on each other at every step slow down many times over on a
    # machine busy with other work (the suite's), and the tiny run should stay tiny.
    command = [sys.executable, str(BENCH), "--tiny", "--threads", "1", "--output", str(output)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    measures = json.loads(output.read_text())["measures"]
    assert set(measures) == {*JUDGED, *TOOL_CALLS, "output_tokens_c1", "output_tokens_c2"}
    for name in JUDGED:
        measure = measures[name]
        assert measure["direct"] > 0 and measure["parley"] > 0, name
        assert measure["ratio"] == pytest.approx(measure["parley"] / measure["direct"]), name
        assert isinstance(measure["met"], bool), name
    # --tiny: 2 requests per side, client and round; 2 tool calls per face.
    assert measures["ttft_ms_c1"]["n"] == 2 and measures["ttft_ms_c2"]["n"] == 4
    for name in TOOL_CALLS:
        calls = measures[name]
        assert calls["n"] == 2 and 0 <= calls["calls"] <= 2, name
        assert 0 < calls["p50"] <= calls["p90"], name
    assert measures["embedding_passages_per_s"]["n"] > 0  # chunks embedded
    for row in (
        "time to first token, median, 1 client",
        "output tokens/s after the first, median, 2 clients",
        "constrained tool call, Chat Completions, p90",
        "constrained tool call, Responses, p50",
        "embedding passages/s",
    ):
        assert row in done.stdout, row
