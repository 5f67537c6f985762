"""One MCP server's session: connecting, listing its tools, noticing it went away.

Each server's session is entered and left by one task of its own (anyio's cancel scopes must
be exited by the task that entered them), holding the transport and session in an
``AsyncExitStack``, so one server can be closed or restarted alone. A server whose
connection ends is marked down; the hub restarts it at the next call of one of its tools.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Literal, TextIO

import anyio
import httpx2
from mcp import Client, MCPError, StdioServerParameters, types
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

from parley import __version__
from parley.terminal.mcp_config import ServerSpec
from parley.terminal.mcp_stderr import ServerStderr

__all__ = ["ServerConnection", "ServerState", "explain"]

log = logging.getLogger("parley.terminal.mcp_tools")

ServerState = Literal["connected", "failed", "down", "disabled"]
_Session = tuple[Client, list[types.Tool]]
_MAX_PAGES = 100
#: Seconds for the HTTP transport: 30 to connect, write or wait for a connection, 300 to read
#: (a server may hold a response stream open for long). The MCP SDK's own defaults.
_HTTP_TIMEOUT = httpx2.Timeout(30.0, read=300.0)


class ServerConnection:
    """One server's session, entered and left by an owner task of its own."""

    def __init__(self, spec: ServerSpec, *, connect_timeout: float, stderr: TextIO | None) -> None:
        self.spec = spec
        self.state: ServerState = "disabled" if spec.disabled else "failed"
        self.error: str | None = None
        self.tools: list[types.Tool] = []
        self.client: Client | None = None
        #: Counts connection attempts, so a stale failure cannot mark a newer session down.
        self.generation = 0
        self._connect_timeout = connect_timeout
        self.stderr = ServerStderr(stderr)
        self._owner: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._restart_lock = asyncio.Lock()

    async def connect(self) -> None:
        """(Re)connect and list the tools; the outcome lands in ``state``/``error``, no raise."""
        await self.disconnect()
        self.generation += 1
        self._stop = asyncio.Event()
        scope = anyio.CancelScope()
        ready: asyncio.Future[_Session | str] = asyncio.get_running_loop().create_future()
        self._owner = asyncio.create_task(
            self._own(scope, ready), name=f"mcp-server:{self.spec.name}"
        )
        try:
            session = await asyncio.wait_for(asyncio.shield(ready), self._connect_timeout)
        except TimeoutError:
            session = f"no answer within {self._connect_timeout:g} s"
            scope.cancel()  # the owner stops the server in the background
        except asyncio.CancelledError:
            scope.cancel()
            self.state, self.error = "failed", "the connection attempt was cancelled"
            raise
        if isinstance(session, str):
            self.state = "down" if self.tools else "failed"
            self.error = session
        else:
            self.client, self.tools = session
            self.state, self.error = "connected", None

    async def restart(self) -> bool:
        """Reconnect a down server, unless a concurrent call already tried; whether it is up."""
        seen = self.generation
        async with self._restart_lock:
            if self.generation == seen:
                await self.connect()
        return self.state == "connected"

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
        await asyncio.wait([owner])  # never cancels the owner, so shutdown always completes
        self._owner = None
        if not owner.cancelled() and owner.exception() is not None:
            log.debug(
                "MCP server %r: owner task failed", self.spec.name, exc_info=owner.exception()
            )

    async def _own(self, scope: anyio.CancelScope, ready: asyncio.Future[_Session | str]) -> None:
        generation = self.generation
        errlog = self.stderr.open()
        try:
            with scope:
                async with contextlib.AsyncExitStack() as stack:
                    client = await stack.enter_async_context(await self._client(stack, errlog))
                    ready.set_result((client, await _list_tools(client)))
                    await self._stop.wait()
        except Exception as exc:  # any failure is this server's status, not ours
            if not ready.done():
                ready.set_result(explain(exc) + self.stderr.tail())
            else:
                log.debug("MCP server %r closed with an error", self.spec.name, exc_info=True)
        finally:
            if not ready.done():
                ready.set_result("the connection attempt was cancelled")
            if generation == self.generation:
                if not self._stop.is_set():
                    self.lost(generation)  # the transport ended on its own
                self.client = None
            self.stderr.close(errlog)

    async def _client(self, stack: contextlib.AsyncExitStack, errlog: TextIO) -> Client:
        spec = self.spec
        info = types.Implementation(name="parley", version=__version__)
        if spec.transport == "stdio":
            params = StdioServerParameters(
                command=spec.command, args=list(spec.args), env=dict(spec.env) or None, cwd=spec.cwd
            )
            return Client(stdio_client(params, errlog=errlog), cache=None, client_info=info)
        http = httpx2.AsyncClient(headers=dict(spec.headers), timeout=_HTTP_TIMEOUT)
        await stack.enter_async_context(http)
        return Client(
            streamable_http_client(spec.url, http_client=http), cache=None, client_info=info
        )


async def _list_tools(client: Client) -> list[types.Tool]:
    tools: list[types.Tool] = []
    cursor: str | None = None
    for _ in range(_MAX_PAGES):
        page = await client.list_tools(cursor=cursor, cache_mode="bypass")
        tools.extend(page.tools)
        if not page.next_cursor or page.next_cursor == cursor:
            break
        cursor = page.next_cursor
    return tools


def explain(exc: BaseException) -> str:
    """A one-line reason for a failure, from the first real error in exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    if isinstance(exc, MCPError):
        return exc.message
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
