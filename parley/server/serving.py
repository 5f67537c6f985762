"""The uvicorn server of the Parley app, as ``parley serve`` and the embedded server run it.

Logging is the caller's to set up (``parley.controls.log_to_stderr``)."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import logging
import signal
import socket
import time
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, Any, cast

import uvicorn
from fastapi import FastAPI

from parley.config import Settings
from parley.server import head_limits, logs
from parley.server.app import create_app
from parley.wake import Wake

if TYPE_CHECKING:
    from parley.providers.registry import ProviderRegistry
    from parley.server.deps import Services

log = logging.getLogger("parley.server")

#: Seconds between the server loop's ticks while it drains, and otherwise.
TICK = 0.1
IDLE_TICK = 1.0


class AppServer(uvicorn.Server):
    """Drains on SIGTERM, then stops the engine first when shutting down.

    Draining (for up to ``drain_seconds``): new turns and chat completions are refused (503
    ``server_draining``, ``/readyz`` says ``draining``) while running turns, chat
    completions and their streams go on; the server shuts down once none is left. Another
    SIGTERM, or a SIGINT, stops at once. Shutting down, turns still running end
    ``incomplete`` at once, so their streams finish with ``done``, and chat completions end
    with an error (``server_shutdown``: an error chunk and ``[DONE]``), instead of holding
    the shutdown until its timeout."""

    def __init__(self, config: uvicorn.Config, app: FastAPI, drain_seconds: float = 0.0) -> None:
        super().__init__(config)
        self.parley_app = app
        self.drain_seconds = drain_seconds
        #: ``time.monotonic()`` by which the drain ends, once it began.
        self.drain_until: float | None = None
        #: Called once the server listens and its app has started (``parley serve`` says
        #: where it listens).
        self.on_started: Callable[[], None] | None = None
        #: Wakes ``main_loop`` before its next tick (a signal came).
        self._tick = Wake()
        self._loop: asyncio.AbstractEventLoop | None = None

    async def main_loop(self) -> None:
        """uvicorn's loop, ticking once a second instead of ten times (the ``Date`` header
        and the drain's watch), and at once when a signal comes (``handle_exit``); ten
        times a second while draining, to stop as soon as nothing runs. An idle server
        wakes this much less."""
        self._loop = asyncio.get_running_loop()
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            draining = self.drain_until is not None
            await self._tick.wait(TICK if draining else IDLE_TICK)
            self._tick.clear()
            # uvicorn renews the Date header on the ticks that are a multiple of ten.
            counter = (counter + (1 if draining else 10 - counter % 10)) % 864000
            should_exit = await self.on_tick(counter)

    def _wake_tick(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._tick.set)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._wake_tick()
        services = self._services()
        if (
            sig != signal.SIGTERM
            or self.drain_until is not None
            or self.should_exit
            or self.drain_seconds <= 0
            or services is None
        ):
            super().handle_exit(sig, frame)
            return
        # A signal handler: set flags only; ``on_tick`` watches the drain.
        self._captured_signals.append(sig)  # re-raised after the shutdown, as uvicorn does
        services.engine.draining = True
        self.drain_until = time.monotonic() + self.drain_seconds
        running = _running(services)
        level = logging.WARNING if running else logging.INFO
        # In a context of its own: the signal may land while a turn's code runs, whose
        # request and run ids would otherwise be written on this line.
        contextvars.Context().run(
            log.log,
            level,
            "draining: no new turns, up to %gs for %d running",
            self.drain_seconds,
            running,
        )

    async def on_tick(self, counter: int) -> bool:
        if self.drain_until is not None and not self.should_exit:
            services = self._services()
            if services is None or not _running(services) or time.monotonic() >= self.drain_until:
                self.should_exit = True
        return await super().on_tick(counter)

    def _services(self) -> Services | None:
        return getattr(self.parley_app.state, "services", None)

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        # What loading made (modules, classes, the app: most of what the server will ever
        # hold) goes to the garbage collector's permanent generation, so that its passes
        # skip it from now on (a full pass over it costs tens of milliseconds of the event
        # loop), and collection resumes: ``parley serve`` loads with it off (``cli.main``).
        gc.freeze()
        gc.enable()
        await super().serve(sockets)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and self.on_started is not None:
            self.on_started()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        services = self._services()
        if services is not None:
            engine, calls = services.engine, len(services.calls)
            if (engine.turns or calls) and self.drain_until is not None:
                log.warning(
                    "drain over: %d running turns end incomplete, %d chat completions "
                    "with an error",
                    len(engine.turns),
                    calls,
                )
            services.calls.stop()
            await engine.stop()
        await super().shutdown(sockets)


def _running(services: Services) -> int:
    """Turns and chat completions (``server.calls``) in progress."""
    return len(services.engine.turns) + len(services.calls)


def build_server(settings: Settings, *, providers: ProviderRegistry | None = None) -> AppServer:
    """The uvicorn server of the Parley app for ``settings`` (not started; its providers
    ``providers`` when given); its shutdown stops the engine first, so running turns settle.
    ``serve(sockets=...)`` serves on sockets bound before (``parley serve`` binds its own),
    else it binds ``settings.host`` and ``port`` itself."""
    app = create_app(settings, providers=providers)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        # In JSON, uvicorn's own lines go through the root logger's handler too.
        log_config=None if settings.log_format == "json" else uvicorn.config.LOGGING_CONFIG,
        access_log=False,  # ours: ``server.logs``
        timeout_graceful_shutdown=10,
        lifespan="on",
        ws=cast("type[asyncio.Protocol]", _websocket_protocol),
        # Heads (request line and headers) bounded: 431 past them (``server.head_limits``).
        http=head_limits.http_protocol(),
        h11_max_incomplete_event_size=head_limits.MAX_HEAD_BYTES,
    )
    logs.protect()  # after uvicorn set its loggers up (``Config``)
    _check_trusted_proxies(config.forwarded_allow_ips)
    return AppServer(config, app, settings.drain_seconds)


def _check_trusted_proxies(trusted: list[str] | str) -> None:
    """Warn when uvicorn takes ``X-Forwarded-For`` from any peer (``FORWARDED_ALLOW_IPS`` of
    ``*``; uvicorn's default is loopback only): then a client that reaches the server, or a
    proxy that appends to the client's header, chooses the address the limit on failed
    authentications counts against (docs/deploy.md, "Client addresses")."""
    hosts = trusted.split(",") if isinstance(trusted, str) else trusted
    if "*" in (host.strip() for host in hosts):
        log.warning(
            "FORWARDED_ALLOW_IPS is *: any client can set its address with X-Forwarded-For; "
            "set it to the proxy's address"
        )


def _websocket_protocol(**kwargs: Any) -> asyncio.Protocol:
    """uvicorn's own WebSocket protocol (what its ``ws="auto"`` picks), imported at the
    first WebSocket upgrade instead of at start: the ``websockets`` library costs a start
    about 7 ms and 0.5 MiB, and only the Responses API's WebSocket uses it."""
    from uvicorn.protocols.websockets.auto import AutoWebSocketsProtocol

    if AutoWebSocketsProtocol is None:  # neither websockets nor wsproto: a broken install
        raise RuntimeError("no WebSocket library: install uvicorn[standard]")
    return AutoWebSocketsProtocol(**kwargs)
