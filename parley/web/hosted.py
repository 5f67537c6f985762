"""MCP servers the Parley server runs for the page's assistant (``--hosted-mcp SPEC``).

    hosted_mcp_tool("https://mcp.example.com/mcp")
      → {"type": "mcp", "server_label": "mcp-example-com", "server_url": ...,
         "require_approval": "always"}
    hosted_mcp_tool("docs=https://mcp.example.com/mcp?approval=never#search,fetch")
    hosted_mcp_tool("docs")            # a server the operator registered as [mcp_servers.docs]

A SPEC is ``[LABEL=]URL`` or a registered ``LABEL`` (as ``parley chat --hosted-mcp``),
labelled after the URL's host when no label is given. ``#tool,tool`` at its end offers only
those tools (a URL's fragment is never sent to a server). ``?approval=never`` runs the
server's calls without asking (the default asks before each call); that key is the page's
own and is taken out of the URL, any other query stays in it.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["hosted_mcp_tool"]

_LABEL = re.compile(r"[A-Za-z0-9_-]{1,64}")
_NOT_LABEL = re.compile(r"[^A-Za-z0-9_-]+")
_APPROVALS = ("always", "never")


def hosted_mcp_tool(spec: str) -> dict[str, Any]:
    """The assistant's ``mcp`` tool for a ``--hosted-mcp`` SPEC.

    Raises:
        ValueError: the SPEC is no URL nor label, or an option is unknown (the message says
            which).
    """
    text, hash_mark, tools = spec.strip().partition("#")
    label, _, rest = text.partition("=") if _names_label(text) else ("", "", text)
    head, _, query = rest.partition("?")
    options = dict(parse_qsl(query, keep_blank_values=True))
    approval = options.pop("approval", "always")
    if approval not in _APPROVALS:
        raise ValueError(f"--hosted-mcp {spec!r}: approval must be always or never")
    allowed = [t.strip() for t in tools.split(",") if t.strip()]
    if hash_mark and not allowed:
        raise ValueError(f"--hosted-mcp {spec!r}: no tool named after '#'")
    tool: dict[str, Any] = {"type": "mcp", "require_approval": approval}
    if "://" in head:
        parts = urlsplit(head + (f"?{urlencode(options)}" if options else ""))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"--hosted-mcp {spec!r}: use an http(s) URL or a server label")
        tool["server_url"] = urlunsplit(parts)
        label = label or _NOT_LABEL.sub("-", parts.hostname).strip("-")[:64]
    else:
        if label or options:
            raise ValueError(f"--hosted-mcp {spec!r}: use LABEL=URL, URL or a server label")
        label = head
    if not _LABEL.fullmatch(label):
        raise ValueError(
            f"--hosted-mcp {spec!r}: a server label is 1 to 64 letters, digits, '_' or '-'"
        )
    tool["server_label"] = label
    if allowed:
        tool["allowed_tools"] = allowed
    return tool


def _names_label(text: str) -> bool:
    """Whether ``text`` starts with ``LABEL=`` (an ``=`` before any ``://`` or ``?``)."""
    equals = text.find("=")
    if equals < 0:
        return False
    return all(mark < 0 or equals < mark for mark in (text.find("://"), text.find("?")))
