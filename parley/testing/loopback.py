"""The one loopback HTTP/1.1 server of the fakes: real sockets, keep-alive, chunked answers.

Each fake upstream (``fake_upstream``, ``scripted`` and its API fakes, ``fake_gemini``,
``fake_ollama``, and the fakes of the tests) is a handler on a ``LoopbackServer``::

    async def handle(request: Request, conn: Connection) -> bool:
        if request.method == "GET" and request.path == "/v1/models":
            await conn.send_json(200, {"data": []})
            return True                        # keep the connection for the next request
        await conn.begin_chunked(content_type="text/event-stream")
        await conn.send_chunk(b"data: {}\\n\\n")
        await conn.end_chunked()
        return True

    async with LoopbackServer(handle) as server:
        server.url                             # http://127.0.0.1:PORT (https with tls=)

A handler answers ``False`` when the connection is to close (a cut or held stream). A
client that goes away, or sends what is not HTTP, only ends its own connection. ``aclose``
stops listening and ends every open connection.

The fakes themselves are ``LoopbackFake`` subclasses: a server of their own that answers
with their ``_respond``, listening within ``async with`` on the running event loop, or
within ``with`` on an event loop of its own in a background thread (``BackgroundLoop``),
for tests and servers whose own code does not run on a loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Self, TypeVar

import orjson

__all__ = [
    "BackgroundLoop",
    "Connection",
    "Handler",
    "LoopbackFake",
    "LoopbackServer",
    "Received",
    "Request",
]

_T = TypeVar("_T")

_DROPPED = (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError)


@dataclass(slots=True)
class Request:
    """One request: ``target`` as sent (path and query), header names in lower case."""

    method: str
    target: str
    headers: dict[str, str]
    body: bytes
    #: The request line and headers as received.
    head: str

    @property
    def path(self) -> str:
        return self.target.partition("?")[0]

    def json(self) -> Any:
        """The body as JSON (None when there is none); ``ValueError`` when it is not."""
        return orjson.loads(self.body) if self.body else None


@dataclass(slots=True)
class Received:
    """A request as a fake keeps it for a test to look at: the body read as JSON."""

    method: str
    target: str
    headers: dict[str, str]
    body: Any

    @classmethod
    def of(cls, request: Request) -> Received:
        return cls(request.method, request.target, request.headers, request.json())


async def _read_request(reader: asyncio.StreamReader) -> Request | None:
    """The next request on the connection, or None at a clean end of it."""
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise
        return None
    head = raw.decode("latin-1")
    request_line, *lines = head.split("\r\n")
    method, target, _version = request_line.split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", ""):
        raise ValueError("chunked request bodies are not supported")
    length = int(headers.get("content-length") or 0)
    body = await reader.readexactly(length) if length else b""
    return Request(method, target, headers, body, head)


def _status_line(status: int) -> bytes:
    phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Status"
    return b"HTTP/1.1 %d %b\r\n" % (status, phrase.encode())


def _header_lines(headers: Mapping[str, str] | None) -> bytes:
    if not headers:
        return b""
    return "".join(f"{name}: {value}\r\n" for name, value in headers.items()).encode("latin-1")


class Connection:
    """One client connection, as a handler writes its answers on it."""

    __slots__ = ("reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def write(self, data: bytes) -> None:
        """Bytes as they are: an answer written by hand (a broken one, say)."""
        self.writer.write(data)
        await self.writer.drain()

    async def send(
        self,
        status: int,
        body: bytes,
        *,
        content_type: str = "application/json",
        headers: Mapping[str, str] | None = None,
        keep: bool = True,
    ) -> None:
        """A whole answer with ``Content-Length``."""
        self.writer.write(
            _status_line(status)
            + b"content-type: %b\r\ncontent-length: %d\r\nconnection: %b\r\n%b\r\n%b"
            % (
                content_type.encode(),
                len(body),
                b"keep-alive" if keep else b"close",
                _header_lines(headers),
                body,
            )
        )
        await self.writer.drain()

    async def send_json(
        self,
        status: int,
        payload: Any,
        *,
        headers: Mapping[str, str] | None = None,
        keep: bool = True,
    ) -> None:
        await self.send(status, orjson.dumps(payload), headers=headers, keep=keep)

    async def begin_chunked(
        self,
        status: int = 200,
        *,
        content_type: str = "text/event-stream",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """The head of a streamed answer; ``send_chunk`` each piece, then ``end_chunked``."""
        self.writer.write(
            _status_line(status)
            + b"content-type: %b\r\ncache-control: no-cache\r\ntransfer-encoding: chunked\r\n"
            b"%b\r\n" % (content_type.encode(), _header_lines(headers))
        )
        await self.writer.drain()

    async def send_chunk(self, payload: bytes) -> None:
        """One chunk, written at once (an empty one ends the body)."""
        self.writer.write(b"%x\r\n%b\r\n" % (len(payload), payload))
        await self.writer.drain()

    async def end_chunked(self) -> None:
        self.writer.write(b"0\r\n\r\n")
        await self.writer.drain()

    async def wait_for_close(self) -> None:
        """Read (and drop) until the client closes the connection."""
        while await self.reader.read(65536):
            pass


Handler = Callable[[Request, Connection], Awaitable[bool]]


class LoopbackServer:
    """Serves ``handler`` on ``host:port`` (0: a free port): ``start``/``aclose``, or
    ``async with``."""

    def __init__(
        self,
        handler: Handler,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.handler = handler
        self.host = host
        #: Serve HTTPS with this context.
        self.tls = tls
        #: The port to listen on, then the port listened on.
        self.port = port
        #: Connections accepted so far (keep-alive reuse shows as a small number).
        self.connections = 0
        #: Connections open now.
        self.open_connections = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False

    @property
    def url(self) -> str:
        """``http://HOST:PORT``."""
        return f"http://{self.host}:{self.port}"

    async def start(self) -> int:
        """Start accepting connections; answers the port."""
        self._closing = False
        self._server = await asyncio.start_server(self._serve, self.host, self.port, ssl=self.tls)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def aclose(self) -> None:
        """Stop listening and end every open connection."""
        self._closing = True
        if self._server is not None:
            self._server.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        self.connections += 1
        self.open_connections += 1
        conn = Connection(reader, writer)
        try:
            while (request := await _read_request(reader)) is not None:
                if not await self.handler(request, conn):
                    break
        except _DROPPED:
            pass  # the client went away or spoke nonsense: drop the connection
        except asyncio.CancelledError:
            # aclose() ends open connections; ending quietly keeps asyncio's connection
            # callback from logging the cancellation.
            if not self._closing:
                raise
        finally:
            self.open_connections -= 1
            if task is not None:
                self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


