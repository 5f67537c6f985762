"""Running the server: ``parley serve`` and the ``make run`` banner."""

from __future__ import annotations

import asyncio
import logging
import socket

import uvicorn
from fastapi import FastAPI

from parley.config import Settings
from parley.server import create_app


class _Server(uvicorn.Server):
    """Stops the engine first when shutting down: running turns end ``incomplete`` at once,
    so their streams finish with ``done`` instead of holding the shutdown until its timeout."""

    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self.parley_app = app

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        services = getattr(self.parley_app.state, "services", None)
        if services is not None:
            await services.engine.stop()
        await super().shutdown(sockets)


def build_server(settings: Settings) -> _Server:
    """The uvicorn server of the Parley app for ``settings`` (not started); its shutdown
    stops the engine first, so running turns settle."""
    app = create_app(settings)
    return _Server(_config(settings, app), app)


def _config(settings: Settings, app: FastAPI) -> uvicorn.Config:
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(levelname)s %(name)s: %(message)s"
    )
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,
        timeout_graceful_shutdown=10,
        lifespan="on",
    )


def serve(settings: Settings) -> int:
    server = build_server(settings)
    server.run()
    return 0 if server.started else 1


def run_local(settings: Settings) -> int:
    """Serve, then print the URL, a working API key and an SDK example."""
    return asyncio.run(_run_local(settings))


async def _run_local(settings: Settings) -> int:
    from parley.cli.local import ensure_local_key
    from parley.store.db import Database

    db = Database(settings.database_url)
    try:
        await db.migrate()
        key = await ensure_local_key(db)
    finally:
        await db.dispose()
    server = build_server(settings)
    task = asyncio.create_task(server.serve())
    while not server.started and not task.done():  # noqa: ASYNC110 (uvicorn offers no event)
        await asyncio.sleep(0.05)
    if server.started:
        print(
            _banner(f"http://{settings.host}:{settings.port}", key, settings.database_url),
            flush=True,
        )
    await task
    return 0 if server.started else 1


def _banner(url: str, key: str, database_url: str) -> str:
    return f"""
Parley is running at {url}   (database: {database_url})
API key: {key}

Try it from Python (Ctrl+C here stops the server):

    from parley import Client

    client = Client(base_url="{url}", api_key="{key}")
    bot = client.assistants.create(name="Demo", model="demo/parley")
    result = client.respond(assistant_id=bot.id, content="Hello!")
    print(result.text)

Or over HTTP:

    curl -N {url}/v1/process -H "Authorization: Bearer {key}" \\
      -H "Content-Type: application/json" \\
      -d '{{"assistant_id": "<id from above>", "content": "Hello!"}}'
"""
