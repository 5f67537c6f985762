"""A webhook receiver on loopback for the tests: a fake server (``LoopbackFake``, served
from a thread of its own) that keeps every request it gets, answers each path as the test
told it to, and can hold a request open."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import defaultdict
from dataclasses import dataclass

from parley.testing.loopback import Connection, LoopbackFake, Request


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


class Receiver(LoopbackFake):
    """``endpoint(path)`` is where to send; ``fail(path, n)`` answers the path's first ``n``
    requests 500; ``hang(path)`` holds the path's first request open until ``release()``."""

    def __init__(self) -> None:
        super().__init__()
        self.received: list[Received] = []
        self._failures: dict[str, int] = defaultdict(int)
        self._hang: set[str] = set()
        self.hanging = threading.Event()
        self._release = threading.Event()
        self._lock = threading.Lock()

    async def _respond(self, request: Request, conn: Connection) -> bool:
        with self._lock:
            self.received.append(Received(request.target, request.headers, request.body))
            failing = self._failures[request.target] > 0
            if failing:
                self._failures[request.target] -= 1
            hang = request.target in self._hang
            self._hang.discard(request.target)
        if hang:
            self.hanging.set()
            await asyncio.to_thread(self._release.wait, 60)
            return False  # closed without an answer
        await conn.send(500 if failing else 204, b"")
        return True

    def __exit__(self, *exc_info: object) -> None:
        self._release.set()
        super().__exit__(*exc_info)

    def endpoint(self, path: str) -> str:
        """The URL of ``path`` here."""
        return f"{self.url}{path}"

    def fail(self, path: str, times: int) -> None:
        self._failures[path] = times

    def hang(self, path: str) -> None:
        self._hang.add(path)

    def release(self) -> None:
        self._release.set()

    def at(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.path == path]

    def wait_for(self, path: str, count: int, timeout: float = 20.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.at(path)
            if len(got) >= count:
                return got
            time.sleep(0.02)
        raise AssertionError(f"{path} got {len(self.at(path))} requests, not {count}")
