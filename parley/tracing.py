"""OpenTelemetry traces of requests, turns and model calls (optional).

Traces are on when ``opentelemetry-sdk`` is installed (the ``otel`` extra) and the standard
variables ask for them (``Settings.trace_exporters``: ``OTEL_TRACES_EXPORTER``, or an OTLP
endpoint); otherwise nothing of OpenTelemetry is imported. The SDK reads the rest of its
configuration itself (``OTEL_SERVICE_NAME``, ``OTEL_EXPORTER_OTLP_HEADERS``, the sampler).

``Traced`` wraps the app's ``Metrics`` and answers the same hooks, so the engine does not
know whether it is traced. The spans, each a child of the one above::

    POST /v1/process                   server: one per HTTP request (``TraceRequests``)
      parley.turn                      one per turn, begun by the request that started it
        chat {model}                   client: one per model call, GenAI attributes
                                       (gen_ai.system, gen_ai.request.model,
                                       gen_ai.operation.name, gen_ai.usage.*_tokens)

A turn that pauses for tool outputs ends with the event ``parley.action_required``; its
``parley.run.status`` attribute says how it ended.
"""

from __future__ import annotations

import time
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from parley import __version__
from parley.config import ConfigError, Settings
from parley.metrics import Counts, Metrics, UpstreamCall, error_type
from parley.metrics_http import RouteNames

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span, Tracer
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: The span of the turn the current task runs (set in the turn's own task).
_turn_span: ContextVar[Span | None] = ContextVar("parley_turn_span", default=None)


def tracer_provider(settings: Settings) -> TracerProvider:
    """A tracer provider exporting to what ``settings`` asks for (``trace_exporters``), in
    batches. Raises ``ConfigError`` for an exporter it does not know or cannot load."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": "parley"}))
    for name in settings.trace_exporters():
        provider.add_span_processor(BatchSpanProcessor(_exporter(name)))
    return provider


def _exporter(name: str) -> SpanExporter:
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if name != "otlp":
        raise ConfigError(f"OTEL_TRACES_EXPORTER: {name!r} is not one of otlp, console, none")
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        raise ConfigError(
            "OTEL_TRACES_EXPORTER is otlp, but the OTLP exporter is not installed: install "
            "parley-ai[otel]"
        ) from None
    return OTLPSpanExporter()


class Traced(Metrics):
    """``inner``'s hooks, with spans of turns and model calls from ``tracer``."""

    def __init__(self, inner: Metrics, tracer: Tracer) -> None:
        self.inner = inner
        self.tracer = tracer
        self.enabled = inner.enabled

    def upstream_call(
        self, provider: str, model: str, *, started: float | None = None
    ) -> UpstreamCall:
        call = self.inner.upstream_call(provider, model, started=started)
        turn = _turn_span.get()
        begun = None
        if started is not None:
            begun = time.time_ns() - int((time.perf_counter() - started) * 1e9)
        span = self.tracer.start_span(
            f"chat {model}",
            context=trace.set_span_in_context(turn) if turn is not None else None,
            kind=SpanKind.CLIENT,
            start_time=begun,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.system": provider,
                "gen_ai.request.model": model,
            },
        )
        return _TracedCall(call, span)

    def turn_started(self, run_id: str, thread_id: str, model: str) -> None:
        self.inner.turn_started(run_id, thread_id, model)
        span = self.tracer.start_span(
            "parley.turn",
            attributes={
                "parley.run.id": run_id,
                "parley.thread.id": thread_id,
                "gen_ai.request.model": model,
            },
        )
        _turn_span.set(span)

    def turn_ended(self, status: str) -> None:
        self.inner.turn_ended(status)
        span = _turn_span.get()
        if span is None:
            return
        _turn_span.set(None)
        if status == "action_required":
            span.add_event("parley.action_required")
        elif status == "failed":
            span.set_status(Status(StatusCode.ERROR))
        span.set_attribute("parley.run.status", status)
        span.end()

    def hosted_call(
        self, kind: str, server: str, operation: str, seconds: float, failed: bool
    ) -> None:
        """A span after the fact, in the GenAI conventions' terms: ``execute_tool`` for a
        call, and the MCP method (``tools/list`` or ``tools/call``)."""
        self.inner.hosted_call(kind, server, operation, seconds, failed)
        turn = _turn_span.get()
        ended = time.time_ns()
        name = "execute_tool" if operation == "call" else "mcp tools/list"
        span = self.tracer.start_span(
            f"{name} {server}",
            context=trace.set_span_in_context(turn) if turn is not None else None,
            kind=SpanKind.CLIENT,
            start_time=ended - int(seconds * 1e9),
            attributes={
                "gen_ai.operation.name": "execute_tool" if operation == "call" else operation,
                "gen_ai.tool.type": "extension",
                "mcp.method.name": f"tools/{operation}",
                "parley.hosted.kind": kind,
                "parley.hosted.server": server,
            },
        )
        if failed:
            span.set_status(Status(StatusCode.ERROR))
        span.end(end_time=ended)

    def retried(self, provider: str) -> None:
        self.inner.retried(provider)

    def follower(self, change: int) -> None:
        self.inner.follower(change)

    def sandbox_call(self, outcome: str, seconds: float) -> None:
        self.inner.sandbox_call(outcome, seconds)

    def containers_alive(self, count: int) -> None:
        self.inner.containers_alive(count)

    def container_made(self) -> None:
        self.inner.container_made()

    def local_model_up(self, up: bool) -> None:
        self.inner.local_model_up(up)

    def local_model_restarted(self) -> None:
        self.inner.local_model_restarted()

    def local_model_speed(self, tokens_per_second: float) -> None:
        self.inner.local_model_speed(tokens_per_second)

    def loop_lag(self, seconds: float) -> None:
        self.inner.loop_lag(seconds)

    def watch_pool(self, pool: Any) -> None:
        self.inner.watch_pool(pool)

    def ingestion_queue(self, waiting: int) -> None:
        self.inner.ingestion_queue(waiting)

    def file_indexed(self, outcome: str, seconds: float | None) -> None:
        self.inner.file_indexed(outcome, seconds)

    def webhook_attempt(self, outcome: str) -> None:
        self.inner.webhook_attempt(outcome)

    def search_duration(self, seconds: float, *, source: str = "api", mode: str = "hybrid") -> None:
        self.inner.search_duration(seconds, source=source, mode=mode)

    def request(self, route: str, method: str, status: int, seconds: float) -> None:
        self.inner.request(route, method, status, seconds)

    def stream(self, route: str, change: int) -> None:
        self.inner.stream(route, change)

    def exposition(self) -> tuple[bytes, str]:
        return self.inner.exposition()


