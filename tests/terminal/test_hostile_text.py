"""What a model, an MCP server or the API writes never drives the user's terminal.

``parley ask`` and ``parley chat`` run in a pseudo-terminal against the suite's server and the
test MCP server in its ``--hostile`` mode: ``HOSTILE`` (a window title, a screen clear, an
8-bit CSI, rich markup for a style and a hyperlink) comes as a tool's name, description and
result, as a failing server's stderr, and, through a replayed upstream stream, as the
model's text and the name of the tool it calls. None of its control sequences may reach the
terminal, and its markup shows as the text it is.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from parley.terminal.repl import PROMPT
from tests.terminal.conftest import STARTED, McpConfig, StartChat, parley
from tests.terminal.mcp_server import HOSTILE, HOSTILE_SHOWN, HOSTILE_TOOL
from tests.terminal.pty_terminal import Terminal

#: What ``HOSTILE`` would put on the terminal if it got through; none of it is written by
#: rich or prompt_toolkit themselves in these runs.
FORBIDDEN = {
    "a window title (OSC 0)": "\x1b]0;",
    "a screen clear (CSI 2 J)": "\x1b[2J",
    "a bell (BEL)": "\x07",
    "an 8-bit CSI (C1)": "\x9b",
    "a hyperlink (OSC 8, from [link=...] markup)": "\x1b]8;",
}
COLS = 220  # wide enough for the whole of HOSTILE_SHOWN in a tool line
#: The replayed model stops calling tools only at the chat's turn limit.
TURN_LIMIT = r"stopped: still calling tools after \d+ turns"


def assert_harmless(raw: str) -> None:
    found = [what for what, sequence in FORBIDDEN.items() if sequence in raw]
    assert not found, f"{', '.join(found)} reached the terminal:\n{raw!r}"


@pytest.fixture
def hostile_servers(mcp_config: McpConfig) -> Path:
    """``evil`` offers the hostile tool; ``dead`` writes HOSTILE to stderr and exits."""
    return mcp_config(
        {
            "evil": ("hostile", True, "--hostile"),
            "dead": ("echo", True, "--hostile", "--exit", "3"),
        }
    )


@pytest.fixture
def hostile_model(tmp_path: Path) -> str:
    """A ``fake/replay:`` model that says HOSTILE, then calls a tool named HOSTILE_TOOL."""
    chunks: list[dict[str, Any]] = [
        {"delta": {"role": "assistant", "content": f"Calling {HOSTILE} now."}},
        {
            "delta": {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_hostile",
                        "type": "function",
                        "function": {"name": HOSTILE_TOOL, "arguments": '{"text": "hi"}'},
                    }
                ]
            }
        },
        {"delta": {}, "finish_reason": "tool_calls"},
    ]
    events = [
        {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "m", "choices": [c]}
        for c in ({"index": 0, "finish_reason": None} | chunk for chunk in chunks)
    ]
    path = tmp_path / "hostile.sse"
    path.write_text("".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n")
    return f"fake/replay:{path}"


def ask_in_terminal(*args: str, env: dict[str, str]) -> Terminal:
    argv = [sys.executable, "-m", "parley.cli.main", "ask", *args]
    return Terminal(argv, env=env, cols=COLS)


def test_ask_shows_what_mcp_servers_send_as_text(
    server: Any, user_key: str, cli_env: dict[str, str], hostile_servers: Path
) -> None:
    connection = ["--server", server.base_url, "--api-key", user_key]
    term = ask_in_terminal(
        *connection,
        *("--model", "fake/tools:1", "--mcp-config", str(hostile_servers)),
        "use the tool",
        env=cli_env,
    )
    try:
        code = term.wait(60)
        term.expect(r"✓ sneaky\w*  " + re.escape(HOSTILE_SHOWN))  # the tool's result
    finally:
        term.close()
    screen = term.screen
    assert code == 0, screen
    assert re.search(r"✗ MCP dead: failed: .*stderr: starting " + re.escape(HOSTILE_SHOWN), screen)
    assert_harmless(term.raw)


def test_ask_shows_a_hostile_tool_name_from_the_model_as_text(
    server: Any, user_key: str, cli_env: dict[str, str], hostile_model: str
) -> None:
    connection = ["--server", server.base_url, "--api-key", user_key]
    term = ask_in_terminal(*connection, "--model", hostile_model, "hi", env=cli_env)
    try:
        code = term.wait(120)
        term.expect(TURN_LIMIT)
    finally:
        term.close()
    assert code == 1  # the run never completed
    screen = term.screen
    assert f"▸ sneaky{HOSTILE_SHOWN}(" in screen
    assert f"✗ sneaky{HOSTILE_SHOWN}  Unknown tool" in screen
    assert f"Calling {HOSTILE_SHOWN} now." in screen
    assert_harmless(term.raw)


def test_ask_json_lines_keep_the_data_and_escape_the_controls(
    server: Any, user_key: str, cli_env: dict[str, str], hostile_model: str
) -> None:
    connection = ["--server", server.base_url, "--api-key", user_key]
    done = parley("ask", *connection, "--model", hostile_model, "--json", "hi", env=cli_env)
    assert done.returncode == 1, done.stderr
    assert_harmless(done.stdout)
    assert_harmless(done.stderr)
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    texts = "".join(line["text"] for line in lines if line["type"] == "content.delta")
    assert f"Calling {HOSTILE} now." in texts  # the data itself is kept
    names = {line["name"] for line in lines if line["type"] in ("tool.start", "tool.result")}
    assert names == {HOSTILE_TOOL}


def test_chat_shows_what_servers_and_models_send_as_text(
    start_chat: StartChat, hostile_servers: Path, hostile_model: str
) -> None:
    chat = start_chat("--model", "fake/tools:1", "--mcp-config", str(hostile_servers), cols=COLS)
    ready = chat.expect(STARTED)
    chat.expect(PROMPT, since=ready.end())
    assert re.search(r"✗ dead: failed: .*stderr: starting " + re.escape(HOSTILE_SHOWN), chat.screen)

    mark = chat.mark()
    chat.write("/tools\r")  # the description, markup and all, as text
    chat.expect(r"sneaky\w*\s+evil\s+" + re.escape(HOSTILE_SHOWN), since=mark)

    mark = chat.mark()
    chat.write("/servers\r")
    chat.expect(r"✗ dead: failed: .*stderr: starting " + re.escape(HOSTILE_SHOWN), since=mark)

    mark = chat.mark()
    chat.write("use the tool\r")
    chat.expect(r"✓ sneaky\w*  " + re.escape(HOSTILE_SHOWN), since=mark)
    chat.expect(r"in / \d+ out tokens", since=mark)

    mark = chat.mark()
    chat.write(f"/model {hostile_model}\r")
    chat.expect(r"model fake/replay:", since=mark)
    mark = chat.mark()
    chat.write("hi\r")
    chat.expect(re.escape(f"✗ sneaky{HOSTILE_SHOWN}  Unknown tool"), since=mark)
    chat.expect(TURN_LIMIT, timeout=60, since=mark)

    mark = chat.mark()
    chat.write("/history\r")
    shown = chat.expect(re.escape(f"▸ sneaky{HOSTILE_SHOWN}("), since=mark)
    chat.expect(PROMPT, since=shown.end())

    chat.write("\x04")
    assert chat.wait(15) == 0
    assert_harmless(chat.raw)
