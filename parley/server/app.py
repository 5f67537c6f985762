"""The app factory. No I/O at import time: the lifespan opens the database, migrates it,
and starts the engine; shutdown settles running turns."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from parley import __version__
from parley.config import Settings
from parley.engine import Engine
from parley.providers.registry import ProviderRegistry
from parley.server.chat.requests import ChatCompletionCreate
from parley.server.cors import Cors
from parley.server.deps import KeyCache, Services
from parley.server.errors import install_error_handlers
from parley.server.fastpaths import FastPaths, FastRoute
from parley.server.limits import RequestGuard
from parley.server.openapi import install_openapi
from parley.server.ratelimit import Limits
from parley.server.responses.protocol import ResponseCreate
from parley.server.routes import (
    assistants,
    chat,
    conversations,
    models,
    responses,
    runs,
    thread_runs,
    threads,
    turns,
    users,
)
from parley.server.schemas import CompletionRequest, ProcessRequest
from parley.server.usage import UsageCounter
from parley.server.watchdog import LoopWatchdog
from parley.store.db import Database


def create_app(
    settings: Settings | None = None, *, providers: ProviderRegistry | None = None
) -> FastAPI:
    settings = settings or Settings()
    registry = providers or ProviderRegistry(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        watchdog = None
        if settings.loop_watchdog_seconds > 0:
            watchdog = LoopWatchdog(settings.loop_watchdog_seconds)
            watchdog.start()
        db = Database(settings.database_url)
        await db.migrate()
        engine = Engine(db, registry, settings)
        await engine.start()
        limits = Limits(settings)
        await limits.start()
        usage = UsageCounter(db, settings.usage_flush_seconds)
        usage.start()
        app.state.services = Services(
            settings=settings,
            db=db,
            providers=registry,
            engine=engine,
            keys=KeyCache(settings.auth_cache_seconds),
            limits=limits,
            usage=usage,
        )
        try:
            yield
        finally:
            await engine.stop()
            await usage.aclose()
            await limits.aclose()
            await registry.aclose()
            await db.dispose()
            if watchdog is not None:
                await watchdog.stop()

    app = ParleyApp(
        title="Parley",
        version=__version__,
        summary="Self-hostable assistants platform: threads, runs, streaming and tool calls.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    install_openapi(app)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    # Flat, turn endpoints first: routing walks this list on every request.
    routers = (
        turns,
        responses,
        chat,
        conversations,
        runs,
        thread_runs,  # before threads: /threads/runs is not a thread's id
        threads,
        assistants,
        users,
        models,
    )
    for module in routers:
        app.include_router(module.router, prefix="/v1")
    app.add_middleware(RequestGuard, max_bytes=settings.max_body_bytes)
    app.fast_paths = fast = FastPaths(
        app,
        {
            "/v1/chat/completions": FastRoute(
                ChatCompletionCreate, chat.create_chat_completion, idempotent=False
            ),
            "/v1/process": FastRoute(ProcessRequest, turns.process_turn),
            "/v1/completions": FastRoute(CompletionRequest, turns.completion_turn),
            "/v1/responses": FastRoute(ResponseCreate, responses.create_once),
        },
    )
    app.fast_app = RequestGuard(fast, max_bytes=settings.max_body_bytes)
    if settings.cors_origins:  # outermost: every answer, 413 and 429 too, carries CORS
        app.add_middleware(Cors, origins=settings.cors_origins)
        app.fast_app = Cors(app.fast_app, origins=settings.cors_origins)
    return app


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


__all__ = ["create_app"]
