"""The OpenAPI document (``/openapi.json``) lists every answer an operation can give.

A route names only the errors that are its own, ``responses=errors(409)``; those that follow
from an operation's shape are added here, the same way for every route:

    every /v1 operation       401 authentication_error, 429 rate_limited (Retry-After)
    an id in the path         404 not_found
    a request body            400 invalid_request (not JSON), 413 payload_too_large,
                              422 validation_error
    query parameters          422 validation_error
    an Idempotency-Key        400 (a bad key), 409 idempotency_key_in_use, 422
                              idempotency_key_reused; its 2xx answers may carry
                              Idempotent-Replayed (``parley.server.idempotency``)

A route that answers only once its model's provider has (``upstream_errors()``) names the
statuses of the upstream failures (``parley.errors.UPSTREAM_FAILURES``: 400, 429, 502, 504),
each with ``X-Should-Retry``.

Every error answer has the one shape of ``parley.errors`` (``ErrorPublic``), but on the
OpenAI faces' paths (``parley.server.errors.OPENAI_PATHS``: Responses, Conversations, Chat
Completions, models, Assistants v2), whose errors take OpenAI's shape (``OpenAIErrorPublic``,
with Parley's own type in ``X-Parley-Error-Type``) and whose invalid bodies and queries
answer 400, not 422 (their one 422 is a reused ``Idempotency-Key``). FastAPI's own
``HTTPValidationError`` is never sent (``parley.server.errors`` maps validation failures), so
it is not in the document either. Links lead from each answer naming a resource to the
operations that take its id (a run's ``id`` to ``/v1/runs/{run_id}``, to ``completions``'
``run_id``, ...).
"""

from __future__ import annotations

import asyncio
from typing import Any, NotRequired

from fastapi import FastAPI
from pydantic import BaseModel, TypeAdapter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from typing_extensions import TypedDict

from parley.errors import (
    ERROR_TYPE_HEADER,
    UPSTREAM_FAILURES,
    AuthenticationFailed,
    Conflict,
    InvalidRequest,
    NotFound,
    ParleyError,
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    ServiceUnavailable,
    UpstreamError,
    UpstreamTimeout,
    ValidationFailed,
)
from parley.server.errors import SHOULD_RETRY_HEADER, openai_path
from parley.server.idempotency import KEY_HEADER, MAX_KEY_CHARS, REPLAYED_HEADER

Responses = dict[int | str, dict[str, Any]]

_ERROR_REF = {"$ref": "#/components/schemas/ErrorPublic"}
_OPENAI_ERROR_REF = {"$ref": "#/components/schemas/OpenAIErrorPublic"}

#: status -> (the error it answers, when)
_ERRORS: dict[int, tuple[type[ParleyError], str]] = {
    400: (
        InvalidRequest,
        "The request is refused: the body is not JSON, or a value names nothing usable "
        "(an unknown model, a list cursor, a tool call id, ...). `code` says which.",
    ),
    401: (AuthenticationFailed, "No API key, or an invalid or revoked one."),
    403: (PermissionDenied, "The API key is not an admin's."),
    404: (NotFound, "No such resource (another user's id answers the same)."),
    409: (Conflict, "The state of the thread or run does not allow it now. `code` says why."),
    413: (PayloadTooLarge, "The body is larger than the server accepts."),
    422: (
        ValidationFailed,
        "The body or a query parameter is not valid. `details` names each field.",
    ),
    429: (RateLimited, "Too many requests: retry after `Retry-After` seconds."),
    502: (
        UpstreamError,
        "The model's provider failed: it refused the credentials, has no such model, could "
        "not be reached or sent a broken answer. `code` says which; the message names the "
        "provider and its URL, with the provider's own words.",
    ),
    503: (ServiceUnavailable, "The server is shutting down: retry (on another replica)."),
    504: (UpstreamTimeout, "The model's provider did not answer in time."),
}

