"""A lean HTTP/1.1 client for one job: POST a JSON body and stream the response body.

Built on an ``asyncio.Protocol`` and ``httptools.HttpResponseParser``, it does only what an
upstream model call needs, and so costs less CPU per request than a general client:

* a pool of keep-alive connections per (scheme, host, port); a connection goes back to the
  pool only when its response was read to the end and the server keeps it alive, and an
  idle connection is dropped after ``keepalive`` seconds;
* TLS for ``https`` (``ssl.create_default_context()``, the host name checked);
* a connect timeout, and a read timeout on every wait for data (head or body);
* ``Accept-Encoding: identity`` (a ``gzip`` or ``deflate`` body sent anyway is decoded);
* chunked, Content-Length and read-until-close bodies, the status and headers first;
* closing a response before its end closes the socket at once, so the server sees the
  disconnect.

Failures are ``HTTPClientError`` subclasses: ``ConnectFailed`` (refused, unknown host, TLS),
``ConnectTimeout`` / ``ReadTimeout`` (both ``TimeoutError``), ``ConnectionClosed`` (before
the head; ``BodyTruncated`` after it), ``ProtocolError`` (not HTTP), ``DecodeError`` and
``InvalidURL``.
"""

from __future__ import annotations

import asyncio
import ssl
import zlib
from collections import deque
from urllib.parse import urlsplit

import httptools

#: Body bytes buffered, unread, before the socket stops being read.
_HIGH_WATER = 1024 * 1024


class HTTPClientError(Exception):
    """Any failure of this client."""


class InvalidURL(HTTPClientError, ValueError):
    """The URL is not an absolute http(s) URL."""


class ConnectFailed(HTTPClientError):
    """No connection: refused, unknown host, unreachable network, or TLS failed."""

    def __init__(self, message: str, *, tls: bool = False) -> None:
        super().__init__(message)
        self.tls = tls


class ConnectTimeout(HTTPClientError, TimeoutError):
    """The connection (TCP and TLS) was not made within the connect timeout."""


class ReadTimeout(HTTPClientError, TimeoutError):
    """Nothing was received within the read timeout."""


class ConnectionClosed(HTTPClientError):
    """The server closed the connection before the response head was complete."""


class BodyTruncated(ConnectionClosed):
    """The server closed the connection before the end of the response body."""


class ProtocolError(HTTPClientError):
    """The server's answer is not valid HTTP/1.1."""


class DecodeError(HTTPClientError):
    """The body's Content-Encoding could not be decoded."""


