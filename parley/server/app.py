"""The app factory. No I/O at import time: the lifespan opens the database, migrates it,
and starts the engine; shutdown settles running turns."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from parley import __version__
from parley.config import Settings
from parley.engine import Engine, UsageCounter
from parley.errors import AuthenticationFailed
from parley.mcp.servers import address_policy
from parley.metrics import Metrics, create_metrics
from parley.metrics_http import (
    UNAUTHORIZED_CODE,
    UNAUTHORIZED_MESSAGE,
    RequestMetrics,
    RouteNames,
    scrape_allowed,
    serve_metrics,
)
from parley.providers.registry import ProviderRegistry
from parley.server.cors import Cors, RouteMethods
from parley.server.deps import KeyCache, Services
from parley.server.errors import install_error_handlers
from parley.server.faces.assistants import assistants, threads
from parley.server.faces.assistants import runs as thread_runs
from parley.server.faces.chat import embeddings, models
from parley.server.faces.chat import routes as chat
from parley.server.faces.chat.requests import ChatCompletionCreate
from parley.server.faces.containers import routes as containers
from parley.server.faces.files import routes as files
from parley.server.faces.files import uploads
from parley.server.faces.kit.forms import body_limits
from parley.server.faces.native import runs, turns, usage, users
from parley.server.faces.native.schemas import CompletionRequest, ProcessRequest
from parley.server.faces.responses import conversation_routes as conversations
from parley.server.faces.responses import routes as responses
from parley.server.faces.responses.protocol import ResponseCreate
from parley.server.faces.vector_stores import routes as vector_stores
from parley.server.faces.webhooks import routes as webhooks
from parley.server.fastpaths import FastPaths, FastRoute
from parley.server.limits import RequestGuard
from parley.server.logs import AccessLog
from parley.server.openapi import install_openapi
from parley.server.ratelimit import Limits
from parley.server.readiness import Readiness
from parley.server.route_warming import build_routes
from parley.server.usage import KeyBudgets
from parley.server.watchdog import LoopWatchdog, measure_loop_lag
from parley.store.db import Database

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Tracer

log = logging.getLogger("parley.server")


#: The API faces' routers, flat turn endpoints first: routing walks this list on every
#: request; the Assistants runs before threads (``/threads/runs`` is not a thread's id).
FACES = (
    turns,
    responses,
    chat,
    embeddings,
    conversations,
    runs,
    thread_runs,
    threads,
    assistants,
    users,
    usage,
    models,
    files,
    uploads,
    vector_stores,
    containers,
    webhooks,
)


def create_app(
    settings: Settings | None = None,
    *,
    providers: ProviderRegistry | None = None,
    tracer_provider: TracerProvider | None = None,
) -> FastAPI:
    """The Parley app. Traces go to ``tracer_provider`` when given, else where the
    OpenTelemetry variables say (``parley.tracing``); metrics: ``parley.metrics``."""
    settings = settings or Settings()
    registry = providers or ProviderRegistry(settings)
    metrics = create_metrics(registry.knows)
    traces = tracer_provider or _traces_wanted(settings)
    tracer = None
    if traces is not None:  # OpenTelemetry is imported only when traces are on
        from parley.tracing import Traced, tracer_of

        tracer = tracer_of(traces)
        metrics = Traced(metrics, tracer)
    registry.metrics = metrics
    app = ParleyApp(
        title="Parley",
        version=__version__,
        summary="Self-hostable assistants platform: threads, runs, streaming and tool calls.",
        lifespan=_lifespan(settings, registry, metrics, traces, ours=tracer_provider is None),
    )
    install_error_handlers(app)
    install_openapi(app)
    _health(app, settings, metrics)
    for face in FACES:
        app.include_router(face.router, prefix="/v1")
    app.fast_paths = fast = FastPaths(app, _fast_routes())
    face_routes = [r for face in FACES for r in face.router.routes]
    app.state.route_methods = RouteMethods.of(  # ``Allow``: errors._allowed_methods
        [*(("/v1", r) for r in face_routes), *(("", r) for r in app.routes)]
    )
    names = RouteNames("/v1", face_routes, fast.routes)
    fast_app: ASGIApp = fast
    for layer, options in _middleware(settings, metrics, tracer, names):
        app.add_middleware(layer, **options)
        fast_app = layer(fast_app, **options)
    app.fast_app = AccessLog(fast_app)  # outermost; the app's own: build_middleware_stack
    return app


def _routes_built(building: asyncio.Future[int]) -> None:
    """Log a failure to build the routes ahead (each is then built at its first request,
    as FastAPI would have)."""
    if not building.cancelled() and (error := building.exception()) is not None:
        log.warning("could not build the routes ahead of their first requests: %r", error)


def _warmed(warming: asyncio.Future[list[str]]) -> None:
    """Log what ``ProviderRegistry.warm`` imported; an adapter that fails to import says
    so again, in its own words, at its first call."""
    if warming.cancelled():
        return
    if (error := warming.exception()) is not None:
        log.warning("the provider adapters could not be imported ahead: %s", error)
    elif modules := warming.result():
        log.debug("imported ahead of the first model call: %s", ", ".join(modules))


def _lifespan(
    settings: Settings,
    registry: ProviderRegistry,
    metrics: Metrics,
    traces: TracerProvider | None,
    *,
    ours: bool,
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Start-up and shutdown: the database (migrated), the engine, usage counting, limits,
    metrics; shutdown settles running turns. With ``ours``, ``traces`` is the app's own, and
    what is left of it is sent at the end."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        watchdog = None
        if settings.loop_watchdog_seconds > 0:
            watchdog = LoopWatchdog(settings.loop_watchdog_seconds)
            watchdog.start()
        # Starlette hands sync work (an upload's spooled file) to anyio, which imports its
        # backend on first use, on the loop: a cold import there held one request's loop for
        # a second on a loaded machine. Import it now, off the loop.
        await asyncio.to_thread(importlib.import_module, "anyio._backends._asyncio")
        if settings.web_search_url:  # the search client's aiohttp, and all it imports
            await asyncio.to_thread(importlib.import_module, "parley.guarded_http")
        # The adapters of the providers it will call, likewise, while it starts serving:
        # a request that needs one meanwhile waits only for what is left of the import.
        warming = asyncio.ensure_future(asyncio.to_thread(registry.warm))
        warming.add_done_callback(_warmed)
        db = Database(settings.database_url, pool_size=settings.database_pool_size)
        await db.migrate()
        usage = UsageCounter(db, settings.tuning.usage_flush_seconds)
        engine = Engine(db, registry, settings, metrics=metrics, usage=usage)
        await engine.start()
        if settings.local_model_start:
            registry.start_local()
        metrics.watch_pool(db.engine.pool)
        lag = asyncio.create_task(measure_loop_lag(metrics.loop_lag)) if metrics.enabled else None
        scrapes = None
        if metrics.enabled and settings.metrics_port:
            scrapes = await serve_metrics(
                metrics, settings.host, settings.metrics_port, settings.metrics_token
            )
        budgets = KeyBudgets(db, usage, settings.tuning.budget_cache_seconds)
        limits = Limits(settings, budgets)
        await limits.start()
        usage.start()
        app.state.services = Services(
            settings=settings,
            db=db,
            providers=registry,
            engine=engine,
            keys=KeyCache(settings.tuning.auth_cache_seconds),
            limits=limits,
            usage=usage,
            mcp_addresses=address_policy(settings),
        )
        # FastAPI's routes, which it would build at each router's first request, on the
        # loop (route_warming): on a thread, once the rest of start-up is done, so as not
        # to slow it.
        routes_built = asyncio.ensure_future(asyncio.to_thread(build_routes, app))
        routes_built.add_done_callback(_routes_built)
        try:
            yield
        finally:
            if scrapes is not None:
                scrapes.close()
            if traces is not None and ours:  # ours: send what is left
                await asyncio.to_thread(traces.shutdown)
            if lag is not None:
                lag.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await lag
            await engine.stop()
            await usage.aclose()
            await limits.aclose()
            await registry.aclose()
            await db.dispose()
            if watchdog is not None:
                await watchdog.stop()

    return lifespan


def _health(app: FastAPI, settings: Settings, metrics: Metrics) -> None:
    """``/healthz``, ``/readyz``, and ``/metrics`` when metrics are on and have no port of
    their own."""

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    readiness = Readiness(settings)

    @app.get("/readyz", tags=["health"])
    async def readyz(request: Request) -> JSONResponse:
        """Whether to send this replica traffic (``server.readiness``)."""
        services = request.app.state.services
        status, body = await readiness.check(services.db, services.engine)
        return JSONResponse(body, status_code=status)

    if metrics.enabled and not settings.metrics_port:

        @app.get("/metrics", include_in_schema=False)
        async def scrape(request: Request) -> Response:
            """Prometheus metrics (``docs/metrics.md``); with ``metrics_token`` set, only
            for its bearer."""
            if not scrape_allowed(settings.metrics_token, request.headers.get("authorization")):
                raise AuthenticationFailed(UNAUTHORIZED_MESSAGE, code=UNAUTHORIZED_CODE)
            body, kind = metrics.exposition()
            return Response(body, media_type=kind)


def _fast_routes() -> dict[str, FastRoute]:
    """The turn-starting POSTs answered before FastAPI's layers (``server.fastpaths``)."""
    return {
        "/v1/chat/completions": FastRoute(
            ChatCompletionCreate, chat.create_chat_completion, idempotent=False
        ),
        "/v1/process": FastRoute(ProcessRequest, turns.process_turn),
        "/v1/completions": FastRoute(CompletionRequest, turns.completion_turn),
        "/v1/responses": FastRoute(ResponseCreate, responses.create_once, headers=True),
    }


