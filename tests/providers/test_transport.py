"""The shared HTTP transport on its own, apart from any one API, against loopback servers:
posting and reading bodies, the keep-alive pool, cutting a stream, timeouts, broken
answers, TLS, proxies, retries, and the errors it makes of failures."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from parley.errors import MAX_RETRY_AFTER, UpstreamError, UpstreamTimeout
from parley.events import ModelEvent
from parley.providers.http_response import TRANSPORT_ERRORS, Response
from parley.providers.transport import HTTPTransport, RetryPolicy
from parley.providers.upstream_errors import shown_url, status_error, transport_error
from parley.testing.fake_upstream import FakeUpstream
from parley.testing.loopback import Connection, LoopbackServer, Request
from tests.harness import free_port
from tests.providers.helpers import CannedUpstream, TunnelProxy, http_answer, no_resource_warnings

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
CHUNKED = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
    b"5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n"
)
STREAM = b'{"model": "text:3", "messages": [], "stream": true}'


@contextlib.asynccontextmanager
async def _opened(
    url: str, *, read: float = 5, retry: RetryPolicy | None = None
) -> AsyncIterator[HTTPTransport]:
    """A transport to ``url`` (read timeout ``read``), closed at the end of the block."""
    http = HTTPTransport(
        url,
        {"Content-Type": "application/json", "X-Test": "yes"},
        connect_timeout=5,
        read_timeout=read,
        **({"retry": retry} if retry else {}),
    )
    try:
        yield http
    finally:
        await http.aclose()


def _message_in(body: Any) -> str:
    return str(body.get("why", "")) if isinstance(body, dict) else ""


async def _post_and_read(http: HTTPTransport, body: bytes = b"{}") -> tuple[int, bytes]:
    response = await http.post(body)
    try:
        return response.status, await response.read()
    finally:
        response.release()


async def _read_to_the_end(response: Response) -> AsyncGenerator[ModelEvent, None]:
    """An adapter's reader that makes no events: it reads the body to its end."""
    await response.read()
    for event in ():
        yield event


async def _failure(http: HTTPTransport) -> UpstreamError:
    """The error ``call`` raises for one request whose answer fails."""
    with pytest.raises(UpstreamError) as info:
        async for _event in http.call(b"{}", _read_to_the_end, message_from_body=_message_in):
            pass
    return info.value


@contextlib.asynccontextmanager
async def raw_server(handler: Handler) -> AsyncIterator[str]:
    """A loopback server that reads one request per connection and leaves the answer to
    ``handler``, byte by byte; yields its URL."""

    async def respond(request: Request, conn: Connection) -> bool:
        await handler(conn.reader, conn.writer)
        return False

    async with LoopbackServer(respond) as server:
        yield f"{server.url}/v1/chat/completions"


def _held(answer: bytes) -> tuple[Handler, asyncio.Event]:
    """A ``raw_server`` handler that writes ``answer``, then waits for the client to close
    the connection; and the event it sets once the client has."""
    closed = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(answer)
        await writer.drain()
        await reader.read()  # b"" once the client has closed its end
        closed.set()

    return handler, closed


# ----------------------------------------------------------------------- request, body


async def test_post_and_read(canned: CannedUpstream) -> None:
    canned.answer = http_answer(200, b'{"ok": true}', "application/json; charset=utf-8")
    async with _opened(canned.base_url + "/anything?x=1") as http:
        response = await http.post(b'{"q": 1}')
        assert (response.status, response.content_type) == (200, "application/json")
        assert response.headers.get("content-type") == "application/json; charset=utf-8"
        assert await response.read() == b'{"ok": true}'
        response.release()
    request_line, *headers = canned.heads[-1].split("\r\n")
    assert request_line == "POST /v1/anything?x=1 HTTP/1.1"
    assert "X-Test: yes" in headers
    assert "Content-Length: 8" in headers
    assert "Accept-Encoding: identity" in headers
    assert "User-Agent: parley" in headers


def test_the_adapters_headers_win() -> None:
    http = HTTPTransport(
        "http://127.0.0.1:9/v1",
        {"accept-encoding": "gzip", "user-agent": "mine"},
        connect_timeout=1,
        read_timeout=1,
    )
    assert http.headers == {"accept-encoding": "gzip", "user-agent": "mine"}