#: status -> the description of an OpenAI face's error answer (``openai_error``)
_OPENAI_ERRORS: dict[int, str] = {
    400: "`invalid_request`: the body or a query parameter is not valid, or a value names "
    "nothing usable. `param` names the field, `code` the reason.",
    401: "`authentication_error`: no API key, or an invalid or revoked one.",
    404: "`not_found`: no such resource (another user's id answers the same).",
    409: "`invalid_request`: the state of the thread, run, conversation or response does "
    "not allow it now, or a request with the same `Idempotency-Key` is still being "
    "processed. `code` says why.",
    413: "`invalid_request`: the body is larger than the server accepts.",
    422: "`invalid_request`: the `Idempotency-Key` was sent before with another request "
    "(`idempotency_key_reused`).",
    429: "`too_many_requests`: retry after `Retry-After` seconds.",
    502: "`model_error`: the model's provider failed: it refused the credentials, has no "
    "such model, could not be reached or sent a broken answer. `code` says which; the "
    "message names the provider and its URL, with the provider's own words.",
    503: "`server_error`: the server is shutting down: retry (on another replica).",
    504: "`model_error`: the model's provider did not answer in time.",
}

#: What an upstream failure adds to the description of a status shared with other errors.
_UPSTREAM_NOTES = {
    400: "Or the model's provider refused the request as invalid or too long "
    "(`upstream_invalid_request`, with the provider's message).",
    429: "Or the model's provider is rate limiting (`upstream_rate_limited`).",
}

#: The statuses an upstream failure is answered with (400, 429, 502, 504).
_UPSTREAM_STATUSES = sorted({failure.status for failure in UPSTREAM_FAILURES.values()})

_SHOULD_RETRY = {
    SHOULD_RETRY_HEADER: {
        "description": "On a failure of the model's provider: `false` when the same request "
        "cannot succeed again (refused credentials, no such model, a request refused as "
        "invalid), else `true`.",
        "required": False,
        "schema": {"type": "string", "enum": ["true", "false"]},
    }
}

#: The description of an idempotent operation's 409 and 422 (native shape).
_KEY_ERRORS = {
    409: "`conflict`: the state of the thread or run does not allow it now, or a request "
    "with the same `Idempotency-Key` is still being processed "
    "(`idempotency_key_in_use`). `code` says why.",
    422: "`validation_error`: the body or a query parameter is not valid (`details` names "
    "each field), or the `Idempotency-Key` was sent before with another request "
    "(`idempotency_key_reused`).",
}

_ERROR_TYPE = {
    ERROR_TYPE_HEADER: {
        "description": "Parley's own error type (`validation_error`, `conflict`, ...), which "
        "OpenAI's `type` does not always tell apart.",
        "required": True,
        "schema": {"type": "string"},
    }
}

_REPLAYED = {
    REPLAYED_HEADER: {
        "description": "`true` when the answer is that of an earlier request with the same "
        "`Idempotency-Key`.",
        "required": False,
        "schema": {"type": "string", "enum": ["true"]},
    }
}

_FRAMES = (
    "Server-sent events: frames of `id: <seq>`, `event: <type>` and `data: <the event as "
    "JSON>`, with `: ping` comments while idle; the stream ends with one `done` event."
)

#: One server-sent event, as parsed from the stream (OpenAPI 3.2 calls it ``itemSchema``).
_FRAME_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": _FRAMES,
    "required": ["data"],
    "properties": {
        "id": {"type": "string", "description": "The event's sequence number in its run."},
        "event": {"type": "string", "description": "The event's `type`."},
        "data": {"type": "string", "description": "The event as JSON."},
    },
}

#: answer schema -> the parameter or body field its ``id`` fills
_IDS = {
    "AssistantPublic": "assistant_id",
    "ThreadPublic": "thread_id",
    "MessagePublic": "message_id",
    "RunPublic": "run_id",
    "ApiKeyCreated": "key_id",
    "VectorStorePublic": "vector_store_id",
    "FileBatchPublic": "batch_id",
}

_SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "An API key."},
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
}


class ErrorDetail(TypedDict):
    """One field that failed validation."""

    loc: list[str | int]
    msg: str
    type: str


class ErrorBody(TypedDict):
    """`type` is the kind of error (`not_found`, ...); `code` is a finer reason, given when
    it differs from `type`; `details` names each field of a `validation_error`."""

    type: str
    message: str
    code: NotRequired[str]
    details: NotRequired[list[ErrorDetail]]


class ErrorPublic(TypedDict):
    """Every error answer."""

    error: ErrorBody


