"""The MCP servers an operator registers, and the server-wide MCP settings, as the server
uses them.

    [mcp_servers.LABEL] ──Settings──> MCPServerConfig ──registered(settings, label)
    PARLEY_MCP_ALLOW_URLS ──address_policy(settings)──> AddressPolicy

A request names a registered server by its ``server_label`` alone; its address, headers and
the command of a stdio server stay on the server. ``refusal`` says whether a caller (``Who``)
may use it: asked when a request names it, and again by each turn before it lists or calls
the server (the caller of a turn may not be the one who named it: an assistant kept it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from parley.config import ConfigError, MCPServerConfig, Settings

if TYPE_CHECKING:
    from parley.mcp.addresses import AddressPolicy

__all__ = ["Who", "address_policy", "refusal", "registered"]


@dataclass(frozen=True, slots=True)
class Who:
    """A caller, as a registered server's ``users`` and ``keys`` name it: a user by id and
    name, with the API key of this id."""

    user_id: str
    user_name: str | None = None
    key_id: str | None = None


def registered(settings: Settings, label: str) -> MCPServerConfig | None:
    """The server the operator registered under ``label`` (None: there is none)."""
    return settings.mcp_servers.get(label)


def refusal(config: MCPServerConfig, label: str, who: Who) -> str | None:
    """Why ``who`` may not use ``config``, the server registered as ``label`` (None: they
    may). Names the label, never the server's address."""
    if config.allows(who.user_id, who.user_name, who.key_id):
        return None
    return f"this key may not use the MCP server {label!r}"


def address_policy(settings: Settings) -> AddressPolicy:
    """Where a ``server_url`` given in a request may point: public addresses, and what
    ``PARLEY_MCP_ALLOW_URLS`` adds. Raises ``ConfigError`` naming a bad entry; made once
    when the server starts, so a bad one stops the start."""
    from parley.mcp.addresses import AddressPolicy

    try:
        return AddressPolicy.parse(settings.mcp_allow_urls, setting="PARLEY_MCP_ALLOW_URLS")
    except ValueError as exc:
        raise ConfigError(f"PARLEY_MCP_ALLOW_URLS: {exc}") from None
