"""``--hosted-mcp SPEC``: one MCP server the Parley server runs for an assistant, named on a
command line (``parley chat``, ``parley ask``, ``parley web``, ``parley run``). Plain text
in, the assistant's ``mcp`` tool out; no MCP SDK here.

    hosted_mcp_tool("https://mcp.example.com/mcp")
      → {"type": "mcp", "server_label": "mcp-example-com",
         "server_url": "https://mcp.example.com/mcp", "require_approval": "always"}
    hosted_mcp_tool("docs=https://mcp.example.com/mcp?approval=never#search,fetch")
      → {"type": "mcp", "server_label": "docs", "server_url": "https://mcp.example.com/mcp",
         "allowed_tools": ["search", "fetch"], "require_approval": "never"}
    hosted_mcp_tool("deepwiki?approval=never")   # registered as [mcp_servers.deepwiki]

The grammar::

    SPEC  = [LABEL "="] URL ["#" TOOLS]  |  LABEL ["?approval=" RULE] ["#" TOOLS]
    URL   = http(s)://host[:port][/path][?query]
    TOOLS = tool["," tool]...            RULE = always | never

* ``URL``: a server the Parley server reaches at that address, labelled after its host
  (``mcp.example.com`` -> ``mcp-example-com``) unless ``LABEL=`` gives the label.
* ``LABEL``: a server the operator registered on the Parley server (``[mcp_servers.LABEL]``).
  A label is 1 to 64 letters, digits, ``_`` or ``-``.
* ``#tool,tool`` at the end: only these tools of the server are offered (``allowed_tools``).
  A URL's fragment is never sent to a server, so the ``#`` is free for this.
* ``approval=always|never`` in the query: whether each call waits for the user's approval
  (``require_approval``; ``always`` when not given). The key is Parley's own: it is taken out
  of the URL, and any other key of the query stays in it as written. A bare ``LABEL`` takes
  ``?approval=`` too, and no other key (the registered server's address is the operator's).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote_plus, urlsplit

__all__ = ["HostedSpecError", "hosted_mcp_tool"]

_LABEL = re.compile(r"[A-Za-z0-9_-]{1,64}")
_NOT_LABEL = re.compile(r"[^A-Za-z0-9_-]+")
_APPROVALS = ("always", "never")
_LABEL_RULE = "1 to 64 letters, digits, '_' or '-'"


class HostedSpecError(ValueError):
    """A ``--hosted-mcp`` SPEC that names no server; the message quotes the SPEC and says
    what is wrong with it."""


def hosted_mcp_tool(spec: str) -> dict[str, Any]:
    """The assistant's ``mcp`` tool for one ``--hosted-mcp`` SPEC (the grammar is in the
    module's text).

    Raises:
        HostedSpecError: an empty SPEC, a bad label, a URL that is not http(s) or has no
            host, an approval rule other than ``always`` or ``never``, a query on a label,
            a ``#`` with no tool after it.
    """

    def refuse(why: str) -> HostedSpecError:
        return HostedSpecError(f"--hosted-mcp {spec!r}: {why}")

    head, hash_mark, tools = spec.strip().partition("#")
    if not head.strip():
        raise refuse("give a URL, LABEL=URL or a LABEL")
    allowed = [name.strip() for name in tools.split(",") if name.strip()]
    if hash_mark and not allowed:
        raise refuse("no tool named after '#'")

    label, named, rest = head.partition("=") if _names_label(head) else ("", "", head)
    label, rest = label.strip(), rest.strip()
    base, _, query = rest.partition("?")
    kept, approvals = _split_query(query)
    if len(approvals) > 1:
        raise refuse("approval is given more than once")
    approval = approvals[0] if approvals else "always"
    if approval not in _APPROVALS:
        raise refuse(f"approval must be always or never, not {approval!r}")

    tool: dict[str, Any] = {"type": "mcp"}
    if "://" in base:
        url = base + (f"?{'&'.join(kept)}" if kept else "")
        host = _checked_host(url, refuse)
        tool["server_url"] = url
        label = label if named else (_NOT_LABEL.sub("-", host).strip("-")[:64] or "mcp")
    elif named:
        raise refuse(f"{rest!r} is not an http(s) URL (LABEL=URL names a server by its URL)")
    else:
        label = base.strip()
        if kept:
            raise refuse("a server label takes no query but ?approval= (give a URL to pass others)")
    if not _LABEL.fullmatch(label):
        nor = "" if named or "server_url" in tool else " nor an http(s) URL"
        raise refuse(f"{label!r} is not a server label ({_LABEL_RULE}){nor}")
    tool["server_label"] = label
    if allowed:
        tool["allowed_tools"] = allowed
    tool["require_approval"] = approval
    return tool


def _names_label(text: str) -> bool:
    """Whether ``text`` starts with ``LABEL=``: an ``=`` before any ``://`` or ``?`` (an
    ``=`` further on is in the URL's query)."""
    equals = text.find("=")
    if equals < 0:
        return False
    return all(mark < 0 or equals < mark for mark in (text.find("://"), text.find("?")))


def _split_query(query: str) -> tuple[list[str], list[str]]:
    """A query's pairs other than ``approval``, as written, and the ``approval`` values."""
    kept: list[str] = []
    approvals: list[str] = []
    for pair in query.split("&"):
        if not pair:
            continue
        key, _, value = pair.partition("=")
        if unquote_plus(key) == "approval":
            approvals.append(unquote_plus(value))
        else:
            kept.append(pair)
    return kept, approvals


def _checked_host(url: str, refuse: Callable[[str], HostedSpecError]) -> str:
    """The host of an http(s) ``url``; ``refuse(why)`` is raised for anything else."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - a port that is no number raises here
    except ValueError:
        raise refuse(f"{url!r} is not a valid URL (look at its host and port)") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise refuse(f"{url!r} is not an http(s) URL")
    if not parts.hostname:
        raise refuse(f"{url!r} has no host")
    return parts.hostname
