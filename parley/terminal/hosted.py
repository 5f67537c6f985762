"""MCP servers the Parley server runs for the terminal's assistant (hosted MCP), as opposed to
the terminal's own MCP servers (``mcp_tools``): what the client shows and asks about them.

A ``--hosted-mcp SPEC`` becomes the assistant's ``mcp`` tool through ``parley.mcp.spec`` (the
grammar shared with ``parley web``). A call of a server whose approval rule is ``always``
(the default) waits for the user's answer (``approval_question``); with ``?approval=never``
the server runs the calls at once and they only show as they happen.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from parley.controls import clean
from parley.events import ActionItem

__all__ = ["approval_question", "hosted_key"]

_ARGUMENTS_SHOWN = 300


def hosted_key(tool: Mapping[str, Any]) -> tuple[str, str, str]:
    """What makes two ``mcp`` tools the same for reusing an assistant: the label, the URL,
    the allowed tools and the approval rule (as the server stores them)."""
    rest = {k: tool.get(k) for k in ("server_url", "allowed_tools", "require_approval")}
    return ("mcp", str(tool.get("server_label", "")), json.dumps(rest, sort_keys=True))


def approval_question(action: ActionItem) -> str:
    """``Run echo on tests with {"text": "hi"}? [y/N] `` for a call that waits for the user's
    approval; names and arguments as cleaned text (they come from the model and the MCP
    server)."""
    approval = action.approval or {}
    name = str(approval.get("name") or action.name)
    server = str(approval.get("server_label") or "?")
    shown = json.dumps(action.arguments, ensure_ascii=False, separators=(", ", ": "), default=str)
    if len(shown) > _ARGUMENTS_SHOWN:
        shown = shown[: _ARGUMENTS_SHOWN - 1] + "…"
    return f"Run {clean(name)} on {clean(server)} with {clean(shown)}? [y/N] "