async def test_chunked_body_is_dechunked(canned: CannedUpstream) -> None:
    canned.answer = CHUNKED
    async with _opened(canned.base_url) as http:
        response = await http.post(b"{}")
        assert response.headers["transfer-encoding"] == "chunked"
        assert b"".join([piece async for piece in response.chunks()]) == b"hello, world"
        await response.drain(0.5)
        response.release()


async def test_body_until_close() -> None:
    async def handler(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nall of it")
        await writer.drain()

    async with raw_server(handler) as url, _opened(url) as http:
        assert await _post_and_read(http) == (200, b"all of it")


async def test_informational_response_is_skipped() -> None:
    async def handler(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\nok"
        )
        await writer.drain()

    async with raw_server(handler) as url, _opened(url) as http:
        assert await _post_and_read(http) == (201, b"ok")


# ------------------------------------------------------------------------- the pool


async def test_keep_alive_connections_are_reused(fake: FakeUpstream) -> None:
    before = fake.connections
    async with _opened(fake.base_url + "/chat/completions") as http:
        for _ in range(3):
            status, body = await _post_and_read(http, STREAM)
            assert status == 200 and b"[DONE]" in body
        assert fake.connections - before == 1
        # A stream still arriving (40 chunks, 20 ms apart) released before its end: that
        # connection is closed, not reused.
        response = await http.post(b'{"model": "text:40:20", "messages": [], "stream": true}')
        response.release()
        assert b"[DONE]" in (await _post_and_read(http, STREAM))[1]
    assert fake.connections - before == 2


def test_keep_alive_under_uvloop(fake: FakeUpstream) -> None:
    """The server runs on uvloop."""
    uvloop = pytest.importorskip("uvloop")

    async def main() -> int:
        async with _opened(fake.base_url + "/chat/completions") as http:
            for _ in range(2):
                assert b"[DONE]" in (await _post_and_read(http, STREAM))[1]
        return fake.connections

    before = fake.connections
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        assert runner.run(main()) - before == 1


async def test_a_connection_the_server_closes_is_not_reused(canned: CannedUpstream) -> None:
    canned.answer = http_answer(200, b"x", headers={"connection": "close"})
    async with _opened(canned.base_url) as http:
        for _ in range(2):
            assert await _post_and_read(http) == (200, b"x")
    assert len(canned.heads) == 2


async def test_closing_early_closes_the_socket() -> None:
    handler, disconnected = _held(
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n4\r\nfirs\r\n"
    )
    async with raw_server(handler) as url:
        with no_resource_warnings():
            async with _opened(url) as http:
                response = await http.post(b"{}")
                assert await anext(aiter(response.chunks())) == b"firs"
                response.release()  # not at the end: closed, not pooled
                await asyncio.wait_for(disconnected.wait(), timeout=2)
            del http, response


async def test_cancelling_a_read_closes_the_socket() -> None:
    handler, disconnected = _held(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n")

    async def consume(http: HTTPTransport) -> None:
        response = await http.post(b"{}")
        try:
            await response.read()
        finally:
            response.close()

    async with raw_server(handler) as url, _opened(url) as http:
        task = asyncio.create_task(consume(http))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.wait_for(disconnected.wait(), timeout=2)


# --------------------------------------------------------------------- broken answers


@pytest.mark.parametrize(
    ("answer", "code", "message"),
    [
        (
            http_answer(200, b"only part", length=100),
            "upstream_truncated",
            "The upstream provider at URL closed the connection before the answer was complete.",
        ),
        (
            b"HTTP/1.1 200 OK\r\ncontent-le",
            "upstream_unreachable",
            "The upstream provider at URL closed the connection without answering.",
        ),
        (
            b"",
            "upstream_unreachable",
            "The upstream provider at URL closed the connection without answering.",
        ),
        (
            b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
            "upstream_malformed",
            "The upstream provider at URL sent an answer that is not valid HTTP; the stream could "
            "not be read.",
        ),
        (
            http_answer(200, b"not gzip at all", headers={"content-encoding": "gzip"}),
            "upstream_malformed",
            "The upstream provider at URL sent a body that could not be decoded; the stream could "
            "not be read.",
        ),
    ],
)
async def test_broken_answers(
    canned: CannedUpstream, answer: bytes, code: str, message: str
) -> None:
    canned.answer = answer
    async with _opened(canned.base_url) as http:
        error = await _failure(http)
    assert (error.code, error.message) == (code, message.replace("URL", canned.base_url))


async def test_connection_refused() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    async with _opened(url, retry=RetryPolicy(retries=0)) as http:
        error = await _failure(http)
    assert error.code == "upstream_unreachable"
    assert error.message == (
        f"Could not connect to the upstream provider at {url} (connection refused or unknown host)."
    )


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://example.test/v1", "is not an http(s) URL."),
        ("http://", "is not a valid URL."),
        ("/v1", "is not a valid URL."),
        ("http://host:99999/v1", "is not a valid URL."),
    ],
)
async def test_urls_it_cannot_take(url: str, message: str) -> None:
    async with _opened(url) as http:
        error = await _failure(http)
    message = f"The base URL of the upstream provider at {url} {message}"
    assert (error.code, error.message) == ("upstream_unreachable", message)


