"""``bench/versions.py --hosted`` at a tiny scale: two real ``parley serve`` (the committed
``HEAD`` exported, and the working tree) against the fake upstream, the fake search
service, the test MCP server and a vector store on each server; every request of both
sides calls its tool once, and the report has each kind's rows. A side whose requests did
not each call the tool fails the run."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def versions() -> Iterator[ModuleType]:
    sys.path.insert(0, str(BENCH))  # its siblings are imported as top-level modules
    try:
        import versions as module

        yield module
    finally:
        sys.path.remove(str(BENCH))


def test_both_versions_call_each_hosted_tool() -> None:
    command = [
        *(sys.executable, str(BENCH / "versions.py"), "--base", "HEAD"),
        *("--hosted", "web_search,mcp,file_search", "--calls", "2", "--block", "2", "--no-pin"),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    for kind in ("web_search", "mcp", "file_search"):
        # Two warm-up blocks and one timed block of two, per side.
        assert (
            f"hosted {kind}: streamed POST /v1/responses, one call each (2 timed per side; "
            "requests base 6, tree 6; calls base 6, tree 6)"
        ) in done.stdout
    assert done.stdout.count("working tree / base, p50: first content") == 3


def test_a_side_that_did_not_call_its_tool_is_named(versions: ModuleType) -> None:
    timed = versions.Timed({"base": [], "tree": []}, {"base": 6, "tree": 6}, {"base": 6, "tree": 0})
    assert versions.missed_calls("mcp", timed) == ["mcp, tree: 0 tool calls for 6 requests"]
    timed.called["tree"] = 6
    assert versions.missed_calls("mcp", timed) == []


def test_unknown_kinds_are_refused(versions: ModuleType) -> None:
    assert versions.parse_kinds("mcp, web_search") == ["mcp", "web_search"]
    for wrong in ("", "web", "mcp,code_interpreter"):
        with pytest.raises(ValueError, match="--hosted takes web_search, mcp, file_search"):
            versions.parse_kinds(wrong)
