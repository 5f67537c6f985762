"""Hosted MCP in the terminal client: ``--hosted-mcp`` servers the Parley server runs for the
assistant, their calls shown as they happen, a call that waits for approval asked about and
answered. Against the suite's real server, a real MCP server on loopback and the fake
upstream's ``auto`` model (it calls the first tool it is offered)."""

from __future__ import annotations

import io
import json
import re
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from rich.console import Console

from parley.terminal.chat import ConversationProcessor
from parley.terminal.hosted import approval_question
from parley.terminal.output import TerminalOutput
from parley.terminal.repl import PROMPT
from parley.terminal.session import ChatOptions, Session, SessionError
from parley.testing.fake_upstream import tool_results_text
from tests.mcp.conftest import _servers, _threaded
from tests.terminal.conftest import StartChat, parley
from tests.terminal.mcp_server import HOSTILE, HOSTILE_SHOWN, ODD_TOOLS, build_server, http_app

AUTO = "fake/auto:2"
#: The answers of every confirmation question, the client's own tools' as hosted ones'.
CHOICES = "[y]es / [n]o / [a]lways for this tool"
Open = Callable[..., Any]


@pytest.fixture(scope="module")
def mcp_url() -> Iterator[str]:
    with _servers() as start:
        yield start()


@pytest.fixture(scope="module")
def hostile_url() -> Iterator[str]:
    """A server whose one tool has a hostile name and answers hostile text."""
    yield from _serving("hostile")


@pytest.fixture(scope="module")
def spoofing_url() -> Iterator[str]:
    """A server whose one tool's name has line breaks and thousands of characters."""
    yield from _serving("spoofing")


def _serving(tool: str) -> Iterator[str]:
    """The URL of a server that offers ``ODD_TOOLS[tool]`` alone, while it serves."""
    server = build_server(tool, [ODD_TOOLS[tool]], 1000)
    with _threaded(http_app(server)) as base:
        yield f"{base}/mcp"


@pytest.fixture
async def open_session(server: Any, user_key: str) -> AsyncIterator[Open]:
    sessions: list[Session] = []

    async def start(**options: Any) -> Session:
        options.setdefault("model", AUTO)
        session = Session(ChatOptions(server=server.base_url, api_key=user_key, **options))
        sessions.append(session)
        await session.open()
        return session

    yield start
    for session in sessions:
        await session.aclose()


class Shown:
    """A plain ``TerminalOutput`` whose side lines (tool calls, notes) are kept, with the
    questions it asked answered by ``answers`` in turn."""

    def __init__(self, *answers: str, can_ask: bool = True) -> None:
        self.questions: list[str] = []
        self._answers = list(answers)
        self.err = Console(file=io.StringIO(), width=200, color_system=None)
        self.out = Console(file=io.StringIO(), width=200, color_system=None)
        self.output = TerminalOutput(
            self.out, err_console=self.err, plain=True, asker=self._ask if can_ask else None
        )

    async def _ask(self, question: str) -> str:
        self.questions.append(question)
        return self._answers.pop(0)

    @property
    def lines(self) -> list[str]:
        text = self.err.file.getvalue()  # type: ignore[attr-defined]
        return [line.rstrip() for line in text.splitlines() if line.strip()]


# ------------------------------------------------------------------------ SPEC


async def test_a_bad_spec_stops_the_session_before_it_connects(open_session: Open) -> None:
    with pytest.raises(SessionError, match="not a server label"):
        await open_session(hosted_mcp=("no good",))


# ------------------------------------------------------------------- the display


async def test_calls_that_need_no_approval_show_as_they_happen(
    open_session: Open, mcp_url: str
) -> None:
    session = await open_session(hosted_mcp=(f"tests={mcp_url}?approval=never#echo",))
    assert session.assistant is not None
    assert session.assistant.tools[0].model_dump()["require_approval"] == "never"
    shown = Shown()
    result = await ConversationProcessor(session, shown.output).process_conversation("say it")

    assert result.ok, result
    assert result.text == tool_results_text([("echo", "text 0")])
    assert shown.questions == []
    assert shown.lines[:3] == [
        "listed 1 tool of tests",
        '⚙ tests · echo {"text": "text 0"}',
        "✓ echo  text 0",
    ]


