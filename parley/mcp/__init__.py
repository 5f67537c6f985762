"""Parley's one MCP client layer, shared by the server (hosted MCP tools) and the terminal.

    open_session(ServerTarget, Bounds) ──> Session | str       (parley.mcp.client)
    Session.list_tools() ──> Listing         Session.call(name, arguments) ──> CallResult
    result_text(CallToolResult) ──> str                          (parley.mcp.results)

The names below are imported on first use, so a module of this package that needs no MCP SDK
(checking addresses, say) does not load it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from parley import _lazy_getattr

if TYPE_CHECKING:
    from parley.mcp.client import Session, open_session
    from parley.mcp.results import result_text
    from parley.mcp.shapes import (
        Bounds,
        CallResult,
        HttpClientFactory,
        ListedTool,
        Listing,
        ServerTarget,
    )

__getattr__ = _lazy_getattr(
    globals(),
    {
        **dict.fromkeys(
            ("Bounds", "CallResult", "HttpClientFactory", "ListedTool", "Listing", "ServerTarget"),
            "parley.mcp.shapes",
        ),
        **dict.fromkeys(("Session", "open_session"), "parley.mcp.client"),
        "result_text": "parley.mcp.results",
    },
)

__all__ = [
    "Bounds",
    "CallResult",
    "HttpClientFactory",
    "ListedTool",
    "Listing",
    "ServerTarget",
    "Session",
    "open_session",
    "result_text",
]