class OpenAIErrorBody(TypedDict):
    """`type` is the Open Responses kind (`invalid_request`, `not_found`, `model_error`,
    ...); `param` names the field at fault; `code` is a finer reason."""

    message: str
    type: str
    param: str | None
    code: str | None


class OpenAIErrorPublic(TypedDict):
    """Every error answer of the OpenAI faces (`/v1/responses`, `/v1/conversations`)."""

    error: OpenAIErrorBody


def errors(*statuses: int) -> Responses:
    """The ``responses=`` of a route: the errors it answers beyond those of its shape."""
    return {status: {"description": _describe(status)} for status in statuses}


def upstream_errors() -> Responses:
    """The ``responses=`` of a route that answers once its model's provider has: the
    statuses of an upstream failure (``parley.errors.UPSTREAM_FAILURES``)."""
    return {
        status: {"description": _describe(status), "headers": dict(_SHOULD_RETRY)}
        for status in _UPSTREAM_STATUSES
    }


def _describe(status: int) -> str:
    error, when = _ERRORS[status]
    return f"`{error.error_type}`: {when}"


def event_stream(description: str, result: type[BaseModel] | None = None) -> Responses:
    """A 200 that streams server-sent events, or answers ``result`` as JSON instead."""
    answer: dict[str, Any] = {
        "description": description,
        "content": {"text/event-stream": {"schema": _FRAME_SCHEMA}},
    }
    if result is not None:
        answer["model"] = result
    return {200: answer}


def json_or_events(description: str) -> Responses:
    """A 200 that answers JSON, or with ``stream`` true server-sent events (the OpenAI
    faces' creations: their schemas come from the route)."""
    content: dict[str, Any] = {"application/json": {}, "text/event-stream": {}}
    return {200: {"description": description, "content": content}}


