"""The server's MCP items as the Responses API shows them, from what a run stores: a tool
list (``mcp_list_tools``), a call the server ran (``mcp_call``), a call that waits for the
client's approval (``mcp_approval_request``)."""

from __future__ import annotations

from typing import Any

import orjson


def hosted_item(item: dict[str, Any]) -> dict[str, Any]:
    """A hosted tool's stored item as the API shows it: a tool list has no status."""
    if item.get("type") == "mcp_list_tools":
        return {k: v for k, v in item.items() if k != "status"}
    return dict(item)


def approval_request_item(
    hosted: dict[str, Any], arguments: dict[str, Any] | str
) -> dict[str, Any]:
    """The ``mcp_approval_request`` of a hosted call that waits for the client's approval
    (its ``hosted`` mark: server, tool, and the request's id)."""
    if not isinstance(arguments, str):
        arguments = orjson.dumps(arguments).decode()
    return {
        "type": "mcp_approval_request",
        "id": hosted["approval_request_id"],
        "server_label": hosted["server_label"],
        "name": hosted["name"],
        "arguments": arguments,
    }
