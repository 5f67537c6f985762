"""MCP servers the Parley server runs for the terminal's assistant (hosted MCP), as opposed to
the terminal's own MCP servers (``mcp_tools``): what the client shows and asks about them.

A ``--hosted-mcp SPEC`` becomes the assistant's ``mcp`` tool through ``parley.mcp.spec`` (the
grammar shared with ``parley web``). A call of a server whose approval rule is ``always``
(the default) waits for the user's answer (``approval_question``: the question of the
client's own tools, with the server named); "always" approves that tool of that server for
the rest of the session. With ``?approval=never`` the server runs the calls at once and
they only show as they happen.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from parley.events import ActionItem
from parley.terminal.output import question

__all__ = ["approval_question", "hosted_key"]


def hosted_key(tool: Mapping[str, Any]) -> tuple[str, str, str]:
    """What makes two ``mcp`` tools the same for reusing an assistant: the label, the URL,
    the allowed tools and the approval rule (as the server stores them)."""
    rest = {k: tool.get(k) for k in ("server_url", "allowed_tools", "require_approval")}
    return ("mcp", str(tool.get("server_label", "")), json.dumps(rest, sort_keys=True))


def approval_question(action: ActionItem) -> str:
    """``Run echo on tests with {"text": "hi"}? [y]es / [n]o / [a]lways for this tool: ``
    for a call that waits for the user's approval (``output.question``)."""
    approval = action.approval or {}
    name = str(approval.get("name") or action.name)
    server = str(approval.get("server_label") or "?")
    return question(name, action.arguments, server=server)