def install_openapi(app: FastAPI) -> None:
    """Serve the completed document at ``app.openapi_url``, built and rendered once, on a
    thread: building it walks every route's models (over half a second of CPU), which
    on the event loop would hold every stream of the server that long."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = complete(FastAPI.openapi(app))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    rendered: bytes | None = None
    building = asyncio.Lock()

    def render() -> bytes:
        return bytes(JSONResponse(openapi()).body)

    async def serve(request: Request) -> Response:
        nonlocal rendered
        if rendered is None:
            async with building:  # one build for the requests that come meanwhile
                if rendered is None:
                    rendered = await asyncio.to_thread(render)
        root_path = request.scope.get("root_path", "").rstrip("/")
        if root_path and app.root_path_in_servers:  # as FastAPI's own route
            schema = openapi()
            if root_path not in {s.get("url") for s in schema.get("servers", [])}:
                servers = [{"url": root_path}, *schema.get("servers", [])]
                return JSONResponse({**schema, "servers": servers})
        return Response(rendered, media_type="application/json")

    url = app.openapi_url
    if url:
        app.router.routes[:] = [r for r in app.router.routes if getattr(r, "path", None) != url]
        app.add_route(url, serve, include_in_schema=False)


def complete(document: dict[str, Any]) -> dict[str, Any]:
    """Add the errors every operation shares, the error schema and the API-key schemes."""
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    for name, shape in (("ErrorPublic", ErrorPublic), ("OpenAIErrorPublic", OpenAIErrorPublic)):
        schema = TypeAdapter(shape).json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[name] = schema
    components["securitySchemes"] = _SECURITY_SCHEMES
    for path, item in document.get("paths", {}).items():
        for operation in item.values():
            _complete_operation(path, operation)
    _link(document)
    return document


def _idempotent(operation: dict[str, Any]) -> bool:
    """The operation takes an ``Idempotency-Key``."""
    return any(
        p["in"] == "header" and p["name"] == KEY_HEADER for p in operation.get("parameters", ())
    )


def _shared_errors(path: str, operation: dict[str, Any]) -> list[int]:
    places = {p["in"] for p in operation.get("parameters", ())}
    has_body = "requestBody" in operation
    statuses = [401, 429] if path.startswith("/v1/") else []
    if "path" in places:
        statuses.append(404)
    if has_body:
        statuses += [400, 413]
    if has_body or "query" in places:
        statuses.append(400 if openai_path(path) else 422)
    if _idempotent(operation):
        statuses += [400, 409, 422]
    return statuses


def _complete_operation(path: str, operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    fastapi_422 = responses.get("422", {}).get("content", {}).get("application/json", {})
    if "HTTPValidationError" in str(fastapi_422.get("schema", {}).get("$ref", "")):
        del responses["422"]
    openai = openai_path(path)
    if openai:
        responses.pop("422", None)
    for shared in _shared_errors(path, operation):
        responses.setdefault(str(shared), {"description": _describe(shared)})
    idempotent = _idempotent(operation)
    for parameter in operation.get("parameters", ()):
        if parameter["in"] == "header" and parameter["name"] == KEY_HEADER:
            parameter["schema"] = {"type": "string", "minLength": 1, "maxLength": MAX_KEY_CHARS}
    for status, answer in responses.items():
        if idempotent and status.startswith("2"):
            answer.setdefault("headers", {}).update(_REPLAYED)
        if not status.isdigit() or int(status) < 400:
            continue
        if idempotent and int(status) in _KEY_ERRORS:
            answer["description"] = _KEY_ERRORS[int(status)]
        if openai:
            answer["description"] = _OPENAI_ERRORS.get(int(status), answer["description"])
        headers = dict(answer.get("headers", {}))
        if SHOULD_RETRY_HEADER in headers and int(status) in _UPSTREAM_NOTES:
            answer["description"] += " " + _UPSTREAM_NOTES[int(status)]
        answer["content"] = {
            "application/json": {"schema": _OPENAI_ERROR_REF if openai else _ERROR_REF}
        }
        if openai:
            headers.update(_ERROR_TYPE)
        if status == "429":
            headers["Retry-After"] = {
                "description": "Whole seconds to wait before retrying.",
                "required": True,
                "schema": {"type": "integer", "minimum": 1},
            }
        if headers:
            answer["headers"] = headers
    operation["responses"] = dict(sorted(responses.items()))
    if path.startswith("/v1/"):
        operation["security"] = [{"bearer": []}, {"apiKey": []}]


def _link(document: dict[str, Any]) -> None:
    """Links from every answer that names a resource to each operation taking its id."""
    schemas = document["components"]["schemas"]
    operations = [op for item in document["paths"].values() for op in item.values()]
    takers = [(op, _inputs(op, schemas)) for op in operations]
    for source in operations:
        for status, answer in source["responses"].items():
            name = _schema_name(answer.get("content", {}).get("application/json", {}))
            if not status.startswith("2") or name is None:
                continue
            fields = set(schemas[name].get("properties", {}))
            values = {f: f"$response.body#/{f}" for f in fields if f in _IDS.values()}
            if name in _IDS:
                values[_IDS[name]] = "$response.body#/id"
            links = {}
            for target, inputs in takers:
                link = _link_to(target, inputs, values)
                if link is not None:
                    links[target["operationId"]] = link
            if links:
                answer["links"] = links


def _link_to(
    target: dict[str, Any], inputs: dict[str, str], values: dict[str, str]
) -> dict[str, Any] | None:
    parameters = {
        f"{where}.{name}": value
        for name, value in values.items()
        if (where := inputs.get(name)) in ("path", "query")
    }
    body = {name: value for name, value in values.items() if inputs.get(name) == "body"}
    if not parameters and not body:
        return None
    link: dict[str, Any] = {"operationId": target["operationId"]}
    if parameters:
        link["parameters"] = parameters
    if body:
        link["requestBody"] = body
    return link


def _inputs(operation: dict[str, Any], schemas: dict[str, Any]) -> dict[str, str]:
    """Each id the operation takes, by name: where it goes (``path``, ``query``, ``body``)."""
    inputs = {
        p["name"]: p["in"]
        for p in operation.get("parameters", ())
        if p["in"] in ("path", "query") and p["name"] in _IDS.values()
    }
    content = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
    name = _schema_name(content)
    if name is not None:
        for field in schemas[name].get("properties", {}):
            if field in _IDS.values():
                inputs.setdefault(field, "body")
    return inputs


def _schema_name(content: dict[str, Any]) -> str | None:
    schema = content.get("schema", {})
    for option in [schema, *schema.get("anyOf", ())]:
        ref = option.get("$ref", "")
        if ref.startswith("#/components/schemas/"):
            return str(ref.rsplit("/", 1)[1])
    return None