@pytest.mark.parametrize("head_first", [False, True])
async def test_read_timeout(canned: CannedUpstream, head_first: bool) -> None:
    """Nothing at all, or the head and then nothing: the read timeout, named."""
    canned.hold = True
    canned.answer = http_answer(200, b"", length=10) if head_first else b""
    async with _opened(canned.base_url, read=0.2) as http:
        error = await _failure(http)
    assert isinstance(error, UpstreamTimeout)
    assert error.message == f"The upstream provider at {canned.base_url} sent nothing for 0.2 s."


def test_timeouts_name_the_transport_timeouts() -> None:
    http = HTTPTransport("http://127.0.0.1:9/x", {}, connect_timeout=3, read_timeout=7.5)
    connect = http.error(aiohttp.ConnectionTimeoutError("slow"), started=False)
    read = http.error(aiohttp.SocketTimeoutError("quiet"), started=True)
    assert isinstance(connect, UpstreamTimeout)
    where = "upstream provider at http://127.0.0.1:9/x"
    assert str(connect) == f"Timed out after 3 s connecting to the {where}."
    assert isinstance(read, UpstreamTimeout)
    assert str(read) == f"The {where} sent nothing for 7.5 s."


def test_transport_error_messages() -> None:
    closed = aiohttp.ServerDisconnectedError()
    assert isinstance(closed, TRANSPORT_ERRORS)
    assert transport_error(closed, started=True).code == "upstream_truncated"
    assert transport_error(closed, started=False).code == "upstream_unreachable"
    labelled = transport_error(closed, started=False, provider_label="Gemini API")
    assert str(labelled) == "The Gemini API closed the connection without answering."


# ----------------------------------------------------------------------- error answers


@pytest.mark.parametrize(
    ("status", "code", "message"),
    [
        (401, "upstream_auth", "The upstream provider rejected the credentials (HTTP 401): no"),
        (
            429,
            "upstream_rate_limited",
            "The upstream provider is rate limiting requests (HTTP 429): no",
        ),
        (500, "upstream_http_error", "The upstream provider answered with an error (HTTP 500): no"),
    ],
)
async def test_status_error_asks_the_adapter_for_the_message(
    canned: CannedUpstream, status: int, code: str, message: str
) -> None:
    canned.answer = http_answer(status, b'{"why": "no"}', "application/json")
    async with _opened(canned.base_url) as http:
        response = await http.post(b"{}")
        error = await status_error(response, _message_in)
        response.release()
    assert (error.code, str(error)) == (code, message)


