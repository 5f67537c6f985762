"""The errors of a failed upstream call, worded so a user may be shown them.

``transport_error`` and ``status_error`` turn a failed call into an ``UpstreamError`` with
a message safe to show a user, which names the provider and the URL it was called at
(``shown_url``: never a query string or credentials) and passes on the provider's own
message, with the credentials the call sent masked in it (``mask``); what is particular
to one API (where its error bodies keep their message) is passed in by the adapter. Its
``code`` sets the status every face answers (``parley.errors.UPSTREAM_FAILURES``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import aiohttp
import orjson
from aiohttp.http_exceptions import ContentEncodingError, HttpProcessingError
from yarl import URL

from parley.errors import UpstreamError, UpstreamTimeout
from parley.providers.http_response import TRANSPORT_ERRORS, Response, retry_after
from parley.providers.sse import LineTooLong

__all__ = [
    "DEFAULT_LABEL",
    "clashing",
    "credentials_clash",
    "credentials_in",
    "empty",
    "malformed",
    "mask",
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
#: How the user is told who failed, unless an adapter says otherwise.
DEFAULT_LABEL = "upstream provider"


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


def credentials_in(url: str, headers: Mapping[str, str]) -> tuple[str, ...]:
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


def mask(error: UpstreamError, secrets: tuple[str, ...]) -> None:
    """Mask each of ``secrets`` (``credentials_in``) in ``error``'s message. A provider's
    own message is passed on, and some echo the key they were sent in full ("Incorrect
    API key provided: sk-..."): it would reach the user, the run's stored error and logs."""
    message = error.message
    for secret in secrets:
        message = message.replace(secret, _MASK)
    error.message = message
    error.args = (message,)


def clashing(url: str, headers: Mapping[str, str]) -> bool:
    """Whether ``url`` has a user name or password in it beside an ``Authorization``
    header: aiohttp cannot send both (it raises a bare ``ValueError``)."""
    try:
        parsed = URL(url)
    except ValueError:  # an unreadable URL is refused as one when called
        return False
    given = parsed.raw_user is not None or parsed.raw_password is not None
    return given and any(name.lower() == "authorization" for name in headers)


def credentials_clash(provider_label: str = DEFAULT_LABEL) -> UpstreamError:
    """The error for a base URL with credentials in it beside an API key."""
    return UpstreamError(
        f"The base URL of the {provider_label} has a user name or password in it as well "
        "as an API key: give the provider only one of them.",
        code="upstream_auth",
    )


def empty(provider_label: str = DEFAULT_LABEL) -> UpstreamError:
    """The error for an answer that ended with nothing in it: no text, reasoning, tool
    call or finish reason (a model that answers nothing still says why it stopped)."""
    return UpstreamError(
        f"The {provider_label} ended its answer without any text, tool call or finish reason.",
        code="upstream_empty",
    )


def truncated(provider_label: str = DEFAULT_LABEL) -> UpstreamError:
    """The error for a stream that ended before the answer was complete."""
    return UpstreamError(
        f"The {provider_label} ended the stream before the answer was complete.",
        code="upstream_truncated",
    )


def malformed(what: str, *, provider_label: str = DEFAULT_LABEL) -> UpstreamError:
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
    provider_label: str = DEFAULT_LABEL,
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


def transport_error(
    exc: BaseException,
    *,
    started: bool,
    provider_label: str = DEFAULT_LABEL,
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
