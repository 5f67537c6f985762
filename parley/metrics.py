"""Prometheus metrics of one app: what its requests, streams, turns and upstream calls did.

``create_metrics()`` gives the app's ``Metrics``: with ``prometheus-client`` installed, a
``PrometheusMetrics`` whose collectors live in a registry of their own (several apps may run
in one process, as in the tests), else the base class, whose every hook does nothing, so
the engine calls its hooks without asking which it has. The hooks are called per request,
per model call and per turn, never per streamed chunk.

Labels stay bounded: routes are templates (``/v1/threads/{thread_id}``, or ``other`` for a
path no route serves), methods the HTTP ones, and a model label is a model the server
knows (``KnownModel``: the provider registry's ``knows``), any other name a client sends
counting as ``other``. No user, key, thread or run id is ever a label. ``docs/metrics.md`` describes each metric.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Whether ``(provider, model_id)`` is a model the server knows, which may be a label of
#: its own (``ProviderRegistry.knows``); any other is counted as model ``other``.
KnownModel = Callable[[str, str], bool]
#: The route label of a request no route serves, and the model label of an unknown model.
OTHER = "other"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

_REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_FIRST_TOKEN_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120)
_CALL_BUCKETS = (0.25, 0.5, 1, 2, 5, 10, 20, 40, 80, 160, 320)
#: Tokens per second of a local model: a 135M model on a laptop to a big one on a GPU.
_SPEED_BUCKETS = (1, 2, 5, 10, 20, 35, 50, 75, 100, 150, 200, 300, 500)
_LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
_INGEST_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_SEARCH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.06, 0.1, 0.25, 0.5, 1, 2.5)
#: The outcomes of indexing a file: ``lost`` is a file cancelled, attached again or deleted
#: while it was indexed, or given back when the server stopped (nothing was written).
INGEST_OUTCOMES = frozenset({"completed", "failed", "lost"})
#: What a webhook delivery attempt came to (``webhook_attempt``).
WEBHOOK_OUTCOMES = frozenset({"delivered", "retry", "failed", "lost"})
#: Who searched (``search_duration``): the vector store search route, or the file_search tool.
SEARCH_SOURCES = frozenset({"api", "file_search"})
#: How a search ranked: by words, by vectors, or both fused.
SEARCH_MODES = frozenset({"words", "vectors", "hybrid"})
#: How a code interpreter call ended (``sandbox_call``): ran to its end, raised, ran past its
#: time, was killed at a limit (memory, CPU, disk, processes), or its sandbox died.
SANDBOX_OUTCOMES = frozenset({"ok", "error", "timeout", "limit", "crashed"})
_SANDBOX_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class Counts(Protocol):
    """Token counts, as ``types.Usage`` and ``events.UsagePart`` keep them."""

    input_tokens: int
    output_tokens: int


class UpstreamCall:
    """One model call as the metrics see it; this base records nothing."""

    __slots__ = ()

    def first_token(self) -> None:
        """The model sent its first text, reasoning or tool call."""

    def counted(self, usage: Counts) -> None:
        """A usage part of the call's stream (running totals; a zero says nothing)."""

    def failed(self, error: BaseException) -> None:
        """The call ended with ``error`` (a cancel, or a caller that stopped reading, is
        not an error)."""

    def finish(self, usage: Counts | None = None) -> None:
        """The call is over; ``usage`` (else what ``counted`` saw) is its tokens."""


_NO_CALL = UpstreamCall()


