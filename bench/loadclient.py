"""A lean HTTP/1.1 load client on raw asyncio streams.

One ``Connection`` is one keep-alive socket. ``Connection.stream`` sends a prepared POST,
reads the response body (chunked or ``Content-Length``), splits it into SSE events and
timestamps the first content event and the end of the body. Doing only that keeps the
client's own CPU per stream far below the server's, so the server is what gets measured.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from time import perf_counter

import orjson

#: An SSE event's kind, as a classifier sees it.
OTHER, CONTENT, DONE = 0, 1, 2
Classifier = Callable[[bytes], int]


def parley_event(event: bytes) -> int:
    """Kind of a Parley SSE frame (``id:`` / ``event:`` / ``data:`` lines)."""
    if b"\nevent: content.delta\n" in event:
        return CONTENT
    if b"\nevent: done\n" in event:
        return DONE
    return OTHER


def openai_event(event: bytes) -> int:
    """Kind of an OpenAI Chat Completions chunk: content means a non-empty
    ``delta.content`` (the first chunk's empty role announcement does not count)."""
    if event == b"data: [DONE]":
        return DONE
    if b'"content":"' not in event or not event.startswith(b"data: "):
        return OTHER
    choices = orjson.loads(event[6:]).get("choices") or ()
    return CONTENT if choices and choices[0].get("delta", {}).get("content") else OTHER


@dataclass(frozen=True, slots=True)
class Target:
    """One endpoint and the exact request bytes sent to it each time."""

    name: str
    port: int
    request: bytes
    classify: Classifier

    @classmethod
    def post(
        cls, name: str, port: int, path: str, body: bytes, classify: Classifier, **headers: str
    ) -> Target:
        head = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
        head += [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
        head += ["Content-Type: application/json", f"Content-Length: {len(body)}", "", ""]
        return cls(name, port, "\r\n".join(head).encode() + body, classify)


@dataclass(slots=True)
class StreamResult:
    """One response: status, timestamps (``perf_counter`` seconds) and what it carried."""

    status: int
    started: float
    head: float = 0.0
    first: float | None = None
    ended: float = 0.0
    content_events: int = 0
    done: bool = False

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.done and self.first is not None

    @property
    def ttfc(self) -> float:
        """Seconds from sending the request to the first content event."""
        return (self.first or self.ended) - self.started

    @property
    def to_head(self) -> float:
        """Seconds from sending the request to reading the response's status and headers."""
        return self.head - self.started

    @property
    def duration(self) -> float:
        return self.ended - self.started


class _Events:
    """Splits a body into SSE events (blank-line separated) and tallies them."""

    __slots__ = ("_classify", "_rest", "result")

    def __init__(self, result: StreamResult, classify: Classifier) -> None:
        self.result = result
        self._classify = classify
        self._rest = b""

    def feed(self, data: bytes) -> None:
        *events, self._rest = (self._rest + data).split(b"\n\n")
        result = self.result
        for event in events:
            kind = self._classify(event)
            if kind == CONTENT:
                if result.first is None:
                    result.first = perf_counter()
                result.content_events += 1
            elif kind == DONE:
                result.done = True


class Connection:
    """One keep-alive connection to ``127.0.0.1:port``."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self.reusable = True

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
        return cls(reader, writer)

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()

    async def stream(self, target: Target) -> StreamResult:
        """Send the target's request and read the whole answer."""
        started = perf_counter()
        self._writer.write(target.request)
        reader = self._reader
        head = await reader.readuntil(b"\r\n\r\n")
        result = StreamResult(0, started, head=perf_counter())
        result.status, headers = _parse_head(head)
        events = _Events(result, target.classify)
        if "chunked" in headers.get("transfer-encoding", ""):
            while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
                events.feed((await reader.readexactly(size + 2))[:-2])
            while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers
                pass
        elif "content-length" in headers:
            events.feed(await reader.readexactly(int(headers["content-length"])))
        else:
            events.feed(await reader.read())
            self.reusable = False
        result.ended = perf_counter()
        if headers.get("connection", "").lower() == "close":
            self.reusable = False
        return result


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    return int(status_line.split(" ", 2)[1]), headers


@dataclass(slots=True)
class LoadResult:
    """What a batch of streams did, and how long the batch took (wall clock)."""

    results: list[StreamResult] = field(default_factory=list)
    wall: float = 0.0

    @property
    def failures(self) -> list[StreamResult]:
        return [r for r in self.results if not r.ok]


async def open_connections(port: int, count: int) -> list[Connection]:
    return list(await asyncio.gather(*(Connection.open(port) for _ in range(count))))


async def drive(
    connections: list[Connection], target: Target, total: int, limit_s: float = 60.0
) -> LoadResult:
    """``total`` streams over the open connections, each connection one stream at a time.

    A stream that breaks, or takes over ``limit_s`` seconds, counts as failed (status 0)
    and its connection is replaced, as is one the server closed.
    """
    load = LoadResult()
    remaining = total

    async def client(connection: Connection) -> None:
        nonlocal remaining
        try:
            while remaining > 0:
                remaining -= 1
                if not connection.reusable:
                    await connection.close()
                    connection = await Connection.open(target.port)
                started = perf_counter()
                try:
                    async with asyncio.timeout(limit_s):
                        result = await connection.stream(target)
                except (
                    OSError,
                    asyncio.IncompleteReadError,
                    asyncio.LimitOverrunError,
                    ValueError,
                ):
                    result = StreamResult(0, started, ended=perf_counter())
                    connection.reusable = False
                load.results.append(result)
        finally:
            await connection.close()

    started = perf_counter()
    await asyncio.gather(*(client(c) for c in connections))
    load.wall = perf_counter() - started
    return load
