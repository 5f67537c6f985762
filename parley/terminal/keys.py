"""The terminal's input modes while an exchange runs, and single key presses.

``read_choice`` waits for one key on a terminal and takes nothing else from it: the
terminal is switched to non-canonical mode without echo, bytes are read one at a time,
and it returns at the first key that means something. What the user types after that key
stays in the terminal's input queue, for the next prompt. Keys typed *before* the question
cannot answer it: they are taken out of the queue first and kept (``TypedAhead``), and the
chat's next prompt starts with them. Ctrl+C stays a signal (``ISIG`` is kept): it stops the
exchange as it does while an answer streams.

``quiet_input`` turns the terminal's echo off while an answer is on screen: a key typed
meanwhile, or the ``^C`` the terminal echoes for Ctrl+C, would otherwise be written into
the live region, which then redraws and erases the wrong lines (the partial answer was left
on screen twice). Typed text is still kept, and the next prompt shows it.

Both restore the terminal's modes with ``TCSANOW``, which keeps pending input.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import select
import sys
from collections.abc import Callable, Iterator, Mapping
from typing import Generic, TypeVar

__all__ = ["KeyParser", "TypedAhead", "is_terminal", "quiet_input", "read_choice"]

T = TypeVar("T")

_ESC = 0x1B
#: Keys that take the default answer: Enter (CR, or LF after ICRNL) and Ctrl+D.
_DEFAULT_KEYS = frozenset({0x0D, 0x0A, 0x04})


def is_terminal(fd: int) -> bool:
    """Whether ``fd`` is a terminal whose modes this module can set (not on Windows)."""
    return sys.platform != "win32" and os.isatty(fd)


class KeyParser(Generic[T]):
    """Turns the bytes of a terminal's input into choices, one byte at a time.

    ``keys`` maps a lowercase letter to its choice (the capital letter means the same);
    Enter and Ctrl+D give ``default``; every other key is ignored, escape sequences (arrow
    and function keys, Alt+letter) whole, so the ``A`` of Up (``ESC [ A``) is no answer.
    """

    def __init__(self, keys: Mapping[str, T], default: T) -> None:
        self._keys = {key.lower(): choice for key, choice in keys.items()}
        self._default = default
        self._state = ""  # "", "esc", "csi" or "ss3"

    def feed(self, byte: int) -> T | None:
        """The choice ``byte`` completes, or None."""
        state = self._state
        if state == "esc":
            self._state = {ord("["): "csi", ord("O"): "ss3", _ESC: "esc"}.get(byte, "")
            return None
        if state == "csi":
            if 0x40 <= byte <= 0x7E:  # the final byte
                self._state = ""
            return None
        if state == "ss3":
            self._state = ""
            return None
        if byte == _ESC:
            self._state = "esc"
            return None
        if byte in _DEFAULT_KEYS:
            return self._default
        if byte < 0x80:
            return self._keys.get(chr(byte).lower())
        return None  # part of a non-ASCII character


#: What typed text keeps of a terminal's bytes: escape sequences (arrow keys, ...) and
#: control characters other than newlines and tabs go.
_SEQUENCES = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|O.|.)?|[\x00-\x08\x0b-\x1f\x7f]")


class TypedAhead:
    """Text typed while an answer streamed, taken out of the terminal's queue before a
    question reads its key, for the next prompt (``take``)."""

    def __init__(self) -> None:
        self._bytes = bytearray()

    def keep(self, data: bytes) -> None:
        self._bytes.extend(data)

    def take(self) -> str:
        """The text kept so far (Enter as a new line, none at the end), and forget it."""
        text = self._bytes.decode("utf-8", "ignore").replace("\r\n", "\n").replace("\r", "\n")
        self._bytes.clear()
        return _SEQUENCES.sub("", text).strip("\n")


async def read_choice(
    fd: int,
    keys: Mapping[str, T],
    default: T,
    *,
    ready: Callable[[], None] | None = None,
    typed_ahead: TypedAhead | None = None,
) -> T:
    """Wait for one key on the terminal ``fd`` (see ``KeyParser``) and return its choice
    (``is_terminal(fd)`` must be true). ``ready`` is called once the terminal is set up,
    before the first read: it shows the question, so any key typed after it is read. What
    was typed before goes to ``typed_ahead`` (dropped without one)."""
    import termios

    before = termios.tcgetattr(fd)
    mode = termios.tcgetattr(fd)
    mode[3] = (mode[3] & ~(termios.ICANON | termios.ECHO)) | termios.ISIG
    mode[6][termios.VMIN] = 1
    mode[6][termios.VTIME] = 0
    termios.tcsetattr(fd, termios.TCSANOW, mode)
    try:
        pending = _pending(fd)  # typed before the question showed: no answer, but kept
        if typed_ahead is not None:
            typed_ahead.keep(pending)
        if ready is not None:
            ready()
        return await _first_choice(fd, KeyParser(keys, default), default)
    finally:
        termios.tcsetattr(fd, termios.TCSANOW, before)


def _pending(fd: int) -> bytes:
    """What the terminal ``fd`` (in non-canonical mode) holds now, without waiting."""
    data = bytearray()
    while select.select([fd], [], [], 0)[0]:
        try:
            chunk = os.read(fd, 4096)
        except (BlockingIOError, InterruptedError):
            break
        if not chunk:
            break
        data.extend(chunk)
    return bytes(data)


async def _first_choice(fd: int, parser: KeyParser[T], default: T) -> T:
    """Read ``fd`` a byte at a time until ``parser`` makes a choice of one."""
    loop = asyncio.get_running_loop()
    chosen: asyncio.Future[T] = loop.create_future()

    def readable() -> None:
        if chosen.done():  # never read past the key that answered
            return
        try:
            data = os.read(fd, 1)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            chosen.set_exception(exc)
            return
        if not data:  # the terminal went away
            chosen.set_result(default)
            return
        choice = parser.feed(data[0])
        if choice is not None:
            chosen.set_result(choice)

    loop.add_reader(fd, readable)
    try:
        return await chosen
    finally:
        loop.remove_reader(fd)


@contextlib.contextmanager
def quiet_input(fd: int) -> Iterator[None]:
    """Turn the echo of the terminal ``fd`` off while the block runs (nothing when ``fd`` is
    not a terminal); input is kept, Ctrl+C stays a signal."""
    if not is_terminal(fd):
        yield
        return
    import termios

    before = termios.tcgetattr(fd)
    quiet = list(before)
    quiet[3] = before[3] & ~(termios.ECHO | termios.ECHONL)
    termios.tcsetattr(fd, termios.TCSANOW, quiet)
    try:
        yield
    finally:
        with contextlib.suppress(termios.error, OSError):  # the terminal may be gone by now
            termios.tcsetattr(fd, termios.TCSANOW, before)
