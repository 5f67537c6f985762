"""The wiring of ``parley chat`` / ``parley ask`` into the ``parley`` command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from parley.cli.main import _chat_options, build_parser


def test_the_parley_command_imports_no_terminal_library() -> None:
    """``parley --help`` stays fast: prompt_toolkit, the MCP SDK and the terminal client load
    only when ``chat`` or ``ask`` runs, Flask and the web app only for ``web`` and ``run``
    (rich may be there: httpx imports it for its own CLI)."""
    names = ("prompt_toolkit", "mcp", "fastapi", "parley.terminal", "rich.markdown")
    names += ("flask", "werkzeug", "parley.web", "parley.cli.web")
    code = (
        "import sys, parley.cli.main as m; m.build_parser();"
        f"print(sorted(n for n in {names!r} if n in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30
    )
    assert done.stdout.strip() == "[]"


def test_flags_become_options() -> None:
    args = build_parser().parse_args(
        [
            *("ask", "hi", "--json", "--server", "http://h:1", "--api-key", "k"),
            *("--model", "fake/x", "--assistant", "asst_1", "--thread", "thread_1"),
            *("--mcp-config", "m.json", "--mcp-server", "a", "--mcp-server", "b"),
            *("--confirm", "never", "--max-parallel-tools", "2", "--tool-timeout", "5"),
            *("--first-chunk-timeout", "0", "--idle-timeout", "7", "--turn-timeout", "9"),
            "--no-stream",
        ]
    )
    options = _chat_options(args)
    assert (options.server, options.api_key, options.model) == ("http://h:1", "k", "fake/x")
    assert (options.assistant_id, options.thread_id) == ("asst_1", "thread_1")
    assert options.mcp_config == Path("m.json") and options.mcp_servers == ("a", "b")
    assert (options.confirm, options.max_parallel_tools, options.tool_timeout) == ("never", 2, 5)
    assert (options.first_chunk_timeout, options.idle_timeout, options.turn_timeout) == (0, 7, 9)
    assert options.stream is False and args.json and args.prompt == "hi"

    defaults = _chat_options(build_parser().parse_args(["chat"]))
    assert (defaults.confirm, defaults.max_parallel_tools, defaults.tool_timeout) == ("ask", 4, 120)
    assert (defaults.first_chunk_timeout, defaults.idle_timeout, defaults.turn_timeout) == (
        60,
        45,
        300,
    )
    assert defaults.stream and defaults.server is None and defaults.model is None


@pytest.mark.parametrize(
    "flag", ["--max-parallel-tools=0", "--tool-timeout=0", "--idle-timeout=-1"]
)
def test_bad_numbers_are_usage_errors(flag: str) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["chat", flag])
    assert exited.value.code == 2
