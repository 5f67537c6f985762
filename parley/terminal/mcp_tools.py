"""MCP servers as client-side tools for ``parley chat`` and ``parley ask``.

The chat loop starts a :class:`ToolHub` with the servers of the user's MCP config, sends
:meth:`ToolHub.tool_specs` with its runs, and when a run stops at ``action_required`` hands the
manifest to :meth:`ToolHub.run_calls`; each :class:`ToolOutcome` becomes one tool output.

    mcp.json ──load_mcp_config()──> {name: ServerSpec}     (parley.terminal.mcp_config)
    ToolHub.start(specs) ──> one session per server (stdio process or streamable HTTP)
    ToolHub.run_calls([(call_id, name, arguments), ...]) ──> [ToolOutcome, ...] in call order

Tool names. A tool keeps its own name unless two servers offer it: then every copy is exposed
as ``<server>__<tool>``. Names are made to match ``^[a-zA-Z0-9_-]{1,64}$`` (what providers
accept): other characters become ``_`` and long names are cut at 64; a clash left after that
gets a ``_2``, ``_3`` suffix. Servers are taken in config order, tools in listing order, so
the names stay the same from one start to the next.

Sessions. Each server's session is entered and left by one task of its own (anyio's cancel
scopes must be exited by the task that entered them), holding the transport and session in an
``AsyncExitStack``, so one server can be closed or restarted alone. A server whose connection
ends is marked down; the next call to one of its tools restarts it first (once per call).

Importing this module imports the MCP SDK; the CLI imports it lazily.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, TextIO, cast

import anyio
import httpx2
from mcp import Client, MCPError, StdioServerParameters, types
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

from parley import __version__
from parley.terminal.mcp_config import ConfirmMode, ServerSpec

__all__ = [
    "DECLINED",
    "Approve",
    "HubTool",
    "PendingCall",
    "ServerStatus",
    "ToolHub",
    "ToolOutcome",
    "needs_confirmation",
]

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 120.0
DEFAULT_CONNECT_TIMEOUT = 30.0
EMPTY_SCHEMA: Mapping[str, Any] = {"type": "object", "properties": {}}
DECLINED = "The user declined to run this tool."

ServerState = Literal["connected", "failed", "down", "disabled"]
OutcomeKind = Literal["ok", "tool_error", "timeout", "declined", "unknown_tool", "server_error"]
PendingCall = tuple[str, str, Mapping[str, Any]]
"""One call of a turn: ``(call_id, tool name, arguments)``."""
Approve = Callable[[str, Mapping[str, Any]], Awaitable[bool | str]]
"""Asked before a call that needs confirmation: True runs it, False declines it
(:data:`DECLINED`), a string declines it with that text as the reason."""
_Session = tuple[Client, list[types.Tool]]

_MAX_NAME = 64
_NOT_IN_NAME = re.compile(r"[^a-zA-Z0-9_-]")
_MAX_PAGES = 100
#: Seconds for the HTTP transport: 30 to connect, write or wait for a connection, 300 to read
#: (a server may hold a response stream open for long). The MCP SDK's own defaults.
_HTTP_TIMEOUT = httpx2.Timeout(30.0, read=300.0)
_STDERR_TAIL = 800
_CONNECTION_LOST = (
    anyio.ClosedResourceError,
    anyio.BrokenResourceError,
    anyio.EndOfStream,
    OSError,
)


# --------------------------------------------------------------------------- tools and outcomes


@dataclass(frozen=True)
class HubTool:
    """A tool as exposed to the model; ``original_name`` is the server's own name for it."""

    name: str
    server: str
    original_name: str
    description: str
    input_schema: Mapping[str, Any]


@dataclass(frozen=True)
class ServerStatus:
    """How one server is doing: ``failed`` never connected, ``down`` restarts on next use."""

    name: str
    state: ServerState
    tool_count: int
    error: str | None = None

    @property
    def connected(self) -> bool:
        return self.state == "connected"

    @property
    def summary(self) -> str:
        """One line for the chat's start-up listing: ``"files: 12 tools"``."""
        if self.state == "connected":
            plural = "" if self.tool_count == 1 else "s"
            return f"{self.name}: {self.tool_count} tool{plural}"
        if self.state == "disabled":
            return f"{self.name}: disabled"
        return f"{self.name}: {self.state}: {self.error}"