class _TracedCall(UpstreamCall):
    __slots__ = ("_inner", "_input", "_output", "_span")

    def __init__(self, inner: UpstreamCall, span: Span) -> None:
        self._inner = inner
        self._span = span
        self._input = self._output = 0

    def first_token(self) -> None:
        self._inner.first_token()
        self._span.add_event("gen_ai.first_token")

    def counted(self, usage: Counts) -> None:
        self._inner.counted(usage)
        self._input = usage.input_tokens or self._input
        self._output = usage.output_tokens or self._output

    def failed(self, error: BaseException) -> None:
        self._inner.failed(error)
        kind = error_type(error)
        if kind is not None:
            self._span.set_attribute("error.type", kind)
            self._span.set_status(Status(StatusCode.ERROR))

    def finish(self, usage: Counts | None = None) -> None:
        self._inner.finish(usage)
        span = self._span
        span.set_attribute(
            "gen_ai.usage.input_tokens", usage.input_tokens if usage else self._input
        )
        span.set_attribute(
            "gen_ai.usage.output_tokens", usage.output_tokens if usage else self._output
        )
        span.end()


class TraceRequests:
    """Pure ASGI middleware: a server span for each HTTP request, current while the app
    serves it (so that a turn it starts is its child), named by its route (``RouteNames``)
    once served."""

    def __init__(self, app: ASGIApp, tracer: Tracer, *, routes: RouteNames) -> None:
        self.app = app
        self.tracer = tracer
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method: str = scope["method"]
        span = self.tracer.start_span(
            method,
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "url.path": scope["path"]},
        )
        status = 500  # unless an answer starts

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            await self.app(scope, receive, sending)
        finally:
            otel_context.detach(token)
            route = self.routes(scope)
            span.update_name(f"{method} {route}")
            span.set_attribute("http.route", route)
            span.set_attribute("http.response.status_code", status)
            if status >= 500:
                span.set_status(Status(StatusCode.ERROR))
            span.end()


def tracer_of(provider: TracerProvider) -> Tracer:
    return provider.get_tracer("parley", __version__)
