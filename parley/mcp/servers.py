"""The MCP servers an operator registers, and the server-wide MCP settings, as the server
uses them.

    [mcp_servers.LABEL] ──Settings──> MCPServerConfig ──registered(settings, label)
    PARLEY_MCP_ALLOW_URLS ──address_policy(settings)──> AddressPolicy

A request names a registered server by its ``server_label`` alone; its address, headers and
the command of a stdio server stay on the server. ``MCPServerConfig.allows`` says whether a
caller may use it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from parley.config import ConfigError, MCPServerConfig, Settings

if TYPE_CHECKING:
    from parley.mcp.addresses import AddressPolicy

__all__ = ["address_policy", "registered"]


def registered(settings: Settings, label: str) -> MCPServerConfig | None:
    """The server the operator registered under ``label`` (None: there is none)."""
    return settings.mcp_servers.get(label)


def address_policy(settings: Settings) -> AddressPolicy:
    """Where a ``server_url`` given in a request may point: public addresses, and what
    ``PARLEY_MCP_ALLOW_URLS`` adds. Raises ``ConfigError`` naming a bad entry; made once
    when the server starts, so a bad one stops the start."""
    from parley.mcp.addresses import AddressPolicy

    try:
        return AddressPolicy.parse(settings.mcp_allow_urls)
    except ValueError as exc:
        raise ConfigError(f"PARLEY_MCP_ALLOW_URLS: {exc}") from None