#: An upstream's status (and error body) -> the failure's code, and the status every face
#: answers it with (``parley.errors.UPSTREAM_FAILURES``): never a 500.
STATUS_FAILURES = [
    (400, b'{"why": "no"}', "upstream_invalid_request", 400),
    (400, b'{"why": "no", "reason": "API_KEY_INVALID"}', "upstream_auth", 502),
    (400, b'{"why": "no", "code": "model_not_found"}', "upstream_not_found", 502),
    (401, b'{"why": "no"}', "upstream_auth", 502),
    (403, b'{"why": "no"}', "upstream_auth", 502),
    (404, b'{"why": "no"}', "upstream_not_found", 502),
    (408, b'{"why": "no"}', "upstream_timeout", 504),
    (413, b'{"why": "no"}', "upstream_invalid_request", 400),
    (422, b'{"why": "no"}', "upstream_invalid_request", 400),
    (429, b'{"why": "no"}', "upstream_rate_limited", 429),
    (500, b'{"why": "no"}', "upstream_http_error", 502),
    (503, b'{"why": "no"}', "upstream_http_error", 502),
    (504, b'{"why": "no"}', "upstream_timeout", 504),
]


@pytest.mark.parametrize(("status", "body", "code", "answered"), STATUS_FAILURES)
async def test_each_upstream_status_has_its_code_and_answer(
    canned: CannedUpstream, status: int, body: bytes, code: str, answered: int
) -> None:
    canned.answer = http_answer(status, body, "application/json")
    async with _opened(canned.base_url, retry=RetryPolicy(retries=0)) as http:
        error = await _failure(http)
    assert (error.code, error.status_code) == (code, answered)
    assert isinstance(error, UpstreamTimeout) is (code == "upstream_timeout")
    in_vain = code in ("upstream_auth", "upstream_not_found", "upstream_invalid_request")
    assert error.retryable is not in_vain
    # who failed, at which URL, with the provider's own words
    assert error.message.startswith(f"The upstream provider at {canned.base_url} ")
    assert error.message.endswith(f"(HTTP {status}): no")


@pytest.mark.parametrize(("said", "waited"), [("7", 7.0), (None, 1.0)])
async def test_a_rate_limit_says_when_to_retry(
    canned: CannedUpstream, said: str | None, waited: float
) -> None:
    """The upstream's ``Retry-After``, or one second when it named none."""
    headers = {"retry-after": said} if said else {}
    canned.answer = http_answer(429, b"{}", "application/json", headers=headers)
    async with _opened(canned.base_url, retry=RetryPolicy(retries=0)) as http:
        error = await _failure(http)
    assert (error.code, error.status_code, error.retry_after) == (
        "upstream_rate_limited",
        429,
        waited,
    )


@pytest.mark.parametrize("body", [b"", b"data: [DONE]\n\n"])
async def test_an_answer_with_nothing_in_it_is_empty(canned: CannedUpstream, body: bytes) -> None:
    """A whole answer with no text, reasoning, tool call or finish reason is a failure."""
    canned.answer = http_answer(200, body, "text/event-stream")
    async with _opened(canned.base_url) as http:
        error = await _failure(http)
    assert (error.code, error.status_code) == ("upstream_empty", 502)
    assert error.message == (
        f"The upstream provider at {canned.base_url} ended its answer without any text, tool "
        "call or finish reason."
    )


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "https://api.example.test/v1/chat/completions",
            "https://api.example.test/v1/chat/completions",
        ),
        ("https://user:secret@api.example.test/v1", "https://api.example.test/v1"),
        (
            "https://g.example.test/v1beta/models/m:streamGenerateContent?alt=sse&key=sk-1#x",
            "https://g.example.test/v1beta/models/m:streamGenerateContent",
        ),
        ("http://[::1]:8080/v1?key=sk-1", "http://[::1]:8080/v1"),
    ],
)
def test_the_url_an_error_shows_has_no_credentials_or_query(url: str, shown: str) -> None:
    assert shown_url(url) == shown
    error = HTTPTransport(url, {}, connect_timeout=1, read_timeout=1).error(
        aiohttp.ServerDisconnectedError(), started=False
    )
    assert (
        error.message
        == f"The upstream provider at {shown} closed the connection without answering."
    )
    assert "secret" not in error.message and "sk-1" not in error.message


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (
            http_answer(502, b"<html>bad gateway</html>", "text/html"),
            "The upstream provider answered with an error (HTTP 502).",
        ),
        (
            http_answer(302, b"", headers={"location": "/elsewhere"}),
            "The upstream provider answered with a redirect (HTTP 302); check its base URL.",
        ),
        (
            http_answer(500, b'{"why": "cut sh', "application/json", length=200),
            "The upstream provider answered with an error (HTTP 500).",
        ),
    ],
)
async def test_status_error_without_a_message(
    canned: CannedUpstream, answer: bytes, message: str
) -> None:
    canned.answer = answer
    async with _opened(canned.base_url) as http:
        response = await http.post(b"{}")
        error = await status_error(response, _message_in)
        response.release()
    assert (error.code, str(error)) == ("upstream_http_error", message)