class Target:
    """A parsed URL and the bytes of a POST request head for it, up to Content-Length."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise InvalidURL("not an http(s) URL")
        try:
            port = parts.port
        except ValueError:
            raise InvalidURL("invalid port") from None
        if not parts.hostname:
            raise InvalidURL("no host")
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = port or (443 if self.scheme == "https" else 80)
        self.key = (self.scheme, self.host, self.port)
        host = f"[{self.host}]" if ":" in self.host else self.host
        if port is not None:
            host = f"{host}:{port}"
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        merged = {"host": ("Host", host), "user-agent": ("User-Agent", "parley")}
        merged.update((name.lower(), (name, value)) for name, value in headers.items())
        merged["accept-encoding"] = ("Accept-Encoding", "identity")
        merged.pop("content-length", None)
        merged.pop("transfer-encoding", None)
        lines = [f"POST {path} HTTP/1.1"] + [f"{n}: {v}" for n, v in merged.values()]
        if any("\r" in line or "\n" in line for line in lines):
            raise ValueError("a header name or value holds a line break")
        self.head = ("\r\n".join(lines) + "\r\nContent-Length: ").encode("latin-1")


class _Connection(asyncio.Protocol):
    """One connection and the response being read on it (one at a time)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._parser: httptools.HttpResponseParser | None = None
        self._waiter: asyncio.Future[None] | None = None
        self.chunks: deque[bytes] = deque()
        self._buffered = 0
        self._paused = False
        self.exc: HTTPClientError | None = None
        self.head_done = False
        self.complete = False
        self.keep_alive = False
        self.status = 0
        self.headers: dict[str, str] = {}
        self._framed = False  # Content-Length or chunked: EOF is not the end of the body

    # -------------------------------------------------------------- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a stream transport

    def data_received(self, data: bytes) -> None:
        parser = self._parser
        if parser is None or self.complete:  # nothing asked: the connection is unusable
            self.abort()
            return
        try:
            parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ProtocolError(f"invalid HTTP: {exc}"))
            self.abort()
            return
        if self._buffered > _HIGH_WATER and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._parser is not None and not self.complete:
            if self.head_done and not self._framed:
                self.complete = True  # a body that ends with the connection
                self.keep_alive = False
                self._wake()
            elif self.head_done:
                self._fail(BodyTruncated("connection closed before the end of the body"))
            else:
                self._fail(ConnectionClosed("connection closed before the response"))

    # ------------------------------------------------------------ httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        if key in ("content-length", "transfer-encoding"):
            self._framed = True
        self.headers[key] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        assert self._parser is not None
        status = self._parser.get_status_code()
        if 100 <= status < 200:  # informational: the real head follows
            self.headers = {}
            self._framed = False
            return
        self.status = status
        self.head_done = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self._buffered += len(body)
        self._wake()

    def on_message_complete(self) -> None:
        if not self.head_done:
            return  # the end of an informational response
        assert self._parser is not None
        self.keep_alive = self._parser.should_keep_alive()
        self.complete = True
        self._wake()

    # ------------------------------------------------------------------------ client

    def start(self, request: bytes) -> None:
        """Send one request; the response is read through ``wait`` and ``chunks``."""
        assert self.transport is not None
        self._parser = httptools.HttpResponseParser(self)
        self.head_done = self.complete = self.keep_alive = self._framed = False
        self.headers = {}
        self.chunks.clear()
        self._buffered = 0
        self.transport.write(request)

    async def wait(self, seconds: float) -> None:
        """Wait for the next thing received (head, body, end); raise the failure, if any."""
        if self.exc is not None:
            raise self.exc
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        waiter = self._waiter = self.loop.create_future()
        timer = self.loop.call_later(seconds, _expire, waiter, seconds)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None
        if self.exc is not None:
            raise self.exc

    def take(self) -> bytes:
        chunk = self.chunks.popleft()
        self._buffered -= len(chunk)
        return chunk

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def _fail(self, exc: HTTPClientError) -> None:
        if self.exc is None:
            self.exc = exc
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


def _expire(waiter: asyncio.Future[None], timeout: float) -> None:
    if not waiter.done():
        waiter.set_exception(ReadTimeout(f"nothing received for {timeout:g} s"))


class Response:
    """A response whose head has arrived; its body is read with ``chunks`` or ``read``.

    End it with ``release`` (the connection goes back to the pool when the body was read to
    its end and the server keeps it alive, otherwise it is closed) or ``close`` (closed now).
    """

    def __init__(self, client: UpstreamHTTP, key: tuple[str, str, int], conn: _Connection) -> None:
        self._client = client
        self._key = key
        self._conn = conn
        self._timeout = client.read_timeout
        self.status = conn.status
        self.headers = conn.headers
        mimetype = self.headers.get("content-type", "").partition(";")[0]
        self.content_type = mimetype.strip().lower()
        self._decoder = _decoder(self.headers.get("content-encoding", ""))

    def chunks(self) -> _Body:
        """An async iterator of the body's pieces, as they arrive."""
        return _Body(self._conn, self._timeout, self._decoder)

    async def read(self) -> bytes:
        """The whole body."""
        return b"".join([chunk async for chunk in self.chunks()])

    async def drain(self, within: float) -> None:
        """Read the rest of the body within ``within`` seconds; on any trouble, close."""
        try:
            async with asyncio.timeout(within):
                async for _chunk in self.chunks():
                    pass
        except (HTTPClientError, TimeoutError):
            self.close()

    def release(self) -> None:
        conn = self._conn
        if conn.complete and conn.keep_alive and not conn.closed and conn.exc is None:
            self._client._put(self._key, conn)
        else:
            conn.abort()

    def close(self) -> None:
        self._conn.abort()


