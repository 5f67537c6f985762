"""The shared HTTP transport on its own, apart from any one API: posting, the response
interface on both clients, and the errors it makes of failures."""

from __future__ import annotations

from typing import Any

import pytest

from parley.errors import UpstreamTimeout
from parley.providers import upstream_http
from parley.providers.transport import HTTPTransport, status_error, transport_error
from tests.providers.helpers import CannedUpstream, http_answer

pytestmark = pytest.mark.usefixtures("transport")


def _transport(canned: CannedUpstream) -> HTTPTransport:
    return HTTPTransport(
        canned.base_url + "/anything",
        {"Content-Type": "application/json", "X-Test": "yes"},
        connect_timeout=5,
        read_timeout=5,
    )


def _message_in(body: Any) -> str:
    return str(body.get("why", "")) if isinstance(body, dict) else ""


async def test_post_and_read(canned: CannedUpstream) -> None:
    canned.answer = http_answer(200, b'{"ok": true}', "application/json")
    http = _transport(canned)
    try:
        response = await http.post(b'{"q": 1}')
        assert (response.status, response.content_type) == (200, "application/json")
        assert await response.read() == b'{"ok": true}'
        response.release()
    finally:
        await http.aclose()
    request_line, *headers = canned.heads[-1].split("\r\n")
    assert request_line.startswith("POST /")
    assert "X-Test: yes" in headers


async def test_chunks_then_drain(canned: CannedUpstream) -> None:
    canned.answer = http_answer(200, b"data: 1\n\n")
    http = _transport(canned)
    try:
        response = await http.post(b"{}")
        assert b"".join([piece async for piece in response.chunks()]) == b"data: 1\n\n"
        await response.drain(0.5)
        response.close()
    finally:
        await http.aclose()


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
    http = _transport(canned)
    try:
        response = await http.post(b"{}")
        error = await status_error(response, _message_in)
        response.release()
    finally:
        await http.aclose()
    assert (error.code, str(error)) == (code, message)


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
    ],
)
async def test_status_error_without_a_message(
    canned: CannedUpstream, answer: bytes, message: str
) -> None:
    canned.answer = answer
    http = _transport(canned)
    try:
        response = await http.post(b"{}")
        error = await status_error(response, _message_in)
        response.release()
    finally:
        await http.aclose()
    assert (error.code, str(error)) == ("upstream_http_error", message)


def test_transport_error_messages() -> None:
    refused = upstream_http.ConnectFailed("refused")
    error = transport_error(refused, started=False)
    assert error.code == "upstream_unreachable"
    assert str(error).startswith("Could not connect to the upstream provider")
    tls = transport_error(upstream_http.ConnectFailed("bad cert", tls=True), started=False)
    assert "TLS failed" in str(tls)
    closed = upstream_http.ConnectionClosed("gone")
    assert transport_error(closed, started=True).code == "upstream_truncated"
    assert transport_error(closed, started=False).code == "upstream_unreachable"
    labelled = transport_error(refused, started=False, provider_label="Gemini API")
    assert str(labelled).startswith("Could not connect to the Gemini API")


def test_timeouts_name_the_transport_timeouts() -> None:
    http = HTTPTransport("http://127.0.0.1:9/x", {}, connect_timeout=3, read_timeout=7.5)
    connect = http.error(upstream_http.ConnectTimeout("slow"), started=False)
    read = http.error(upstream_http.ReadTimeout("quiet"), started=True)
    assert isinstance(connect, UpstreamTimeout)
    assert str(connect) == "Timed out after 3 s connecting to the upstream provider."
    assert isinstance(read, UpstreamTimeout)
    assert str(read) == "The upstream provider sent nothing for 7.5 s."


def test_retry_after_reads_seconds_and_dates() -> None:
    import email.utils
    import time

    from parley.providers.transport import retry_after

    assert retry_after({"retry-after": "3"}) == 3.0
    assert retry_after({"retry-after": "0.5"}) == 0.5
    assert retry_after({}) is None
    assert retry_after({"retry-after": "soon"}) is None
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    wait = retry_after({"retry-after": later})
    assert wait is not None and 25 <= wait <= 31


def test_retry_policy_backs_off_with_jitter_and_honours_retry_after() -> None:
    from parley.providers.transport import RetryPolicy

    policy = RetryPolicy(retries=2, backoff=1.0, max_wait=10.0)
    first, second = policy.delay(0, None), policy.delay(1, None)
    assert first is not None and 0.5 <= first <= 1.0
    assert second is not None and 1.0 <= second <= 2.0
    assert policy.delay(2, None) is None  # no third retry
    assert policy.delay(0, 5.0) == 5.0  # the upstream asked for longer
    assert policy.delay(0, 60.0) is None  # more than we would wait: give up now
