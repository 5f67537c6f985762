"""Remote MCP servers as hosted tools: a run's ``{"type": "mcp", ...}`` tool entries.

An entry names its server by ``server_label``, with a ``server_url`` (reached through the
address guard: public addresses only, unless the operator widens it) or none (a server the
operator registered under that label: ``[mcp_servers.LABEL]``, whose address and secrets
stay in the config). Headers a request brings (``headers``, ``authorization``) are never
stored: they live in the turn (``turn.hosted.secrets``, its tools' ``TurnView.secrets``)
and are sent again with each request that needs the server.

A server's tools are listed once per conversation: a thread that holds a list of the
label's tools (an ``mcp_list_tools`` item without an error) is not asked again; the
connection is made only when a call needs it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Connection

from parley.config import Settings
from parley.engine.hosted.kind import Approving, Kind, Ran, Tool, Toolset, TurnView
from parley.engine.hosted.records import McpCall, McpListTools
from parley.engine.hosted.sessions import Sessions
from parley.mcp.naming import exposed_names, parameters_schema
from parley.mcp.servers import Who, refusal
from parley.mcp.shapes import CallResult, ListedTool, Listing, ServerTarget
from parley.store import threads as thread_store
from parley.store import users as user_store
from parley.store.db import new_id
from parley.types import FunctionSpec, ToolCall, ToolSpec

if TYPE_CHECKING:
    from parley.engine.hosted.approvals import Approved
    from parley.engine.hosted.services import Services
    from parley.mcp.client import Session

#: MCP's JSON-RPC codes for an error the call itself did not report (``mcp_protocol_error``).
_TIMEOUT_CODE = -32001
_LOST_CODE = -32000
_SERVER_CODE = -32603


@dataclass(frozen=True, slots=True)
class ToolFilter:
    """``allowed_tools`` or a ``require_approval`` filter: tools by name, and/or read-only
    ones (those annotated ``readOnlyHint``)."""

    names: frozenset[str] | None = None
    read_only: bool | None = None

    @classmethod
    def of(cls, given: Any) -> ToolFilter | None:
        if given is None:
            return None
        if isinstance(given, list):
            return cls(names=frozenset(given))
        names = given.get("tool_names")
        return cls(
            names=None if names is None else frozenset(names), read_only=given.get("read_only")
        )

    def matches(self, tool: ListedTool) -> bool:
        if self.names is not None and tool.name not in self.names:
            return False
        if self.read_only is not None:
            hint = bool((tool.annotations or {}).get("readOnlyHint"))
            if hint != self.read_only:
                return False
        return True


@dataclass(slots=True)
class McpServer:
    """One ``mcp`` entry of a run, ready to list and call."""

    label: str
    target: ServerTarget
    description: str | None
    allowed: ToolFilter | None
    #: ``always`` / ``never``, or the filters of a ``{"always": ..., "never": ...}`` policy.
    approval: str | dict[str, ToolFilter | None]
    #: Whether ``target`` came from a request (guarded) or from the operator's config.
    from_request: bool
    session: Session | None = None
    failed: str | None = None
    #: The tools of a list the conversation kept (not listed in this session).
    known: tuple[str, ...] = ()

    def offers(self, tool: ListedTool) -> bool:
        return self.allowed is None or self.allowed.matches(tool)

    def needs_approval(self, tool: ListedTool) -> bool:
        """``always`` unless said otherwise: by a ``never`` policy, or a ``never`` filter
        that matches the tool (which wins over an ``always`` filter that matches it too)."""
        if isinstance(self.approval, str):
            return self.approval != "never"
        never = self.approval.get("never")
        return never is None or not never.matches(tool)


def server_of(
    entry: Mapping[str, Any], settings: Settings, secrets: Mapping[str, str] | None, who: Who
) -> McpServer | str:
    """The server of one stored ``mcp`` entry, with the request's ``secrets`` (its headers);
    or why it cannot be used: a registered label the config no longer has, or one the
    turn's caller ``who`` may not use."""
    label = str(entry["server_label"])
    url = entry.get("server_url")
    approval: str | dict[str, ToolFilter | None]
    given = entry.get("require_approval")
    if isinstance(given, dict):
        approval = {k: ToolFilter.of(given.get(k)) for k in ("always", "never")}
    else:
        approval = given or "always"
    allowed = ToolFilter.of(entry.get("allowed_tools"))
    if url is not None:
        target = ServerTarget(label=label, url=str(url), headers=dict(secrets or {}))
        return McpServer(
            label, target, entry.get("server_description"), allowed, approval, from_request=True
        )
    config = settings.mcp_servers.get(label)
    if config is None:
        return f"no MCP server is registered as {label!r}"
    refused = refusal(config, label, who)
    if refused is not None:
        return refused
    target = ServerTarget(
        label=label,
        url=config.url,
        transport=config.transport,
        headers={**config.header_values(), **(secrets or {})},
        command=tuple(config.command or ()),
        env=config.env_values() or None,
    )
    if config.allowed_tools is not None:
        names = frozenset(config.allowed_tools)
        if allowed is not None and allowed.names is not None:
            names &= allowed.names
        allowed = ToolFilter(names=names, read_only=allowed.read_only if allowed else None)
    if config.require_approval is not None:
        approval = config.require_approval
    description = entry.get("server_description") or config.description
    return McpServer(label, target, description, allowed, approval, from_request=False)


