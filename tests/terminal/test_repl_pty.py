"""``parley chat`` end to end in a pseudo-terminal, what ``test_chat_pty`` does not walk
through: the confirmation question before a tool call (one key: no, yes, always, Enter,
Ctrl+C; what is typed after the key is the next message), Ctrl+C at the prompt, the thread
commands, a chat that cannot start, and ``--no-stream``.

What the model got back is read from the server (the thread's tool messages), not only from
the screen."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from parley.terminal.mcp_tools import DECLINED
from parley.terminal.repl import PROMPT
from parley.testing.fake_upstream import expected_text, tool_results_text
from tests.terminal.conftest import STARTED, McpConfig, StartChat, parley, stored_messages
from tests.terminal.pty_terminal import Terminal

TOKENS = r"in / \d+ out tokens"  # the footer of a finished answer
HINT = "(Ctrl+C again, or Ctrl+D, to exit)"
DECLINED_OUTPUT = f"Error: {DECLINED}"


def question(name: str, arguments: dict[str, Any]) -> str:
    """The confirmation question for a call, as a pattern."""
    shown = json.dumps(arguments, separators=(", ", ": "))
    return re.escape(f"Run {name} {shown}? [y]es / [n]o / [a]lways for this tool:")


ECHO_0 = question("echo", {"text": "text 0"})
ECHO_1 = question("echo", {"text": "text 1"})
ADD_1 = question("add", {"a": 1.5, "b": 1.5})
# What the demo model calls for "add 2 and 3": the first number of the message for each.
ADD_2 = question("add", {"a": 2, "b": 2})
INTERRUPTED = re.escape("interrupted — partial answer kept, run cancelled")


def loose(text: str) -> str:
    """``text`` as a pattern that matches it wrapped at any space."""
    return r"\s+".join(re.escape(word) for word in text.split())


def finished(text: str) -> str:
    """An answer ``text``, then the footer of the exchange."""
    return loose(text) + r"[\s\S]*" + TOKENS


def answered(term: Terminal, pattern: str, since: int = 0) -> int:
    """Wait for ``pattern``, then for the prompt after it; the position of that prompt."""
    shown = term.expect(pattern, since=since)
    return term.expect(PROMPT, since=shown.end()).end()


def tool_outputs(server: Any, user_key: str) -> list[list[tuple[str, str]]]:
    """Per exchange of the user's only thread: ``(call, output)`` of each tool message, in
    call order; a call is ``name(arguments as JSON)``."""
    with server.client(user_key) as http:
        [thread] = http.get("/threads").json()["data"]
    exchanges: list[list[tuple[str, str]]] = []
    calls: dict[str, str] = {}
    for message in stored_messages(server, user_key, thread["id"]):
        if message.role == "user":
            exchanges.append([])
        for call in message.tool_calls:
            arguments = json.dumps(call.arguments, sort_keys=True)
            calls[call.id] = f"{call.name}({arguments})"
        if message.role == "tool":
            assert message.tool_call_id is not None
            exchanges[-1].append((calls[message.tool_call_id], message.text))
    return exchanges


# ------------------------------------------------------------------ confirmation


def test_no_declines_that_call_only_and_the_next_exchange_asks_again(
    start_chat: StartChat, mcp_config: McpConfig, server: Any, user_key: str
) -> None:
    config = mcp_config({"t": ("echo", False)})  # echo is not allowed: --confirm ask asks
    chat = start_chat("--model", "fake/tools:2", "--mcp-config", str(config), "--confirm", "ask")
    mark = answered(chat, STARTED)

    # two calls of one turn: no to the first, yes to the second
    chat.write("use two tools\r")
    asked = chat.expect(ECHO_0, since=mark)
    chat.write("n")
    chat.expect(f"✗ echo  {re.escape(DECLINED)}", since=asked.end())
    asked = chat.expect(ECHO_1, since=asked.end())
    chat.write("y")
    chat.expect(r"✓ echo  text 1", since=asked.end())
    answer = tool_results_text([("echo", DECLINED_OUTPUT), ("echo", "text 1")])
    mark = answered(chat, finished(answer), since=asked.end())

    # the no was for that call only: the next exchange asks again, and yes runs both
    chat.write("once more\r")
    asked = chat.expect(ECHO_0, since=mark)
    chat.write("y")
    asked = chat.expect(ECHO_1, since=asked.end())
    chat.write("y")
    answer = tool_results_text([("echo", "text 0"), ("echo", "text 1")])
    answered(chat, finished(answer), since=asked.end())

    assert tool_outputs(server, user_key) == [
        [('echo({"text": "text 0"})', DECLINED_OUTPUT), ('echo({"text": "text 1"})', "text 1")],
        [('echo({"text": "text 0"})', "text 0"), ('echo({"text": "text 1"})', "text 1")],
    ]


def test_always_runs_that_tool_without_asking_for_the_rest_of_the_session(
    start_chat: StartChat, mcp_config: McpConfig, server: Any, user_key: str
) -> None:
    # --confirm always asks even for the tools the config allows
    config = mcp_config({"t": ("echo,add", ["echo"])})
    chat = start_chat("--model", "fake/tools:2", "--mcp-config", str(config), "--confirm", "always")
    mark = answered(chat, STARTED)

    # calls echo then add: always for echo, no for add (always is for that tool only)
    chat.write("use both tools\r")
    asked = chat.expect(ECHO_0, since=mark)
    chat.write("a")
    asked = chat.expect(ADD_1, since=asked.end())
    chat.write("n")
    # echo's result waited below the question: shown once it is answered
    chat.expect(r"✓ echo  text 0", since=asked.end())
    chat.expect(f"✗ add  {re.escape(DECLINED)}", since=asked.end())
    answer = tool_results_text([("echo", "text 0"), ("add", DECLINED_OUTPUT)])
    mark = answered(chat, finished(answer), since=asked.end())

    # the next exchange: echo runs unasked, add is asked again
    start = mark
    chat.write("again\r")
    asked = chat.expect(ADD_1, since=mark)
    chat.write("y")
    answer = tool_results_text([("echo", "text 0"), ("add", "3.0")])
    mark = answered(chat, finished(answer), since=asked.end())
    assert re.search(r"Run echo", chat.screen[start:]) is None
    assert "✓ echo  text 0" in chat.screen[start:]

    assert tool_outputs(server, user_key) == [
        [('echo({"text": "text 0"})', "text 0"), ('add({"a": 1.5, "b": 1.5})', DECLINED_OUTPUT)],
        [('echo({"text": "text 0"})', "text 0"), ('add({"a": 1.5, "b": 1.5})', "3.0")],
    ]


def user_messages(server: Any, user_key: str) -> list[str]:
    return [m.text for m in stored_messages(server, user_key) if m.role == "user"]


def test_one_key_answers_and_what_is_typed_after_it_is_the_next_message(
    start_chat: StartChat, mcp_config: McpConfig, server: Any, user_key: str
) -> None:
    # The demo model calls a tool its message names, and otherwise echoes the message.
    config = mcp_config({"t": ("add", False)})
    chat = start_chat("--model", "demo/parley", "--mcp-config", str(config))
    mark = answered(chat, STARTED)

    # y, no Enter: the tool runs; a message typed after a pause is sent whole
    chat.write("add 2 and 3\r")
    asked = chat.expect(ADD_2, since=mark)
    chat.write("y")
    chat.expect(r"for this tool: yes\n", since=asked.start())
    chat.expect(r"✓ add  4", since=asked.end())
    chat.write("echo second time\r")
    mark = answered(chat, finished('Demo model: you said "echo second time".'), since=mark)

    # typed at once after the key (Y means y): the rest is the next message too
    chat.write("add 2 and 3\r")
    asked = chat.expect(ADD_2, since=mark)
    chat.write("Yecho third time\r")
    chat.expect(r"for this tool: yes\n", since=asked.start())
    mark = answered(chat, finished('Demo model: you said "echo third time".'), since=mark)

    assert user_messages(server, user_key) == [
        *("add 2 and 3", "echo second time"),
        *("add 2 and 3", "echo third time"),
    ]
    assert [[output for _, output in calls] for calls in tool_outputs(server, user_key)] == [
        ["4"],
        [],
        ["4"],
        [],
    ]


def test_text_typed_while_an_answer_streams_is_no_answer_and_starts_the_next_prompt(
    start_chat: StartChat, mcp_config: McpConfig, server: Any, user_key: str
) -> None:
    # The model's call comes 2 s after the turn starts (three gaps of 0.7 s), so the text is
    # typed before the question shows: it holds "a", which would answer "always".
    config = mcp_config({"t": ("echo", False)})
    chat = start_chat("--model", "fake/tools:1:700", "--mcp-config", str(config))
    mark = answered(chat, STARTED)
    chat.write("use a tool\r")
    started = chat.expect("Thinking", since=mark)
    chat.write("a message typed ahead")
    asked = chat.expect(ECHO_0, since=started.end())
    chat.write("\x03")  # no, and the exchange stops (its answer would be 0.7 s a word)
    chat.expect(r"for this tool: no\n", since=asked.start())
    mark = answered(chat, INTERRUPTED, since=asked.end())
    chat.expect(re.escape("a message typed ahead"), since=mark)  # the next prompt's text
    assert user_messages(server, user_key) == ["use a tool"]


def test_n_enter_and_ctrl_c_at_the_question_do_not_run_the_call(
    start_chat: StartChat, mcp_config: McpConfig, server: Any, user_key: str
) -> None:
    config = mcp_config({"t": ("add", False)})
    chat = start_chat("--model", "demo/parley", "--mcp-config", str(config))
    mark = answered(chat, STARTED)

    for key in ("n", "\r"):  # Enter alone: no, the safe default
        chat.write("add 2 and 3\r")
        asked = chat.expect(ADD_2, since=mark)
        chat.write(key)
        chat.expect(r"for this tool: no\n", since=asked.start())
        chat.expect(f"✗ add  {re.escape(DECLINED)}", since=asked.end())
        mark = answered(chat, TOKENS, since=asked.end())

    # Ctrl+C: no, and the exchange stops as it does while an answer streams
    chat.write("add 2 and 3\r")
    asked = chat.expect(ADD_2, since=mark)
    chat.write("\x03")
    chat.expect(r"for this tool: no\n", since=asked.start())
    mark = answered(chat, INTERRUPTED, since=asked.end())
    with server.client(user_key) as http:
        [run] = http.get("/runs", params={"order": "desc", "limit": 1}).json()["data"]
    assert run["status"] == "cancelled"
    chat.write("echo after that\r")
    answered(chat, finished('Demo model: you said "echo after that".'), since=mark)

    assert tool_outputs(server, user_key) == [
        [('add({"a": 2, "b": 2})', DECLINED_OUTPUT)],
        [('add({"a": 2, "b": 2})', DECLINED_OUTPUT)],
        [],
        [],
    ]


# ------------------------------------------------------------------ Ctrl+C at the prompt


def test_ctrl_c_once_at_the_prompt_hints_twice_exits(start_chat: StartChat) -> None:
    chat = start_chat("--model", "fake/echo")
    mark = answered(chat, STARTED)

    chat.write("\x03")
    mark = answered(chat, re.escape(HINT), since=mark)
    assert chat.proc.poll() is None
    # anything else in between disarms it: the next Ctrl+C only hints again
    chat.write("/confirm\r")
    mark = answered(chat, r"confirm: ask", since=mark)
    chat.write("\x03")
    mark = answered(chat, re.escape(HINT), since=mark)
    assert chat.proc.poll() is None

    chat.write("\x03")
    assert chat.wait(15) == 0
    assert chat.screen.count(HINT) == 2
    assert "Traceback" not in chat.screen


# ------------------------------------------------------------------ threads


def _threads(server: Any, user_key: str) -> dict[str, list[str]]:
    """The user's threads: id -> the contents of its messages."""
    with server.client(user_key) as http:
        threads = http.get("/threads").json()["data"]
    return {t["id"]: [m.text for m in stored_messages(server, user_key, t["id"])] for t in threads}


