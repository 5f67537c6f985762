"""Terminal drivers for end-to-end tests of ``parley chat``.

``Terminal`` (stdlib only) starts a command with a new pty as its controlling terminal (so a
written ``\\x03`` becomes SIGINT, as in a real terminal), drains its output in a thread, and
waits for text with a deadline. ``screen`` is the output with escape sequences removed: every
frame the live region drew is in it, so it tells what was written, not what stays visible.

``Tmux`` runs a command in a detached tmux session on a private server: a real terminal
emulator, whose ``capture`` is what the screen shows once redraws and erasures are done.
"""

from __future__ import annotations

import fcntl
import os
import re
import secrets
import shlex
import signal
import struct
import subprocess
import tempfile
import termios
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

_ESCAPES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"  # OSC
    r"|\x1b[()][0-9A-Za-z]"  # charset
    r"|\x1b[=>78DEHMNOc]"  # other short escapes
)


def strip_escapes(text: str) -> str:
    return _ESCAPES.sub("", text).replace("\r", "")


class Terminal:
    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: str | None = None,
        rows: int = 40,
        cols: int = 120,
    ) -> None:
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.proc = subprocess.Popen(
            list(argv),
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
            preexec_fn=_take_terminal,  # a controlling terminal: Ctrl+C becomes SIGINT
        )
        os.close(slave)
        self._master = master
        self._raw = bytearray()
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        while True:
            try:
                data = os.read(self._master, 65536)
            except OSError:
                return
            if not data:
                return
            with self._lock:
                self._raw.extend(data)

    @property
    def raw(self) -> str:
        with self._lock:
            return self._raw.decode("utf-8", "replace")

    @property
    def screen(self) -> str:
        return strip_escapes(self.raw)

    def mark(self) -> int:
        """A position in ``screen``; ``expect(..., since=mark)`` looks after it only."""
        return len(self.screen)

    def write(self, text: str) -> None:
        os.write(self._master, text.encode())

    def expect(self, pattern: str, *, timeout: float = 20.0, since: int = 0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        while True:
            match = regex.search(self.screen, since)
            if match is not None:
                return match
            if time.monotonic() > deadline or self.proc.poll() is not None:
                if self.proc.poll() is not None:
                    time.sleep(0.2)  # let the reader take the last bytes
                    match = regex.search(self.screen, since)
                    if match is not None:
                        return match
                raise AssertionError(
                    f"{pattern!r} did not show within {timeout} s; screen:\n{self.screen[since:]}"
                )
            time.sleep(0.02)

    def wait(self, timeout: float = 20.0) -> int:
        return self.proc.wait(timeout=timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(timeout=2)
        os.close(self._master)


def _take_terminal() -> None:
    """In the child, after ``setsid``: make stdin's pty the controlling terminal, and give
    SIGINT its default action (a suite started with ``nohup … &`` ignores it, and a child
    would inherit that: Ctrl+C would do nothing)."""
    _default_sigint()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Tmux:
    """``argv`` in a ``cols`` x ``rows`` tmux pane, on a tmux server of its own (``close``
    ends it)."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        cols: int = 80,
        rows: int = 24,
    ) -> None:
        # A short socket path of its own (a socket's path is limited to about 100 bytes).
        self._socket = Path(tempfile.gettempdir()) / f"parley-tmux-{secrets.token_hex(6)}"
        self._tmux = ["tmux", "-S", str(self._socket), "-f", "/dev/null"]
        # The size is the pane's: no COLUMNS/LINES from outside to override it.
        env = {k: v for k, v in env.items() if k not in ("COLUMNS", "LINES", "TMUX")}
        command = shlex.join(argv)
        size = ("-x", str(cols), "-y", str(rows))
        self._run("new-session", "-d", *size, command, env=env)

    def _run(self, *args: str, env: Mapping[str, str] | None = None) -> str:
        done = subprocess.run(
            [*self._tmux, *args],
            env=None if env is None else dict(env),
            capture_output=True,
            text=True,
            check=True,
            timeout=20,
            preexec_fn=_default_sigint,  # the server's panes inherit it
        )
        return done.stdout

    def capture(self, *, history: bool = False, joined: bool = False) -> str:
        """The pane's text as shown (with ``history``, the lines scrolled off it too; with
        ``joined``, lines the terminal wrapped joined back)."""
        flags = (["-S", "-"] if history else []) + (["-J"] if joined else [])
        return self._run("capture-pane", "-p", *flags)

    def send(self, text: str) -> None:
        self._run("send-keys", "-l", text)

    def key(self, name: str) -> None:
        """Press a key by its tmux name (``Enter``, ``C-c``)."""
        self._run("send-keys", name)

    def expect(self, pattern: str, *, timeout: float = 20.0) -> re.Match[str]:
        """Wait until the pane's text, history and wrapped lines joined, matches."""
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        while True:
            text = self.capture(history=True, joined=True)
            match = regex.search(text)
            if match is not None:
                return match
            if time.monotonic() > deadline:
                raise AssertionError(f"{pattern!r} did not show within {timeout} s:\n{text}")
            time.sleep(0.05)

    def close(self) -> None:
        subprocess.run([*self._tmux, "kill-server"], capture_output=True, check=False, timeout=20)
        self._socket.unlink(missing_ok=True)