async def test_an_approved_call_runs_and_the_answer_streams(
    open_session: Open, mcp_url: str
) -> None:
    session = await open_session(hosted_mcp=(f"tests={mcp_url}#echo",))
    assert session.assistant is not None and session.assistant.tools[0].type == "mcp"
    shown = Shown("y")
    result = await ConversationProcessor(session, shown.output).process_conversation("say it")

    assert result.ok, result
    assert shown.questions == [f'Run echo on tests with {{"text": "text 0"}}? {CHOICES}: ']
    assert result.text.endswith(tool_results_text([("echo", "text 0")]))
    assert result.turns == 2
    assert [(r.name, r.output) for r in result.tool_results] == [("echo", "approved")]
    assert shown.lines[:3] == [
        "listed 1 tool of tests",
        '⚙ tests · echo {"text": "text 0"}',
        "✓ echo  text 0",
    ]
    # The next session with the same servers reuses the assistant.
    again = await open_session(hosted_mcp=(f"tests={mcp_url}#echo",))
    assert again.assistant is not None and again.assistant.id == session.assistant.id


async def test_a_denied_call_does_not_run(open_session: Open, mcp_url: str) -> None:
    session = await open_session(hosted_mcp=(f"tests={mcp_url}#echo",))
    shown = Shown("no")
    result = await ConversationProcessor(session, shown.output).process_conversation("say it")

    assert result.ok, result
    assert len(shown.questions) == 1
    assert "did not approve" in result.text
    assert [(r.output, r.is_error) for r in result.tool_results] == [("denied", True)]
    assert "✗ echo  not approved" in shown.lines
    assert not any(line.startswith("⚙") for line in shown.lines)


async def test_always_approves_the_tool_for_the_rest_of_the_session(
    open_session: Open, mcp_url: str
) -> None:
    session = await open_session(hosted_mcp=(f"tests={mcp_url}#echo",))
    shown = Shown("always")
    processor = ConversationProcessor(session, shown.output)
    for _ in range(2):
        session.new_thread()
        result = await processor.process_conversation("say it")
        assert result.ok and result.tool_results[0].output == "approved", result
    assert len(shown.questions) == 1


async def test_without_a_terminal_a_call_is_denied_unless_confirm_is_never(
    open_session: Open, mcp_url: str
) -> None:
    session = await open_session(hosted_mcp=(f"tests={mcp_url}#echo",))
    shown = Shown(can_ask=False)
    result = await ConversationProcessor(session, shown.output).process_conversation("say it")
    assert result.tool_results[0].output == "denied"
    assert any("needs the user's approval and no terminal" in line for line in shown.lines)

    session.options.confirm = "never"
    session.new_thread()
    shown = Shown(can_ask=False)
    result = await ConversationProcessor(session, shown.output).process_conversation("say it")
    assert result.tool_results[0].output == "approved"
    assert "✓ echo  text 0" in shown.lines


async def test_a_failed_call_shows_its_error(open_session: Open, mcp_url: str) -> None:
    session = await open_session(hosted_mcp=(f"tests={mcp_url}#fail",), confirm="never")
    shown = Shown()
    result = await ConversationProcessor(session, shown.output).process_conversation("go")
    assert result.status == "completed", result
    assert "✗ fail  message 0" in shown.lines


async def test_hostile_names_and_output_are_shown_cleaned(
    open_session: Open, hostile_url: str
) -> None:
    session = await open_session(hosted_mcp=(f"evil={hostile_url}",))
    shown = Shown("y")
    result = await ConversationProcessor(session, shown.output).process_conversation("go")
    assert result.status == "completed", result
    everything = "\n".join([*shown.questions, *shown.lines])
    assert "\x1b" not in everything and "\x9b" not in everything and "\x07" not in everything
    assert HOSTILE not in everything
    assert f"✓ sneaky{HOSTILE_SHOWN}  {HOSTILE_SHOWN}" in shown.lines
    assert shown.questions[0].startswith(f"Run sneaky{HOSTILE_SHOWN} on evil with ")


