"""A webhook receiver on loopback for the tests: a threaded HTTP server that keeps every
request it gets, answers each path as the test told it to, and can hold a request open."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


class Receiver:
    """``url(path)`` is where to send; ``fail(path, n)`` answers the path's first ``n``
    requests 500; ``hang(path)`` holds the path's first request open until ``release()``."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self._failures: dict[str, int] = defaultdict(int)
        self._hang: set[str] = set()
        self.hanging = threading.Event()
        self._release = threading.Event()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with receiver._lock:
                    receiver.received.append(
                        Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                    )
                    failing = receiver._failures[self.path] > 0
                    if failing:
                        receiver._failures[self.path] -= 1
                    hang = self.path in receiver._hang
                    receiver._hang.discard(self.path)
                if hang:
                    receiver.hanging.set()
                    receiver._release.wait(60)
                    return
                self.send_response(500 if failing else 204)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._release.set()
        self.server.shutdown()
        self.server.server_close()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

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