@dataclass(frozen=True)
class ToolOutcome:
    """What one tool call produced, as text for the model.

    ``kind`` says why an error is one: ``tool_error`` (the tool reported it), ``timeout``,
    ``declined``, ``unknown_tool`` or ``server_error`` (the server or its connection failed).
    """

    text: str
    is_error: bool
    kind: OutcomeKind = "ok"
    call_id: str | None = None
    server: str | None = None
    #: The result's ``structuredContent``, as the server sent it.
    structured: Any = None

    @property
    def output(self) -> str:
        """The tool output to submit: never empty, errors marked as such for the model."""
        if self.is_error:
            return self.text if self.text.startswith("Error") else f"Error: {self.text}"
        return self.text or "(no output)"


def needs_confirmation(mode: ConfirmMode, hub_tool: HubTool, spec: ServerSpec) -> bool:
    """Whether to ask the user before running ``hub_tool``.

    ``ask``: unless the server's ``allow`` lists the tool; ``always``: every call; ``never``:
    no call.
    """
    if mode == "never":
        return False
    if mode == "always":
        return True
    if mode == "ask":
        return not spec.allows(hub_tool.original_name)
    raise ValueError(f"unknown confirmation mode {mode!r}: use 'ask', 'always' or 'never'")


def _sanitise(name: str) -> str:
    return _NOT_IN_NAME.sub("_", name)[:_MAX_NAME] or "_"


def _exposed_names(offers: Sequence[tuple[str, str]]) -> list[str]:
    """The name each ``(server, tool)`` gets, by the rule in the module docstring."""
    owners: dict[str, set[str]] = {}
    for server, tool in offers:
        owners.setdefault(_sanitise(tool), set()).add(server)
    taken: set[str] = set()
    names = []
    for server, tool in offers:
        name = _sanitise(tool)
        if len(owners[name]) > 1:
            name = f"{_sanitise(server)}__{name}"[:_MAX_NAME]
        wanted, n = name, 1
        while name in taken:
            n += 1
            name = f"{wanted[: _MAX_NAME - len(str(n)) - 1]}_{n}"
        taken.add(name)
        names.append(name)
    return names


def _parameters(schema: Mapping[str, Any] | None) -> dict[str, Any]:
    """An input schema as Parley accepts it: an object schema with ``properties``."""
    if not schema or schema.get("type", "object") != "object":
        return dict(EMPTY_SCHEMA)
    params = {"type": "object", **schema}
    if not isinstance(params.get("properties"), dict):
        params["properties"] = {}
    return params


def _result_text(result: types.CallToolResult) -> str:
    parts = [_block_text(block) for block in result.content]
    has_text = any(isinstance(block, types.TextContent) for block in result.content)
    if not has_text and result.structured_content is not None:
        compact = json.dumps(
            result.structured_content, separators=(",", ":"), ensure_ascii=False, default=str
        )
        parts.insert(0, compact)
    return "\n".join(parts)


def _block_text(block: types.ContentBlock) -> str:
    if isinstance(block, types.TextContent):
        return block.text
    if isinstance(block, types.ImageContent):
        return f"[image: {block.mime_type}, {_decoded_size(block.data)} bytes]"
    if isinstance(block, types.AudioContent):
        return f"[audio: {block.mime_type}, {_decoded_size(block.data)} bytes]"
    if isinstance(block, types.ResourceLink):
        mime = f", {block.mime_type}" if block.mime_type else ""
        return f"[resource link: {block.name} <{block.uri}>{mime}]"
    resource = block.resource
    if isinstance(resource, types.TextResourceContents):
        return resource.text
    if _is_textual(resource.mime_type):
        with contextlib.suppress(binascii.Error, UnicodeDecodeError):
            return base64.b64decode(resource.blob, validate=True).decode("utf-8")
    mime = resource.mime_type or "unknown type"
    return f"[resource: {resource.uri}, {mime}, {_decoded_size(resource.blob)} bytes]"