def test_threads_history_new_and_resume(start_chat: StartChat, server: Any, user_key: str) -> None:
    chat = start_chat("--model", "fake/echo")  # the answer repeats the message
    mark = answered(chat, STARTED)

    chat.write("alpha one\r")
    mark = answered(chat, TOKENS, since=mark)
    [first] = _threads(server, user_key)
    chat.write("/threads\r")
    mark = answered(chat, rf"{first}  [-\d]+ [:\d]+  alpha one  \(current\)", since=mark)

    chat.write("/new\r")
    mark = answered(chat, "new conversation", since=mark)
    chat.write("beta two\r")
    mark = answered(chat, TOKENS, since=mark)
    threads = _threads(server, user_key)
    [second] = set(threads) - {first}
    assert threads == {first: ["alpha one"] * 2, second: ["beta two"] * 2}

    chat.write("/threads\r")
    chat.expect(rf"{second}  [-\d]+ [:\d]+  beta two  \(current\)\n", since=mark)
    mark = answered(chat, rf"{first}  [-\d]+ [:\d]+  alpha one\n", since=mark)

    chat.write("/history\r")
    start, mark = mark, answered(chat, rf"{PROMPT} beta two\n+\s*beta two\n", since=mark)
    assert "alpha" not in chat.screen[start:]

    chat.write(f"/resume {first}\r")
    mark = answered(chat, rf"resumed {first} \(2 messages; /history shows them\)", since=mark)
    chat.write("/history\r")
    start, mark = mark, answered(chat, rf"{PROMPT} alpha one\n+\s*alpha one\n", since=mark)
    assert "beta" not in chat.screen[start:]

    # an unknown thread: a clear error, and the chat goes on in the same thread
    chat.write("/resume thread_nope\r")
    mark = answered(chat, r"✗ no thread 'thread_nope' on this server", since=mark)
    assert chat.proc.poll() is None
    chat.write("gamma three\r")
    mark = answered(chat, TOKENS, since=mark)
    assert _threads(server, user_key) == {
        first: ["alpha one", "alpha one", "gamma three", "gamma three"],
        second: ["beta two"] * 2,
    }

    chat.write("\x04")
    assert chat.wait(15) == 0
    assert "Traceback" not in chat.screen