class BackgroundLoop:
    """An event loop of its own in a daemon thread: ``run`` a coroutine there and wait for
    its result, then ``close``."""

    def __init__(self, name: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()
        self._loop.run_until_complete(self._loop.shutdown_asyncgens())
        self._loop.close()

    def run(self, coroutine: Coroutine[Any, Any, _T], timeout: float = 10.0) -> _T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def close(self) -> None:
        """Stop the loop and join its thread."""
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)


class LoopbackFake:
    """The base of the fake servers: a ``LoopbackServer`` of its own that answers with the
    subclass's ``_respond``. It listens within ``async with`` (or from ``listen`` to
    ``aclose``) on the running loop, or within ``with`` on a ``BackgroundLoop``, its state
    then read from the test's thread."""

    def __init__(
        self, *, host: str = "127.0.0.1", port: int = 0, tls: ssl.SSLContext | None = None
    ) -> None:
        self._server = LoopbackServer(self._respond, host=host, port=port, tls=tls)
        self._background: BackgroundLoop | None = None

    async def _respond(self, request: Request, conn: Connection) -> bool:
        """Answer one request; ``False`` when the connection is to close."""
        raise NotImplementedError

    @property
    def host(self) -> str:
        return self._server.host

    @property
    def port(self) -> int:
        """The port listened on (or to listen on, before)."""
        return self._server.port

    @property
    def url(self) -> str:
        """``http://HOST:PORT``."""
        return self._server.url

    @property
    def connections(self) -> int:
        """Connections accepted so far (keep-alive reuse shows as a small number)."""
        return self._server.connections

    @property
    def open_connections(self) -> int:
        """Connections open now."""
        return self._server.open_connections

    async def listen(self) -> int:
        """Start accepting connections on the running loop; answers the port."""
        return await self._server.start()

    async def aclose(self) -> None:
        """Stop listening and end every open connection."""
        await self._server.aclose()

    async def __aenter__(self) -> Self:
        await self.listen()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def serve_in_thread(self) -> None:
        """Listen from a ``BackgroundLoop`` of its own; returns once connections are
        accepted."""
        background = self._background = BackgroundLoop(type(self).__name__)
        try:
            background.run(self.listen())
        except BaseException:
            self.stop_thread()
            raise

    def stop_thread(self) -> None:
        """End every connection, stop the background loop and join its thread."""
        background, self._background = self._background, None
        if background is None:
            return
        with contextlib.suppress(RuntimeError):
            background.run(self.aclose())
        background.close()

    def __enter__(self) -> Self:
        self.serve_in_thread()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop_thread()
