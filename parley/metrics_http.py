"""The HTTP side of the metrics: each request's route as a bounded label (``RouteNames``),
the middleware that counts requests and open streams (``RequestMetrics``), and the scrape
of ``GET /metrics`` (``scrape_allowed``; ``serve_metrics``, the listener of its own on
``Settings.metrics_port``). What is counted is in ``metrics``.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from parley.asgi_send import PassingSend
from parley.metrics import OTHER, Metrics

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "UNAUTHORIZED",
    "UNAUTHORIZED_CODE",
    "UNAUTHORIZED_MESSAGE",
    "RequestMetrics",
    "RouteNames",
    "scrape_allowed",
    "serve_metrics",
]


class RouteNames:
    """The route of a request that was served, as a bounded name: the template of the
    route routing matched (``scope["route"]``: with its prefix when it is one of
    ``routes``, included under ``prefix``, as it knows only its own part), else the path
    itself when it is one of ``paths`` (fixed paths served without routing), else
    ``other``."""

    def __init__(self, prefix: str, routes: Iterable[object], paths: Iterable[str]) -> None:
        self.templates: Mapping[int, str] = {
            id(route): prefix + path for route in routes if (path := getattr(route, "path", ""))
        }
        self.paths = frozenset(paths)

    def __call__(self, scope: Scope) -> str:
        route = scope.get("route")
        if route is not None:
            template = self.templates.get(id(route)) or getattr(route, "path", None)
            if isinstance(template, str):
                return template
        path: str = scope["path"]
        return path if path in self.paths else OTHER


class RequestMetrics:
    """Pure ASGI middleware: each HTTP request's route (``RouteNames``), method, status
    and duration, and the event streams open."""

    def __init__(self, app: ASGIApp, metrics: Metrics, *, routes: RouteNames) -> None:
        self.app = app
        self.metrics = metrics
        self.route = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # unless an answer starts: an error the server's last layer answers
        streaming = False

        async def sending(message: Message) -> None:
            nonlocal status, streaming
            if message["type"] == "http.response.start":
                status = message["status"]
                for name, value in message.get("headers", ()):
                    if name.lower() == b"content-type" and value.startswith(b"text/event-stream"):
                        streaming = True
                        self.metrics.stream(self.route(scope), 1)
            await send(message)

        try:
            # It only awaits ``send`` for a body: a stream's tap may drive it at once
            # (``kit.direct_write``).
            await self.app(scope, receive, PassingSend(send, sending))
        finally:
            route = self.route(scope)
            if streaming:
                self.metrics.stream(route, -1)
            self.metrics.request(route, scope["method"], status, time.perf_counter() - started)


def scrape_allowed(token: str | None, authorization: str | None) -> bool:
    """Whether a scrape with this ``Authorization`` header may read the metrics: any,
    when no ``token`` is set; else ``Bearer <token>``, compared in constant time."""
    if not token:
        return True
    scheme, _, given = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), token.encode()
    )


async def serve_metrics(
    metrics: Metrics, host: str, port: int, token: str | None
) -> asyncio.Server:
    """A listener of its own for ``GET /metrics`` (``Settings.metrics_port``): one request
    per connection, HTTP/1.1, nothing else served."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            writer.write(_metrics_answer(metrics, token, head))
            await writer.drain()
        except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # a client that went away or sent no complete request head: nothing to say
        finally:
            writer.close()

    return await asyncio.start_server(answer, host, port)


def _metrics_answer(metrics: Metrics, token: str | None, head: bytes) -> bytes:
    lines = head.decode("latin-1").split("\r\n")
    method, _, rest = lines[0].partition(" ")
    path = rest.partition(" ")[0].partition("?")[0]
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if method not in ("GET", "HEAD") or path != "/metrics":
        return _http(404, b'{"error":{"type":"not_found","message":"Not found."}}')
    if not scrape_allowed(token, headers.get("authorization")):
        return _http(401, UNAUTHORIZED)
    body, kind = metrics.exposition()
    return _http(200, body if method == "GET" else b"", kind, length=len(body))


#: What a scrape without the metrics token is told (as the API words its errors).
UNAUTHORIZED_MESSAGE = "Send the metrics token: Authorization: Bearer <token>."
UNAUTHORIZED_CODE = "invalid_metrics_token"
UNAUTHORIZED = b'{"error":{"type":"authentication_error","message":"%s","code":"%s"}}' % (
    UNAUTHORIZED_MESSAGE.encode(),
    UNAUTHORIZED_CODE.encode(),
)


def _http(status: int, body: bytes, kind: str = "application/json", *, length: int = -1) -> bytes:
    reason = {200: "OK", 401: "Unauthorized", 404: "Not Found"}[status]
    size = len(body) if length < 0 else length
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: {kind}\r\n"
        f"Content-Length: {size}\r\nConnection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body
