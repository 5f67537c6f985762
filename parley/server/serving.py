"""The uvicorn server of the Parley app, as ``parley serve`` and the embedded server run it.

Logging is the caller's to set up (``parley.controls.log_to_stderr``)."""

from __future__ import annotations

import socket

import uvicorn
from fastapi import FastAPI

from parley.config import Settings
from parley.server.app import create_app


class AppServer(uvicorn.Server):
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


def build_server(settings: Settings) -> AppServer:
    """The uvicorn server of the Parley app for ``settings`` (not started); its shutdown
    stops the engine first, so running turns settle."""
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,
        timeout_graceful_shutdown=10,
        lifespan="on",
    )
    return AppServer(config, app)
