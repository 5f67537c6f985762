"""A lean HTTP/1.1 load client on raw asyncio streams.

One ``Connection`` is one keep-alive socket. ``Connection.stream`` sends a prepared POST,
reads the response body (chunked or ``Content-Length``), splits it into SSE events and
timestamps the first content event and the end of the body. Doing only that keeps the
client's own CPU per stream far below the server's, so the server is what gets measured.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from time import perf_counter

import orjson

#: An SSE event's kind, as a classifier sees it: CONTENT is counted (the first one timed),
#: DONE ends the stream. FINAL is a protocol's own last event, which a target that expects
#: one (``Target.needs_final``) must see before DONE; FAILED is an error event, and the
#: stream counts as failed.
OTHER, CONTENT, DONE, FINAL, FAILED = 0, 1, 2, 3, 4
Classifier = Callable[[bytes], int]


def parley_event(event: bytes) -> int:
    """Kind of a Parley SSE frame (``id:`` / ``event:`` / ``data:`` lines): a ``done`` whose
    run did not complete, and an ``error``, fail the stream."""
    if b"\nevent: content.delta\n" in event:
        return CONTENT
    if b"\nevent: done\n" in event:
        return DONE if b'"status":"completed"' in event else FAILED
    if b"\nevent: error\n" in event:
        return FAILED
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


_RESPONSE_FAILED = (
    b"event: response.failed\n",
    b"event: response.incomplete\n",
    b"event: error\n",
)


def responses_event(event: bytes) -> int:
    """Kind of a Responses SSE frame (``event: <type>`` / ``data:`` lines): content is a
    ``response.output_text.delta``; ``response.completed`` must come before the closing
    ``data: [DONE]``; a failed or incomplete response, or an ``error``, fails the stream."""
    if event.startswith(b"event: response.output_text.delta\n"):
        return CONTENT
    if event == b"data: [DONE]":
        return DONE
    if event.startswith(b"event: response.completed\n"):
        return FINAL
    if event.startswith(_RESPONSE_FAILED):
        return FAILED
    return OTHER


@dataclass(frozen=True, slots=True)
class Target:
    """One endpoint and the exact request bytes sent to it each time."""

    name: str
    port: int
    request: bytes
    classify: Classifier
    needs_final: bool = False

    @classmethod
    def post(
        cls,
        name: str,
        port: int,
        path: str,
        body: bytes,
        classify: Classifier,
        *,
        needs_final: bool = False,
        **headers: str,
    ) -> Target:
        head = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
        head += [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
        head += ["Content-Type: application/json", f"Content-Length: {len(body)}", "", ""]
        return cls(name, port, "\r\n".join(head).encode() + body, classify, needs_final)


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
    final: bool = False
    #: What went wrong that the status does not say (an error event, a broken connection).
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.problem

    @property
    def problem(self) -> str:
        """Why the stream failed, or ``""``: a non-200, an error, no content or no end."""
        if self.error:
            return self.error
        if self.status != 200:
            return f"status {self.status}"
        if self.first is None:
            return "no content event"
        return "" if self.done else "no end of stream"

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

    __slots__ = ("_classify", "_needs_final", "_rest", "result")

    def __init__(self, result: StreamResult, target: Target) -> None:
        self.result = result
        self._classify = target.classify
        self._needs_final = target.needs_final
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
                if self._needs_final and not result.final and not result.error:
                    result.error = "end of stream without the final event"
            elif kind == FINAL:
                result.final = True
            elif kind == FAILED and not result.error:
                result.error = f"error event: {event[:200].decode(errors='replace')}"

    def rest(self) -> bytes:
        """What came after the last blank line (a non-SSE body: all of it)."""
        return self._rest


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
        events = _Events(result, target)
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
        if result.status != 200 and not result.error:
            body = events.rest()[:200].decode(errors="replace")
            result.error = f"status {result.status}: {body}"
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


def problem_counts(results: Iterable[StreamResult]) -> dict[str, int]:
    """How many of the streams failed, by reason."""
    return dict(Counter(why for r in results if (why := r.problem)))


async def open_connections(port: int, count: int) -> list[Connection]:
    return list(await asyncio.gather(*(Connection.open(port) for _ in range(count))))


async def stream_once(
    connection: Connection, target: Target, limit_s: float = 60.0
) -> tuple[Connection, StreamResult]:
    """One stream on ``connection``, or on a new one if the server closed it or the last
    stream on it broke; answers the connection to use next and the result.

    A stream that breaks, or takes over ``limit_s`` seconds, counts as failed (status 0).
    """
    if not connection.reusable:
        await connection.close()
        connection = await Connection.open(target.port)
    started = perf_counter()
    try:
        async with asyncio.timeout(limit_s):
            return connection, await connection.stream(target)
    except (
        OSError,  # TimeoutError included
        asyncio.IncompleteReadError,
        asyncio.LimitOverrunError,
        ValueError,
    ) as exc:
        connection.reusable = False
        error = f"{type(exc).__name__} after {perf_counter() - started:.1f} s"
        return connection, StreamResult(0, started, ended=perf_counter(), error=error)


def spread(chunks: int, gap_ms: float, clients: int) -> float:
    """``drive``'s ``stagger_s`` that spreads the starts of ``clients`` connections over one
    stream (``chunks`` chunks ``gap_ms`` apart); 0 for one client."""
    return chunks * gap_ms / 1000 / clients if clients > 1 else 0.0


async def drive(
    connections: list[Connection],
    target: Target,
    total: int,
    limit_s: float = 60.0,
    stagger_s: float = 0.0,
) -> LoadResult:
    """``total`` streams over the open connections, each connection one stream at a time
    (``stream_once``: a broken stream fails, its connection is replaced). With
    ``stagger_s``, connection ``k`` starts ``k * stagger_s`` seconds late, so streams of
    equal length arrive spread out rather than all at once."""
    load = LoadResult()
    remaining = total

    async def client(connection: Connection, delay: float) -> None:
        nonlocal remaining
        try:
            if delay:
                await asyncio.sleep(delay)
            while remaining > 0:
                remaining -= 1
                connection, result = await stream_once(connection, target, limit_s)
                load.results.append(result)
        finally:
            await connection.close()

    started = perf_counter()
    await asyncio.gather(*(client(c, k * stagger_s) for k, c in enumerate(connections)))
    load.wall = perf_counter() - started
    return load


async def drive_mixed(
    connections: list[Connection],
    targets: list[Target],
    total: int,
    limit_s: float = 60.0,
    stagger_s: float = 0.0,
) -> dict[str, LoadResult]:
    """As ``drive``, with ``total`` streams of each target at once: connection ``k`` sends
    its ``i``-th stream to target ``(k + i) % len(targets)``, so every target meets the same
    load at the same moments. Answers each target's results, by its name."""
    loads = {t.name: LoadResult() for t in targets}
    remaining = total * len(targets)

    async def client(k: int, connection: Connection, delay: float) -> None:
        nonlocal remaining
        try:
            if delay:
                await asyncio.sleep(delay)
            i = 0
            while remaining > 0:
                remaining -= 1
                target = targets[(k + i) % len(targets)]
                i += 1
                connection, result = await stream_once(connection, target, limit_s)
                loads[target.name].results.append(result)
        finally:
            await connection.close()

    started = perf_counter()
    await asyncio.gather(*(client(k, c, k * stagger_s) for k, c in enumerate(connections)))
    for load in loads.values():
        load.wall = perf_counter() - started
    return loads
