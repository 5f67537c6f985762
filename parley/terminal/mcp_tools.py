"""MCP servers as client-side tools for ``parley chat`` and ``parley ask``.

The chat loop starts a :class:`ToolHub` with the servers of the user's MCP config, sends
:meth:`ToolHub.tool_specs` with its runs, and when a run stops at ``action_required`` hands the
manifest to :meth:`ToolHub.run_calls`; each :class:`ToolOutcome` becomes one tool output.

    mcp.json ──load_mcp_config()──> {name: ServerSpec}     (parley.terminal.mcp_config)
    ToolHub.start(specs) ──> one session per server (stdio process or streamable HTTP)
    ToolHub.run_calls([(call_id, name, arguments), ...]) ──> [ToolOutcome, ...] in call order

The hub's helpers, one job each: ``parley.mcp.naming`` (the names and schemas a model sees),
``mcp_connection`` (one server's session, restarted by the hub when it went down: once per
call) and ``mcp_stderr`` (where a server's stderr goes, quoted in errors). Sessions, calls
and a result's text for the model come from Parley's MCP layer, :mod:`parley.mcp`.

Importing this module imports the MCP SDK; the CLI imports it lazily.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, TextIO

from parley.mcp.naming import exposed_names, parameters_schema
from parley.terminal.mcp_config import ConfirmMode, ServerSpec
from parley.terminal.mcp_connection import ServerConnection, ServerState

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
DECLINED = "The user declined to run this tool."

OutcomeKind = Literal["ok", "tool_error", "timeout", "declined", "unknown_tool", "server_error"]
PendingCall = tuple[str, str, Mapping[str, Any]]
"""One call of a turn: ``(call_id, tool name, arguments)``."""
Approve = Callable[[str, Mapping[str, Any]], Awaitable[bool | str]]
"""Asked before a call that needs confirmation: True runs it, False declines it
(:data:`DECLINED`), a string declines it with that text as the reason."""


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
        self._servers: dict[str, ServerConnection] = {}
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
                self._servers[name] = ServerConnection(
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
        names = exposed_names([(server, tool.name) for server, tool in offers])
        self._tools = {
            name: HubTool(
                name=name,
                server=server,
                original_name=tool.name,
                description=tool.description or tool.title or "",
                input_schema=parameters_schema(tool.input_schema),
            )
            for name, (server, tool) in zip(names, offers, strict=True)
        }

    async def _call(
        self,
        conn: ServerConnection,
        tool: HubTool,
        arguments: Mapping[str, Any],
        timeout: float | None,  # noqa: ASYNC109 - see call()
    ) -> ToolOutcome:
        server = conn.spec.name
        if conn.usable() is None:
            if not await conn.restart():
                text = f"MCP server {server!r} is down and could not be restarted: {conn.error}"
                return ToolOutcome(text, is_error=True, kind="server_error")
            self._index_tools()
        session = conn.usable()
        if session is None or all(t.name != tool.original_name for t in conn.tools):
            text = f"MCP server {server!r} no longer offers the tool {tool.original_name!r}."
            return ToolOutcome(text, is_error=True, kind="unknown_tool")
        generation, mark = conn.generation, conn.stderr.mark()
        limit = conn.spec.timeout or timeout or self._default_timeout
        result = await session.call(tool.original_name, arguments, timeout=limit)
        match result.failure:
            case None:
                return ToolOutcome(result.output or "", False, "ok", structured=result.structured)
            case "tool":
                text = result.error or ""
                return ToolOutcome(text, True, "tool_error", structured=result.structured)
            case "timeout":
                text = f"The tool {tool.name!r} timed out after {limit:g} s and was cancelled."
                return ToolOutcome(text, is_error=True, kind="timeout")
            case "lost":
                reason = conn.lost(generation, mark)
                text = f"MCP server {server!r} stopped: {reason}. It restarts on the next call."
                return ToolOutcome(text, is_error=True, kind="server_error")
        return ToolOutcome(f"MCP server {server!r}: {result.error}", True, "server_error")