def listing_record(label: str, listing: Listing | None, item_id: str | None = None) -> McpListTools:
    """The ``mcp_list_tools`` record of a listing (None: still listing). Its ``error``, and
    a tool's ``description`` and ``annotations``, are there only when they have a value, as
    OpenAI leaves them out (clients' schemas refuse a null there)."""
    record = McpListTools(id=item_id or new_id("mcpl"), server_label=label)
    if listing is None:
        return record
    record.tools = [listed_tool(t) for t in listing.tools]
    record.error = listing.error or None
    record.status = "failed" if listing.error else "completed"
    return record


def listed_tool(tool: ListedTool) -> dict[str, Any]:
    """A tool of an ``mcp_list_tools`` item: its name and input schema, and its description
    and annotations when it has them."""
    shown: dict[str, Any] = {"name": tool.name}
    if tool.description is not None:
        shown["description"] = tool.description
    shown["input_schema"] = tool.input_schema
    if tool.annotations is not None:
        shown["annotations"] = tool.annotations
    return shown


def tools_of(item: Mapping[str, Any]) -> list[ListedTool]:
    """The tools an ``mcp_list_tools`` item holds."""
    return [
        ListedTool(
            name=t["name"],
            description=t.get("description"),
            input_schema=parameters_schema(t.get("input_schema")),
            annotations=t.get("annotations"),
        )
        for t in item.get("tools") or ()
    ]


def call_record(
    label: str,
    tool: str,
    arguments: Mapping[str, Any],
    *,
    item_id: str,
    result: CallResult | None = None,
    approval_request_id: str | None = None,
) -> McpCall:
    """The ``mcp_call`` record of a call: in progress (no ``result`` yet), or ended."""
    record = McpCall(
        id=item_id,
        server_label=label,
        name=tool,
        arguments=json.dumps(arguments, separators=(",", ":")),
        approval_request_id=approval_request_id,
    )
    if result is None:
        return record
    if result.error is None:
        record.output, record.status = result.output or "", "completed"
        return record
    record.status = "failed"
    if result.failure == "tool":
        content = [{"type": "text", "text": result.error}]
        record.error = {"type": "mcp_tool_execution_error", "content": content}
    else:
        code = {"timeout": _TIMEOUT_CODE, "lost": _LOST_CODE}.get(
            result.failure or "", _SERVER_CODE
        )
        record.error = {"type": "mcp_protocol_error", "code": code, "message": result.error}
    return record


#: What an ``mcp_call`` cut short by its server's death says (``cut_short``).
CUT_SHORT = (
    "The Parley server running this response stopped during the call; whether the tool "
    "ran is not known."
)


