"""The uvicorn server of the Parley app, as ``parley serve`` and the embedded server run it.

Logging is the caller's to set up (``parley.controls.log_to_stderr``)."""

from __future__ import annotations

import asyncio
import gc
import socket
from typing import Any, cast

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

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        # What loading made (modules, classes, the app: most of what the server will ever
        # hold) goes to the garbage collector's permanent generation, so that its passes
        # skip it from now on (a full pass over it costs tens of milliseconds of the event
        # loop), and collection resumes: ``parley serve`` loads with it off (``cli.main``).
        gc.freeze()
        gc.enable()
        await super().serve(sockets)

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
        ws=cast("type[asyncio.Protocol]", _websocket_protocol),
    )
    return AppServer(config, app)


def _websocket_protocol(**kwargs: Any) -> asyncio.Protocol:
    """uvicorn's own WebSocket protocol (what its ``ws="auto"`` picks), imported at the
    first WebSocket upgrade instead of at start: the ``websockets`` library costs a start
    about 7 ms and 0.5 MiB, and only the Responses API's WebSocket uses it."""
    from uvicorn.protocols.websockets.auto import AutoWebSocketsProtocol

    if AutoWebSocketsProtocol is None:  # neither websockets nor wsproto: a broken install
        raise RuntimeError("no WebSocket library: install uvicorn[standard]")
    return AutoWebSocketsProtocol(**kwargs)