class _Body:
    """The body of a response, one network read (de-chunked) per piece."""

    __slots__ = ("_conn", "_decoder", "_timeout")

    def __init__(self, conn: _Connection, timeout: float, decoder: zlib._Decompress | None) -> None:
        self._conn = conn
        self._timeout = timeout
        self._decoder = decoder

    def __aiter__(self) -> _Body:
        return self

    async def __anext__(self) -> bytes:
        conn = self._conn
        while True:
            while not conn.chunks:
                if conn.complete:
                    raise StopAsyncIteration
                await conn.wait(self._timeout)
            if self._decoder is None:
                return conn.take()
            try:
                chunk = self._decoder.decompress(conn.take())
            except zlib.error as exc:
                raise DecodeError(f"the body does not decode: {exc}") from None
            if chunk:
                return chunk


def _decoder(encoding: str) -> zlib._Decompress | None:
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return None
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return zlib.decompressobj(zlib.MAX_WBITS)
    raise DecodeError(f"unsupported Content-Encoding {encoding!r}")


class UpstreamHTTP:
    """A pool of keep-alive connections and the POSTs made on them.

    Open and use it inside one running event loop; ``aclose`` closes the idle connections,
    and connections in use are closed when their response ends.
    """

    def __init__(
        self,
        *,
        connect_timeout: float,
        read_timeout: float,
        keepalive: float = 4.0,
        max_idle: int = 512,
    ) -> None:
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._keepalive = keepalive
        self._max_idle = max_idle
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._closed = False
        self._ssl: ssl.SSLContext | None = None

    async def post(self, target: Target, body: bytes) -> Response:
        """Send ``body`` to ``target``; return once the response's status and headers are in."""
        if self._closed:
            raise HTTPClientError("the client is closed")
        conn = self._get(target.key) or await self._connect(target)
        try:
            conn.start(b"%b%d\r\n\r\n%b" % (target.head, len(body), body))
            while not conn.head_done:
                await conn.wait(self.read_timeout)
            return Response(self, target.key, conn)
        except BaseException:
            conn.abort()
            raise

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                conn.abort()
        await asyncio.sleep(0)  # let the transports finish closing

    def _get(self, key: tuple[str, str, int]) -> _Connection | None:
        conns = self._idle.get(key)
        if not conns:
            return None
        oldest_usable = asyncio.get_running_loop().time() - self._keepalive
        while conns:
            conn = conns.pop()
            if conn.closed or conn.idle_since < oldest_usable:
                conn.abort()
                while conns:  # the others are older still
                    conns.pop().abort()
                return None
            assert conn.transport is not None
            if not conn.transport.is_closing():
                return conn
            conn.abort()
        return None

    def _put(self, key: tuple[str, str, int], conn: _Connection) -> None:
        conns = self._idle.setdefault(key, [])
        if self._closed or len(conns) >= self._max_idle:
            conn.abort()
            return
        conn._parser = None  # anything the server sends now makes it unusable
        conn.idle_since = conn.loop.time()
        conns.append(conn)

    async def _connect(self, target: Target) -> _Connection:
        loop = asyncio.get_running_loop()
        context = None
        if target.scheme == "https":
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            context = self._ssl
        try:
            async with asyncio.timeout(self.connect_timeout):
                transport, conn = await loop.create_connection(
                    lambda: _Connection(loop),
                    target.host,
                    target.port,
                    ssl=context,
                    server_hostname=target.host if context is not None else None,
                )
        except TimeoutError:
            raise ConnectTimeout(f"no connection within {self.connect_timeout:g} s") from None
        except ssl.SSLError as exc:
            raise ConnectFailed(f"TLS failed: {exc}", tls=True) from exc
        except ssl.CertificateError as exc:
            raise ConnectFailed(f"TLS failed: {exc}", tls=True) from exc
        except OSError as exc:
            raise ConnectFailed(f"could not connect: {exc}") from exc
        conn.transport = transport  # uvloop may call connection_made only later
        return conn
