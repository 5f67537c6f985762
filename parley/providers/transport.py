"""The HTTP transport every provider adapter shares: one POST, answered by a response whose
body is read as it comes.

``HTTPTransport`` sends with aiohttp, the one upstream HTTP client (per streamed answer a
third or less of the CPU httpx costs, ``bench/adapter_cpu.py``; ``bench/README.md``, "One
upstream HTTP client"). The caller gets a ``Response`` (``http_response``); a failed call
becomes an ``UpstreamError`` worded in ``upstream_errors``. ``HTTPProvider``, the
adapters' base, is in ``http_provider``.
"""

from __future__ import annotations

import asyncio
import random
import ssl
from collections.abc import AsyncGenerator, Callable, Mapping
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp.helpers import get_env_proxy_for_url
from yarl import URL

from parley.errors import UpstreamError
from parley.events import FinishPart, ModelEvent, ReasoningPart, TextPart, ToolCallPart
from parley.providers.http_response import (
    TRANSPORT_ERRORS,
    AiohttpResponse,
    Response,
    retry_after,
)
from parley.providers.sse import LineTooLong
from parley.providers.upstream_errors import (
    DEFAULT_LABEL,
    clashing,
    credentials_clash,
    credentials_in,
    empty,
    mask,
    shown_url,
    status_error,
    transport_error,
)

__all__ = [
    "NO_RETRIES",
    "RETRY_STATUSES",
    "HTTPTransport",
    "RetryPolicy",
    "env_proxy",
]

