"""The HTTP transport every provider adapter shares: one POST, answered by a response whose
body is read as it comes.

``HTTPTransport`` sends with aiohttp, the one upstream HTTP client (per streamed answer a
third or less of the CPU httpx costs, ``bench/adapter_cpu.py``; ``bench/README.md``, "One
upstream HTTP client"). The caller gets a ``Response``.

``transport_error`` and ``status_error`` turn a failed call into an ``UpstreamError`` with
a message safe to show a user, which names the provider and the URL it was called at
(``shown_url``: never a query string or credentials) and passes on the provider's own
message, with the credentials the call sent masked in it (``_mask``); what is particular
to one API (where its error bodies keep their message) is passed in by the adapter. Its
``code`` sets the status every face answers (``parley.errors.UPSTREAM_FAILURES``).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import ssl
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from contextlib import aclosing, asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import parse_qsl, unquote, urlsplit

import aiohttp
import orjson
from aiohttp.helpers import get_env_proxy_for_url
from aiohttp.http_exceptions import ContentEncodingError, HttpProcessingError
from yarl import URL

from parley.errors import UpstreamError, UpstreamTimeout, retry_after_seconds
from parley.events import FinishPart, ModelEvent, ReasoningPart, TextPart, ToolCallPart
from parley.providers.sse import LineTooLong

__all__ = [
    "DRAIN_TIMEOUT",
    "NO_RETRIES",
    "RETRY_STATUSES",
    "TRANSPORT_ERRORS",
    "HTTPProvider",
    "HTTPTransport",
    "Response",
    "RetryPolicy",
    "json_getter",
    "malformed",
    "retry_after",
    "shorten_detail",
    "shown_url",
    "status_error",
    "transport_error",
    "truncated",
]

#: Bytes of an error answer read to find the upstream's own message.
_MAX_ERROR_BODY = 64 * 1024
#: Characters of the upstream's error message passed on to the user.
_MAX_DETAIL = 300
#: Connections kept open to one provider, in use or idle.
_MAX_CONNECTIONS = 512
#: Seconds an idle connection is kept for reuse: under the 5 s after which uvicorn-based
#: servers (vLLM, ...) and llama.cpp close an idle connection themselves.
_KEEPALIVE = 4.0
#: Seconds to wait for the end of the body once the answer is complete (normally already
#: there); what adapters pass to ``Response.drain``.
DRAIN_TIMEOUT = 1.0
#: What the HTTP client raises when the call fails.
TRANSPORT_ERRORS = (aiohttp.ClientError, HttpProcessingError, TimeoutError)
#: Headers every call sends unless the adapter's own name them: streams are asked for
#: uncompressed (a compressed body sent anyway is decoded).
_DEFAULT_HEADERS = {"User-Agent": "parley", "Accept-Encoding": "identity"}
#: How the user is told who failed, unless an adapter says otherwise.
_LABEL = "upstream provider"


class Response(Protocol):
    """The response of ``HTTPTransport.post``, once its head is in.

    End it with ``release`` (read to its end: the connection may serve another request) or
    ``close`` (cut now: the upstream sees the disconnect and stops).
    """

    status: int
    content_type: str

    @property
    def headers(self) -> Mapping[str, str]:
        """Response headers; ``get`` takes lower-case names."""
        ...

    def chunks(self) -> AsyncIterator[bytes]:
        """The body, piece by piece as it arrives (decompressed)."""
        ...

    async def read(self) -> bytes:
        """The whole body."""
        ...

    async def drain(self, within: float) -> None:
        """Read the rest of the body, for at most ``within`` seconds, so the connection can
        go back to the pool; on any trouble it is closed."""
        ...

    def release(self) -> None:
        """Back to the pool, or closed if the body is not all read."""
        ...

    def close(self) -> None:
        """Close the connection now."""
        ...


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


def retry_after(headers: Mapping[str, str]) -> float | None:
    """The wait a ``Retry-After`` header asks for, in seconds (delta or HTTP date), bounded
    (``parley.errors.retry_after_seconds``)."""
    return retry_after_seconds(headers.get("retry-after"))


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
        provider_label: str = _LABEL,
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
        #: What the calls send that no error message may show (``_mask``).
        self.secrets = _credentials_in(url, self.headers)
        self._clash = _clashing(url, self.headers)
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
            raise _credentials_clash(self.where)
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
        return _AiohttpResponse(response)

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
            _mask(exc, self.secrets)
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


# ------------------------------------------------------------------------------ errors

#: The events that are part of an answer (what a stream that ends without any lacks).
_ANSWERING = frozenset({TextPart, ReasoningPart, ToolCallPart, FinishPart})


def shown_url(url: str) -> str:
    """``url`` as an error message may show it: scheme, host, port and path, without
    credentials, query string (a key may be in it) or fragment."""
    try:
        parts = urlsplit(url)
    except ValueError:  # an unreadable URL is shown as far as it goes
        return url.partition("?")[0].partition("#")[0].rpartition("@")[2]
    host = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{host}{parts.path}" if parts.scheme else parts.path


#: A credential shorter than this is not looked for in messages (it would mask words).
_MIN_SECRET = 6
#: What a credential in a message becomes.
_MASK = "***"


def _is_credential(name: str) -> bool:
    """Whether a header or query parameter of this name carries a credential
    (``Authorization``, ``x-api-key``, ``x-goog-api-key``, ``api-key``, ``?key=``, ...)."""
    name = name.lower()
    return any(word in name for word in ("auth", "key", "token", "secret"))


def _credentials_in(url: str, headers: Mapping[str, str]) -> tuple[str, ...]:
    """What a call to ``url`` with ``headers`` sends that an error message must not show,
    longest first: the values of its credential headers (a key with and without its
    ``Bearer``), the user name and password of the URL, and its credential query values."""
    found: list[str] = []
    for name, value in headers.items():
        if _is_credential(name):
            found += [value, value.partition(" ")[2]]
    try:
        parts = urlsplit(url)
    except ValueError:  # an unreadable URL: its call fails before it sends anything
        parts = None
    if parts is not None:
        found += [unquote(parts.username or ""), unquote(parts.password or "")]
        found += [value for name, value in parse_qsl(parts.query) if _is_credential(name)]
    return tuple(sorted({s for s in found if len(s) >= _MIN_SECRET}, key=len, reverse=True))


def _mask(error: UpstreamError, secrets: tuple[str, ...]) -> None:
    """Mask each of ``secrets`` (``_credentials_in``) in ``error``'s message. A provider's
    own message is passed on, and some echo the key they were sent in full ("Incorrect
    API key provided: sk-..."): it would reach the user, the run's stored error and logs."""
    message = error.message
    for secret in secrets:
        message = message.replace(secret, _MASK)
    error.message = message
    error.args = (message,)


def _clashing(url: str, headers: Mapping[str, str]) -> bool:
    """Whether ``url`` has a user name or password in it beside an ``Authorization``
    header: aiohttp cannot send both (it raises a bare ``ValueError``)."""
    try:
        parsed = URL(url)
    except ValueError:  # an unreadable URL is refused as one when called
        return False
    given = parsed.raw_user is not None or parsed.raw_password is not None
    return given and any(name.lower() == "authorization" for name in headers)


def _credentials_clash(provider_label: str = _LABEL) -> UpstreamError:
    """The error for a base URL with credentials in it beside an API key."""
    return UpstreamError(
        f"The base URL of the {provider_label} has a user name or password in it as well "
        "as an API key: give the provider only one of them.",
        code="upstream_auth",
    )


def empty(provider_label: str = _LABEL) -> UpstreamError:
    """The error for an answer that ended with nothing in it: no text, reasoning, tool
    call or finish reason (a model that answers nothing still says why it stopped)."""
    return UpstreamError(
        f"The {provider_label} ended its answer without any text, tool call or finish reason.",
        code="upstream_empty",
    )


def truncated(provider_label: str = _LABEL) -> UpstreamError:
    """The error for a stream that ended before the answer was complete."""
    return UpstreamError(
        f"The {provider_label} ended the stream before the answer was complete.",
        code="upstream_truncated",
    )


def malformed(what: str, *, provider_label: str = _LABEL) -> UpstreamError:
    """The error for an answer that cannot be read: the upstream sent ``what``."""
    return UpstreamError(
        f"The {provider_label} sent {what}; the stream could not be read.",
        code="upstream_malformed",
    )


def shorten_detail(message: str) -> str:
    """An upstream's own error message as passed on to the user: one line, not too long."""
    message = " ".join(message.split())
    return message if len(message) <= _MAX_DETAIL else message[: _MAX_DETAIL - 1] + "…"


#: Error bodies of an HTTP 400 that mean another failure, and the status that says it:
#: a bad API key (Gemini says ``"reason": "API_KEY_INVALID"``), an unknown model (OpenAI's
#: Responses API says ``"code": "model_not_found"``).
_MARKED_400 = ((b"API_KEY_INVALID", 401), (b'"model_not_found"', 404))


async def status_error(
    response: Response,
    message_from_body: Callable[[Any], str],
    *,
    provider_label: str = _LABEL,
) -> UpstreamError:
    """The error for a response with a status of 300 or more, its body read (in part).

    ``message_from_body`` finds the upstream's own message in the JSON error body (``""``
    if there is none); the body is not passed on when it is not JSON. The status sets the
    code (``_STATUS_FAILURES``: ``upstream_auth``, ``upstream_not_found``,
    ``upstream_invalid_request``, ``upstream_rate_limited`` with the upstream's
    ``Retry-After``, a timeout, else ``upstream_http_error``)."""
    raw = b""
    try:
        async for piece in response.chunks():
            raw += piece
            if len(raw) >= _MAX_ERROR_BODY:
                raw = raw[:_MAX_ERROR_BODY]
                break
    except TRANSPORT_ERRORS:
        pass  # the status alone still says what happened
    try:
        detail = message_from_body(orjson.loads(raw))
    except orjson.JSONDecodeError:
        detail = ""
    status = response.status
    if status < 400:
        return UpstreamError(
            f"The {provider_label} answered with a redirect (HTTP {status}); check its base URL.",
            code="upstream_http_error",
        )
    meant = status
    if status == 400:
        meant = next((said for marker, said in _MARKED_400 if marker in raw), status)
    code, what = _STATUS_FAILURES.get(meant, _OTHER_STATUS)
    message = f"The {provider_label} {what} (HTTP {status})" + (f": {detail}" if detail else ".")
    if code == "upstream_timeout":
        return UpstreamTimeout(message, code=code)
    return UpstreamError(message, code=code, retry_after=retry_after(response.headers))


#: An upstream's error status -> the failure's code, and what the message says it did.
_STATUS_FAILURES = {
    400: ("upstream_invalid_request", "refused the request"),
    401: ("upstream_auth", "rejected the credentials"),
    403: ("upstream_auth", "rejected the credentials"),
    404: ("upstream_not_found", "has no such model or endpoint"),
    408: ("upstream_timeout", "timed out"),
    413: ("upstream_invalid_request", "refused the request as too large"),
    422: ("upstream_invalid_request", "refused the request"),
    429: ("upstream_rate_limited", "is rate limiting requests"),
    504: ("upstream_timeout", "timed out"),
}
_OTHER_STATUS = ("upstream_http_error", "answered with an error")


class GetJSON(Protocol):
    """One JSON document of ``json_getter``: ``get(url, headers, params)`` GETs it; with
    ``post``, that JSON body is POSTed instead (Ollama describes a model on request); with
    ``none_if_missing``, an HTTP 404 answers None."""

    def __call__(
        self,
        url: str,
        headers: Mapping[str, str],
        params: Mapping[str, str] | None = None,
        *,
        post: Any = None,
        none_if_missing: bool = False,
    ) -> Awaitable[Any]: ...


#: Seconds to wait for each read of a model list.
_LIST_READ_TIMEOUT = 10.0


@asynccontextmanager
async def json_getter(
    *,
    connect_timeout: float,
    message_from_body: Callable[[Any], str],
    provider_label: str = _LABEL,
) -> AsyncIterator[GetJSON]:
    """Reads of JSON documents about models (lists, page by page, and descriptions;
    ``GetJSON``) on one short-lived session, through the proxy the environment names, as
    ``HTTPTransport``'s calls. Every failure is an ``UpstreamError``, worded as for a model
    call: the answer's status with the upstream's own message, an unreachable server, or a
    body that is not JSON."""
    timeout = aiohttp.ClientTimeout(
        total=None, connect=connect_timeout, sock_read=_LIST_READ_TIMEOUT
    )
    async with aiohttp.ClientSession(timeout=timeout, cookie_jar=aiohttp.DummyCookieJar()) as http:

        async def get(
            url: str,
            headers: Mapping[str, str],
            params: Mapping[str, str] | None = None,
            *,
            post: Any = None,
            none_if_missing: bool = False,
        ) -> Any:
            where = f"{provider_label} at {shown_url(url)}"
            if _clashing(url, headers):
                raise _credentials_clash(where)
            proxy, proxy_auth = await asyncio.to_thread(_env_proxy, url)
            body = None
            if post is not None:
                body = orjson.dumps(post)
                headers = {**headers, "Content-Type": "application/json"}
            try:
                async with http.request(
                    "GET" if body is None else "POST",
                    url,
                    headers=headers,
                    params=params,
                    data=body,
                    proxy=proxy,
                    proxy_auth=proxy_auth,
                ) as response:
                    if response.status == 404 and none_if_missing:
                        return None
                    if response.status >= 400:
                        error = await status_error(
                            _AiohttpResponse(response), message_from_body, provider_label=where
                        )
                        _mask(error, _credentials_in(url, headers))
                        raise error
                    return await response.json(content_type=None)
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise transport_error(
                    exc,
                    started=False,
                    provider_label=where,
                    connect_timeout=connect_timeout,
                    read_timeout=_LIST_READ_TIMEOUT,
                ) from None
            except ValueError:
                raise malformed("a model list that is not JSON", provider_label=where) from None

        yield get


def transport_error(
    exc: BaseException,
    *,
    started: bool,
    provider_label: str = _LABEL,
    connect_timeout: float | None = None,
    read_timeout: float | None = None,
) -> UpstreamError:
    """The error to raise for an HTTP failure, before or after the response head.

    A timeout is an ``UpstreamTimeout`` that names the timeout, when it is given."""
    connecting = isinstance(exc, aiohttp.ConnectionTimeoutError)
    if connecting and connect_timeout is not None:
        return UpstreamTimeout(
            f"Timed out after {connect_timeout:g} s connecting to the {provider_label}."
        )
    if isinstance(exc, TimeoutError) and read_timeout is not None:
        return UpstreamTimeout(f"The {provider_label} sent nothing for {read_timeout:g} s.")
    error = _connect_error(exc, provider_label)
    if error is not None:
        return error
    if isinstance(exc, LineTooLong):
        return malformed("a line too long to be part of a stream", provider_label=provider_label)
    if isinstance(exc, aiohttp.ClientResponseError | HttpProcessingError):
        return malformed("an answer that is not valid HTTP", provider_label=provider_label)
    if isinstance(exc, aiohttp.ClientPayloadError) and isinstance(
        exc.__cause__, ContentEncodingError
    ):
        return malformed("a body that could not be decoded", provider_label=provider_label)
    if started:
        return UpstreamError(
            f"The {provider_label} closed the connection before the answer was complete.",
            code="upstream_truncated",
        )
    return UpstreamError(
        f"The {provider_label} closed the connection without answering.",
        code="upstream_unreachable",
    )


def _connect_error(exc: BaseException, label: str) -> UpstreamError | None:
    """The error for a failure to reach the upstream at all; ``None`` for another failure."""
    if isinstance(exc, aiohttp.ClientSSLError):
        message = f"Could not connect securely to the {label} (TLS failed)."
    elif isinstance(exc, aiohttp.ClientHttpProxyError):
        message = f"The HTTP proxy refused to connect to the {label} (HTTP {exc.status})."
    elif isinstance(exc, aiohttp.ClientConnectorError):
        message = f"Could not connect to the {label} (connection refused or unknown host)."
    elif isinstance(exc, aiohttp.NonHttpUrlClientError):
        message = f"The base URL of the {label} is not an http(s) URL."
    elif isinstance(exc, aiohttp.InvalidURL):
        message = f"The base URL of the {label} is not a valid URL."
    else:
        return None
    return UpstreamError(message, code="upstream_unreachable")


# ------------------------------------------------------------------------------ aiohttp


def _env_proxy(url: str) -> tuple[URL | None, aiohttp.BasicAuth | None]:
    """The proxy the environment names for ``url``, as aiohttp's ``trust_env`` finds it."""
    try:
        return get_env_proxy_for_url(URL(url))
    except (LookupError, ValueError):
        return None, None


def _environment(url: str) -> tuple[URL | None, aiohttp.BasicAuth | None, ssl.SSLContext | None]:
    """What a transport to ``url`` reads from the environment when it opens: the proxy,
    and for an ``https`` URL the trust store (a context like aiohttp's default one, made
    now rather than when aiohttp was imported)."""
    proxy, proxy_auth = _env_proxy(url)
    tls = None
    if url[:6].lower() == "https:":
        tls = ssl.create_default_context()
        tls.set_alpn_protocols(("http/1.1",))
    return proxy, proxy_auth, tls


class _AiohttpResponse:
    """An aiohttp response as a ``Response``."""

    __slots__ = ("_response", "content_type", "headers", "status")

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self.status = response.status
        self.content_type = response.content_type
        self.headers: Mapping[str, str] = response.headers  # case-insensitive

    def chunks(self) -> AsyncIterator[bytes]:
        return self._response.content.iter_any()

    async def read(self) -> bytes:
        return await self._response.read()

    async def drain(self, within: float) -> None:
        """Read what follows the end of the answer (normally just the end of the body, often
        already received) so the connection can go back to the pool; on any trouble it is
        closed."""
        content = self._response.content
        if content.at_eof():
            return
        with suppress(aiohttp.ClientError, HttpProcessingError, TimeoutError):
            async with asyncio.timeout(within):
                while await content.readany():
                    pass

    def release(self) -> None:
        self._response.release()  # back to the pool, or closed if the body is not all read

    def close(self) -> None:
        self._response.close()  # cut now: the upstream sees the disconnect and stops


class HTTPProvider:
    """What the adapters over HTTP share: their transports (one per streaming URL, made on
    first use and kept until ``aclose``), the headers of every call (``auth``, then the
    caller's ``headers``, which win), and the GETs that list models. A subclass names its
    ``label`` (used in error messages) and what it ``accept``s, and builds its URLs."""

    label = _LABEL
    accept = "text/event-stream"
    #: Request options its API has no equivalent for (OpenAI's names: ``seed``, ``stop``,
    #: ``presence_penalty``, ``frequency_penalty``; ``json``: a JSON output format).
    refused_options: frozenset[str] = frozenset()
    #: Whether its answers may carry state to hand back with their tool calls
    #: (``StatePart``: signed thinking, thought signatures, reasoning items).
    hands_back_state = False

    def __init__(
        self,
        *,
        auth: Mapping[str, str],
        headers: Mapping[str, str] | None,
        connect_timeout: float,
        read_timeout: float,
        session: aiohttp.ClientSession | None,
        retry: RetryPolicy,
    ) -> None:
        #: What a GET of the model list sends: the key and the caller's headers.
        self._list_headers = {**auth, **(headers or {})}
        self._wire_headers = {
            "Content-Type": "application/json",
            "Accept": self.accept,
            **self._list_headers,
        }
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._session = session
        self._retry = retry
        self._transports: dict[str, HTTPTransport] = {}
        #: Transports of the calls answered by one JSON document (``_post_json``).
        self._json_transports: dict[str, HTTPTransport] = {}

    def _transport(self, url: str) -> HTTPTransport:
        """The transport to ``url``, made on first use."""
        http = self._transports.get(url)
        if http is None:
            http = self._transports[url] = HTTPTransport(
                url,
                self._wire_headers,
                connect_timeout=self._connect_timeout,
                read_timeout=self._read_timeout,
                session=self._session,
                provider_label=self.label,
                retry=self._retry,
            )
        return http

    def _lister(
        self, message_from_body: Callable[[Any], str]
    ) -> contextlib.AbstractAsyncContextManager[GetJSON]:
        """Reads of what the API says of its models (``json_getter``), worded as this
        provider's."""
        return json_getter(
            connect_timeout=self._connect_timeout,
            message_from_body=message_from_body,
            provider_label=self.label,
        )

    async def _post_json(
        self, url: str, payload: Any, message_from_body: Callable[[Any], str], *, what: str
    ) -> Any:
        """POST ``payload`` as JSON and answer the JSON document the upstream sends back
        (embeddings: not streamed). Tried again as the retry policy says (the call changes
        nothing upstream); every failure is an ``UpstreamError``: the answer's status with
        the upstream's own message, an unreachable server, or a body that is not JSON
        (``what`` names what was expected)."""
        http = self._json_transports.get(url)
        if http is None:
            http = self._json_transports[url] = HTTPTransport(
                url,
                {**self._wire_headers, "Accept": "application/json"},
                connect_timeout=self._connect_timeout,
                read_timeout=self._read_timeout,
                session=self._session,
                provider_label=self.label,
                retry=self._retry,
            )
        try:
            response = await http.post(orjson.dumps(payload))
        except TRANSPORT_ERRORS as exc:
            raise http.error(exc, started=False) from exc
        reusable = False
        try:
            if response.status >= 300:
                error = await status_error(response, message_from_body, provider_label=http.where)
                _mask(error, http.secrets)
                reusable = True
                raise error
            raw = await response.read()
            reusable = True
        except TRANSPORT_ERRORS as exc:
            raise http.error(exc, started=True) from exc
        finally:
            if reusable:
                response.release()
            else:
                response.close()
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise UpstreamError(
                f"The {http.where} sent {what} that is not JSON.", code="upstream_malformed"
            ) from None

    async def aclose(self) -> None:
        """Close the HTTP clients this provider opened (a later call opens new ones)."""
        transports, self._transports = list(self._transports.values()), {}
        transports += self._json_transports.values()
        self._json_transports = {}
        for http in transports:
            await http.aclose()
