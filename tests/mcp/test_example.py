"""The example MCP server (``python -m parley.mcp.example``), through Parley's own MCP client
layer (``open_session``) over streamable HTTP on loopback."""

from __future__ import annotations

import asyncio
import datetime
import random
import re
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from parley.mcp import Bounds, ServerTarget, Session, open_session
from parley.mcp.example import Example, build_server
from tests.mcp.conftest import _threaded

NOON = datetime.datetime(2026, 1, 2, 12, 0, 0, 123456, tzinfo=datetime.UTC)


@pytest.fixture(scope="module")
def example() -> Example:
    return Example(rng=random.Random(7), now=lambda: NOON)


@pytest.fixture(scope="module")
def url(example: Example) -> Iterator[str]:
    with _threaded(build_server(example).streamable_http_app()) as base:
        yield f"{base}/mcp"


@pytest.fixture
async def session(url: str) -> AsyncIterator[Session]:
    async with open_session(ServerTarget("example", url=url), Bounds()) as opened:
        assert not isinstance(opened, str), opened
        yield opened


async def test_it_lists_its_tools_with_annotations(session: Session) -> None:
    listing = await session.list_tools()
    assert listing.error is None
    names = [t.name for t in listing.tools]
    assert names == ["clock", "roll_dice", "word_count", "add_note", "list_notes"]
    read_only = {t.name: (t.annotations or {}).get("readOnlyHint") for t in listing.tools}
    assert read_only == {
        "clock": True,
        "roll_dice": True,
        "word_count": True,
        "add_note": False,
        "list_notes": True,
    }
    dice = next(t for t in listing.tools if t.name == "roll_dice")
    assert dice.input_schema["properties"]["sides"]["default"] == 6
    assert dice.input_schema["properties"]["count"]["default"] == 2


async def test_dice_roll_from_the_seeded_generator(session: Session) -> None:
    expected = random.Random(7)
    rolls = [expected.randint(1, 6), expected.randint(1, 6)]
    result = await session.call("roll_dice", {})
    assert result.error is None
    assert result.output == f"rolled 2d6: {rolls[0]}, {rolls[1]} (total {sum(rolls)})"
    more = [expected.randint(1, 20) for _ in range(3)]
    result = await session.call("roll_dice", {"sides": 20, "count": 3})
    assert result.output == f"rolled 3d20: {', '.join(map(str, more))} (total {sum(more)})"


async def test_bad_dice_are_a_tool_error(session: Session) -> None:
    for arguments, error in [
        ({"sides": 1}, "sides must be from 2 to 1000"),
        ({"count": 1000}, "count must be from 1 to 100"),
        ({"count": 1.5}, "count must be a whole number"),
        ({"sides": True}, "sides must be a whole number"),
    ]:
        result = await session.call("roll_dice", arguments)
        assert (result.output, result.error, result.failure) == (None, error, "tool")


async def test_clock_word_count_and_unknown_tools(session: Session) -> None:
    assert (await session.call("clock", {})).output == "2026-01-02T12:00:00Z"
    counted = await session.call("word_count", {"text": "one two\nthree"})
    assert counted.output == "3 words, 2 lines, 13 characters"
    assert (await session.call("word_count", {"text": ""})).output == (
        "0 words, 0 lines, 0 characters"
    )
    one = await session.call("word_count", {"text": "a"})
    assert one.output == "1 word, 1 line, 1 character"
    missing = await session.call("teleport", {})
    assert (missing.error, missing.failure) == ("no tool named 'teleport'", "tool")


async def test_notes_are_kept_while_it_runs(session: Session, example: Example) -> None:
    example.notes.clear()
    assert (await session.call("list_notes", {})).output == "no notes yet"
    assert (await session.call("add_note", {"text": " buy milk "})).output == "note 1 kept"
    assert (await session.call("add_note", {"text": "call Ana"})).output == "note 2 kept"
    assert (await session.call("list_notes", {})).output == "1. buy milk\n2. call Ana"
    blank = await session.call("add_note", {"text": "  "})
    assert blank.error == "text must be a non-empty string"


def test_it_runs_as_a_program_and_says_where() -> None:
    """``--port 0`` takes a free port; the one line it prints names the port it listens on."""
    command = [sys.executable, "-m", "parley.mcp.example", "--port", "0", "--seed", "1"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        said = re.fullmatch(
            r"Example MCP server on (http://127\.0\.0\.1:(\d+)/mcp) \(Ctrl-C stops it\)\n", line
        )
        assert said is not None, line
        url = said.group(1)
        assert int(said.group(2)) > 0
        seeded = random.Random(1).randint(1, 6)
        assert asyncio.run(_first_roll(url)) == f"rolled 1d6: {seeded} (total {seeded})"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def test_a_port_in_use_is_a_plain_error() -> None:
    """A busy port stops it with exit status 1 and a message, before it claims an address."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        command = [sys.executable, "-m", "parley.mcp.example", "--port", str(port)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.startswith(f"cannot listen on 127.0.0.1:{port}: "), done.stderr


async def _first_roll(url: str) -> str | None:
    """One die rolled by the server at ``url`` once it listens (it prints its line first)."""
    deadline = time.monotonic() + 10
    while True:
        async with open_session(ServerTarget("example", url=url), Bounds()) as opened:
            if not isinstance(opened, str):
                assert len((await opened.list_tools()).tools) == 5
                return (await opened.call("roll_dice", {"count": 1})).output
        assert time.monotonic() < deadline, opened
        await asyncio.sleep(0.05)
