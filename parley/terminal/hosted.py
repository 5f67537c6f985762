"""MCP servers the Parley server runs for the terminal's assistant (hosted MCP), as opposed to
the terminal's own MCP servers (``mcp_tools``): ``--hosted-mcp SPEC`` and what the client
shows and asks about them.

A SPEC names one server:

* ``URL`` (``http://`` or ``https://``): a server the Parley server reaches at that address,
  labelled after its host (``mcp.example.com`` -> ``mcp-example-com``);
* ``LABEL=URL``: the same, with the label given;
* ``LABEL``: a server the operator registered on the Parley server (``[mcp_servers.LABEL]``).

Any of them may end with ``#tool,tool``: only these tools of the server are offered
(``allowed_tools``). A URL's fragment is never sent to a server, so the ``#`` is free for it.
Every call waits for the user's approval (``require_approval`` ``always``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from parley.controls import clean
from parley.events import ActionItem

__all__ = [
    "HostedSpecError",
    "approval_question",
    "hosted_key",
    "hosted_tool",
]

_LABEL = re.compile(r"[A-Za-z0-9_-]{1,64}")
_ARGUMENTS_SHOWN = 300


class HostedSpecError(ValueError):
    """A ``--hosted-mcp`` SPEC that names no server; the message says why."""


def hosted_tool(spec: str) -> dict[str, Any]:
    """The assistant's ``mcp`` tool for one ``--hosted-mcp`` SPEC (see the module's text).

    Raises:
        HostedSpecError: an empty SPEC, a bad label, a URL with no host, an empty tool list.
    """
    text, _, tools = spec.strip().partition("#")
    if not text:
        raise HostedSpecError(f"--hosted-mcp {spec!r}: give a URL, LABEL=URL or a LABEL")
    label, url = _label_and_url(text)
    if not _LABEL.fullmatch(label):
        raise HostedSpecError(
            f"--hosted-mcp {spec!r}: {label!r} is not a server label "
            "(1 to 64 letters, digits, '_' or '-')"
        )
    tool: dict[str, Any] = {"type": "mcp", "server_label": label}
    if url is not None:
        tool["server_url"] = url
    if tools or spec.strip().endswith("#"):
        names = [name.strip() for name in tools.split(",") if name.strip()]
        if not names:
            raise HostedSpecError(f"--hosted-mcp {spec!r}: no tool named after '#'")
        tool["allowed_tools"] = names
    tool["require_approval"] = "always"
    return tool


def _label_and_url(text: str) -> tuple[str, str | None]:
    label, sep, rest = text.partition("=")
    if sep and not _is_url(label):
        if not _is_url(rest):
            raise HostedSpecError(f"--hosted-mcp {text!r}: {rest!r} is not an http(s) URL")
        return label.strip(), _checked_url(rest.strip())
    if _is_url(text):
        url = _checked_url(text.strip())
        host = urlsplit(url).hostname or ""
        return re.sub(r"[^A-Za-z0-9_-]+", "-", host).strip("-")[:64] or "mcp", url
    return text.strip(), None


def _is_url(text: str) -> bool:
    return text.strip().lower().startswith(("http://", "https://"))


def _checked_url(url: str) -> str:
    if not urlsplit(url).hostname:
        raise HostedSpecError(f"--hosted-mcp: {url!r} has no host")
    return url


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