# ---------------------------------------------------------------------------- retries


class Scripted:
    """A loopback upstream that writes its ``answers`` in turn, one per request, closing
    the connection after each; ``b""`` closes it without answering."""

    def __init__(self, *answers: bytes) -> None:
        self.answers = list(answers)
        self.requests = 0
        self.server = LoopbackServer(self._respond)

    async def _respond(self, request: Request, conn: Connection) -> bool:
        self.requests += 1
        await conn.write(self.answers.pop(0))
        return False


QUICK_RETRIES = RetryPolicy(retries=2, backoff=0.01, max_wait=1.0)


@pytest.mark.parametrize(
    "first",
    [
        http_answer(503, b"{}", "application/json"),
        http_answer(429, b"{}", "application/json", headers={"retry-after": "0.05"}),
        b"",  # dropped before the head: the request was not taken
    ],
)
async def test_a_failed_try_before_the_answer_is_retried(first: bytes) -> None:
    upstream = Scripted(first, http_answer(200, b"done"))
    async with upstream.server as server, _opened(server.url + "/v1", retry=QUICK_RETRIES) as http:
        assert await _post_and_read(http) == (200, b"done")
    assert upstream.requests == 2


async def test_retries_end_with_the_last_answer() -> None:
    upstream = Scripted(*[http_answer(500, b'{"why": "down"}', "application/json")] * 3)
    async with upstream.server as server, _opened(server.url + "/v1", retry=QUICK_RETRIES) as http:
        error = await _failure(http)
    assert upstream.requests == 3
    assert error.message == (
        f"The upstream provider at {server.url}/v1 answered with an error (HTTP 500): down"
    )


async def test_no_retry_once_the_body_streams_or_when_asked_to_wait_too_long() -> None:
    upstream = Scripted(
        http_answer(200, b"data: 1", length=100),
        http_answer(429, b"{}", "application/json", headers={"retry-after": "60"}),
    )
    async with upstream.server as server, _opened(server.url + "/v1", retry=QUICK_RETRIES) as http:
        assert (await _failure(http)).code == "upstream_truncated"
        assert (await _failure(http)).code == "upstream_rate_limited"
    assert upstream.requests == 2


async def test_a_refused_connection_is_retried() -> None:
    """Refused at first (the upstream is restarting), then listening."""
    port = free_port()
    upstream = Scripted(http_answer(200, b"up"))
    server = LoopbackServer(upstream._respond, port=port)
    retry = RetryPolicy(retries=3, backoff=0.2, max_wait=1)
    try:
        async with _opened(f"http://127.0.0.1:{port}/v1", retry=retry) as http:
            answer = asyncio.create_task(_post_and_read(http))
            await asyncio.sleep(0.1)
            await server.start()
            assert await answer == (200, b"up")
    finally:
        await server.aclose()


def test_retry_after_reads_seconds_and_dates() -> None:
    import email.utils
    import time

    from parley.providers.http_response import retry_after

    assert retry_after({"retry-after": "3"}) == 3.0
    assert retry_after({"retry-after": "0.5"}) == 0.5
    assert retry_after({}) is None
    assert retry_after({"retry-after": "soon"}) is None
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    wait = retry_after({"retry-after": later})
    assert wait is not None and 25 <= wait <= 31


@pytest.mark.parametrize(
    ("said", "read"),
    [
        ("inf", MAX_RETRY_AFTER),
        ("1e300", MAX_RETRY_AFTER),
        ("Fri, 31 Dec 9999 23:59:59 GMT", MAX_RETRY_AFTER),
        ("-5", 0.0),
        ("nan", 0.0),
    ],
)
def test_retry_after_is_bounded(said: str, read: float) -> None:
    """An endless, absurd or negative wait from a hostile or broken upstream: at most a
    day, never less than nothing."""
    from parley.providers.http_response import retry_after

    assert retry_after({"retry-after": said}) == read