class Metrics:
    """The hooks the engine and the server call; this base records nothing (no
    ``prometheus-client``). ``parley.tracing.Traced`` wraps them to add spans."""

    enabled = False

    def upstream_call(
        self, provider: str, model: str, *, started: float | None = None
    ) -> UpstreamCall:
        """A model call to ``model`` of ``provider`` begun now (or at ``started``, a
        ``time.perf_counter()`` reading)."""
        return _NO_CALL

    def retried(self, provider: str) -> None:
        """A call to ``provider`` is tried again (``transport.RetryPolicy``)."""

    def turn_started(self, run_id: str, thread_id: str, model: str) -> None:
        """A turn of ``run_id`` starts, in the task that runs it (its ids are for traces,
        never metric labels)."""

    def turn_ended(self, status: str) -> None:
        """The turn the current task runs left its run in ``status``."""

    def hosted_call(
        self, kind: str, server: str, operation: str, seconds: float, failed: bool
    ) -> None:
        """A hosted tool's step (``engine.hosted``) ended after ``seconds``: ``operation``
        ``list`` or ``call`` of ``kind`` (``mcp``) on ``server``, a label the operator
        registered or ``other`` (a server a request named by URL: never a label)."""

    def sandbox_call(self, outcome: str, seconds: float) -> None:
        """A code interpreter call ended ``outcome`` (``SANDBOX_OUTCOMES``) after ``seconds``
        in its sandbox."""

    def local_model_up(self, up: bool) -> None:
        """The local model server (``providers.llama_server``) answers (True) or not."""

    def local_model_restarted(self) -> None:
        """The local model server died and is started again."""

    def local_model_speed(self, tokens_per_second: float) -> None:
        """A local model's answer came at ``tokens_per_second`` after its first token."""

    def containers_alive(self, count: int) -> None:
        """Containers whose Python runs on this replica now."""

    def container_made(self) -> None:
        """A container was made (through ``/v1/containers``, or by a tool for a thread)."""

    def follower(self, change: int) -> None:
        """A follower of a run's events attached (1) or left (-1)."""

    def loop_lag(self, seconds: float) -> None:
        """The event loop ran a timer ``seconds`` late."""

    def ingestion_queue(self, waiting: int) -> None:
        """Vector store files ``in_progress`` now, in the whole database (the ingestion
        worker reads it each round)."""

    def file_indexed(self, outcome: str, seconds: float | None) -> None:
        """The ingestion worker ended a file ``completed``, ``failed`` or ``lost`` after
        ``seconds`` of work (None: it ended without work, ``failed`` after its attempts)."""

    def webhook_attempt(self, outcome: str) -> None:
        """The webhook worker made an attempt: ``delivered``, ``retry`` (it failed and is
        retried), ``failed`` (it failed and was the last), or ``lost`` (its claim went
        meanwhile: replayed or deleted)."""

    def search_duration(self, seconds: float, *, source: str = "api", mode: str = "hybrid") -> None:
        """A search of vector stores took ``seconds``: ``source`` ``api`` (the search
        route) or ``file_search`` (the tool), ``mode`` ``words``, ``vectors`` or ``hybrid``."""

    def watch_pool(self, pool: Any) -> None:
        """Report ``pool`` (a SQLAlchemy pool) at every scrape."""

    def request(self, route: str, method: str, status: int, seconds: float) -> None:
        """An HTTP request was answered."""

    def stream(self, route: str, change: int) -> None:
        """An event stream (``text/event-stream`` answer) opened (1) or closed (-1)."""

    def exposition(self) -> tuple[bytes, str]:
        """The metrics in the text format, and its content type."""
        return b"", "text/plain; version=0.0.4; charset=utf-8"


def create_metrics(known: KnownModel | None = None) -> Metrics:
    """The app's metrics: Prometheus ones when ``prometheus-client`` is installed, whose
    model labels are the models ``known`` knows."""
    try:
        import prometheus_client  # noqa: F401 - only whether it is there
    except ImportError:
        return Metrics()
    return PrometheusMetrics(known)


