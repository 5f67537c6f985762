"""Where an MCP server process writes its stderr, and its last lines for an error message.

By default each connection of a server gets a private scratch file, so servers never draw
on the terminal, and the lines a server wrote just before it failed can be quoted in the
reason shown to the user. A hub given a ``stderr`` stream shares it with every server.
"""

from __future__ import annotations

import os
import tempfile
from typing import TextIO, cast

__all__ = ["ServerStderr"]

#: Bytes read back from the end of a server's stderr to quote it.
_TAIL_BYTES = 800


class ServerStderr:
    """One server's stderr: ``open`` gives each connection its file, ``mark`` and ``tail``
    read back what it wrote."""

    def __init__(self, shared: TextIO | None) -> None:
        self._shared = shared
        self._file: TextIO | None = None

    def open(self) -> TextIO:
        """Where the server process writes its stderr: the shared stream, or a new private
        scratch file."""
        if self._shared is not None:
            return self._shared
        self._file = _scratch_file()
        return self._file

    def close(self, errlog: TextIO) -> None:
        """The connection that wrote to ``errlog`` is over: close it unless shared."""
        if errlog is not self._shared:
            errlog.close()

    def _private(self) -> TextIO | None:
        """The server's own stderr file, while it is open (None when it shares one)."""
        errlog = self._file
        if errlog is None or errlog is self._shared or errlog.closed:
            return None
        return errlog

    def mark(self) -> int:
        """How much the server has written to its private stderr file so far."""
        errlog = self._private()
        if errlog is None:
            return 0
        try:
            return os.fstat(errlog.fileno()).st_size
        except OSError:
            return 0

    def tail(self, since: int = 0) -> str:
        """The last lines the server wrote to stderr after ``since``, as `` (stderr: …)``
        to add to an error message ("" when there are none)."""
        errlog = self._private()
        if errlog is None:
            return ""
        try:
            fd = errlog.fileno()
            start = max(since, os.fstat(fd).st_size - _TAIL_BYTES)
            data = os.pread(fd, _TAIL_BYTES, start)
        except OSError:
            return ""
        lines = [line.strip() for line in data.decode("utf-8", "replace").splitlines()]
        tail = [line for line in lines if line][-3:]
        return f" (stderr: {' | '.join(tail)})" if tail else ""


def _scratch_file() -> TextIO:
    """A file deleted when closed (or never named, where the system allows)."""
    return cast(TextIO, tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace"))
