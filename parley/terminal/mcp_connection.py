"""One MCP server's session: connecting, listing its tools, noticing it went away.

The session itself comes from Parley's MCP layer (:func:`parley.mcp.client.open_session`:
transport, handshake, listing, bounded calls). What this module adds is the terminal's
long life of it: each server's session is held open by a task of its own across the many
calls of a chat, so one server can be closed or restarted alone. A server whose connection
ends is marked down; the hub restarts it at the next call of one of its tools.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Literal, TextIO

from parley.mcp.client import Bounds, ListedTool, ServerTarget, Session, open_session
from parley.terminal.mcp_config import ServerSpec
from parley.terminal.mcp_stderr import ServerStderr

__all__ = ["ServerConnection", "ServerState"]

log = logging.getLogger("parley.terminal.mcp_tools")

ServerState = Literal["connected", "failed", "down", "disabled"]
_Opened = tuple[Session, list[ListedTool]]
#: Seconds a server may take to close before it is cancelled (a stdio process gets two to
#: exit on its own, then is stopped).
_CLOSE_TIMEOUT = 5.0


class ServerConnection:
    """One server's session, entered and left by an owner task of its own."""

    def __init__(self, spec: ServerSpec, *, connect_timeout: float, stderr: TextIO | None) -> None:
        self.spec = spec
        self.state: ServerState = "disabled" if spec.disabled else "failed"
        self.error: str | None = None
        self.tools: list[ListedTool] = []
        self.session: Session | None = None
        #: Counts connection attempts, so a stale failure cannot mark a newer session down.
        self.generation = 0
        # The terminal shows what a tool gives in full, and offers every tool listed.
        self._bounds = Bounds(
            connect_timeout=connect_timeout,
            list_timeout=connect_timeout,
            max_output_chars=sys.maxsize,
            max_tools=sys.maxsize,
            close_timeout=_CLOSE_TIMEOUT,
        )
        self.stderr = ServerStderr(stderr)
        self._owner: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._restart_lock = asyncio.Lock()

    async def connect(self) -> None:
        """(Re)connect and list the tools; the outcome lands in ``state``/``error``, no raise."""
        await self.disconnect()
        self.generation += 1
        self._stop = asyncio.Event()
        ready: asyncio.Future[_Opened | str] = asyncio.get_running_loop().create_future()
        self._owner = asyncio.create_task(self._own(ready), name=f"mcp-server:{self.spec.name}")
        try:
            opened = await asyncio.shield(ready)
        except asyncio.CancelledError:
            self._owner.cancel()  # the owner closes what it opened, in the background
            self.state, self.error = "failed", "the connection attempt was cancelled"
            raise
        if isinstance(opened, str):
            self.state = "down" if self.tools else "failed"
            self.error = opened
        else:
            self.session, self.tools = opened
            self.state, self.error = "connected", None

    async def restart(self) -> bool:
        """Reconnect a down server, unless a concurrent call already tried; whether it is up."""
        seen = self.generation
        async with self._restart_lock:
            if self.generation == seen:
                await self.connect()
        return self.state == "connected"

    def usable(self) -> Session | None:
        """The session, while it is up; one whose connection ended on its own is marked down."""
        session = self.session
        if self.state != "connected" or session is None:
            return None
        if session.ended is not None:
            self.lost(self.generation)
            return None
        return session

    def lost(self, generation: int, stderr_mark: int = 0) -> str:
        """Mark the session of ``generation`` down (its connection ended); the reason.

        The reason quotes what the server wrote to stderr after ``stderr_mark``.
        """
        if generation == self.generation and self.state == "connected":
            self.state = "down"
            self.error = "the server closed the connection" + self.stderr.tail(stderr_mark)
            self._stop.set()  # the owner tears the dead session down
        return self.error or "the server is not connected"

    async def disconnect(self) -> None:
        """Close the session and stop the process; waits for the owner task to finish."""
        self._stop.set()
        owner = self._owner
        if owner is None:
            return
        await asyncio.wait([owner])  # the session's own close is bounded in time
        self._owner = None
        if not owner.cancelled() and owner.exception() is not None:
            log.debug(
                "MCP server %r: owner task failed", self.spec.name, exc_info=owner.exception()
            )

    async def _own(self, ready: asyncio.Future[_Opened | str]) -> None:
        generation = self.generation
        errlog = self.stderr.open()
        try:
            target = _target(self.spec)
            opening = open_session(target, self._bounds, allow_stdio=True, errlog=errlog)
            async with opening as session:
                if isinstance(session, str):
                    ready.set_result(session + self.stderr.tail())
                    return
                listing = await session.list_tools()
                if listing.error is not None:
                    ready.set_result(listing.error + self.stderr.tail())
                    return
                ready.set_result((session, listing.tools))
                await self._stop.wait()
        finally:
            if not ready.done():
                ready.set_result("the connection attempt was cancelled")
            if generation == self.generation:
                self.session = None
            self.stderr.close(errlog)


def _target(spec: ServerSpec) -> ServerTarget:
    """Where the config entry ``spec`` says its server is."""
    if spec.transport == "stdio":
        return ServerTarget(
            spec.name,
            transport="stdio",
            command=(spec.command, *spec.args),
            env=dict(spec.env) or None,
            cwd=spec.cwd,
        )
    return ServerTarget(spec.name, url=spec.url, headers=spec.headers)