class PrometheusMetrics(Metrics):
    enabled = True

    def __init__(self, known: KnownModel | None = None) -> None:
        """``known``: which models may be labels (without it, none: every model is
        ``other``)."""
        self._known = known
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = registry = CollectorRegistry(auto_describe=True)
        self.requests = Histogram(
            "parley_http_request_duration_seconds",
            "HTTP requests by route template, method and status: seconds to the end of the "
            "answer (of the whole stream for event streams).",
            ["route", "method", "status"],
            buckets=_REQUEST_BUCKETS,
            registry=registry,
        )
        self.streams = Gauge(
            "parley_open_streams",
            "Event streams (text/event-stream answers) open now, by route template.",
            ["route"],
            registry=registry,
        )
        self.followers = Gauge(
            "parley_run_followers",
            "Readers of run event logs attached now (resumed or watched streams).",
            registry=registry,
        )
        self.turns = Counter(
            "parley_turns",
            "Turns ended, by the status they left the run in.",
            ["status"],
            registry=registry,
        )
        models = ["provider", "model"]
        self.first_tokens = Histogram(
            "parley_upstream_first_token_seconds",
            "Seconds from a model call's start to its first text, reasoning or tool call.",
            models,
            buckets=_FIRST_TOKEN_BUCKETS,
            registry=registry,
        )
        self.calls = Histogram(
            "parley_upstream_call_duration_seconds",
            "Seconds from a model call's start to its end, whatever the end.",
            models,
            buckets=_CALL_BUCKETS,
            registry=registry,
        )
        self.errors = Counter(
            "parley_upstream_errors",
            "Model calls that failed, by error code.",
            [*models, "type"],
            registry=registry,
        )
        self.retries = Counter(
            "parley_upstream_retries",
            "Model calls tried again before their first token (refused connection, 429, 5xx).",
            ["provider"],
            registry=registry,
        )
        self.tokens = Counter(
            "parley_upstream_tokens",
            "Tokens read (input) and written (output) by model calls, as runs report them.",
            [*models, "direction"],
            registry=registry,
        )
        self.hosted = Histogram(
            "parley_hosted_tool_duration_seconds",
            "Seconds a step of a tool the server runs took (an MCP server's listing or call), "
            "by kind, server (a registered label, else other), operation and outcome.",
            ["kind", "server", "operation", "outcome"],
            buckets=_CALL_BUCKETS,
            registry=registry,
        )
        self.sandbox_calls = Histogram(
            "parley_sandbox_call_duration_seconds",
            "Seconds a code interpreter call ran in its sandbox, by outcome (ok, error, "
            "timeout, limit: killed at a memory, CPU, disk or process limit, crashed).",
            ["outcome"],
            buckets=_SANDBOX_BUCKETS,
            registry=registry,
        )
        self.sandboxes = Gauge(
            "parley_containers_alive",
            "Containers whose sandboxed Python runs on this replica now.",
            registry=registry,
        )
        self.containers_made = Counter(
            "parley_containers_created",
            "Containers made, through /v1/containers or by a code_interpreter tool.",
            registry=registry,
        )
        self.local_up = Gauge(
            "parley_local_model_up",
            "1 while the local model server (llama-server) this replica runs answers, else 0.",
            registry=registry,
        )
        self.local_restarts = Counter(
            "parley_local_model_restarts",
            "Times the local model server died and was started again.",
            registry=registry,
        )
        self.local_speed = Histogram(
            "parley_local_model_tokens_per_second",
            "Output tokens per second of local model answers, after their first token.",
            buckets=_SPEED_BUCKETS,
            registry=registry,
        )
        self.lag = Histogram(
            "parley_event_loop_lag_seconds",
            "How late the event loop ran a timer: time it spent on other work meanwhile.",
            buckets=_LAG_BUCKETS,
            registry=registry,
        )
        self.ingest_queue = Gauge(
            "parley_ingestion_queue",
            "Vector store files waiting to be indexed or being indexed (in_progress), in the "
            "whole database, as this replica last read it.",
            registry=registry,
        )
        self.webhook_attempts = Counter(
            "parley_webhook_attempts",
            "Webhook delivery attempts this replica made, by outcome (delivered; retry: it "
            "failed and is retried; failed: it failed and was the last; lost: the delivery was "
            "replayed or deleted meanwhile).",
            ["outcome"],
            registry=registry,
        )
        self.files_indexed = Counter(
            "parley_files_indexed",
            "Vector store files the ingestion worker ended, by outcome (completed, failed, or "
            "lost: cancelled, attached again or deleted while it worked, or given back when "
            "the server stopped).",
            ["outcome"],
            registry=registry,
        )
        self.ingest_seconds = Histogram(
            "parley_ingestion_duration_seconds",
            "Seconds from a file's claim to its end (read, extracted, chunked, embedded, "
            "stored), by outcome.",
            ["outcome"],
            buckets=_INGEST_BUCKETS,
            registry=registry,
        )
        self.searches = Histogram(
            "parley_search_duration_seconds",
            "Seconds a search of vector stores took, by source (api, file_search) and mode "
            "(words, vectors, hybrid).",
            ["source", "mode"],
            buckets=_SEARCH_BUCKETS,
            registry=registry,
        )
        self.pool_checked_out = Gauge(
            "parley_db_pool_checked_out",
            "Database connections checked out of the pool (each database thread keeps one).",
            registry=registry,
        )
        self.pool_size = Gauge(
            "parley_db_pool_size", "Connections the database pool holds.", registry=registry
        )
        #: The pairs found known (the rule is asked once a pair).
        self._models: set[tuple[str, str]] = set()

    def model_labels(self, provider: str, model: str) -> tuple[str, str]:
        """``(provider, model)`` for a model the server knows, else ``(provider,
        "other")``: names clients make up add no series."""
        pair = (provider, model)
        if pair in self._models:
            return pair
        if self._known is None or not self._known(provider, model):
            return provider, OTHER
        self._models.add(pair)
        return pair

    def upstream_call(
        self, provider: str, model: str, *, started: float | None = None
    ) -> UpstreamCall:
        return _TimedCall(self, self.model_labels(provider, model), started)

    def retried(self, provider: str) -> None:
        self.retries.labels(provider).inc()

    def turn_ended(self, status: str) -> None:
        self.turns.labels(status).inc()

    def hosted_call(
        self, kind: str, server: str, operation: str, seconds: float, failed: bool
    ) -> None:
        outcome = "error" if failed else "ok"
        self.hosted.labels(kind, server, operation, outcome).observe(seconds)

    def sandbox_call(self, outcome: str, seconds: float) -> None:
        self.sandbox_calls.labels(outcome if outcome in SANDBOX_OUTCOMES else "crashed").observe(
            seconds
        )

    def local_model_up(self, up: bool) -> None:
        self.local_up.set(1 if up else 0)

    def local_model_restarted(self) -> None:
        self.local_restarts.inc()

    def local_model_speed(self, tokens_per_second: float) -> None:
        self.local_speed.observe(tokens_per_second)

    def containers_alive(self, count: int) -> None:
        self.sandboxes.set(count)

    def container_made(self) -> None:
        self.containers_made.inc()

    def follower(self, change: int) -> None:
        self.followers.inc(change)

    def loop_lag(self, seconds: float) -> None:
        self.lag.observe(seconds)

    def ingestion_queue(self, waiting: int) -> None:
        self.ingest_queue.set(waiting)

    def file_indexed(self, outcome: str, seconds: float | None) -> None:
        outcome = outcome if outcome in INGEST_OUTCOMES else OTHER
        self.files_indexed.labels(outcome).inc()
        if seconds is not None:
            self.ingest_seconds.labels(outcome).observe(seconds)

    def webhook_attempt(self, outcome: str) -> None:
        self.webhook_attempts.labels(outcome if outcome in WEBHOOK_OUTCOMES else OTHER).inc()

    def search_duration(self, seconds: float, *, source: str = "api", mode: str = "hybrid") -> None:
        source = source if source in SEARCH_SOURCES else OTHER
        mode = mode if mode in SEARCH_MODES else OTHER
        self.searches.labels(source, mode).observe(seconds)

    def watch_pool(self, pool: Any) -> None:
        checked_out: Callable[[], int] | None = getattr(pool, "checkedout", None)
        size: Callable[[], int] | None = getattr(pool, "size", None)
        if checked_out is not None and size is not None:
            self.pool_checked_out.set_function(checked_out)
            self.pool_size.set_function(size)

    def request(self, route: str, method: str, status: int, seconds: float) -> None:
        method = method if method in _METHODS else OTHER
        self.requests.labels(route, method, str(status)).observe(seconds)

    def stream(self, route: str, change: int) -> None:
        self.streams.labels(route).inc(change)

    def exposition(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class _TimedCall(UpstreamCall):
    __slots__ = ("_input", "_labels", "_metrics", "_output", "_started")

    def __init__(
        self, metrics: PrometheusMetrics, labels: tuple[str, str], started: float | None
    ) -> None:
        self._metrics = metrics
        self._labels = labels
        self._started = time.perf_counter() if started is None else started
        self._input = self._output = 0

    def first_token(self) -> None:
        seconds = time.perf_counter() - self._started
        self._metrics.first_tokens.labels(*self._labels).observe(seconds)

    def counted(self, usage: Counts) -> None:
        self._input = usage.input_tokens or self._input
        self._output = usage.output_tokens or self._output

    def failed(self, error: BaseException) -> None:
        kind = error_type(error)
        if kind is not None:
            self._metrics.errors.labels(*self._labels, kind).inc()

    def finish(self, usage: Counts | None = None) -> None:
        metrics, labels = self._metrics, self._labels
        metrics.calls.labels(*labels).observe(time.perf_counter() - self._started)
        tokens_in = usage.input_tokens if usage is not None else self._input
        tokens_out = usage.output_tokens if usage is not None else self._output
        if tokens_in:
            metrics.tokens.labels(*labels, "input").inc(tokens_in)
        if tokens_out:
            metrics.tokens.labels(*labels, "output").inc(tokens_out)


def error_type(error: BaseException) -> str | None:
    """What a model call failed with: a ``ParleyError``'s code, else ``internal_error``;
    None for a cancel, or a caller that stopped reading, which are no failures."""
    if isinstance(error, asyncio.CancelledError | GeneratorExit):
        return None
    code = getattr(error, "code", None)
    return code if isinstance(code, str) else "internal_error"


# ------------------------------------------------------------------------------ HTTP


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

        # It only awaits ``send`` for a body: a stream's tap may drive it at once
        # (``kit.direct_write``).
        sending.inner_send = send  # type: ignore[attr-defined]
        try:
            await self.app(scope, receive, sending)
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