def _decoded_size(data: str) -> int:
    stripped = data.strip().rstrip("=")
    return len(stripped) * 3 // 4


def _is_textual(mime: str | None) -> bool:
    if not mime:
        return False
    mime = mime.split(";")[0].strip().lower()
    return mime.startswith("text/") or mime.endswith(("json", "xml", "yaml", "javascript"))


# --------------------------------------------------------------------------- one server


class _Connection:
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
        self._shared_stderr = stderr
        self._stderr: TextIO | None = None
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
            self.error = "the server closed the connection" + self._stderr_tail(stderr_mark)
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
        self._stderr = errlog = self._open_stderr()
        try:
            with scope:
                async with contextlib.AsyncExitStack() as stack:
                    client = await stack.enter_async_context(await self._client(stack))
                    ready.set_result((client, await _list_tools(client)))
                    await self._stop.wait()
        except Exception as exc:  # any failure is this server's status, not ours
            if not ready.done():
                ready.set_result(_explain(exc) + self._stderr_tail())
            else:
                log.debug("MCP server %r closed with an error", self.spec.name, exc_info=True)
        finally:
            if not ready.done():
                ready.set_result("the connection attempt was cancelled")
            if generation == self.generation:
                if not self._stop.is_set():
                    self.lost(generation)  # the transport ended on its own
                self.client = None
            if errlog is not self._shared_stderr:
                errlog.close()

    async def _client(self, stack: contextlib.AsyncExitStack) -> Client:
        spec = self.spec
        info = types.Implementation(name="parley", version=__version__)
        if spec.transport == "stdio":
            params = StdioServerParameters(
                command=spec.command, args=list(spec.args), env=dict(spec.env) or None, cwd=spec.cwd
            )
            assert self._stderr is not None
            return Client(stdio_client(params, errlog=self._stderr), cache=None, client_info=info)
        http = httpx2.AsyncClient(headers=dict(spec.headers), timeout=_HTTP_TIMEOUT)
        await stack.enter_async_context(http)
        return Client(
            streamable_http_client(spec.url, http_client=http), cache=None, client_info=info
        )

    def _open_stderr(self) -> TextIO:
        """Where the server process writes its stderr: the hub's, or a private scratch file."""
        if self._shared_stderr is not None:
            return self._shared_stderr
        return cast(TextIO, tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace"))

    def _private_stderr(self) -> TextIO | None:
        """The server's own stderr file, while it is open (None when it shares the hub's)."""
        errlog = self._stderr
        if errlog is None or errlog is self._shared_stderr or errlog.closed:
            return None
        return errlog

    def stderr_mark(self) -> int:
        """How much the server has written to its private stderr file so far."""
        errlog = self._private_stderr()
        if errlog is None:
            return 0
        try:
            return os.fstat(errlog.fileno()).st_size
        except OSError:
            return 0

    def _stderr_tail(self, since: int = 0) -> str:
        """The last lines the server wrote to stderr after ``since``, for an error message."""
        errlog = self._private_stderr()
        if errlog is None:
            return ""
        try:
            fd = errlog.fileno()
            start = max(since, os.fstat(fd).st_size - _STDERR_TAIL)
            data = os.pread(fd, _STDERR_TAIL, start)
        except OSError:
            return ""
        lines = [line.strip() for line in data.decode("utf-8", "replace").splitlines()]
        tail = [line for line in lines if line][-3:]
        return f" (stderr: {' | '.join(tail)})" if tail else ""


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


def _explain(exc: BaseException) -> str:
    """A one-line reason for a failure, from the first real error in exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    if isinstance(exc, MCPError):
        return exc.message
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# --------------------------------------------------------------------------- the hub


class ToolHub:
    """The MCP servers of a chat session and their tools; use as ``async with ToolHub() as hub``.

    ``stderr``: where server processes write their stderr (default: a private file per
    server, whose last lines go into error messages, so servers never draw on the terminal).
    """

    def __init__(
        self,
        *,
        default_timeout: float = DEFAULT_TIMEOUT,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        stderr: TextIO | None = None,
    ) -> None:
        self._default_timeout = default_timeout
        self._connect_timeout = connect_timeout
        self._stderr = stderr
        self._servers: dict[str, _Connection] = {}
        self._unknown: list[str] = []
        self._tools: dict[str, HubTool] = {}
        self._started = False

    async def __aenter__(self) -> ToolHub:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def start(
        self, specs: Mapping[str, ServerSpec], only: Collection[str] | None = None
    ) -> None:
        """Connect the servers concurrently and list their tools; failures land in ``status``.

        ``only`` picks servers by name, disabled ones included; without it every server that
        is not ``disabled`` starts.
        """
        if self._started:
            raise RuntimeError("ToolHub.start() can be called once")
        self._started = True
        for name, spec in specs.items():
            if only is None or name in only:
                disabled = spec.disabled and only is None
                chosen = replace(spec, name=name, disabled=disabled)
                self._servers[name] = _Connection(
                    chosen, connect_timeout=self._connect_timeout, stderr=self._stderr
                )
        self._unknown = [name for name in only or () if name not in specs]
        starting = [c for c in self._servers.values() if not c.spec.disabled]
        await asyncio.gather(*(c.connect() for c in starting))
        self._index_tools()

    @property
    def status(self) -> dict[str, ServerStatus]:
        """Per server, in config order: its state, tool count and error, if any."""
        status = {
            name: ServerStatus(name, conn.state, len(conn.tools), conn.error)
            for name, conn in self._servers.items()
        }
        for name in self._unknown:
            status[name] = ServerStatus(name, "failed", 0, "not in the MCP config")
        return status

    @property
    def tools(self) -> list[HubTool]:
        return list(self._tools.values())

    def tool_specs(self) -> list[dict[str, Any]]:
        """The tools as Parley takes them: ``{"name", "description", "parameters"}``."""
        return [
            {"name": t.name, "description": t.description, "parameters": dict(t.input_schema)}
            for t in self._tools.values()
        ]

    async def call(
        self,
        name: str,
        arguments: Mapping[str, Any],
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - a timeout is an outcome, not an exception
    ) -> ToolOutcome:
        """Run one tool; every failure comes back as an outcome with ``is_error=True``."""
        tool = self._tools.get(name)
        if tool is None:
            text = f"Unknown tool {name!r}: no MCP server offers it."
            return ToolOutcome(text, is_error=True, kind="unknown_tool")
        outcome = await self._call(self._servers[tool.server], tool, arguments, timeout)
        return replace(outcome, server=tool.server)

    async def run_calls(
        self,
        calls: Sequence[PendingCall],
        *,
        limit: int = 4,
        approve: Approve | None = None,
        confirm: ConfirmMode = "ask",
        timeout: float | None = None,  # noqa: ASYNC109 - per call, see call()
        on_start: Callable[[str, str, Mapping[str, Any]], None] | None = None,
        on_done: Callable[[ToolOutcome], None] | None = None,
    ) -> list[ToolOutcome]:
        """Run a turn's calls concurrently, at most ``limit`` at once; outcomes in call order.

        ``approve(name, arguments)`` is awaited, one call at a time, for each call that
        :func:`needs_confirmation` under ``confirm``; a call it declines gets a ``declined``
        outcome (its text the reason ``approve`` gave, else :data:`DECLINED`), the others run.
        Without ``approve`` every call runs. ``on_start`` and ``on_done`` report each call as
        it starts and ends (for the display). Cancelling the task running this cancels the
        calls in flight; the sessions stay usable.
        """
        if limit < 1:
            raise ValueError("limit must be at least 1")
        slots = asyncio.Semaphore(limit)
        asking = asyncio.Lock()  # one question on screen at a time, in call order

        async def run(call_id: str, name: str, arguments: Mapping[str, Any]) -> ToolOutcome:
            tool = self._tools.get(name)
            if approve is not None and tool is not None and self._must_ask(tool, confirm):
                async with asking:
                    verdict = await approve(name, arguments)
                if verdict is not True:
                    reason = verdict or DECLINED
                    declined = ToolOutcome(reason, True, "declined", call_id, tool.server)
                    return self._report(declined, on_done)
            async with slots:
                if on_start is not None:
                    on_start(call_id, name, arguments)
                outcome = await self.call(name, arguments, timeout=timeout)
            return self._report(replace(outcome, call_id=call_id), on_done)

        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(run(*call)) for call in calls]
        except BaseExceptionGroup as failed:  # approve() or a callback raised: not ours to hide
            raise failed.exceptions[0] from None
        return [task.result() for task in tasks]

    async def aclose(self) -> None:
        """Close every session and stop every server process."""
        await asyncio.gather(*(conn.disconnect() for conn in self._servers.values()))

    # ----------------------------------------------------------------------- internals

    def _must_ask(self, tool: HubTool, confirm: ConfirmMode) -> bool:
        return needs_confirmation(confirm, tool, self._servers[tool.server].spec)

    @staticmethod
    def _report(outcome: ToolOutcome, on_done: Callable[[ToolOutcome], None] | None) -> ToolOutcome:
        if on_done is not None:
            on_done(outcome)
        return outcome

    def _index_tools(self) -> None:
        offers = [
            (conn.spec.name, tool)
            for conn in self._servers.values()
            if conn.state in ("connected", "down")
            for tool in conn.tools
        ]
        names = _exposed_names([(server, tool.name) for server, tool in offers])
        self._tools = {
            name: HubTool(
                name=name,
                server=server,
                original_name=tool.name,
                description=tool.description or tool.title or "",
                input_schema=_parameters(tool.input_schema),
            )
            for name, (server, tool) in zip(names, offers, strict=True)
        }

    async def _call(
        self,
        conn: _Connection,
        tool: HubTool,
        arguments: Mapping[str, Any],
        timeout: float | None,  # noqa: ASYNC109 - see call()
    ) -> ToolOutcome:
        server = conn.spec.name
        if conn.state != "connected" or conn.client is None:
            if not await conn.restart():
                text = f"MCP server {server!r} is down and could not be restarted: {conn.error}"
                return ToolOutcome(text, is_error=True, kind="server_error")
            self._index_tools()
        if conn.client is None or all(t.name != tool.original_name for t in conn.tools):
            text = f"MCP server {server!r} no longer offers the tool {tool.original_name!r}."
            return ToolOutcome(text, is_error=True, kind="unknown_tool")
        client, generation, mark = conn.client, conn.generation, conn.stderr_mark()
        limit = conn.spec.timeout or timeout or self._default_timeout
        deadline = asyncio.timeout(limit)
        try:
            async with deadline:
                result = await client.call_tool(tool.original_name, dict(arguments))
        except TimeoutError as exc:
            if not deadline.expired():  # the transport's own timeout, not the call's
                return _lost(conn, generation, mark, exc)
            text = f"The tool {tool.name!r} timed out after {limit:g} s and was cancelled."
            return ToolOutcome(text, is_error=True, kind="timeout")
        except MCPError as exc:
            if exc.code == types.CONNECTION_CLOSED:
                return _lost(conn, generation, mark, exc)
            text = f"MCP server {server!r} failed to run {tool.name!r}: {exc.message}"
            return ToolOutcome(text, is_error=True, kind="server_error")
        except _CONNECTION_LOST as exc:
            return _lost(conn, generation, mark, exc)
        except Exception as exc:  # noqa: BLE001 - e.g. a malformed result: the model is told
            text = f"MCP server {server!r} failed to run {tool.name!r}: {_explain(exc)}"
            return ToolOutcome(text, is_error=True, kind="server_error")
        text = _result_text(result)
        kind: OutcomeKind = "tool_error" if result.is_error else "ok"
        return ToolOutcome(text, result.is_error, kind, structured=result.structured_content)


def _lost(conn: _Connection, generation: int, mark: int, exc: BaseException) -> ToolOutcome:
    """The outcome of a call whose connection ended; the server is marked down."""
    reason = conn.lost(generation, mark)
    if not isinstance(exc, MCPError):
        reason = f"{_explain(exc)}; {reason}"
    text = f"MCP server {conn.spec.name!r} stopped: {reason}. It restarts on the next call."
    return ToolOutcome(text, is_error=True, kind="server_error")
