"""Fixtures of the terminal client's end-to-end tests: MCP config files naming the test MCP
server (``mcp_server.py``), the environment of a ``parley`` child process that sees none of
the developer's own configuration, and ``parley chat`` in a pseudo-terminal."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from parley.sdk import Client, Message
from tests.terminal.pty_terminal import Terminal

MCP_SERVER = Path(__file__).with_name("mcp_server.py")
ROOT = Path(__file__).parents[2]

#: Writes an MCP config: ``{server name: (tools, allow, *more arguments of mcp_server.py)}``;
#: returns its path.
McpConfig = Callable[[Mapping[str, tuple[Any, ...]]], Path]
#: Starts ``parley chat ARGS`` in a pseudo-terminal, on the test server as ``user_key``
#: unless ``server_url=`` / ``api_key=`` say otherwise.
StartChat = Callable[..., Terminal]
#: The start-up lines of ``parley chat`` (model, assistant, server, then one line per MCP
#: server). Type once the prompt is drawn again below them: while they are printed, the
#: terminal is in cooked mode for a moment (a Ctrl+C would be a SIGINT).
STARTED = r"· assistant \w+[^\n]*\n(?:[✓✗-] [^\n]*\n)*"


def stored_messages(server: Any, key: str, thread_id: str | None = None) -> list[Message]:
    """What the server keeps of a thread (the user's newest by default), read through the
    SDK: every message, tool calls and results too, oldest first."""
    with Client(base_url=server.base_url, api_key=key) as client:
        if thread_id is None:
            thread_id = client.threads.list(limit=1, order="desc").data[0].id
        return list(client.messages.list(thread_id=thread_id, limit=100).iter_all())


@pytest.fixture
def mcp_config(tmp_path: Path) -> McpConfig:
    def write(servers: Mapping[str, tuple[Any, ...]]) -> Path:
        entries = {
            name: {
                "command": sys.executable,
                "args": [str(MCP_SERVER), "--name", name, "--tools", tools, *extra],
                "allow": allow,
            }
            for name, (tools, allow, *extra) in servers.items()
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


def chat_argv(server_url: str, api_key: str, *args: str) -> list[str]:
    """The command line of ``parley chat ARGS`` on ``server_url`` as ``api_key``."""
    argv = [sys.executable, "-m", "parley.cli.main", "chat"]
    return [*argv, "--server", server_url, "--api-key", api_key, *args]


@pytest.fixture
def start_chat(server: Any, user_key: str, cli_env: dict[str, str]) -> Iterator[StartChat]:
    started: list[Terminal] = []

    def start(
        *args: str, server_url: str | None = None, api_key: str | None = None, cols: int = 120
    ) -> Terminal:
        argv = chat_argv(server_url or server.base_url, api_key or user_key, *args)
        term = Terminal(argv, env=cli_env, cols=cols)
        started.append(term)
        return term

    yield start
    for term in started:
        term.close()


@contextlib.contextmanager
def loose_umask() -> Iterator[None]:
    """Umask 022 while the block runs (child processes started in it keep it): files a test
    expects to be private are not private by accident of the umask."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


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