async def test_a_tool_name_draws_no_lines_of_its_own(open_session: Open, spoofing_url: str) -> None:
    """A name is the MCP server's to choose: with line breaks in it, the question about it
    would show a fake answer and a question about another tool, and thousands of characters
    would fill the screen. It is shown on one line, cut, in the question as in the lines of
    its call."""
    session = await open_session(hosted_mcp=(f"evil={spoofing_url}",))
    shown = Shown("y")
    result = await ConversationProcessor(session, shown.output).process_conversation("go")
    assert result.status == "completed", result
    (asked,) = shown.questions
    assert "\n" not in asked and len(asked) < 250, asked[:300]
    assert asked.startswith("Run echo ✓ echo approved Run clock on tests with {}? [y]es xx")
    assert "…" in asked
    # And where no one can be asked: the note that says so.
    session.new_thread()
    unasked = Shown(can_ask=False)
    result = await ConversationProcessor(session, unasked.output).process_conversation("go")
    assert result.tool_results[0].output == "denied", result
    for lines in (shown.lines, unasked.lines):
        assert not any(line.startswith(("✓ echo  approved", "Run clock")) for line in lines)
        assert sum(map(len, lines)) < 1000, lines


def test_the_question_cuts_long_arguments() -> None:
    from parley.events import ActionItem

    action = ActionItem(
        action_id="mcpr_1",
        tool_call_id="call_1",
        name="echo",
        arguments={"text": "x" * 1000},
        approval={"type": "mcp", "server_label": "tests", "name": "echo"},
    )
    question = approval_question(action)
    assert question.startswith('Run echo on tests with {"text": "xxx')
    assert len(question) < 400 and "…" in question


# ------------------------------------------------------------------------ parley ask


