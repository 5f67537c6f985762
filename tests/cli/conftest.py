"""What the tests of the ``parley`` command share: a command read line by line, and a port
something else listens on."""

from __future__ import annotations

import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest


class Command:
    """``python -m parley.cli.main ARGS`` with its output read line by line (by a thread, so
    that a command that prints nothing fails ``wait_for`` at its deadline)."""

    def __init__(self, *args: str, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "parley.cli.main", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            umask=0o022,  # private files are not private by accident of the umask
        )
        self.lines: list[str] = []
        self._read: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._reading, daemon=True)
        self._reader.start()

    def _reading(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._read.put(line)
        self._read.put(None)  # the end

    def wait_for(self, pattern: str, timeout: float = 60) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._read.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                self._read.put(None)
                break
            self.lines.append(line)
            found = re.search(pattern, line)
            if found:
                return found
        raise AssertionError(f"no {pattern!r} in:\n{''.join(self.lines)}")

    def interrupt(self) -> tuple[int, str]:
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=30)
        return self.proc.returncode, "".join(self.lines) + self._rest()

    def _rest(self) -> str:
        """What the command printed after the last line ``wait_for`` read, once it ended."""
        self._reader.join(timeout=30)
        rest: list[str] = []
        while not self._read.empty() and (line := self._read.get_nowait()) is not None:
            rest.append(line)
        return "".join(rest)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(timeout=30)
        if self.proc.stdout:
            self.proc.stdout.close()


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A loopback port this test's process listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])
