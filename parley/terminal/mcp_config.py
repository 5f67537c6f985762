"""The MCP config file of ``parley chat`` and ``parley ask``: ``{"mcpServers": {...}}``.

    mcp.json ──load_mcp_config()──> {name: ServerSpec}

Standard library only, so the command line can find and read the file without importing the
MCP SDK (``parley.terminal.mcp_tools`` runs the servers).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "ConfirmMode",
    "MCPConfigError",
    "ServerSpec",
    "Transport",
    "default_mcp_config_path",
    "load_mcp_config",
    "parse_mcp_config",
]

Transport = Literal["stdio", "http"]
ConfirmMode = Literal["ask", "always", "never"]


class MCPConfigError(ValueError):
    """The MCP config file is unusable; ``server`` and ``field`` name the culprit, if one."""

    def __init__(
        self,
        message: str,
        *,
        path: Path | None = None,
        server: str | None = None,
        field: str | None = None,
    ) -> None:
        where = f"{path}: " if path is not None else ""
        if server is not None:
            where += f"server {server!r}: "
        super().__init__(where + message)
        self.path = path
        self.server = server
        self.field = field


@dataclass(frozen=True)
class ServerSpec:
    """One entry of ``mcpServers``: how to reach the server and Parley's settings for it."""

    name: str
    transport: Transport
    command: str = ""
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None
    url: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    #: Seconds per tool call; overrides the call's own timeout and the hub's default.
    timeout: float | None = None
    #: Tools (the server's own names for them) that run without confirmation; ``True``: all.
    allow: bool | frozenset[str] = frozenset()
    disabled: bool = False

    def allows(self, tool: str) -> bool:
        """Whether ``tool`` (the server's own name for it) may run without asking."""
        return self.allow is True or (isinstance(self.allow, frozenset) and tool in self.allow)


def default_mcp_config_path(environ: Mapping[str, str] | None = None) -> Path:
    """``$XDG_CONFIG_HOME/parley/mcp.json``, by default ``~/.config/parley/mcp.json``."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "parley" / "mcp.json"


def load_mcp_config(path: Path, *, missing_ok: bool = False) -> dict[str, ServerSpec]:
    """The servers of an MCP config file, by name, in file order.

    Raises:
        MCPConfigError: the file is missing (unless ``missing_ok``), unreadable, not JSON, or
            an entry is malformed; the message names the server and field.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if missing_ok:
            return {}
        raise MCPConfigError("no such file", path=path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise MCPConfigError(f"cannot read the file ({exc})", path=path) from None
    return parse_mcp_config(text, path=path)


def parse_mcp_config(text: str, *, path: Path | None = None) -> dict[str, ServerSpec]:
    """:func:`load_mcp_config` for text already read; ``path`` only labels the errors."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        raise MCPConfigError(f"not valid JSON: {exc.msg} ({where})", path=path) from None
    servers = data.get("mcpServers") if isinstance(data, dict) else None
    if not isinstance(servers, dict):
        message = 'expected {"mcpServers": {...}} mapping server names to their settings'
        raise MCPConfigError(message, path=path, field="mcpServers")
    return {name: _Entry(name, entry, path).spec() for name, entry in servers.items()}


class _Entry:
    """Reads one server entry, raising :class:`MCPConfigError` that names the bad field."""

    def __init__(self, name: str, data: Any, path: Path | None) -> None:
        self.name, self.data, self.path = name, data, path
        if not name.strip():
            raise MCPConfigError("server names must not be empty", path=path)
        if not isinstance(data, dict):
            raise self.error(None, "the settings must be a JSON object")

    def error(self, field: str | None, message: str) -> MCPConfigError:
        text = f"{field!r} {message}" if field else message
        return MCPConfigError(text, path=self.path, server=self.name, field=field)

    def spec(self) -> ServerSpec:
        kind = self.data.get("type")
        if kind is not None and kind not in ("stdio", "http", "streamable-http"):
            raise self.error("type", f'must be "stdio", "http" or "streamable-http", not {kind!r}')
        if kind is None:
            has_command, has_url = "command" in self.data, "url" in self.data
            if has_command and has_url:
                raise self.error(None, 'has both "command" and "url": remove one or set "type"')
            if not (has_command or has_url):
                raise self.error(None, 'needs "command" (a local server) or "url" (a remote one)')
            kind = "stdio" if has_command else "http"
        common: dict[str, Any] = {
            "name": self.name,
            "timeout": self.timeout(),
            "allow": self.allow(),
            "disabled": self.flag("disabled"),
        }
        if kind == "stdio":
            return ServerSpec(
                transport="stdio",
                command=self.string("command", required=True) or "",
                args=tuple(self.strings("args")),
                env=self.string_map("env"),
                cwd=os.path.expanduser(cwd) if (cwd := self.string("cwd")) else None,
                **common,
            )
        url = self.string("url", required=True) or ""
        if not url.startswith(("http://", "https://")):
            raise self.error("url", f"must be an http:// or https:// URL, not {url!r}")
        return ServerSpec(transport="http", url=url, headers=self.string_map("headers"), **common)

    def string(self, key: str, *, required: bool = False) -> str | None:
        value = self.data.get(key)
        if value is None and not required:
            return None
        if not isinstance(value, str) or not value.strip():
            raise self.error(
                key, "must be a non-empty string" if value is not None else "is missing"
            )
        return value

    def strings(self, key: str) -> list[str]:
        value = self.data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.error(key, "must be a list of strings")
        return value

    def string_map(self, key: str) -> dict[str, str]:
        value = self.data.get(key, {})
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise self.error(key, "must be an object whose values are strings")
        return dict(value)

    def flag(self, key: str) -> bool:
        value = self.data.get(key, False)
        if not isinstance(value, bool):
            raise self.error(key, "must be true or false")
        return value

    def timeout(self) -> float | None:
        value = self.data.get("timeout")
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            raise self.error("timeout", "must be a positive number of seconds")
        return float(value)

    def allow(self) -> bool | frozenset[str]:
        value = self.data.get("allow", False)
        if isinstance(value, bool):
            return True if value else frozenset()
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return frozenset(value)
        raise self.error("allow", "must be a list of tool names, or true for all of them")