def test_retry_policy_backs_off_with_jitter_and_honours_retry_after() -> None:
    policy = RetryPolicy(retries=2, backoff=1.0, max_wait=10.0)
    first, second = policy.delay(0, None), policy.delay(1, None)
    assert first is not None and 0.5 <= first <= 1.0
    assert second is not None and 1.0 <= second <= 2.0
    assert policy.delay(2, None) is None  # no third retry
    assert policy.delay(0, 5.0) == 5.0  # the upstream asked for longer
    assert policy.delay(0, 60.0) is None  # more than we would wait: give up now


# ------------------------------------------------------------------------ TLS, proxies


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
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"),
            *("-keyout", key, "-out", cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@contextlib.asynccontextmanager
async def tls_server(certificate: tuple[str, str]) -> AsyncIterator[str]:
    """An https upstream on localhost answering ``CHUNKED``; yields its URL."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)

    async def respond(request: Request, conn: Connection) -> bool:
        await conn.write(CHUNKED)
        return False

    async with LoopbackServer(respond, tls=context) as server:
        yield f"https://localhost:{server.port}/v1"


@pytest.fixture
async def tunnel() -> AsyncIterator[TunnelProxy]:
    async with TunnelProxy() as proxy:
        yield proxy


async def test_https_with_a_trusted_certificate(
    certificate: tuple[str, str], clean_proxy_env: pytest.MonkeyPatch
) -> None:
    clean_proxy_env.setenv("SSL_CERT_FILE", certificate[0])  # trusted like a system CA
    async with tls_server(certificate) as url, _opened(url) as http:
        assert await _post_and_read(http) == (200, b"hello, world")


async def test_https_with_an_untrusted_certificate_fails_as_tls(
    certificate: tuple[str, str], clean_proxy_env: pytest.MonkeyPatch
) -> None:
    async with tls_server(certificate) as url, _opened(url) as http:
        error = await _failure(http)
    assert error.message == (
        f"Could not connect securely to the upstream provider at {url} (TLS failed)."
    )


async def test_https_through_a_proxy_tunnel(
    certificate: tuple[str, str], clean_proxy_env: pytest.MonkeyPatch, tunnel: TunnelProxy
) -> None:
    clean_proxy_env.setenv("SSL_CERT_FILE", certificate[0])
    clean_proxy_env.setenv("HTTPS_PROXY", tunnel.url)
    clean_proxy_env.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # for http:// only
    async with tls_server(certificate) as url:
        async with _opened(url) as http:
            assert await _post_and_read(http) == (200, b"hello, world")
        port = url.split(":")[2].split("/")[0]
    assert tunnel.requests == [f"CONNECT localhost:{port} HTTP/1.1"]


async def test_a_proxy_that_refuses_the_tunnel(
    certificate: tuple[str, str], clean_proxy_env: pytest.MonkeyPatch, tunnel: TunnelProxy
) -> None:
    clean_proxy_env.setenv("HTTPS_PROXY", tunnel.url)
    tunnel.refuse = 403
    async with tls_server(certificate) as url, _opened(url) as http:
        error = await _failure(http)
    assert error.code == "upstream_unreachable"
    assert error.message == (
        f"The HTTP proxy refused to connect to the upstream provider at {url} (HTTP 403)."
    )


async def test_no_proxy_skips_the_proxy(
    certificate: tuple[str, str], clean_proxy_env: pytest.MonkeyPatch, tunnel: TunnelProxy
) -> None:
    clean_proxy_env.setenv("SSL_CERT_FILE", certificate[0])
    clean_proxy_env.setenv("HTTPS_PROXY", tunnel.url)
    clean_proxy_env.setenv("NO_PROXY", "localhost")
    async with tls_server(certificate) as url, _opened(url) as http:
        assert await _post_and_read(http) == (200, b"hello, world")
    assert tunnel.requests == []
