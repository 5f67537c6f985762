"""Maps every failure to JSON with the right status: ``{"error": {"type", "message"}}`` on
Parley's own paths, OpenAI's ``{"error": {"message", "type", "param", "code"}}`` on the paths
of OpenAI's protocols (``OPENAI_PATHS``). Unknown exceptions are logged and answered with a
generic 500: no internal text leaks."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from parley.errors import (
    ERROR_TYPE_HEADER,
    InternalError,
    InvalidRequest,
    ParleyError,
    RateLimited,
    ServiceUnavailable,
    UpstreamError,
    ValidationFailed,
)
from parley.store.transaction import RACES, lost_race

log = logging.getLogger("parley.server")

_HTTP_TYPES = {
    404: ("not_found", "No such endpoint."),
    405: ("invalid_request", "Method not allowed on this endpoint."),
}


#: The paths of OpenAI's protocols (Responses, Conversations, Chat Completions, models,
#: Assistants v2): their errors, and every path below them, take OpenAI's shape and statuses
#: (``openai_error``). Every other path (``runs``, ``messages``, ``actions``, ``process``,
#: ``completions``, ``submit_tool_output``, users and keys) is Parley's own.
OPENAI_PATHS = (
    "/v1/responses",
    "/v1/conversations",
    "/v1/chat/completions",
    "/v1/embeddings",
    "/v1/models",
    "/v1/assistants",
    "/v1/threads",
    "/v1/files",
    "/v1/uploads",
    "/v1/vector_stores",
    "/v1/containers",
)
_BELOW_OPENAI_PATHS = tuple(f"{path}/" for path in OPENAI_PATHS)

#: Parley's error type -> (the OpenAI face's status, its error type). The types are the Open
#: Responses specification's (``invalid_request``, ``not_found``, ``model_error``, ...).
_OPENAI_TYPES: dict[str, tuple[int | None, str]] = {
    "invalid_request": (400, "invalid_request"),
    "validation_error": (400, "invalid_request"),
    "authentication_error": (None, "authentication_error"),
    "permission_denied": (None, "permission_denied"),
    "not_found": (None, "not_found"),
    "conflict": (None, "invalid_request"),
    "payload_too_large": (None, "invalid_request"),
    "unsupported_media_type": (None, "invalid_request"),
    "rate_limited": (None, "too_many_requests"),
    "upstream_error": (None, "model_error"),
    "upstream_timeout": (None, "model_error"),
    "service_unavailable": (None, "server_error"),
    "internal_error": (None, "server_error"),
}


#: The OpenAI type of an upstream failure answered with a client's status (the provider
#: refused the request as invalid, or is rate limiting it); any other is ``model_error``.
_UPSTREAM_OPENAI_TYPES = {400: "invalid_request", 429: "too_many_requests"}

#: The header that tells a client whether to send the same request again (the openai and
#: anthropic SDKs obey it before their own rules): on every upstream failure.
SHOULD_RETRY_HEADER = "X-Should-Retry"


def openai_path(path: str) -> bool:
    """Whether ``path`` is one of ``OPENAI_PATHS`` or below one (``/v1/threads/x/runs``,
    not ``/v1/threadsx``)."""
    return path in OPENAI_PATHS or path.startswith(_BELOW_OPENAI_PATHS)


_PLACES = ("body", "query", "path", "header")

#: Codes of errors raised below the face, and the request field each is about.
_CODE_PARAMS = {"unknown_model": "model"}
#: Codes whose status the OpenAI faces keep: a reused ``Idempotency-Key`` is a 422 there
#: too (its type is still ``invalid_request``).
_KEPT_STATUS = frozenset({"idempotency_key_reused"})

#: pydantic's error type -> the message and code of OpenAI's own errors for it
_INVALID = ("Invalid '{param}': {msg}.", "invalid_value")
_VALIDATION = {
    "extra_forbidden": ("Unknown parameter: '{param}'.", "unknown_parameter"),
    "missing": ("Missing required parameter: '{param}'.", "missing_required_parameter"),
}


#: What pydantic puts before the text of a validator's ``ValueError``; no message keeps it.
_VALUE_ERROR = "Value error, "


def error_text(text: str) -> str:
    """An error message as the client reads it: pydantic's ``Value error, `` prefix left out,
    wherever a reader copied a validation problem into it."""
    return text.replace(_VALUE_ERROR, "")


_TYPE_TAGS = frozenset({"str", "int", "float", "bool", "dict", "list", "none"})


def _field_path(loc: list[Any]) -> str:
    """``["input", 2, "content"]`` as ``input[2].content``; a union's member tag
    (``str``, ``list[...]``, a model's name) ends the path."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
            continue
        text = str(part)
        if text in _TYPE_TAGS or "[" in text or "-" in text or text[:1].isupper():
            break
        path += f".{text}" if path else text
    return path


def openai_error(exc: ParleyError) -> tuple[int, dict[str, Any]]:
    """The status and body of ``exc`` in OpenAI's shape: ``{"error": {"message", "type",
    "param", "code"}}``; a validation failure names its field as ``param``."""
    status, kind = _OPENAI_TYPES.get(exc.error_type, (None, "server_error"))
    if exc.code in _KEPT_STATUS:
        status = exc.status_code
    param, message = exc.param, exc.message
    upstream = isinstance(exc, UpstreamError)  # its code is its row of the table, always
    code = exc.code if exc.code != exc.error_type or upstream else None
    if upstream:
        kind = _UPSTREAM_OPENAI_TYPES.get(exc.status_code, kind)
    if code is None and exc.error_type == "validation_error":
        code = "invalid_value"
    if param is None and exc.code in _CODE_PARAMS:
        param = _CODE_PARAMS[exc.code]
    if param is None and exc.details:
        first = exc.details[0]
        loc = list(first.get("loc", ()))
        if loc and loc[0] in _PLACES:  # where FastAPI found it; OpenAI names the field alone
            loc = loc[1:]
        param = _field_path(loc) or None
        if param is not None:
            text, code = _VALIDATION.get(str(first.get("type")), _INVALID)
            message = text.format(param=param, msg=first.get("msg", "invalid value"))
    body = {"message": error_text(message), "type": kind, "param": param, "code": code}
    return status or exc.status_code, {"error": body}


def error_response(exc: ParleyError, *, openai: bool = False) -> JSONResponse:
    """The JSON answer of ``exc`` (in OpenAI's shape with ``openai``, Parley's own type then
    in ``X-Parley-Error-Type``); a 429 or 503 also says when to retry (``Retry-After``, whole
    seconds, at least 1), and an upstream failure whether to (``X-Should-Retry``)."""
    headers = {}
    retry_later = RateLimited | ServiceUnavailable | UpstreamError
    if isinstance(exc, retry_later) and exc.retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
    if isinstance(exc, UpstreamError):
        headers[SHOULD_RETRY_HEADER] = "true" if exc.retryable else "false"
    if openai:
        status, body = openai_error(exc)
        headers[ERROR_TYPE_HEADER] = exc.error_type
        return JSONResponse(body, status_code=status, headers=headers)
    body = exc.to_dict()
    body["error"]["message"] = error_text(exc.message)
    return JSONResponse(body, status_code=exc.status_code, headers=headers or None)


def invalid_json() -> ParleyError:
    """The error of a request body that is not JSON."""
    return InvalidRequest("The request body is not valid JSON.", code="invalid_json")


def validation_failed(errors: Sequence[Mapping[str, Any]]) -> ParleyError:
    """The error of pydantic's validation ``errors`` (a body that is not JSON is its own)."""
    for err in errors:
        if err.get("type") == "json_invalid":
            return invalid_json()
    details: list[dict[str, Any]] = [
        {
            "loc": list(err.get("loc", ())),
            "msg": error_text(str(err.get("msg", ""))),
            "type": err.get("type"),
        }
        for err in errors
    ]
    first = details[0] if details else {"loc": [], "msg": "invalid request"}
    where = ".".join(str(p) for p in first["loc"]) or "body"
    return ValidationFailed(f"Invalid request: {where}: {first['msg']}", details=details)


def _allowed_methods(request: Request) -> str:
    """The methods of the request's path template (``cors.RouteMethods``, which the app
    keeps in ``state.route_methods``)."""
    methods = getattr(request.app.state, "route_methods", None)
    return ", ".join(methods(request.url.path)) if methods is not None else ""


def exception_response(exc: Exception, path: str) -> JSONResponse:
    """The answer to ``exc`` raised while serving ``path``: a ``ParleyError``'s own, a body
    that failed validation as ``validation_failed``, a unique-key race as 409 ``conflict``,
    anything else logged and answered with a generic 500."""
    openai = openai_path(path)
    if isinstance(exc, ParleyError):
        return error_response(exc, openai=openai)
    if isinstance(exc, RequestValidationError):
        return error_response(validation_failed(exc.errors()), openai=openai)
    if (conflict := lost_race(exc)) is not None:
        return error_response(conflict, openai=openai)
    log.exception("unhandled error", exc_info=exc)
    return error_response(InternalError("Internal server error."), openai=openai)


def install_error_handlers(app: FastAPI) -> None:
    async def _exception(request: Request, exc: Exception) -> JSONResponse:
        return exception_response(exc, request.url.path)

    for kind in (ParleyError, RequestValidationError, *RACES, Exception):
        app.add_exception_handler(kind, _exception)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        headers = dict(exc.headers or {})
        if exc.status_code == 405 and (allowed := _allowed_methods(request)):
            if request.method == "OPTIONS":  # what the path serves (CORS: parley.server.cors)
                return Response(status_code=204, headers={"Allow": f"{allowed}, OPTIONS"})
            headers["Allow"] = allowed
        kind, message = _HTTP_TYPES.get(exc.status_code, ("invalid_request", "Bad request."))
        body: dict[str, Any] = {"type": kind, "message": message}
        if openai_path(request.url.path):
            body.update(param=None, code=None)
            headers[ERROR_TYPE_HEADER] = kind
        return JSONResponse({"error": body}, status_code=exc.status_code, headers=headers)
