"""Fixtures of the terminal client's end-to-end tests: MCP config files naming the test MCP
server (``mcp_server.py``), and the environment of a ``parley`` child process that sees
none of the developer's own configuration."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

MCP_SERVER = Path(__file__).with_name("mcp_server.py")
ROOT = Path(__file__).parents[2]

#: Writes an MCP config: ``{server name: (tools, allow)}``; returns its path.
McpConfig = Callable[[Mapping[str, tuple[str, Any]]], Path]


@pytest.fixture
def mcp_config(tmp_path: Path) -> McpConfig:
    def write(servers: Mapping[str, tuple[str, Any]]) -> Path:
        entries = {
            name: {
                "command": sys.executable,
                "args": [str(MCP_SERVER), "--name", name, "--tools", tools],
                "allow": allow,
            }
            for name, (tools, allow) in servers.items()
        }
        path = tmp_path / f"mcp-{len(list(tmp_path.glob('mcp-*.json')))}.json"
        path.write_text(json.dumps({"mcpServers": entries}))
        return path

    return write


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    """A ``parley`` child's environment: its own data and config directories, a terminal
    type, and no server or provider settings from outside."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("PARLEY_")
        and key not in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY")
    }
    env.update(
        XDG_DATA_HOME=str(tmp_path / "data"),
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        TERM="xterm-256color",
        PROMPT_TOOLKIT_NO_CPR="1",
        PYTHONPATH=str(ROOT),
    )
    return env


def parley(
    *args: str, env: Mapping[str, str], input: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """``parley ARGS`` in a child process with pipes (no terminal)."""
    return subprocess.run(
        [sys.executable, "-m", "parley.cli.main", *args],
        env=dict(env),
        input=input if input is not None else "",
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
