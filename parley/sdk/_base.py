"""What ``Client`` and ``AsyncClient`` share: settings, URLs, headers, retries, answers.

Both clients send the same ``Call`` descriptions; this base decides everything that is not
I/O, so the two differ only in ``send`` versus ``await send``.

Retry policy: a request is retried (``max_retries`` times, exponential backoff) when it
never reached the server (connect error or connect/pool timeout, any method), and a ``GET``
also after a read error, a timeout or a 502/503/504 answer. Other methods are never sent
twice once they may have reached the server.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

import httpx
from pydantic import ValidationError

from parley.client_settings import ClientSettings
from parley.errors import (
    ERROR_TYPE_HEADER,
    APIConnectionError,
    APITimeoutError,
    InternalError,
    ParleyError,
    error_from_response,
)
from parley.sdk._calls import Call

T = TypeVar("T")

#: Generous read timeout: a stream is silent for up to 15 s between ``: ping`` comments.
DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=10.0)
DEFAULT_MAX_RETRIES = 2
#: Seconds before the first retry; doubled for each further one.
DEFAULT_RETRY_BACKOFF = 0.5
#: How many times in a row a dropped stream is reopened without receiving a new event.
MAX_STREAM_RESUMES = 3

_MAX_DELAY = 8.0
_RETRY_STATUSES = frozenset({502, 503, 504})
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)

TimeoutTypes = float | httpx.Timeout | None


class BaseClient:
    """Settings and the non-I/O half of every request."""

    def __init__(
        self,
        base_url: str | None,
        api_key: str | None,
        *,
        max_retries: int,
        retry_backoff: float,
    ) -> None:
        if base_url is None or api_key is None:
            settings = ClientSettings.from_env()
            base_url = settings.base_url if base_url is None else base_url
            api_key = settings.api_key if api_key is None else api_key
        if max_retries < 0:
            raise ValueError("max_retries must be 0 or more")
        check_base_url(base_url)
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key or None
        self.max_retries = max_retries
        self.retry_backoff = retry_backoff

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r})"

    # ------------------------------------------------------------------ requests

    def _headers(self, call: Call[Any], *, stream: bool) -> dict[str, str]:
        headers = {"Accept": "text/event-stream" if stream else "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        headers.update(call.headers or {})
        return headers

    def _build_request(
        self, http: httpx.Client | httpx.AsyncClient, call: Call[Any], *, stream: bool = False
    ) -> httpx.Request:
        return http.build_request(
            call.method,
            self.base_url + call.path,
            params=call.params or None,
            json=call.json,
            data=call.form,
            files=call.files,
            headers=self._headers(call, stream=stream),
        )

    # ------------------------------------------------------------------- retries

    def _retry_after_error(self, call: Call[Any], exc: httpx.TransportError, attempt: int) -> bool:
        if attempt >= self.max_retries:
            return False
        return isinstance(exc, _NOT_SENT) or call.idempotent

    def _retry_after_status(self, call: Call[Any], status_code: int, attempt: int) -> bool:
        return attempt < self.max_retries and call.idempotent and status_code in _RETRY_STATUSES

    def _retry_delay(self, attempt: int) -> float:
        return float(min(self.retry_backoff * 2**attempt, _MAX_DELAY))

    # ------------------------------------------------------------------- answers

    def _connection_error(self, exc: httpx.TransportError) -> APIConnectionError:
        return connection_error(exc, self.base_url)

    def _result(self, call: Call[T], response: httpx.Response) -> T:
        """The parsed answer of a fully read response, or its typed error."""
        if not response.is_success:
            raise self._error(response)
        try:
            body = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InternalError(
                f"The server answered {call.method} {call.path} with a body that is not JSON.",
                code="invalid_response",
                status_code=response.status_code,
            ) from exc
        try:
            return call.parse(body)
        except ValidationError as exc:
            raise InternalError(
                f"The server's answer to {call.method} {call.path} has an unexpected shape: "
                f"{exc.errors()[0]['msg']}",
                code="invalid_response",
                status_code=response.status_code,
            ) from exc

    def _error(self, response: httpx.Response) -> ParleyError:
        """The typed error of a fully read error response."""
        try:
            body: Any = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = None
        error = error_from_response(
            response.status_code,
            body,
            retry_after=response.headers.get("retry-after"),
            error_type=response.headers.get(ERROR_TYPE_HEADER),
        )
        if error.code == "missing_api_key" and self.api_key is None:
            # The server speaks of headers; the SDK's user set neither argument nor variable.
            error = type(error)(
                _NO_KEY, code=error.code, status_code=error.status_code, param=error.param
            )
        return error


#: Why a client without a key was refused, and where keys come from.
_NO_KEY = (
    "No API key: pass api_key= to the client or set PARLEY_API_KEY. `parley run` (make run) "
    "prints a key for the local server; `parley users create NAME` makes a user and prints "
    "its key, and `parley keys create --user ID` another (docs/admin.md)."
)


def check_base_url(base_url: str) -> None:
    """Refuse a server address no request could go to, when the client is made.

    Raises:
        ValueError: naming the address and what is wrong with it.
    """
    try:
        url = httpx.URL(base_url)
    except httpx.InvalidURL as exc:
        raise ValueError(f"server URL {base_url!r}: {exc}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"server URL {base_url!r}: must be http:// or https:// with a host")


def connection_error(exc: httpx.TransportError, base_url: str) -> APIConnectionError:
    """The SDK's error for a request that got no (complete) answer."""
    reason = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        return APITimeoutError(
            f"The Parley server at {base_url} did not answer in time ({reason})."
        )
    return APIConnectionError(f"Could not talk to the Parley server at {base_url}: {reason}")
