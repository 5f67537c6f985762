"""The conversation processor in this process, against the suite's real server and real MCP
server processes: interrupts, timeouts, concurrent tool calls, tool errors, the display."""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from rich.console import Console

from parley.terminal.chat import ConversationProcessor
from parley.terminal.output import JsonOutput, TerminalOutput
from parley.terminal.session import ChatOptions, Session
from parley.testing.fake_upstream import text_chunks, tool_results_text
from tests.terminal.conftest import McpConfig, stored_messages

Open = Callable[..., Any]


@pytest.fixture
async def open_session(server: Any, user_key: str) -> AsyncIterator[Open]:
    sessions: list[Session] = []

    async def start(**options: Any) -> Session:
        session = Session(ChatOptions(server=server.base_url, api_key=user_key, **options))
        sessions.append(session)
        await session.open()
        return session

    yield start
    for session in sessions:
        await session.aclose()


class Lines(io.StringIO):
    """What a ``JsonOutput`` wrote, as objects."""

    def objects(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.getvalue().splitlines()]


def json_output() -> tuple[JsonOutput, Lines]:
    lines = Lines()
    return JsonOutput(lines, io.StringIO()), lines


async def wait_for(predicate: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_an_interrupt_stops_a_stalled_stream_at_once(
    open_session: Open, server: Any, user_key: str
) -> None:
    """The model sends two chunks and then nothing: only cancelling the read can stop it."""
    session = await open_session(model="fake/stall:2")
    output, lines = json_output()
    processor = ConversationProcessor(session, output)
    exchange = asyncio.create_task(processor.process_conversation("hi"))
    partial = "".join(text_chunks(2))
    await wait_for(lambda: lines.getvalue().count("content.delta") == 2)
    processor.interrupt()
    result = await asyncio.wait_for(exchange, 5)

    assert result.stopped == "interrupted" and result.status == "cancelled"
    assert result.text == partial
    assert lines.objects()[-1] == {"type": "error", "code": "interrupted", "message": "interrupted"}
    messages = stored_messages(server, user_key, result.thread_id)
    assert [m.role for m in messages] == ["user", "assistant"]
    assert messages[1].text == partial  # the server kept the partial text
    assert messages[1].status == "incomplete"


async def test_first_chunk_timeout(open_session: Open) -> None:
    session = await open_session(model="fake/hang", first_chunk_timeout=0.5)
    output, lines = json_output()
    result = await ConversationProcessor(session, output).process_conversation("hi")
    assert result.stopped == "timeout" and result.note == "timed out: no answer within 0.5 s"
    assert result.status == "cancelled" and not result.ok
    assert lines.objects()[-1]["code"] == "timeout"


async def test_whole_turn_timeout(open_session: Open) -> None:
    session = await open_session(model="fake/slow:100", turn_timeout=0.5, idle_timeout=0)
    output, _ = json_output()
    result = await ConversationProcessor(session, output).process_conversation("hi")
    assert result.stopped == "timeout" and "took over 0.5 s" in (result.note or "")
    assert 0 < len(result.text) < len("".join(text_chunks(22)))


@pytest.mark.parametrize(("limit", "order"), [(4, "ssrr"), (1, "srsr")])
async def test_parallel_calls_run_concurrently_up_to_the_limit(
    open_session: Open, mcp_config: McpConfig, limit: int, order: str
) -> None:
    """Two servers offer ``slow``: the calls are a__slow (0.5 s) and b__slow (1.5 s). Both
    start before either ends, unless the limit is 1."""
    config = mcp_config({"a": ("slow", True), "b": ("slow", True)})
    session = await open_session(model="fake/tools:2", mcp_config=config, max_parallel_tools=limit)
    output, lines = json_output()
    result = await ConversationProcessor(session, output).process_conversation("go")
    assert result.ok, result
    steps = [e for e in lines.objects() if e["type"] in ("tool.start", "tool.result")]
    assert "".join(e["type"][5] for e in steps) == order
    assert [r.output for r in result.tool_results] == ["slept 0.5", "slept 1.5"]
    assert result.text == tool_results_text([("a__slow", "slept 0.5"), ("b__slow", "slept 1.5")])


async def test_an_interrupt_cancels_running_tools(
    open_session: Open, mcp_config: McpConfig
) -> None:
    config = mcp_config({"t": ("slow,cancelled", True)})  # fake/tools:1 calls slow (0.5 s)
    session = await open_session(model="fake/tools:1", mcp_config=config)
    output, lines = json_output()
    processor = ConversationProcessor(session, output)
    exchange = asyncio.create_task(processor.process_conversation("go"))
    await wait_for(lambda: "tool.start" in lines.getvalue())
    processor.interrupt()
    result = await asyncio.wait_for(exchange, 5)
    assert result.stopped == "interrupted" and result.status == "cancelled"
    assert result.tool_results == []  # nothing was submitted
    assert session.hub is not None
    counted = await session.hub.call("cancelled", {})
    assert counted.text == "1"  # the MCP server saw its call cancelled


async def test_tool_errors_are_errors(open_session: Open, mcp_config: McpConfig) -> None:
    config = mcp_config({"t": ("fail", True)})
    session = await open_session(model="fake/tools:1", mcp_config=config)
    console = Console(file=io.StringIO(), width=100, color_system=None)
    output = TerminalOutput(console, plain=False)
    result = await ConversationProcessor(session, output).process_conversation("go")
    assert result.ok
    [record] = result.tool_results
    assert record.is_error and record.output == "Error: message 0"
    shown = console.file.getvalue()  # type: ignore[attr-defined]
    assert '▸ fail(message="message 0")' in shown
    assert "✗ fail  message 0" in shown
    assert tool_results_text([("fail", "Error: message 0")]) in shown


async def test_a_declined_call_affects_that_call_only(
    open_session: Open, mcp_config: McpConfig
) -> None:
    config = mcp_config({"t": ("echo,add", False)})
    session = await open_session(model="fake/tools:2", mcp_config=config)
    asked: list[str] = []

    async def asker(question: str) -> str:
        asked.append(question)
        return "n" if "echo" in question else "y"

    err = Console(file=io.StringIO(), width=100)
    output = TerminalOutput(Console(file=io.StringIO()), err_console=err, plain=True, asker=asker)
    result = await ConversationProcessor(session, output).process_conversation("go")
    assert len(asked) == 2 and asked[0].startswith("Run echo")
    echo, add = result.tool_results
    assert echo.kind == "declined" and echo.is_error
    assert add.output == "3.0" and not add.is_error

    assert "✗ echo  The user declined" in err.file.getvalue()  # type: ignore[attr-defined]


async def test_no_live_region_draws_while_a_question_waits(
    open_session: Open, mcp_config: McpConfig
) -> None:
    config = mcp_config({"t": ("echo", False)})
    session = await open_session(model="fake/tools:1", mcp_config=config)
    console = Console(file=io.StringIO(), width=100, force_terminal=True, force_interactive=True)
    live_while_asked: list[bool] = []

    async def asker(question: str) -> str:
        view = output.view
        live_while_asked.append(view is not None and view.is_live)
        return "y"

    output = TerminalOutput(console, asker=asker)
    assert not output.plain
    result = await ConversationProcessor(session, output).process_conversation("go")
    assert result.ok and live_while_asked == [False]
    assert [r.output for r in result.tool_results] == ["text 0"]
    assert output.view is None  # finished: the region is gone
