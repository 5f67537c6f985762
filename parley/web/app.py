"""The Flask app factory of ``parley web`` (the HTTP interface is in ``docs/web.md``).

    app = create_app(base_url="http://127.0.0.1:8700", api_key="pk_...", tools=default_tools())

Nothing happens at import time; ``create_app`` makes one ``parley.sdk.Client`` for the app
(or uses ``client=``) and reads the session secret. The app talks to the Parley server only
through that client. ``close_app(app)`` closes a client the app made.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from flask import Flask, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from parley.errors import ParleyError
from parley.sdk import Client
from parley.sdk.tools import ToolRegistry
from parley.web import routes
from parley.web.attachments import DEFAULT_MAX_UPLOAD_BYTES
from parley.web.backend import DEFAULT_MODEL, EXTENSION, Backend, Problem, problem_of
from parley.web.limits import DEFAULT_MAX_EXCHANGES, SLOTS, ExchangeSlots
from parley.web.security import (
    CONTENT_SECURITY_POLICY,
    csrf_problem,
    ensure_session,
    load_secret_key,
)
from parley.web.tools import default_tools

__all__ = ["MAX_BODY_BYTES", "close_app", "create_app"]

log = logging.getLogger(__name__)

#: Largest request body accepted (a 413 beyond).
MAX_BODY_BYTES = 1024 * 1024

_HTTP_TYPES = {
    400: "invalid_request",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def create_app(
    *,
    base_url: str,
    api_key: str,
    tools: ToolRegistry | None = None,
    default_model: str | None = None,
    secret_key: str | None = None,
    client: Client | None = None,
    all_threads: bool = False,
    max_exchanges: int = DEFAULT_MAX_EXCHANGES,
    hosted_mcp: Sequence[Mapping[str, Any]] = (),
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    code_interpreter: bool = False,
) -> Flask:
    """The web app for the Parley server at ``base_url``.

    ``tools`` defaults to ``default_tools()``; ``default_model`` to ``demo/parley``;
    ``secret_key`` (signs the session cookie) to ``PARLEY_WEB_SECRET`` or a random key kept
    in the user data directory. ``client`` replaces the SDK client the app would make (it
    is then the caller's to close). ``all_threads``: every browser session sees every thread
    of the API key (those of ``parley chat``, the native API and the Responses API too), for
    a page one person uses; by default each session sees only the threads it started.
    ``max_exchanges``: answers streaming at once; one more is answered 503 ``busy`` at once.
    ``hosted_mcp``: ``mcp`` tools the Parley server runs for the page's assistant
    (``parley.mcp.spec.hosted_mcp_tool`` makes one from a ``--hosted-mcp`` SPEC); the page
    shows their calls, and asks the user before those that need approval.
    ``max_upload_bytes``: the largest file a conversation takes (``POST /api/files``; 413
    beyond). ``code_interpreter``: the runs offer the ``code_interpreter`` tool (the
    conversation's own container on the Parley server); the page shows each call's code,
    logs, figures and files, and goes on without the tool (saying so once) when the server
    cannot run it.
    """
    # First: a bad URL raises ValueError before anything (the secret file) is written.
    sdk = client or Client(base_url=base_url, api_key=api_key)
    app = Flask("parley.web")
    app.config.update(
        SECRET_KEY=secret_key or load_secret_key(),
        SESSION_COOKIE_NAME="parley_web",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=timedelta(days=31),
        MAX_CONTENT_LENGTH=MAX_BODY_BYTES,
    )
    app.extensions[EXTENSION] = Backend(
        sdk,
        tools if tools is not None else default_tools(),
        default_model or DEFAULT_MODEL,
        owns_client=client is None,
        all_threads=all_threads,
        hosted=hosted_mcp,
        max_upload_bytes=max_upload_bytes,
        code_interpreter=code_interpreter,
    )
    app.extensions[SLOTS] = ExchangeSlots(max_exchanges)
    app.register_blueprint(routes.bp)
    app.before_request(_check_request)
    app.after_request(_security_headers)
    app.register_error_handler(ParleyError, _parley_error)
    app.register_error_handler(routes.ProblemError, _problem_error)
    app.register_error_handler(HTTPException, _http_error)
    return app


def close_app(app: Flask) -> None:
    """Close the SDK client ``create_app`` made (not one passed as ``client=``)."""
    backend: Backend = app.extensions[EXTENSION]
    if backend.owns_client:
        backend.client.close()


def _check_request() -> Response | None:
    ensure_session()
    problem = csrf_problem()
    if problem is not None:
        return _json_error(Problem(403, "csrf_failed", problem))
    return None


def _security_headers(response: Response) -> Response:
    if response.mimetype == "text/html":
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if response.mimetype in ("application/json", "text/event-stream", "text/html"):
        response.headers.setdefault("Cache-Control", "no-store")
    return response


def _json_error(problem: Problem) -> Response:
    response = jsonify(problem.body())
    response.status_code = problem.status
    return response


def _parley_error(exc: ParleyError) -> Response:
    backend: Backend = current_app.extensions[EXTENSION]
    return _json_error(problem_of(exc, backend.base_url))


def _problem_error(exc: routes.ProblemError) -> Response:
    return _json_error(exc.problem)


def _http_error(exc: HTTPException) -> Response:
    status = exc.code or 500
    if status >= 500:
        return _json_error(Problem(status, "internal_error", "The web app failed."))
    message = exc.description or exc.name
    if status == 413 and request.path == "/api/files":
        backend: Backend = current_app.extensions[EXTENSION]
        return _json_error(
            Problem(413, "file_too_large", routes.too_large(backend.max_upload_bytes))
        )
    if status == 413:
        message = f"The request body is larger than {MAX_BODY_BYTES // 2**20} MiB."
    return _json_error(Problem(status, _HTTP_TYPES.get(status, "invalid_request"), message))