# ------------------------------------------------------------------ start-up failures


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port that refuses connections: bound (so nothing else takes it), not
    listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def test_no_server_there_is_one_clear_line_and_a_failed_exit(
    start_chat: StartChat, closed_port: int, cli_env: dict[str, str]
) -> None:
    url = f"http://127.0.0.1:{closed_port}"
    chat = start_chat(server_url=url, api_key="x", cols=200)
    assert chat.wait(20) == 1
    errors = [line for line in chat.screen.splitlines() if "✗" in line]
    assert errors == [
        f"✗ could not start: Could not talk to the Parley server at {url}: "
        "All connection attempts failed"
    ]
    assert "Traceback" not in chat.screen

    # the same without a terminal (stdin a pipe): not a message taken as if sent
    done = parley("chat", "--server", url, "--api-key", "x", env=cli_env, input="hello\n")
    assert done.returncode == 1
    said = " ".join(done.stdout.split())
    assert f"✗ could not start: Could not talk to the Parley server at {url}: " in said
    assert "Traceback" not in done.stdout + done.stderr


def test_a_wrong_api_key_is_one_clear_line_and_a_failed_exit(
    start_chat: StartChat, server: Any
) -> None:
    chat = start_chat("--model", "fake/echo", api_key="pk_wrong", cols=200)
    assert chat.wait(20) == 1
    errors = [line for line in chat.screen.splitlines() if "✗" in line]
    assert errors == [f"✗ could not start: {server.base_url}: Invalid or revoked API key."]
    assert "Traceback" not in chat.screen


