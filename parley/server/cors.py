"""CORS for browser clients of the API: a pure ASGI middleware, installed only when
``cors_origins`` lists some origins.

A request from an allowed origin gets ``Access-Control-Allow-Origin`` on its answer
(streams too: the headers go on the response start, nothing is buffered), with
``Retry-After``, the turn headers and ``Idempotent-Replayed`` exposed to the page. A preflight (``OPTIONS`` with
``Origin`` and ``Access-Control-Request-Method``) from an allowed origin is answered here,
204. Anything from another origin passes through untouched, with no CORS header at all: the
browser then refuses it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from starlette.datastructures import MutableHeaders
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Methods of the API.
ALLOW_METHODS = "GET, POST, PATCH, DELETE, OPTIONS"
#: Request headers a page may send (with any others a preflight asks for).
ALLOW_HEADERS = (
    "Authorization",
    "X-API-Key",
    "Content-Type",
    "Last-Event-ID",
    "Accept",
    "Idempotency-Key",
)
#: Response headers a page may read.
EXPOSE_HEADERS = (
    "Retry-After, X-Parley-Run-Id, X-Parley-Thread-Id, X-Parley-Message-Id, Idempotent-Replayed"
)
#: Seconds a browser may keep a preflight's answer.
MAX_AGE = "600"
#: Methods in the order ``Allow`` names them.
_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


class RouteMethods:
    """The methods of each route template, for ``Allow`` (an ``OPTIONS`` request, a
    405): a path's template is the most literal one that matches it (fewest parameters:
    ``/v1/threads/runs`` is not ``/v1/threads/{thread_id}``), and its methods are those of
    every route of that template, never a sibling template's."""

    def __init__(self, routes: Iterable[tuple[str, Iterable[str]]]) -> None:
        """``routes``: each route's template (``/v1/threads/{thread_id}``) and methods."""
        methods: dict[str, set[str]] = {}
        for template, served in routes:
            methods.setdefault(template, set()).update(m.upper() for m in served)
        by_literalness = sorted(methods, key=lambda template: template.count("{"))
        self._templates: list[tuple[re.Pattern[str], frozenset[str]]] = [
            (compile_path(template)[0], frozenset(methods[template])) for template in by_literalness
        ]

    @classmethod
    def of(cls, routes: Iterable[tuple[str, object]]) -> RouteMethods:
        """Of ``(prefix, route)`` pairs: each route's template is ``prefix`` and its path
        (the routes of an included router know only their own part)."""
        return cls(
            (prefix + path, methods)
            for prefix, route in routes
            if (path := getattr(route, "path", None))
            and (methods := getattr(route, "methods", None))
        )

    def __call__(self, path: str) -> list[str]:
        """The methods of ``path``'s template (none: no route serves it)."""
        for pattern, served in self._templates:
            if pattern.match(path):
                return [m for m in _METHODS if m in served]
        return []


class Cors:
    def __init__(self, app: ASGIApp, origins: Iterable[str]) -> None:
        self.app = app
        self.origins = frozenset(o.rstrip("/") for o in origins)
        self.any_origin = "*" in self.origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        origin = request_method = request_headers = None
        for name, value in scope["headers"]:
            if name == b"origin":
                origin = value.decode("latin-1")
            elif name == b"access-control-request-method":
                request_method = value
            elif name == b"access-control-request-headers":
                request_headers = value.decode("latin-1")
        if origin is None or not (self.any_origin or origin in self.origins):
            await self.app(scope, receive, send)
            return
        allow_origin = "*" if self.any_origin else origin
        if scope["method"] == "OPTIONS" and request_method is not None:
            await self._preflight(send, allow_origin, request_headers)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["Access-Control-Allow-Origin"] = allow_origin
                headers["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
                if not self.any_origin:
                    headers.add_vary_header("Origin")
            await send(message)

        await self.app(scope, receive, send_with_cors)

    async def _preflight(self, send: Send, allow_origin: str, asked: str | None) -> None:
        allowed = list(ALLOW_HEADERS)
        known = {h.lower() for h in allowed}
        for name in (asked or "").split(","):
            name = name.strip()
            if name and name.lower() not in known:
                known.add(name.lower())
                allowed.append(name)
        headers = [
            (b"access-control-allow-origin", allow_origin.encode("latin-1")),
            (b"access-control-allow-methods", ALLOW_METHODS.encode()),
            (b"access-control-allow-headers", ", ".join(allowed).encode("latin-1")),
            (b"access-control-max-age", MAX_AGE.encode()),
            (b"vary", b"Origin, Access-Control-Request-Method, Access-Control-Request-Headers"),
            (b"content-length", b"0"),
        ]
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