#: Connections kept open to one provider, in use or idle.
_MAX_CONNECTIONS = 512
#: Seconds an idle connection is kept for reuse: under the 5 s after which uvicorn-based
#: servers (vLLM, ...) and llama.cpp close an idle connection themselves.
_KEEPALIVE = 4.0
#: Headers every call sends unless the adapter's own name them: streams are asked for
#: uncompressed (a compressed body sent anyway is decoded).
_DEFAULT_HEADERS = {"User-Agent": "parley", "Accept-Encoding": "identity"}


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When a call is tried again: only before the upstream has answered anything usable
    (a refused or dropped connection before the response head, or a 429 / 5xx answer),
    never once its body streams, so no token is ever sent twice."""

    #: Tries after the first one.
    retries: int = 2
    #: Seconds of the first wait; each later wait doubles, with jitter.
    backoff: float = 0.5
    #: The longest wait; a ``Retry-After`` asking for more is not waited for.
    max_wait: float = 20.0
    #: Called before each new try (the app's metrics count them).
    on_retry: Callable[[], None] | None = None

    def delay(self, attempt: int, retry_after: float | None) -> float | None:
        """Seconds to wait before try ``attempt + 1`` (None: do not retry)."""
        if attempt >= self.retries:
            return None
        wait = self.backoff * 2.0**attempt * (0.5 + random.random() / 2)
        if retry_after is not None:
            if retry_after > self.max_wait:
                return None
            wait = max(wait, retry_after)
        return min(wait, self.max_wait)


NO_RETRIES = RetryPolicy(retries=0)
#: Answers worth another try: rate limited, or the upstream is briefly unwell.
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504, 529})


def _stale(exc: BaseException) -> bool:
    """A request that could not be written on a kept-alive connection the upstream had
    closed meanwhile: nothing of it reached the upstream."""
    return isinstance(exc, aiohttp.ClientOSError) and "Can not write request body" in str(exc)


def _worth_retrying(exc: BaseException) -> bool:
    """A failure before the upstream answered anything: the request was not taken (and
    not a TLS failure, which another try would meet again)."""
    if isinstance(exc, aiohttp.ClientSSLError):
        return False
    return isinstance(
        exc,
        aiohttp.ClientConnectorError
        | aiohttp.ServerDisconnectedError
        | aiohttp.ConnectionTimeoutError,
    )


class HTTPTransport:
    """POSTs to one URL with fixed headers, over a keep-alive connection pool.

    The aiohttp session (one connection pool) is opened on first use, inside the running
    event loop, and lives until ``aclose``. A ``session`` passed in is used as is (with
    these timeouts) and left open.

    Proxies come from the environment (``HTTP_PROXY`` for ``http://`` upstreams,
    ``HTTPS_PROXY`` for ``https://`` ones, tunnelled with ``CONNECT``; ``NO_PROXY``), read
    once when the session is opened, as httpx does, and so does the TLS trust store
    (``SSL_CERT_FILE``, ``SSL_CERT_DIR``). aiohttp's own ``trust_env`` would read the
    proxies again, with ``.netrc``, in a worker thread on every request (nearly doubling
    an adapter's CPU), and a ``.netrc`` entry for the host would clash with the
    ``Authorization`` header.
    """

    def __init__(
        self,
        url: str,
        headers: Mapping[str, str],
        *,
        connect_timeout: float,
        read_timeout: float,
        session: aiohttp.ClientSession | None = None,
        provider_label: str = DEFAULT_LABEL,
        retry: RetryPolicy = NO_RETRIES,
    ) -> None:
        self.url = url
        self.retry = retry
        named = {name.lower() for name in headers}
        self.headers = {k: v for k, v in _DEFAULT_HEADERS.items() if k.lower() not in named}
        self.headers.update(headers)
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.provider_label = provider_label
        #: Who failed, as the errors of this transport say it: the provider and its URL.
        self.where = f"{provider_label} at {shown_url(url)}"
        #: What the calls send that no error message may show (``mask``).
        self.secrets = credentials_in(url, self.headers)
        self._clash = clashing(url, self.headers)
        self._timeout = aiohttp.ClientTimeout(
            total=None,
            connect=connect_timeout,
            sock_connect=connect_timeout,
            sock_read=read_timeout,
        )
        self._owns_session = session is None
        self._session = session
        self._proxy: URL | None = None
        self._proxy_auth: aiohttp.BasicAuth | None = None
        self._opened = False

    async def aclose(self) -> None:
        """Close the session this transport opened (a later call opens a new one)."""
        self._opened = False
        if self._owns_session and self._session is not None:
            session, self._session = self._session, None
            await session.close()

    async def _open(self) -> None:
        """Read the proxy and the TLS trust store (off the event loop: files may be read),
        then open the session unless one was given."""
        proxy, proxy_auth, tls = await asyncio.to_thread(_environment, self.url)
        if self._opened:  # opened by a concurrent first call meanwhile
            return
        self._opened = True
        self._proxy, self._proxy_auth = proxy, proxy_auth
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=_MAX_CONNECTIONS, keepalive_timeout=_KEEPALIVE, ssl=tls or True
                ),
                timeout=self._timeout,
                cookie_jar=aiohttp.DummyCookieJar(),
            )

    async def post(self, body: bytes) -> Response:
        """Send the request; return once the response head is in. Refused or dropped
        connections and 429 / 5xx answers are tried again as ``retry`` allows.

        Raises one of ``TRANSPORT_ERRORS`` (``error`` says what to tell the user), or an
        ``UpstreamError`` when the URL and the headers cannot be sent together."""
        if self._clash:
            raise credentials_clash(self.where)
        attempt = 0
        stale_retried = False
        while True:
            try:
                response = await self._post_once(body)
            except TRANSPORT_ERRORS as exc:
                if _stale(exc) and not stale_retried:
                    # A pooled connection the upstream had closed (llama.cpp's server
                    # closes after each stream without saying so): the request was not
                    # sent, so it goes again at once on a new connection, whatever the
                    # retry policy.
                    stale_retried = True
                    continue
                wait = self.retry.delay(attempt, None) if _worth_retrying(exc) else None
                if wait is None:
                    raise
            else:
                if response.status not in RETRY_STATUSES:
                    return response
                wait = self.retry.delay(attempt, retry_after(response.headers))
                if wait is None:
                    return response
                response.close()
            attempt += 1
            if self.retry.on_retry is not None:
                self.retry.on_retry()
            await asyncio.sleep(wait)

    async def _post_once(self, body: bytes) -> Response:
        if not self._opened:
            await self._open()
        assert self._session is not None
        response = await self._session.post(
            self.url,
            data=body,
            headers=self.headers,
            timeout=self._timeout,
            proxy=self._proxy,
            proxy_auth=self._proxy_auth,
            allow_redirects=False,
        )
        return AiohttpResponse(response)

    async def call(
        self,
        body: bytes,
        read: Callable[[Response], AsyncGenerator[ModelEvent, None]],
        *,
        message_from_body: Callable[[Any], str],
        refine: Callable[[UpstreamError, int], UpstreamError] | None = None,
    ) -> AsyncGenerator[ModelEvent, None]:
        """One upstream call, from the request to the connection handed back.

        ``read`` turns a successful response into events and returns only once the answer
        is complete (else it raises, e.g. ``truncated``). An answer that ends with no text,
        reasoning, tool call or finish reason is ``empty``. An error answer becomes
        ``status_error`` (``refine`` may add to it, given the status). The connection goes
        back to the pool after a whole answer or an error answer, and is cut on anything
        else, closing this iterator early included: the upstream sees the disconnect."""
        try:
            response = await self.post(body)
        except TRANSPORT_ERRORS as exc:
            raise self.error(exc, started=False) from exc
        reusable = answered = False
        try:
            if response.status >= 300:
                error = await status_error(response, message_from_body, provider_label=self.where)
                reusable = True
                raise refine(error, response.status) if refine else error
            async with aclosing(read(response)) as events:
                async for event in events:
                    if not answered and type(event) in _ANSWERING:
                        answered = True
                    yield event
            reusable = True
            if not answered:
                raise empty(self.where)
        except (*TRANSPORT_ERRORS, LineTooLong) as exc:
            raise self.error(exc, started=True) from exc
        except UpstreamError as exc:  # the provider's words, from its error answer or stream
            mask(exc, self.secrets)
            raise
        finally:
            if reusable:
                response.release()  # back to the pool, or closed if the body is not all read
            else:
                response.close()  # cut now: the upstream sees the disconnect and stops

    def error(self, exc: BaseException, *, started: bool) -> UpstreamError:
        """The error to raise for an HTTP failure (one of ``TRANSPORT_ERRORS``, or a
        ``LineTooLong``), before or after the response head: ``transport_error`` with this
        transport's timeouts."""
        return transport_error(
            exc,
            started=started,
            provider_label=self.where,
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
        )


#: The events that are part of an answer (what a stream that ends without any lacks).
_ANSWERING = frozenset({TextPart, ReasoningPart, ToolCallPart, FinishPart})


def env_proxy(url: str) -> tuple[URL | None, aiohttp.BasicAuth | None]:
    """The proxy the environment names for ``url``, as aiohttp's ``trust_env`` finds it."""
    try:
        return get_env_proxy_for_url(URL(url))
    except (LookupError, ValueError):
        return None, None


def _environment(url: str) -> tuple[URL | None, aiohttp.BasicAuth | None, ssl.SSLContext | None]:
    """What a transport to ``url`` reads from the environment when it opens: the proxy,
    and for an ``https`` URL the trust store (a context like aiohttp's default one, made
    now rather than when aiohttp was imported)."""
    proxy, proxy_auth = env_proxy(url)
    tls = None
    if url[:6].lower() == "https:":
        tls = ssl.create_default_context()
        tls.set_alpn_protocols(("http/1.1",))
    return proxy, proxy_auth, tls
