"""The app factory. No I/O at import time: the lifespan opens the database, migrates it,
and starts the engine; shutdown settles running turns."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from parley import __version__
from parley.config import Settings
from parley.engine import Engine
from parley.providers.registry import ProviderRegistry
from parley.server.cors import Cors
from parley.server.deps import KeyCache, Services
from parley.server.errors import install_error_handlers
from parley.server.limits import RequestGuard
from parley.server.openapi import install_openapi
from parley.server.ratelimit import Limits
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
from parley.server.routes.chat import ChatFastPath
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
        app.state.services = Services(
            settings=settings,
            db=db,
            providers=registry,
            engine=engine,
            keys=KeyCache(settings.auth_cache_seconds),
            limits=limits,
        )
        try:
            yield
        finally:
            await engine.stop()
            await limits.aclose()
            await registry.aclose()
            await db.dispose()
            if watchdog is not None:
                await watchdog.stop()

    app = FastAPI(
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
    app.add_middleware(ChatFastPath)  # inside the guard: its limits apply
    app.add_middleware(RequestGuard, max_bytes=settings.max_body_bytes)
    if settings.cors_origins:  # outermost: every answer, 413 and 429 too, carries CORS
        app.add_middleware(Cors, origins=settings.cors_origins)
    return app


__all__ = ["create_app"]
