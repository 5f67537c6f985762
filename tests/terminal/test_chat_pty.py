"""``parley chat`` end to end in a pseudo-terminal: prompt, a two-line message whose tool call
shows with its ✓ before the streamed answer, slash commands, Ctrl+C in the middle of a slow answer (the partial answer
stays on screen and on the server, the run is cancelled), then Ctrl+D. In tmux, a real
terminal emulator: after Ctrl+C the partial answer is on the screen once."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

from parley.terminal.repl import PROMPT
from parley.testing.fake_upstream import expected_text, tool_results_text
from tests.terminal.conftest import McpConfig, StartChat, chat_argv, stored_messages
from tests.terminal.pty_terminal import Terminal, Tmux


@pytest.fixture
def chat(start_chat: StartChat, mcp_config: McpConfig) -> Terminal:
    config = mcp_config({"t": ("echo,add", ["echo"])})
    return start_chat("--model", "fake/tools:1", "--mcp-config", str(config))


def test_chat_in_a_terminal(chat: Terminal, server: Any, user_key: str, tmp_path: Path) -> None:
    export = tmp_path / "chat.json"
    chat.expect(PROMPT)
    ready = chat.expect(r"✓ t: 2 tools")
    # The start-up lines are printed above the prompt (in cooked mode for a moment); type
    # once the prompt is drawn again.
    chat.expect(PROMPT, since=ready.end())

    # a message (two lines: Esc, Enter starts the second) that makes the model call a tool
    mark = chat.mark()
    chat.write("please use\x1b\ra tool\r")
    chat.expect(r'▸ echo\(text="text 0"\)', since=mark)
    chat.expect(r"✓ echo  text 0", since=mark)
    chat.expect(re.escape(tool_results_text([("echo", "text 0")])), since=mark)
    chat.expect(r"in / \d+ out tokens", since=mark)
    mark = chat.mark()
    chat.write(f"/export json {export}\r")
    chat.expect("saved 4 messages", since=mark)
    exported = json.loads(export.read_text())["messages"]
    assert [m["role"] for m in exported] == ["user", "assistant", "tool", "assistant"]
    # the messages as the server answers them: content as parts
    assert exported[0]["content"] == [
        {"type": "text", "text": {"value": "please use\na tool", "annotations": []}}
    ]
    assert exported[2]["content"][0]["text"]["value"] == "text 0"

    # a slow answer, interrupted
    mark = chat.mark()
    chat.write("/model fake/slow:200\r")
    chat.expect(r"model fake/slow:200", since=mark)
    mark = chat.mark()
    chat.write("tell me slowly\r")
    chat.expect("Parley streams every", since=mark)
    chat.write("\x03")
    note = chat.expect(r"interrupted — partial answer kept, run cancelled", since=mark)
    chat.expect(PROMPT, since=note.end())  # back at the prompt

    with server.client(user_key) as http:
        [thread] = http.get("/threads").json()["data"]
        last_run = http.get("/runs", params={"order": "desc", "limit": 1}).json()["data"][0]
    messages = stored_messages(server, user_key, thread["id"])
    assert last_run["status"] == "cancelled"
    partial = messages[-1].text
    assert messages[-1].role == "assistant" and messages[-1].run_id == last_run["id"]
    assert partial.startswith("Parley streams every") and partial != expected_text()
    assert expected_text().startswith(partial)
    screen = chat.screen[mark:]
    assert partial.strip() in screen  # the partial answer stayed on screen

    # Ctrl+D on an empty line leaves
    chat.write("\x04")
    assert chat.wait(15) == 0


def test_ctrl_c_leaves_the_partial_answer_on_the_screen_once(
    server: Any, user_key: str, cli_env: dict[str, str]
) -> None:
    # 14 columns: the first two words, "Parley streams", fill a whole line. A "^C" echoed
    # after them wrapped below the live region, which then erased the wrong line and left
    # the partial answer on the screen twice. 1.5 s between words: time to press Ctrl+C
    # while those two are all there is.
    argv = chat_argv(server.base_url, user_key, "--model", "fake/text:22:1500")
    term = Tmux(argv, env=cli_env, cols=14, rows=40)
    try:
        ready = term.expect(rf"\nassistant [\s\S]*\n{PROMPT}")  # start-up lines, then the prompt
        term.send("tell me slowly")
        term.key("Enter")
        deadline = time.monotonic() + 20
        while not term.capture().rstrip().endswith("\nParley streams"):
            assert time.monotonic() < deadline, term.capture()
            time.sleep(0.02)
        term.key("C-c")
        done = term.expect(rf"\ninterrupted —[^\n]*\n{PROMPT}")  # cut: "interrupted —…"
        assert done.start() > ready.end()
        shown = term.capture(history=True)
        assert "every" not in shown, f"Ctrl+C came after the third word:\n{shown}"
        assert shown.count("streams") == 1, shown
    finally:
        term.close()