def cut_short(item: dict[str, Any]) -> dict[str, Any]:
    """The ``mcp_call`` item of a call still running when the turn died with its server:
    ``incomplete``, its error saying so."""
    error = {"type": "mcp_protocol_error", "code": _LOST_CODE, "message": CUT_SHORT}
    return {**item, "status": "incomplete", "error": error}


def told(result: CallResult) -> str:
    """What the model is told of a call's result."""
    if result.error is None:
        return result.output or ""
    return f"Error: {result.error}"


async def connect(
    server: McpServer, sessions: Sessions, user_id: str, factory: Any
) -> Session | str:
    """The server's session for this turn, from the process's open sessions (a failure is
    kept for the turn: not retried)."""
    if server.session is not None:
        return server.session
    if server.failed is not None:
        return server.failed
    opened = await sessions.get(
        user_id,
        server.target,
        factory=factory if server.from_request else None,
        allow_stdio=not server.from_request,
    )
    if isinstance(opened, str):
        server.failed = f"could not connect to the MCP server {server.label!r}: {opened}"
        return server.failed
    opened.knows(server.known)
    server.session = opened
    return opened


def elapsed(since: float) -> float:
    return time.perf_counter() - since


# ----------------------------------------------------------------------------- kind


class McpTool(Tool):
    """One tool of an MCP server, as the model sees it."""

    yields = True

    def __init__(self, name: str, server: McpServer, tool: ListedTool, services: Services):
        self.name, self.fallback = name, f"{server.label}__{name}"[:64]
        self.server, self.tool, self.services = server, tool, services

    def spec(self, name: str) -> ToolSpec:
        return ToolSpec(
            function=FunctionSpec(
                name=name,
                description=self.tool.description or "",
                parameters=self.tool.input_schema,
            )
        )

    def about(self) -> dict[str, Any]:
        return {"type": "mcp", "server_label": self.server.label, "name": self.tool.name}

    def mark(self, item_id: str | None, approval_id: str | None) -> dict[str, Any]:
        return {**self.about(), "item_id": item_id, "approval_request_id": approval_id}

    async def call(self, call: ToolCall, turn: TurnView, approval_id: str | None = None) -> Ran:
        server, tool, services = self.server, self.tool, self.services
        item_id = new_id("mcp")
        turn.started(
            call_record(
                server.label,
                tool.name,
                call.arguments,
                item_id=item_id,
                approval_request_id=approval_id,
            )
        )
        began = time.perf_counter()
        session = await connect(server, services.sessions, turn.run.user_id, services.guarded)
        if isinstance(session, str):
            result = CallResult(None, session, failure="lost")
        else:
            result = await session.call(tool.name, call.arguments)
        measure(services, server, "call", began, result.error is not None)
        record = call_record(
            server.label,
            tool.name,
            call.arguments,
            item_id=item_id,
            result=result,
            approval_request_id=approval_id,
        )
        turn.done(record)
        return Ran(call.id, told(result), record)


@dataclass(eq=False)
class McpToolset(Toolset):
    """The MCP servers of one turn, their tools listed."""

    servers: list[McpServer] = field(default_factory=list)
    #: Why the servers of some labels cannot be used by this turn (not listed, not called).
    unusable: dict[str, str] = field(default_factory=dict)

    def absent(self, approved: Approved) -> str | None:
        return self.unusable.get(approved.server_label)

    async def aclose(self) -> None:
        """The turn is done with its sessions (they stay open for the next one:
        ``Services.sessions``)."""
        for server in self.servers:
            server.session = None


