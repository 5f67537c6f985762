"""The confirmation's keys without a terminal: which bytes answer (``KeyParser``), and the
line read when stdin is a pipe. The terminal itself is exercised in ``test_repl_pty``."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from typing import TextIO

import pytest

from parley.terminal.keys import KeyParser
from parley.terminal.output import ANSWER_KEYS, key_asker


def test_letters_in_either_case_and_enter_answer_other_keys_do_not() -> None:
    parser = KeyParser(ANSWER_KEYS, "no")
    ignored = (
        b"x?1 "  # other keys
        b"\x1b[A\x1bOA\x1b[1;5A"  # Up (CSI, SS3, with Ctrl): their last byte is no "A"
        b"\x1ba\x1b\x1by"  # Alt+a, Esc then Alt+y
        b"\xc3\xa9"  # a non-ASCII letter
    )
    assert [parser.feed(byte) for byte in ignored] == [None] * len(ignored)
    answers = [parser.feed(byte) for byte in b"yYnNaA\r\n\x04"]
    assert answers == ["yes", "yes", "no", "no", "always", "always", "no", "no", "no"]


@pytest.fixture
def piped() -> Iterator[TextIO]:
    """A pipe's reading end holding two lines."""
    read, write = os.pipe()
    os.write(write, b"always\nthe next line\n")
    os.close(write)
    with open(read, encoding="utf-8") as stdin:
        yield stdin


async def test_without_a_terminal_the_answer_is_one_line(piped: TextIO) -> None:
    out = io.StringIO()
    ask = key_asker(stdin=piped, out=out)
    assert await ask("Run x {}? ") == "always"
    assert out.getvalue() == "Run x {}? always\n"
    assert piped.readline() == "the next line\n"


async def test_keys_typed_before_the_question_are_kept_for_the_next_prompt() -> None:
    # A real pseudo-terminal in its usual (canonical, echoing) mode, as while an answer streams.
    from parley.terminal.keys import TypedAhead, read_choice

    leader, follower = os.openpty()
    try:
        os.write(leader, "hello wörld\r and more \x1b[A".encode())  # typed while streaming
        typed = TypedAhead()

        def show_question() -> None:
            os.write(leader, b"ythe next line")  # the key, then what is typed after it

        answer = await read_choice(
            follower, ANSWER_KEYS, "no", ready=show_question, typed_ahead=typed
        )
        assert answer == "yes"
        assert typed.take() == "hello wörld\n and more "  # the arrow key is no text
        assert typed.take() == ""
        # What came after the key is still the terminal's, for the prompt to read.
        os.write(leader, b"\r")
        after = b""
        while not after.endswith(b"\n"):
            after += os.read(follower, 100)
        assert after == b"the next line\n"
    finally:
        os.close(leader)
        os.close(follower)
