"""What the attack tests (``test_attacks_*.py``) share: a roomier kernel, the code every
attack starts with, and the host-side readers (its /proc, its files' inotify events)."""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import struct
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from parley.sandbox import files
from parley.sandbox.runtime import Kernel

#: What the kernel adds to logs cut at output_bytes: "\n[output cut: N more bytes not shown]".
NOTE_ROOM = 64

#: The helpers every attack below starts with: ``tried(table, label, action)`` records
#: what ``action()`` gave, or the errno name of the OSError it raised ("E...").
HELPERS = r"""
import errno, json, os
def tried(table, label, action):
    try:
        got = action()
    except OSError as e:
        table[label] = errno.errorcode.get(e.errno or 0, f"E{e.errno}")
    else:
        table[label] = got if isinstance(got, (str, list, int)) else "ok"
"""


async def _report(kernel: Kernel, code: str, **given: object) -> Any:
    """What the attack leaves in ``_result`` (printed as JSON); ``given`` are set as the
    code's variables first."""
    head = "".join(f"{name} = {value!r}\n" for name, value in given.items())
    outcome = await kernel.run(
        head + HELPERS + code + "\nimport json as _j\nprint(_j.dumps(_result))"
    )
    assert outcome.ended == "ok", (outcome.error, outcome.logs[-2000:])
    return json.loads(outcome.logs.strip().splitlines()[-1])


def _failed(results: dict[str, object]) -> dict[str, object]:
    """The entries of a report whose action did not fail with an errno."""
    return {k: v for k, v in results.items() if not (isinstance(v, str) and v.startswith("E"))}


def _status(pid: int) -> dict[str, str]:
    """The host's view of /proc/PID/status ({} when the process is gone)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    return {k: v.strip() for k, _, v in (line.partition(":") for line in text.splitlines())}


def _host(path: str | Path) -> bytes:
    """A file of the host's (of its /proc too), b"" when there is none."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""


def _existing(paths: list[str]) -> list[str]:
    return [p for p in paths if os.path.isdir(p)]


def _put_back(paths: list[str], mark: str) -> None:
    """Were a rename of the code's to have worked, the host's files as they were."""
    for path in paths:
        moved = Path(f"{path}.{mark}")
        if moved.exists() and not Path(path).exists():
            moved.rename(path)


def _digest(path: Path) -> tuple[int, int, int, str]:
    st = path.stat()
    return st.st_mode, st.st_size, st.st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest()


class _Inotify:
    """The host's inotify watch of paths: every open, read, write, attribute change,
    creation or removal of them (for a folder: of what it holds), whoever does it and
    through whatever path (it watches inodes, not names)."""

    ALL = 0xFFF  # IN_ALL_EVENTS

    def __init__(self, *paths: Path) -> None:
        self._libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self._libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        assert self.fd >= 0, os.strerror(ctypes.get_errno())
        for path in paths:
            wd = self._libc.inotify_add_watch(self.fd, os.fsencode(path), self.ALL)
            assert wd >= 0, os.strerror(ctypes.get_errno())

    def events(self) -> list[tuple[int, str]]:
        """(mask, name) of the events since the last call."""
        found: list[tuple[int, str]] = []
        while True:
            try:
                data = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                return found
            at = 0
            while at < len(data):
                _, mask, _, size = struct.unpack_from("iIII", data, at)
                name = data[at + 16 : at + 16 + size].rstrip(b"\0").decode("utf-8", "replace")
                found.append((mask, name))
                at += 16 + size

    def close(self) -> None:
        os.close(self.fd)


def _within(action: Callable[[], object], seconds: float = 5.0) -> object:
    """``action()``'s value, or the exception it raised, run on a thread: the test fails
    when it has not returned within ``seconds`` (it blocked, on a fifo say)."""
    done: list[object] = []

    def run() -> None:
        try:
            done.append(action())
        except BaseException as exc:  # noqa: BLE001 (handed back to the test)
            done.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"{action} blocked for {seconds} s"
    return done[0]


def _first_chunk(directory: Path, path: str) -> bytes:
    return next(files.chunks(directory, path, most=1 << 20))


# ---------------------------------------------------------------- other containers' files