class McpKind(Kind):
    """Remote MCP servers' tools (``mcp`` entries)."""

    name = "mcp"
    types = frozenset({"mcp"})

    async def open(
        self, entries: list[Mapping[str, Any]], turn: TurnView, services: Services
    ) -> McpToolset:
        toolset = McpToolset()
        known = await services.db.read(
            thread_store.hosted_items, thread_id=turn.run.thread_id, kind="mcp_list_tools"
        )
        lists = {i["server_label"]: i for i in known if not i.get("error")}
        who = await _caller(entries, turn, services)
        tools: list[tuple[McpServer, ListedTool]] = []
        for entry in entries:
            label = str(entry["server_label"])
            server = server_of(entry, services.settings, turn.secrets.get(label), who)
            if isinstance(server, str):
                toolset.unusable[label] = server
                _listed(toolset, turn, label, Listing([], error=server))
                continue
            toolset.servers.append(server)
            kept = lists.get(label)
            if kept is not None:
                found = tools_of(kept)
                server.known = tuple(t.name for t in found)
            else:
                found = (await _list(toolset, turn, services, server)).tools
            tools += [(server, t) for t in found if server.offers(t)]
        names = exposed_names([(s.label, t.name) for s, t in tools])
        for (server, tool), name in zip(tools, names, strict=True):
            offered = McpTool(name, server, tool, services)
            toolset.tools.append(Approving(offered) if server.needs_approval(tool) else offered)
        return toolset

    async def absent(
        self, approved: Approved, turn: TurnView, toolset: Toolset | None
    ) -> Ran | None:
        why = (toolset.absent(approved) if toolset is not None else None) or (
            f"the MCP server {approved.server_label!r} (or its tool {approved.tool!r}) is not "
            "among this response's tools: send the mcp tool again with the approval"
        )
        record = call_record(
            approved.server_label,
            approved.tool,
            approved.arguments,
            item_id=new_id("mcp"),
            result=CallResult(None, why, failure="protocol"),
            approval_request_id=approved.request_id,
        )
        turn.done(record)
        return Ran(approved.call_id, f"Error: {why}", record)


KIND = McpKind()


async def _caller(entries: list[Mapping[str, Any]], turn: TurnView, services: Services) -> Who:
    """Who the turn is for, as the servers the operator registered for some users or keys
    name callers: the run's user, with the key of the request that started the turn (none
    when it was revoked since). Read only when such a server is among ``entries``: an
    approval given, or an assistant made, with a key that may use it does not let another
    key use it."""
    run, source = turn.run, turn.source
    registered = services.settings.mcp_servers
    configs = [registered.get(str(e["server_label"])) for e in entries if "server_url" not in e]
    if all(c is None or (c.users is None and c.keys is None) for c in configs):
        return Who(run.user_id)  # every server here lets anyone use it
    key_hash = None if source is None else source.key_hash
    return await services.db.read(caller_of, user_id=run.user_id, key_hash=key_hash)


def caller_of(conn: Connection, *, user_id: str, key_hash: str | None) -> Who:
    """The user ``user_id`` as a registered server's access lists name it, with the API
    key of ``key_hash`` while it is one of theirs and not revoked."""
    owner = None if key_hash is None else user_store.find_key(conn, key_hash=key_hash)
    if owner is not None and owner.user.id == user_id:
        return Who(user_id, owner.user.name, owner.key_id)
    return Who(user_id, user_store.get_user(conn, user_id=user_id).name)


async def _list(
    toolset: McpToolset, turn: TurnView, services: Services, server: McpServer
) -> Listing:
    started = listing_record(server.label, None)
    turn.started(started)
    began = time.perf_counter()
    session = await connect(server, services.sessions, turn.run.user_id, services.guarded)
    listing = Listing([], error=session) if isinstance(session, str) else None
    if listing is None:
        assert not isinstance(session, str)
        listing = await session.list_tools()
        shown = [t for t in listing.tools if server.offers(t)]  # as OpenAI lists them
        listing = Listing(shown, listing.error, listing.cut)
    measure(services, server, "list", began, listing.error is not None)
    _listed(toolset, turn, server.label, listing, started.id)
    return listing


def _listed(
    toolset: McpToolset,
    turn: TurnView,
    label: str,
    listing: Listing,
    item_id: str | None = None,
) -> None:
    record = listing_record(label, listing, item_id)
    if item_id is None:
        turn.started(listing_record(label, None, record.id))
    turn.done(record)
    toolset.ahead.append(record)


def measure(
    services: Services, server: McpServer, operation: str, began: float, failed: bool
) -> None:
    label = "other" if server.from_request else server.label  # no label a client makes up
    services.metrics.hosted_call("mcp", label, operation, elapsed(began), failed)
