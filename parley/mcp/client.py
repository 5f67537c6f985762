"""One MCP server as a bounded session: connect, list its tools, call them.

    async with open_session(ServerTarget("files", url="https://..."), Bounds()) as session:
        if isinstance(session, str):
            ...                                   # why it could not connect
        listing = await session.list_tools()      # Listing: tools, or an error
        result = await session.call("read", {"path": "a.txt"})   # CallResult: output, or an error

Whatever a server does wrong comes back as a value, never as an exception: a connection that
fails is a string, a listing or call that fails a ``Listing`` or ``CallResult`` with
``error`` set. Every step is bounded (:class:`Bounds`): in time, in output size, in tools.

The transport and the SDK's client run in a task of their own (the owner), not the caller's:
anyio's cancel scopes must be left by the task that entered them, a transport that fails then
tears down only its owner, never the caller's work, and closing can be bounded in time (an
owner that does not finish is cancelled). Calls go straight from the caller to the SDK's
client: no extra task, copy or wait per call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator, Coroutine, Iterable, Mapping
from typing import Any, TextIO, TypeVar

import anyio
import httpx2
from mcp import Client, MCPError, StdioServerParameters, types
from mcp.client.sse import sse_client
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

from parley import __version__
from parley.mcp.results import cut_text, result_text
from parley.mcp.shapes import (
    Bounds,
    CallResult,
    Failure,
    HttpClientFactory,
    ListedTool,
    Listing,
    ServerTarget,
)
from parley.mcp.tls import ssl_context

__all__ = [
    "Bounds",
    "CallResult",
    "Failure",
    "HttpClientFactory",
    "ListedTool",
    "Listing",
    "ServerTarget",
    "Session",
    "explain",
    "open_session",
]

log = logging.getLogger(__name__)
_T = TypeVar("_T")

#: The bounds of a session given none (frozen: one shared default is safe).
DEFAULT_BOUNDS = Bounds()
#: Pages of ``tools/list`` followed at most: a server whose cursor never ends cannot hang us.
MAX_PAGES = 100
#: Seconds an HTTP read may wait: a server may hold a response or event stream open for long.
#: Calls and listings have their own, shorter, bounds.
_READ_TIMEOUT = 300.0
_CONNECTION_LOST = (
    anyio.ClosedResourceError,
    anyio.BrokenResourceError,
    anyio.EndOfStream,
    OSError,
)


class Session:
    """One connected server. Opened and closed by one task (:func:`open_session`); calls may
    overlap, from any task of the same event loop."""

    def __init__(self, client: Client, owner: _Owner) -> None:
        self._client = client
        self._owner = owner
        self._bounds = owner.bounds

    @property
    def ended(self) -> str | None:
        """Why the connection ended on its own, once it has (None while it is up)."""
        return self._owner.ended

    def knows(self, names: Iterable[str]) -> None:
        """Tell the session about tools listed earlier (a conversation's kept list): after
        a call of a tool it has not listed itself, the SDK lists the server's tools again
        to check the result against an output schema. Those tools are taken to have
        none."""
        schemas = getattr(self._client.session, "_tool_output_schemas", None)
        if isinstance(schemas, dict):
            for name in names:
                schemas.setdefault(name, None)

    async def list_tools(self) -> Listing:
        """Every tool, page after page, within ``list_timeout``; never raises."""
        if self.ended is not None:
            return Listing([], error=self.ended)
        limit = self._bounds.list_timeout
        try:
            tools, cut = await _within(self._pages(), limit)
        except _Expired:
            return Listing([], error=f"the server listed no tools within {limit:g} s")
        except TimeoutError as exc:  # the transport's own timeout
            return Listing([], error=f"the connection was lost: {explain(exc)}")
        except MCPError as exc:
            return Listing([], error=f"the server could not list its tools: {exc.message}")
        except Exception as exc:  # noqa: BLE001 - a server's fault is a listing's error
            return Listing([], error=f"the tools could not be listed: {explain(exc)}")
        return Listing([_listed(tool) for tool in tools], cut=cut)

    async def call(
        self,
        name: str,
        arguments: Mapping[str, Any],
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - a timeout is an outcome, not an exception
    ) -> CallResult:
        """Call one tool within ``timeout`` (default ``call_timeout``); never raises.

        A call that runs out of time is cancelled on the server; the session stays usable.
        """
        if self.ended is not None:
            return _lost(self.ended)
        limit = timeout or self._bounds.call_timeout
        try:
            result = await _within(self._client.call_tool(name, dict(arguments)), limit)
        except _Expired:
            text = f"the tool {name!r} did not answer within {limit:g} s and was cancelled"
            return CallResult(None, text, failure="timeout")
        except TimeoutError as exc:  # the transport's own timeout, not the call's
            return _lost(explain(exc))
        except MCPError as exc:
            if exc.code == types.CONNECTION_CLOSED:
                return _lost(exc.message)
            text = f"the server failed to run {name!r}: {exc.message}"
            return CallResult(None, text, failure="protocol")
        except _CONNECTION_LOST as exc:
            return _lost(explain(exc))
        except Exception as exc:  # noqa: BLE001 - e.g. a malformed result: the caller is told
            text = f"the server failed to run {name!r}: {explain(exc)}"
            return CallResult(None, text, failure="protocol")
        text, cut = cut_text(result_text(result), self._bounds.max_output_chars)
        structured = result.structured_content
        if result.is_error:
            error = text or f"the tool {name!r} failed without saying why"
            return CallResult(None, error, cut, failure="tool", structured=structured)
        return CallResult(text, None, cut, structured=structured)

    async def _pages(self) -> tuple[list[types.Tool], bool]:
        """The listing and whether it was cut (more tools than ``max_tools``, or more pages
        than :data:`MAX_PAGES`)."""
        tools: list[types.Tool] = []
        cursor: str | None = None
        most = self._bounds.max_tools
        for _ in range(MAX_PAGES):
            page = await self._client.list_tools(cursor=cursor, cache_mode="bypass")
            tools.extend(page.tools)
            if len(tools) > most:
                return tools[:most], True
            if not page.next_cursor or page.next_cursor == cursor:
                return tools, False
            cursor = page.next_cursor
        return tools, True


@contextlib.asynccontextmanager
async def open_session(
    target: ServerTarget,
    bounds: Bounds = DEFAULT_BOUNDS,
    *,
    http_client_factory: HttpClientFactory | None = None,
    allow_stdio: bool = False,
    errlog: TextIO | None = None,
) -> AsyncIterator[Session | str]:
    """A session with ``target``, or a string saying why there is none.

    Never raises for a server's fault. A stdio server is refused unless ``allow_stdio``;
    ``errlog`` is where its stderr goes (default: ours). ``http_client_factory`` builds the
    HTTP client (default: a plain one). Leaving closes the transport and the session, within
    ``close_timeout``, even when the server died or hangs.
    """
    refused = _refusal(target, allow_stdio)
    if refused is not None:
        yield refused
        return
    owner = _Owner(target, bounds, http_client_factory, errlog)
    try:
        opened = await owner.start()
        yield opened if isinstance(opened, str) else Session(opened, owner)
    finally:
        await owner.close()


def _refusal(target: ServerTarget, allow_stdio: bool) -> str | None:
    if target.transport == "stdio":
        if not allow_stdio:
            return "stdio MCP servers are not allowed here: give the server's URL"
        return None if target.command else "no command to start the server"
    return None if target.url else "no URL for the server"


class _Owner:
    """The task that holds one server's transport and SDK client, from connecting to closing."""

    def __init__(
        self,
        target: ServerTarget,
        bounds: Bounds,
        http_client_factory: HttpClientFactory | None,
        errlog: TextIO | None,
    ) -> None:
        self.target = target
        self.bounds = bounds
        self.ended: str | None = None
        self._factory = http_client_factory
        self._errlog = errlog
        self._scope = anyio.CancelScope()
        self._stop = asyncio.Event()
        self._ready: asyncio.Future[Client | str] = asyncio.get_running_loop().create_future()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> Client | str:
        """Connect within ``connect_timeout``: the SDK's client, or why not."""
        label = self.target.label
        self._task = asyncio.create_task(self._own(), name=f"mcp-server:{label}")
        limit = self.bounds.connect_timeout
        try:
            return await asyncio.wait_for(asyncio.shield(self._ready), limit)
        except TimeoutError:
            self._scope.cancel()
            return f"no answer within {limit:g} s"

    async def close(self) -> None:
        """Stop the owner: gently, then, past ``close_timeout``, by cancelling it (at once
        when it is still connecting)."""
        self._stop.set()
        task = self._task
        if task is None:
            return
        if not self._ready.done():
            self._scope.cancel()
        try:
            done, _ = await asyncio.wait([task], timeout=self.bounds.close_timeout)
            if not done:
                self._scope.cancel()
                done, _ = await asyncio.wait([task], timeout=self.bounds.close_timeout)
        except asyncio.CancelledError:
            self._scope.cancel()  # the owner ends in the background
            raise
        if not done:
            log.warning("MCP server %r: the transport did not close", self.target.label)

    async def _own(self) -> None:
        try:
            with self._scope:
                async with contextlib.AsyncExitStack() as stack:
                    client = await stack.enter_async_context(await self._client(stack))
                    self._ready.set_result(client)
                    await self._stop.wait()
        except Exception as exc:  # boundary: the server's failure is its outcome
            if not self._ready.done():
                self._ready.set_result(explain(exc))
            else:
                log.debug("MCP server %r: connection failed", self.target.label, exc_info=True)
                self.ended = f"the connection failed: {explain(exc)}"
        finally:
            if not self._ready.done():
                self._ready.set_result("the connection attempt was cancelled")
            if self.ended is None:
                self.ended = "the connection was closed"

    async def _client(self, stack: contextlib.AsyncExitStack) -> Client:
        target = self.target
        info = types.Implementation(name="parley", version=__version__)
        if target.transport == "stdio":
            program, *args = target.command
            env = dict(target.env) if target.env is not None else None
            params = StdioServerParameters(command=program, args=args, env=env, cwd=target.cwd)
            transport = stdio_client(params, errlog=self._errlog or sys.stderr)
            return Client(transport, cache=None, client_info=info)
        assert target.url is not None  # _refusal checked it
        timeout = httpx2.Timeout(self.bounds.connect_timeout, read=_READ_TIMEOUT)
        if target.transport == "sse":
            sse = sse_client(
                target.url,
                headers=dict(target.headers),
                timeout=self.bounds.connect_timeout,
                sse_read_timeout=_READ_TIMEOUT,
                httpx_client_factory=self._sse_factory,
            )
            return Client(sse, cache=None, client_info=info)
        http = await stack.enter_async_context(self._http_client(target.headers, timeout))
        transport = streamable_http_client(target.url, http_client=http)
        return Client(transport, cache=None, client_info=info)

    def _http_client(
        self, headers: Mapping[str, str], timeout: httpx2.Timeout
    ) -> httpx2.AsyncClient:
        if self._factory is not None:
            return self._factory(headers, timeout)
        return httpx2.AsyncClient(headers=dict(headers), timeout=timeout, verify=ssl_context())

    def _sse_factory(
        self,
        headers: dict[str, str] | None = None,
        timeout: httpx2.Timeout | None = None,
        auth: httpx2.Auth | None = None,
    ) -> httpx2.AsyncClient:
        """The SSE transport's way of asking for its HTTP client (it never passes ``auth``)."""
        limit = timeout or httpx2.Timeout(self.bounds.connect_timeout, read=_READ_TIMEOUT)
        return self._http_client(headers or {}, limit)


class _Expired(Exception):
    """A request ran past its time."""


#: Requests cancelled for their time and still ending; kept so they are not collected early.
_ENDING: set[asyncio.Task[Any]] = set()


async def _within(work: Coroutine[Any, Any, _T], limit: float) -> _T:
    """What ``work`` gives, within ``limit`` seconds (else :class:`_Expired`).

    ``work`` runs as a task of its own, so the wait ends on time: the SDK holds a cancelled
    request for up to seconds to tell the server (a stuck transport blocks that), and the
    caller does not wait on that; the task ends in the background.
    """
    task = asyncio.create_task(work)
    try:
        done, _ = await asyncio.wait([task], timeout=limit)
    except asyncio.CancelledError:
        _end_in_background(task)
        raise
    if not done:
        _end_in_background(task)
        raise _Expired
    if task.cancelled():  # not by us: the session is closing
        raise ConnectionAbortedError("the request was cancelled as the session closed")
    return task.result()


def _end_in_background(task: asyncio.Task[Any]) -> None:
    task.cancel()
    _ENDING.add(task)
    task.add_done_callback(_ended)


def _ended(task: asyncio.Task[Any]) -> None:
    _ENDING.discard(task)
    if not task.cancelled():
        task.exception()  # retrieved: a late failure of an abandoned request is nobody's


def _listed(tool: types.Tool) -> ListedTool:
    annotations = tool.annotations
    return ListedTool(
        name=tool.name,
        description=tool.description,
        input_schema=dict(tool.input_schema),
        annotations=annotations.model_dump(mode="json", by_alias=True, exclude_none=True)
        if annotations is not None
        else None,
        title=tool.title,
    )


def _lost(reason: str) -> CallResult:
    return CallResult(None, f"the connection to the server was lost: {reason}", failure="lost")


def explain(exc: BaseException) -> str:
    """A one-line reason for a failure, from the first real error in exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    if isinstance(exc, MCPError):
        return exc.message
    text = str(exc)
    if text:
        return text  # said for people: no class names of ours or a library's
    if isinstance(exc, TimeoutError):
        return "it timed out"
    return "the connection failed"