def test_parley_ask_shows_the_calls_and_approves_with_confirm_never(
    server: Any, user_key: str, cli_env: dict[str, str], mcp_url: str
) -> None:
    args = ["--server", server.base_url, "--api-key", user_key, "--model", AUTO]
    spec = f"tests={mcp_url}#echo"
    done = parley("ask", *args, "--hosted-mcp", spec, "--confirm", "never", "go", env=cli_env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.endswith(tool_results_text([("echo", "text 0")]) + "\n")
    assert '⚙ tests · echo {"text": "text 0"}' in done.stderr
    assert "✓ echo  text 0" in done.stderr

    lines = parley("ask", *args, "--hosted-mcp", spec, "--json", "go", env=cli_env)
    objects = [json.loads(line) for line in lines.stdout.splitlines()]
    hosted = [(o["phase"], o["item"]["type"]) for o in objects if o["type"] == "hosted_tool"]
    assert ("done", "mcp_call") not in hosted  # not approved: not run
    (answer,) = [o for o in objects if o["type"] == "tool.result"]
    assert (answer["name"], answer["output"], answer["is_error"]) == ("echo", "denied", True)

    denied = parley("ask", *args, "--hosted-mcp", spec, "go", env=cli_env)
    assert denied.returncode == 0, denied.stderr
    assert "needs the user's approval and no terminal" in denied.stderr
    assert "did not approve" in denied.stdout

    never = f"tests={mcp_url}?approval=never#echo"
    for stream in ((), ("--no-stream",)):  # no --confirm never: nothing to approve
        ran = parley("ask", *args, *stream, "--hosted-mcp", never, "go", env=cli_env)
        assert ran.returncode == 0, ran.stderr
        assert ran.stdout.endswith(tool_results_text([("echo", "text 0")]) + "\n")
        assert '⚙ tests · echo {"text": "text 0"}' in ran.stderr, stream
        assert "✓ echo  text 0" in ran.stderr and "approval" not in ran.stderr

    bad = parley("ask", *args, "--hosted-mcp", "a b", "go", env=cli_env)
    assert bad.returncode == 2 and "not a server label" in bad.stderr
    bad = parley("ask", *args, "--hosted-mcp", f"{mcp_url}?approval=maybe", "go", env=cli_env)
    assert bad.returncode == 2, bad.stderr
    assert "approval must be always or never" in " ".join(bad.stderr.split())  # wrapped


# ------------------------------------------------------------------ parley chat, in a pty


def test_parley_chat_asks_in_the_terminal(start_chat: StartChat, mcp_url: str) -> None:
    chat = start_chat("--model", AUTO, "--hosted-mcp", f"tests={mcp_url}#echo")
    chat.expect(PROMPT)
    mark = chat.mark()
    chat.write("say it\r")
    question = chat.expect(
        re.escape(f'Run echo on tests with {{"text": "text 0"}}? {CHOICES}:'), since=mark
    )
    chat.write("y")
    chat.expect(r"yes", since=question.end())
    chat.expect(re.escape('⚙ tests · echo {"text": "text 0"}'), since=question.end())
    chat.expect(r"✓ echo  text 0", since=question.end())
    chat.expect(re.escape(tool_results_text([("echo", "text 0")])), since=question.end())
    done = chat.expect(r"in / \d+ out tokens", since=question.end())
    chat.expect(PROMPT, since=done.end())

    mark = chat.mark()
    chat.write("/new\r")
    chat.expect(PROMPT, since=mark)
    mark = chat.mark()
    chat.write("say it again\r")
    question = chat.expect(re.escape(f"? {CHOICES}:"), since=mark)
    chat.write("\r")  # Enter: no
    chat.expect(r"no", since=question.end())
    chat.expect(r"✗ echo  not approved", since=question.end())
    denied = chat.expect(r"did not approve", since=question.end())
    chat.expect(PROMPT, since=denied.end())

    # a: this tool of this server runs without a question for the rest of the session.
    mark = chat.mark()
    chat.write("/new\r")
    chat.expect(PROMPT, since=mark)
    mark = chat.mark()
    chat.write("say it always\r")
    question = chat.expect(re.escape(f"? {CHOICES}:"), since=mark)
    chat.write("a")
    chat.expect(r"always", since=question.end())
    chat.expect(r"✓ echo  text 0", since=question.end())
    done = chat.expect(r"in / \d+ out tokens", since=question.end())
    chat.expect(PROMPT, since=done.end())
    mark = chat.mark()
    chat.write("/new\r")
    chat.expect(PROMPT, since=mark)
    mark = chat.mark()
    chat.write("say it unasked\r")
    chat.expect(re.escape('⚙ tests · echo {"text": "text 0"}'), since=mark)
    chat.expect(r"✓ echo  text 0", since=mark)
    done = chat.expect(r"in / \d+ out tokens", since=mark)
    assert CHOICES not in chat.screen[mark:]
    # Ctrl-D once the prompt is back: typed while the turn still ends, it may be dropped as
    # the prompt takes the terminal again, and the chat would wait for more.
    chat.expect(PROMPT, since=done.end())
    chat.write("\x04")
    assert chat.wait(15) == 0


async def test_without_streaming_the_approval_is_asked_all_the_same(
    open_session: Open, mcp_url: str
) -> None:
    session = await open_session(hosted_mcp=(f"tests={mcp_url}#echo",), stream=False)
    shown = Shown("y")
    result = await ConversationProcessor(session, shown.output).process_conversation("say it")
    assert result.ok, result
    assert len(shown.questions) == 1
    assert result.text.endswith(tool_results_text([("echo", "text 0")]))
    # The list with the first turn, the approved call with the second; each shown once.
    assert shown.lines[:3] == [
        "listed 1 tool of tests",
        '⚙ tests · echo {"text": "text 0"}',
        "✓ echo  text 0",
    ]
    assert sum(line.startswith(("listed", "⚙", "✓")) for line in shown.lines) == 3


async def test_without_streaming_the_calls_show_before_the_answer(
    open_session: Open, mcp_url: str
) -> None:
    """``--no-stream``: the turn comes whole, and the calls the server ran in it show first,
    in order, as they would have streamed."""
    spec = f"tests={mcp_url}?approval=never#echo"
    session = await open_session(hosted_mcp=(spec,), stream=False)
    console = Console(file=io.StringIO(), width=200, color_system=None)
    output = TerminalOutput(console, err_console=console, plain=True)  # one screen, in order
    processor = ConversationProcessor(session, output)
    for _ in range(2):  # a second exchange shows its own calls only
        mark = len(console.file.getvalue())  # type: ignore[attr-defined]
        result = await processor.process_conversation("say it")
        assert result.ok and result.turns == 1, result
        text = console.file.getvalue()[mark:]  # type: ignore[attr-defined]
        lines = [line.rstrip() for line in text.splitlines() if line.strip()]
        answer = tool_results_text([("echo", "text 0")])
        assert lines[:4] == [
            "listed 1 tool of tests",
            '⚙ tests · echo {"text": "text 0"}',
            "✓ echo  text 0",
            answer,
        ]
        assert text.count("⚙") == 1
        session.new_thread()
