"""The lean HTTP/1.1 client, against loopback servers that write raw bytes."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from parley.providers import upstream_http
from parley.providers.upstream_http import Target, UpstreamHTTP
from parley.testing.fake_upstream import FakeUpstream
from parley.testing.loopback import Connection, LoopbackServer, Request
from tests.providers.helpers import CannedUpstream, http_answer, no_resource_warnings

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
CHUNKED = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
    b"5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n"
)


@contextlib.asynccontextmanager
async def raw_server(handler: Handler) -> AsyncIterator[str]:
    """A loopback server that reads one request per connection and leaves the answer to
    ``handler``, byte by byte; yields its chat completions URL."""

    async def respond(request: Request, conn: Connection) -> bool:
        await handler(conn.reader, conn.writer)
        return False

    async with LoopbackServer(respond) as server:
        yield f"{server.url}/v1/chat/completions"


def client(**kwargs: float) -> UpstreamHTTP:
    return UpstreamHTTP(
        connect_timeout=kwargs.get("connect", 5), read_timeout=kwargs.get("read", 5)
    )


async def post_and_read(http: UpstreamHTTP, url: str) -> tuple[int, bytes]:
    response = await http.post(Target(url, {}), b"{}")
    try:
        return response.status, await response.read()
    finally:
        response.release()


async def test_chunked_body_is_dechunked(canned: CannedUpstream) -> None:
    canned.answer = CHUNKED
    http = client()
    try:
        response = await http.post(Target(canned.base_url, {}), b'{"a": 1}')
        assert (response.status, response.content_type) == (200, "text/event-stream")
        assert response.headers["transfer-encoding"] == "chunked"
        assert b"".join([chunk async for chunk in response.chunks()]) == b"hello, world"
        response.release()
    finally:
        await http.aclose()
    head = canned.heads[-1]
    assert head.startswith("POST /v1 HTTP/1.1\r\n")
    assert "Accept-Encoding: identity\r\n" in head
    assert "Content-Length: 8\r\n" in head


async def test_content_length_body(canned: CannedUpstream) -> None:
    canned.answer = http_answer(200, b'{"ok": true}', "application/json; charset=utf-8")
    http = client()
    try:
        status, body = await post_and_read(http, canned.base_url)
    finally:
        await http.aclose()
    assert (status, body) == (200, b'{"ok": true}')


async def test_body_until_close() -> None:
    async def handler(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nall of it")
        await writer.drain()

    async with raw_server(handler) as url:
        http = client()
        try:
            assert await post_and_read(http, url) == (200, b"all of it")
        finally:
            await http.aclose()


async def test_keep_alive_connections_are_reused(fake: FakeUpstream) -> None:
    http = client()
    target = Target(fake.base_url + "/chat/completions", {})
    before = fake.connections
    body = b'{"model": "text:3", "messages": [], "stream": true}'
    try:
        for _ in range(3):
            response = await http.post(target, body)
            assert b"[DONE]" in await response.read()
            response.release()
        assert fake.connections - before == 1
        # A stream still arriving (40 chunks, 20 ms apart) is released before its end:
        # that connection is not reused.
        slow = b'{"model": "text:40:20", "messages": [], "stream": true}'
        response = await http.post(target, slow)
        response.release()
        response = await http.post(target, body)
        await response.read()
        response.release()
    finally:
        await http.aclose()
    assert fake.connections - before == 2


async def test_a_connection_the_server_closes_is_not_reused(canned: CannedUpstream) -> None:
    canned.answer = http_answer(200, b"x", headers={"connection": "close"})
    http = client()
    try:
        for _ in range(2):
            assert await post_and_read(http, canned.base_url) == (200, b"x")
    finally:
        await http.aclose()
    assert len(canned.heads) == 2


async def test_closing_early_closes_the_socket() -> None:
    disconnected = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n4\r\nfirs\r\n")
        await writer.drain()
        await reader.read()  # b"" once the client has closed its end
        disconnected.set()

    async with raw_server(handler) as url:
        with no_resource_warnings():
            http = client()
            response = await http.post(Target(url, {}), b"{}")
            assert await anext(aiter(response.chunks())) == b"firs"
            response.release()  # not at the end: closed, not pooled
            await asyncio.wait_for(disconnected.wait(), timeout=2)
            await http.aclose()
            del http, response


async def test_cancelling_a_read_closes_the_socket() -> None:
    disconnected = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n")
        await writer.drain()
        await reader.read()
        disconnected.set()

    async def consume(http: UpstreamHTTP, url: str) -> None:
        response = await http.post(Target(url, {}), b"{}")
        try:
            await response.read()
        finally:
            response.close()

    async with raw_server(handler) as url:
        http = client()
        task = asyncio.create_task(consume(http, url))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.wait_for(disconnected.wait(), timeout=2)
        await http.aclose()


async def test_eof_mid_body(canned: CannedUpstream) -> None:
    canned.answer = http_answer(200, b"only part", length=100)
    http = client()
    try:
        response = await http.post(Target(canned.base_url, {}), b"{}")
        with pytest.raises(upstream_http.BodyTruncated):
            await response.read()
        response.close()
    finally:
        await http.aclose()


async def test_eof_before_the_head(canned: CannedUpstream) -> None:
    canned.answer = b"HTTP/1.1 200 OK\r\ncontent-le"
    http = client()
    try:
        with pytest.raises(upstream_http.ConnectionClosed) as info:
            await http.post(Target(canned.base_url, {}), b"{}")
        assert not isinstance(info.value, upstream_http.BodyTruncated)
    finally:
        await http.aclose()


async def test_not_http(canned: CannedUpstream) -> None:
    canned.answer = b"SSH-2.0-OpenSSH_9.6\r\n\r\n"
    http = client()
    try:
        with pytest.raises(upstream_http.ProtocolError):
            await http.post(Target(canned.base_url, {}), b"{}")
    finally:
        await http.aclose()


async def test_connection_refused() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    http = client()
    try:
        with pytest.raises(upstream_http.ConnectFailed) as info:
            await http.post(Target(f"http://127.0.0.1:{port}/v1", {}), b"{}")
        assert not info.value.tls
    finally:
        await http.aclose()


@pytest.mark.parametrize("head_first", [False, True])
async def test_read_timeout(canned: CannedUpstream, head_first: bool) -> None:
    """Nothing at all, or the head and then nothing: ReadTimeout (a TimeoutError)."""
    canned.hold = True
    canned.answer = http_answer(200, b"", length=10) if head_first else b""
    http = client(read=0.2)
    try:
        with pytest.raises(upstream_http.ReadTimeout):
            response = await http.post(Target(canned.base_url, {}), b"{}")
            try:
                await response.read()
            finally:
                response.close()
    finally:
        await http.aclose()


async def test_informational_response_is_skipped() -> None:
    async def handler(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\nok"
        )
        await writer.drain()

    async with raw_server(handler) as url:
        http = client()
        try:
            assert await post_and_read(http, url) == (201, b"ok")
        finally:
            await http.aclose()


@pytest.mark.parametrize("url", ["ftp://example.test/v1", "http://", "/v1", "http://host:99999/v1"])
def test_invalid_urls(url: str) -> None:
    with pytest.raises(upstream_http.InvalidURL):
        Target(url, {})


def test_request_head() -> None:
    target = Target(
        "https://[::1]:8443/v1/chat/completions?x=1",
        {"Authorization": "Bearer k", "accept-encoding": "gzip", "Content-Length": "5"},
    )
    assert target.key == ("https", "::1", 8443)
    assert target.head.decode().split("\r\n") == [
        "POST /v1/chat/completions?x=1 HTTP/1.1",
        "Host: [::1]:8443",
        "User-Agent: parley",
        "Authorization: Bearer k",
        "Accept-Encoding: identity",
        "Content-Length: ",
    ]
    with pytest.raises(ValueError, match="line break"):
        Target("http://h/v1", {"X-Evil": "a\r\nInjected: yes"})


def test_under_uvloop(fake: FakeUpstream) -> None:
    """The server runs on uvloop, which calls ``connection_made`` later than asyncio."""
    uvloop = pytest.importorskip("uvloop")

    async def main() -> int:
        http = client()
        target = Target(fake.base_url + "/chat/completions", {})
        body = b'{"model": "text:2", "messages": [], "stream": true}'
        try:
            for _ in range(2):
                response = await http.post(target, body)
                assert b"[DONE]" in await response.read()
                response.release()
        finally:
            await http.aclose()
        return fake.connections

    before = fake.connections
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        assert runner.run(main()) - before == 1


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A self-signed certificate for localhost (made with the openssl command)."""
    import shutil
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = str(folder / "cert.pem"), str(folder / "key.pem")
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
            "-keyout",
            key,
            "-out",
            cert,
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@contextlib.asynccontextmanager
async def tls_server(cert: str, key: str) -> AsyncIterator[int]:
    import ssl

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    async def respond(request: Request, conn: Connection) -> bool:
        await conn.write(CHUNKED)
        return False

    async with LoopbackServer(respond, tls=context) as server:
        yield server.port


async def test_https_with_a_trusted_certificate(
    certificate: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = certificate
    monkeypatch.setenv("SSL_CERT_FILE", cert)  # trusted like a system CA
    async with tls_server(cert, key) as port:
        http = client()
        try:
            status, body = await post_and_read(http, f"https://localhost:{port}/v1")
        finally:
            await http.aclose()
    assert (status, body) == (200, b"hello, world")


async def test_https_with_an_untrusted_certificate_fails_as_tls(
    certificate: tuple[str, str],
) -> None:
    cert, key = certificate
    async with tls_server(cert, key) as port:
        http = client()
        try:
            with pytest.raises(upstream_http.ConnectFailed) as failed:
                await post_and_read(http, f"https://localhost:{port}/v1")
        finally:
            await http.aclose()
    assert failed.value.tls
