"""Remote MCP servers as hosted tools: a run's ``{"type": "mcp", ...}`` tool entries.

An entry names its server by ``server_label``, with a ``server_url`` (reached through the
address guard: public addresses only, unless the operator widens it) or none (a server the
operator registered under that label: ``[mcp_servers.LABEL]``, whose address and secrets
stay in the config). Headers a request brings (``headers``, ``authorization``) are never
stored: they live in the turn (``Turn.secrets``) and are sent again with each request that
needs the server.

A server's tools are listed once per conversation: a thread that holds a list of the
label's tools (an ``mcp_list_tools`` item without an error) is not asked again; the
connection is made only when a call needs it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from parley.config import Settings
from parley.engine.hosted.sessions import Sessions
from parley.mcp.naming import parameters_schema
from parley.mcp.servers import Who, refusal
from parley.mcp.shapes import Bounds, CallResult, ListedTool, Listing, ServerTarget
from parley.store.db import new_id

if TYPE_CHECKING:
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


def bounds_of(settings: Settings) -> Bounds:
    return Bounds(
        connect_timeout=settings.mcp_connect_timeout,
        list_timeout=settings.mcp_list_timeout,
        call_timeout=settings.mcp_call_timeout,
        max_output_chars=settings.mcp_max_output,
        max_tools=settings.mcp_max_tools,
    )


def listing_item(label: str, listing: Listing | None, item_id: str | None = None) -> dict[str, Any]:
    """The ``mcp_list_tools`` item of a listing (None: still listing). Its ``error``, and a
    tool's ``description`` and ``annotations``, are there only when they have a value, as
    OpenAI leaves them out (clients' schemas refuse a null there)."""
    item: dict[str, Any] = {
        "type": "mcp_list_tools",
        "id": item_id or new_id("mcpl"),
        "server_label": label,
        "tools": [],
        "status": "in_progress",
    }
    if listing is None:
        return item
    item["tools"] = [listed_tool(t) for t in listing.tools]
    if listing.error:
        item["error"] = listing.error
    item["status"] = "failed" if listing.error else "completed"
    return item


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


def call_item(
    label: str,
    tool: str,
    arguments: Mapping[str, Any],
    *,
    item_id: str,
    result: CallResult | None = None,
    approval_request_id: str | None = None,
) -> dict[str, Any]:
    """The ``mcp_call`` item of a call: in progress (no ``result`` yet), or ended."""
    item: dict[str, Any] = {
        "type": "mcp_call",
        "id": item_id,
        "server_label": label,
        "name": tool,
        "arguments": json.dumps(arguments, separators=(",", ":")),
        "output": None,
        "error": None,
        "status": "in_progress",
        "approval_request_id": approval_request_id,
    }
    if result is None:
        return item
    if result.error is None:
        item["output"], item["status"] = result.output or "", "completed"
        return item
    item["status"] = "failed"
    if result.failure == "tool":
        content = [{"type": "text", "text": result.error}]
        item["error"] = {"type": "mcp_tool_execution_error", "content": content}
    else:
        code = {"timeout": _TIMEOUT_CODE, "lost": _LOST_CODE}.get(
            result.failure or "", _SERVER_CODE
        )
        item["error"] = {"type": "mcp_protocol_error", "code": code, "message": result.error}
    return item


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
