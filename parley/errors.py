"""One exception hierarchy for every layer; the server maps it to JSON, the SDK back again.

    ParleyError                  status  type
    ├── InvalidRequest             400   invalid_request
    │   └── ValidationFailed       422   validation_error      (details: field paths)
    ├── AuthenticationFailed       401   authentication_error
    ├── PermissionDenied           403   permission_denied
    ├── NotFound                   404   not_found
    ├── Conflict                   409   conflict
    ├── PayloadTooLarge            413   payload_too_large
    ├── RateLimited                429   rate_limited          (retry_after: seconds)
    ├── UpstreamError              502   upstream_error        (the LLM provider failed; below)
    │   └── UpstreamTimeout        504   upstream_timeout
    ├── ServiceUnavailable         503   service_unavailable   (retry_after: seconds)
    ├── InternalError              500   internal_error
    └── APIConnectionError          --   connection_error      (SDK: no answer from the server)
        └── APITimeoutError         --   timeout

Every message is written to be shown to a user: never a traceback, never internal text.

An upstream failure's status follows its ``code``, by one table every face answers with
(``UPSTREAM_FAILURES``): credentials refused or no such model upstream 502, unreachable 502,
timed out 504, rate limited upstream 429 (with ``Retry-After``), the request refused upstream
as invalid or too long 400; never a 500. Its message names the provider and the URL Parley
tried, with the provider's own words when it gave any.

On its own paths the server answers an error as ``{"error": {"type", "message", "code"?,
"param"?, "details"?}}`` with the status above. On the paths of OpenAI's protocols it
answers OpenAI's shape and statuses (a failed validation is a 400 there), whose ``type``
strings do not tell every class apart; Parley's own type then comes in the
``X-Parley-Error-Type`` header, and ``error_from_response`` rebuilds the same class from
either answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar

_MAX_MESSAGE = 500

#: The header that carries Parley's own error type beside an error in OpenAI's shape.
ERROR_TYPE_HEADER = "X-Parley-Error-Type"


class ParleyError(Exception):
    status_code: ClassVar[int] = 500
    error_type: ClassVar[str] = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        details: list[dict[str, Any]] | None = None,
        status_code: int | None = None,
        param: str | None = None,
        message_index: int | None = None,
    ) -> None:
        if len(message) > _MAX_MESSAGE:  # e.g. a 5,000-character id echoed back
            message = message[: _MAX_MESSAGE - 1] + "…"
        super().__init__(message)
        self.message = message
        #: A finer machine-readable reason than ``error_type`` (``run_in_progress``, ...).
        self.code = code or self.error_type
        self.details = details
        #: The request field at fault, when one is (``input``, ``model``, ...).
        self.param = param
        #: Below the faces, which speak of fields: the message at fault, as its index in
        #: the list of messages the engine was given; each face names its own field for it
        #: (``input[3]``, ``items[3]``). Never sent to a client as such (``to_dict``).
        self.message_index = message_index
        if status_code is not None:
            self.status_code = status_code  # type: ignore[misc]

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"type": self.error_type, "message": self.message}
        if self.code != self.error_type:
            body["code"] = self.code
        if self.param is not None:
            body["param"] = self.param
        if self.details:
            body["details"] = self.details
        return {"error": body}


class InvalidRequest(ParleyError):
    status_code = 400
    error_type = "invalid_request"


class ValidationFailed(InvalidRequest):
    status_code = 422
    error_type = "validation_error"


class AuthenticationFailed(ParleyError):
    status_code = 401
    error_type = "authentication_error"


class PermissionDenied(ParleyError):
    status_code = 403
    error_type = "permission_denied"


class NotFound(ParleyError):
    status_code = 404
    error_type = "not_found"


class Conflict(ParleyError):
    status_code = 409
    error_type = "conflict"


class PayloadTooLarge(ParleyError):
    status_code = 413
    error_type = "payload_too_large"


class UnsupportedMediaType(ParleyError):
    status_code = 415
    error_type = "unsupported_media_type"


class _RetryLater(ParleyError):
    """An error that may say when to try again: ``retry_after`` is how many seconds to
    wait (the ``Retry-After`` header), when known."""

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        code: str | None = None,
        details: list[dict[str, Any]] | None = None,
        status_code: int | None = None,
        param: str | None = None,
        message_index: int | None = None,
    ) -> None:
        super().__init__(
            message,
            code=code,
            details=details,
            status_code=status_code,
            param=param,
            message_index=message_index,
        )
        self.retry_after = retry_after
        self._defaults(given_status=status_code is not None)

    def _defaults(self, *, given_status: bool) -> None:
        """What a kind fills in of what the raiser left out (``UpstreamError``'s status and
        ``Retry-After``, by its code)."""


class RateLimited(_RetryLater):
    """Over a limit of the server."""

    status_code = 429
    error_type = "rate_limited"


@dataclass(frozen=True, slots=True)
class UpstreamFailure:
    """How every face answers one kind of upstream failure (a row of
    ``UPSTREAM_FAILURES``)."""

    #: The HTTP status of the answer, when the failure comes before it has begun (after,
    #: it is the error of a stream, or of a failed run or response).
    status: int
    #: Whether the same request may succeed when sent again (``X-Should-Retry``): not with
    #: a refused key, an unknown model or a request the provider refused as invalid.
    retryable: bool
    #: Seconds of ``Retry-After`` when the provider said none (None: no header).
    retry_after: float | None = None


_BAD_GATEWAY = UpstreamFailure(502, retryable=True)

#: An upstream failure's ``code`` -> how it is answered; an unknown code as
#: ``upstream_error``. docs/api.md ("Upstream failures") lists them.
UPSTREAM_FAILURES: dict[str, UpstreamFailure] = {
    "upstream_auth": UpstreamFailure(502, retryable=False),
    "upstream_not_found": UpstreamFailure(502, retryable=False),
    "upstream_invalid_request": UpstreamFailure(400, retryable=False),
    "upstream_blocked": UpstreamFailure(400, retryable=False),
    "unsupported_image": UpstreamFailure(400, retryable=False),
    "upstream_rate_limited": UpstreamFailure(429, retryable=True, retry_after=1.0),
    "upstream_unreachable": _BAD_GATEWAY,
    "upstream_timeout": UpstreamFailure(504, retryable=True),
    "upstream_http_error": _BAD_GATEWAY,
    "upstream_stream_error": _BAD_GATEWAY,
    "upstream_truncated": _BAD_GATEWAY,
    "upstream_malformed": _BAD_GATEWAY,
    "upstream_empty": _BAD_GATEWAY,
    "malformed_tool_call": _BAD_GATEWAY,
    "upstream_error": _BAD_GATEWAY,
}


class UpstreamError(_RetryLater):
    """The model's provider failed. The status, whether to retry and the ``Retry-After``
    default follow the ``code`` (``UPSTREAM_FAILURES``)."""

    status_code = 502
    error_type = "upstream_error"

    def _defaults(self, *, given_status: bool) -> None:
        failure = self.failure
        if not given_status:
            self.status_code = failure.status  # type: ignore[misc]
        if self.retry_after is None:
            self.retry_after = failure.retry_after

    @property
    def failure(self) -> UpstreamFailure:
        """How this failure is answered (its row of ``UPSTREAM_FAILURES``)."""
        found = UPSTREAM_FAILURES.get(self.code)
        return found if found is not None else UPSTREAM_FAILURES[self.error_type]

    @property
    def retryable(self) -> bool:
        """Whether sending the same request again may succeed."""
        return self.failure.retryable


class UpstreamTimeout(UpstreamError):
    status_code = 504
    error_type = "upstream_timeout"


class ServiceUnavailable(_RetryLater):
    """Not now (a server shutting down, say)."""

    status_code = 503
    error_type = "service_unavailable"


class InternalError(ParleyError):
    status_code = 500
    error_type = "internal_error"


class APIConnectionError(ParleyError):
    status_code = 0
    error_type = "connection_error"


class APITimeoutError(APIConnectionError):
    error_type = "timeout"


_BY_TYPE: dict[str, type[ParleyError]] = {
    cls.error_type: cls
    for cls in (
        InvalidRequest,
        ValidationFailed,
        AuthenticationFailed,
        PermissionDenied,
        NotFound,
        Conflict,
        PayloadTooLarge,
        RateLimited,
        UpstreamError,
        UpstreamTimeout,
        ServiceUnavailable,
        InternalError,
    )
}
_BY_STATUS: dict[int, type[ParleyError]] = {
    400: InvalidRequest,
    401: AuthenticationFailed,
    403: PermissionDenied,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: ValidationFailed,
    429: RateLimited,
    502: UpstreamError,
    503: ServiceUnavailable,
    504: UpstreamTimeout,
}


def error_from_response(
    status_code: int,
    body: Any,
    *,
    retry_after: str | None = None,
    error_type: str | None = None,
) -> ParleyError:
    """Rebuild the typed error from an HTTP error answer (used by the SDK); ``retry_after``
    is the answer's ``Retry-After`` header, kept on a ``RateLimited`` or
    ``ServiceUnavailable`` in seconds, and
    ``error_type`` its ``X-Parley-Error-Type`` header, which names the class of an error
    in OpenAI's shape (else the body's ``type`` does, or the status)."""
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict):
        message = str(err.get("message") or f"HTTP {status_code}")
        kind = error_type or str(err.get("type"))
        cls = _BY_TYPE.get(kind) or _BY_STATUS.get(status_code, ParleyError)
        details = err.get("details") if isinstance(err.get("details"), list) else None
        code = err.get("code") if isinstance(err.get("code"), str) else None
        param = err.get("param") if isinstance(err.get("param"), str) else None
        error = cls(message, code=code, details=details, status_code=status_code, param=param)
    else:
        cls = _BY_STATUS.get(status_code, ParleyError)
        error = cls(f"HTTP {status_code} from the server", status_code=status_code)
    if isinstance(error, _RetryLater):
        error.retry_after = retry_after_seconds(retry_after)
    return error


#: The longest wait a ``Retry-After`` is read as: a day (a daily budget's refusal asks for
#: up to that). A longer or endless one (``inf``, ``1e300``, a date in the year 9999), as a
#: hostile or broken upstream may send, is read as this, so no wait passed on is absurd.
MAX_RETRY_AFTER = 86_400.0


def retry_after_seconds(value: str | None) -> float | None:
    """A ``Retry-After`` header in seconds: a number of seconds or an HTTP date, between 0
    and ``MAX_RETRY_AFTER`` (None when absent or unreadable)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    return min(max(0.0, seconds), MAX_RETRY_AFTER)
