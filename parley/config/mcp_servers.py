"""MCP servers the operator registers: the ``[mcp_servers.LABEL]`` tables of the config file,
which a request then names by their label alone."""

from __future__ import annotations

import os
import re
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    field_validator,
    model_validator,
)

from parley.config.errors import ConfigError

MCPTransport = Literal["streamable_http", "sse", "stdio"]

#: What a ``server_label`` may be: letters, digits, ``_`` and ``-``, 1 to 64 of them.
SERVER_LABEL = re.compile(r"[A-Za-z0-9_-]{1,64}")
#: An HTTP header's name (a token of RFC 9110).
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


class MCPServerConfig(BaseModel):
    """An MCP server the operator registers (``[mcp_servers.LABEL]``), which a request then
    names by its label alone: where it is, which of its tools may be called, and by whom.

    Header values and a stdio server's environment are secrets: they are kept as
    ``SecretStr``, so no repr, log line or validation error shows them; ``header_values``
    and ``env_values`` hand them to the connection. ``headers_env`` is read from the
    environment when the config is validated, and a variable that is not set is an error.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    #: ``streamable_http`` (the default) or ``sse`` reach ``url``; ``stdio`` starts
    #: ``command`` on the server, with ``env`` (possible here only, never in a request).
    transport: MCPTransport = "streamable_http"
    url: str | None = None
    command: tuple[str, ...] | None = None
    env: dict[str, SecretStr] = Field(default_factory=dict)
    #: Headers sent to an HTTP server: literal values, and header name -> the environment
    #: variable that holds its value.
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    headers_env: dict[str, str] = Field(default_factory=dict)
    description: str | None = None
    #: The server's tools a request may call, by the server's names for them (None: all).
    allowed_tools: tuple[str, ...] | None = None
    #: ``always`` or ``never`` wins over what a request asks; None lets the request decide.
    require_approval: Literal["always", "never"] | None = None
    #: Who may use it: users by name or id, API keys by id (``key_...``, as ``parley keys
    #: list`` shows them). A caller listed in either may; with neither given, every user may.
    users: tuple[str, ...] | None = None
    keys: tuple[str, ...] | None = None

    _env_headers: dict[str, SecretStr] = PrivateAttr(default_factory=dict)

    @field_validator("command", mode="before")
    @classmethod
    def _command_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            raise ValueError('a list: the program and its arguments, as ["npx", "-y", "pkg"]')
        return value

    @model_validator(mode="after")
    def _consistent(self) -> MCPServerConfig:
        if self.transport == "stdio":
            _check_stdio(self)
        else:
            _check_http(self)
        for field, names in (("allowed_tools", self.allowed_tools), ("users", self.users)):
            if names is not None and not all(n.strip() for n in names):
                raise ValueError(f"{field}: names must not be empty")
        if self.keys is not None and not all(k.strip() for k in self.keys):
            raise ValueError("keys: key ids must not be empty")
        self._env_headers = _headers_from_env(self.headers_env)
        return self

    def header_values(self) -> dict[str, str]:
        """The headers to send, literal and from the environment, in plain text."""
        merged = {**self.headers, **self._env_headers}
        return {name: value.get_secret_value() for name, value in merged.items()}

    def env_values(self) -> dict[str, str]:
        """A stdio server's environment, in plain text."""
        return {name: value.get_secret_value() for name, value in self.env.items()}

    def allows(self, user_id: str, user_name: str | None, key_id: str | None) -> bool:
        """Whether a caller (a user, by id and name, with the API key of this id) may use
        this server: listed in ``users`` or ``keys``, or anyone when neither is given."""
        if self.users is None and self.keys is None:
            return True
        if self.users is not None and (
            user_id in self.users or (user_name is not None and user_name in self.users)
        ):
            return True
        return self.keys is not None and key_id is not None and key_id in self.keys


def _check_stdio(config: MCPServerConfig) -> None:
    if not config.command or not config.command[0].strip():
        raise ValueError("a stdio server needs a command: the program and its arguments")
    for field in ("url", "headers", "headers_env"):
        if getattr(config, field):
            raise ValueError(f"{field} is for an HTTP server, not a stdio one")


def _check_http(config: MCPServerConfig) -> None:
    transport = config.transport
    if not config.url:
        raise ValueError(f'a {transport} server needs a url (or transport = "stdio")')
    try:
        parts = urlsplit(config.url)
        _ = parts.port  # raises on a port that is not one
    except ValueError:
        raise ValueError("url is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("url must be an http:// or https:// URL with a host")
    for field in ("command", "env"):
        if getattr(config, field):
            raise ValueError(f"{field} is for a stdio server, not a {transport} one")
    named = {n.lower() for n in config.headers}
    for field, names in (("headers", config.headers), ("headers_env", config.headers_env)):
        for name in names:
            if not _HEADER_NAME.fullmatch(name):
                raise ValueError(f"{field}: {name!r} is not a valid header name")
    for name, value in config.headers.items():
        if any(c in value.get_secret_value() for c in "\r\n\0"):
            raise ValueError(f"headers: the value of {name} has a line break or NUL")
    for name in config.headers_env:
        if name.lower() in named:
            raise ValueError(f"headers_env: {name} is in headers too; give it in one of them")


def _headers_from_env(variables: dict[str, str]) -> dict[str, SecretStr]:
    """The values of the variables ``headers_env`` names, read now."""
    found: dict[str, SecretStr] = {}
    for name, variable in variables.items():
        value = os.environ.get(variable)
        if not value:
            raise ValueError(
                f"headers_env: {name} is read from the environment variable {variable}, "
                "which is not set"
            )
        if any(c in value for c in "\r\n\0"):
            raise ValueError(f"headers_env: the variable {variable} has a line break or NUL")
        found[name] = SecretStr(value)
    return found


def check_label(label: str, *, where: str) -> None:
    """A ``ConfigError`` for a label that is not a ``SERVER_LABEL``, saying ``where`` it is."""
    if not SERVER_LABEL.fullmatch(label):
        raise ConfigError(
            f"{where}: {label!r} is not a valid server label: use 1 to 64 letters, digits, "
            "'_' or '-'"
        )