# ------------------------------------------------------------------ --no-stream


def test_no_stream_answers_with_whole_turns(
    start_chat: StartChat, mcp_config: McpConfig, server: Any, user_key: str
) -> None:
    config = mcp_config({"t": ("echo", ["echo"])})
    # Timeouts the streaming path would trip over (the slow answer below has 60 ms between
    # chunks); a whole turn has only the turn timeout.
    quick = ("--first-chunk-timeout", "0.03", "--idle-timeout", "0.03")
    chat = start_chat("--model", "fake/tools:1", "--mcp-config", str(config), "--no-stream", *quick)
    mark = answered(chat, STARTED)

    chat.write("use a tool\r")
    chat.expect(r'▸ echo\(text="text 0"\)', since=mark)
    chat.expect(r"✓ echo  text 0", since=mark)
    answer = tool_results_text([("echo", "text 0")])
    mark = answered(chat, finished(answer), since=mark)

    chat.write("/model fake/slow:60\r")
    mark = answered(chat, r"model fake/slow:60", since=mark)
    chat.write("tell me slowly\r")
    start, mark = mark, answered(chat, finished(expected_text()), since=mark)
    assert "timed out" not in chat.screen[start:]

    with server.client(user_key) as http:
        [thread] = http.get("/threads").json()["data"]
        [run] = http.get("/runs", params={"order": "desc", "limit": 1}).json()["data"]
    messages = stored_messages(server, user_key, thread["id"])
    assert [m.role for m in messages] == [
        *("user", "assistant", "tool", "assistant"),
        *("user", "assistant"),
    ]
    assert messages[3].text == answer
    assert messages[-1].text == expected_text()
    assert run["status"] == "completed"