def _middleware(
    settings: Settings, metrics: Metrics, tracer: Tracer | None, names: RouteNames
) -> list[tuple[Callable[..., ASGIApp], dict[str, Any]]]:
    """The one middleware stack, innermost first, put around the app's routes and around
    its fast paths alike: the request guard (body size), CORS (around it: every answer,
    413 and 429 too, carries CORS), metrics (around CORS: every answer is counted,
    preflights too), traces."""
    layers: list[tuple[Callable[..., ASGIApp], dict[str, Any]]] = [
        (RequestGuard, {"max_bytes": settings.max_body_bytes, "large": body_limits(settings)})
    ]
    if settings.cors_origins:
        layers.append((Cors, {"origins": settings.cors_origins}))
    if metrics.enabled:
        layers.append((RequestMetrics, {"metrics": metrics, "routes": names}))
    if tracer is not None:
        from parley.tracing import TraceRequests

        layers.append((TraceRequests, {"tracer": tracer, "routes": names}))
    return layers


def _traces_wanted(settings: Settings) -> TracerProvider | None:
    """The tracer provider the OpenTelemetry variables ask for (``parley.tracing``); None
    when they ask for none, or OpenTelemetry is not installed (said in the log)."""
    if not settings.trace_exporters():
        return None
    try:
        from parley.tracing import tracer_provider
    except ImportError:
        log.warning("OTEL_* variables ask for traces, but OpenTelemetry is not installed")
        return None
    return tracer_provider(settings)


class ParleyApp(FastAPI):
    """The FastAPI app, but for the POSTs that start a stream (``fast_paths``): those go
    straight to ``fast_app`` (the fast paths behind the same request guard and CORS as the
    app's other paths), where every microsecond shows in the time to the first chunk."""

    fast_paths: FastPaths | None = None
    fast_app: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        fast = self.fast_paths
        if fast is not None and self.fast_app is not None and fast.serves(scope):
            await self.fast_app(scope, receive, send)
            return
        await super().__call__(scope, receive, send)

    def build_middleware_stack(self) -> ASGIApp:
        # Around Starlette's own outermost layer too, so that even its last-resort 500
        # carries the request id and is logged.
        return AccessLog(super().build_middleware_stack())


__all__ = ["create_app"]
