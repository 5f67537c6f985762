"""The config file (``--config`` / ``PARLEY_CONFIG``), read once and handed out table by table.

    [providers.NAME]        a provider (``ProviderConfig``), checked when providers are asked for
    [mcp_servers.LABEL]     an MCP server the operator registers (``MCPServerConfig``)
    [retrieval]             settings: a key is the setting of its table's prefix, checked as
    [web_search]            the setting is (``[files] max_bytes`` is ``files_max_bytes``,
    [files]                 which ``PARLEY_FILES_MAX_BYTES`` sets too)
    [code_interpreter]

A setting a variable or an argument gives wins over the file's, which wins over its default.
Every problem is a ``ConfigError`` naming the file, the table and the key, never a value.
"""

from __future__ import annotations

import tomllib
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, create_model
from pydantic.fields import FieldInfo

from parley.config.errors import ConfigError, first_error
from parley.config.mcp_servers import MCPServerConfig, check_label


@dataclass(frozen=True, slots=True)
class SettingsTable:
    """A table of the config file whose keys are settings: the key ``k`` is the setting
    ``prefix + k``."""

    name: str
    prefix: str
    #: The keys it takes; None: every setting whose name starts with ``prefix``.
    keys: frozenset[str] | None = None
    #: Keys of settings that are no longer read: taken and ignored, so that a file written
    #: for an older Parley still starts (docs/configuration.md lists them).
    retired: frozenset[str] = frozenset()

    def setting(self, key: str) -> str:
        return self.prefix + key

    def takes(self, setting: str) -> bool:
        if not setting.startswith(self.prefix):
            return False
        return self.keys is None or setting.removeprefix(self.prefix) in self.keys


SETTINGS_TABLES = (
    SettingsTable("retrieval", "", frozenset({"embedding_model"})),
    SettingsTable("web_search", "web_search_"),
    SettingsTable("files", "files_", retired=frozenset({"sweep_seconds"})),
    SettingsTable("code_interpreter", "code_interpreter_", retired=frozenset({"max_open_files"})),
)


def table_models(fields: Mapping[str, FieldInfo]) -> dict[str, type[BaseModel]]:
    """The model of each settings table, made from the settings' own fields: their types,
    defaults, bounds and checks, and no other key."""
    models: dict[str, type[BaseModel]] = {}
    for table in SETTINGS_TABLES:
        taken: dict[str, Any] = {
            name: (info.annotation, info) for name, info in fields.items() if table.takes(name)
        }
        models[table.name] = create_model(
            f"_{table.name}_table", __config__=ConfigDict(extra="forbid"), **taken
        )
    return models


def load_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


@dataclass(frozen=True, slots=True)
class ConfigFile:
    """The tables of one config file, as read."""

    path: Path
    tables: dict[str, Any]

    @classmethod
    def read(cls, path: Path) -> ConfigFile:
        return cls(path, load_toml(path))

    def settings(
        self, models: Mapping[str, type[BaseModel]], given: Collection[str]
    ) -> dict[str, Any]:
        """The settings the file's tables set, checked, leaving out those ``given`` (by a
        variable or an argument), which win."""
        found: dict[str, Any] = {}
        for table in SETTINGS_TABLES:
            found |= self._table_settings(table, models[table.name], given)
        return found

    def _table_settings(
        self, table: SettingsTable, model: type[BaseModel], given: Collection[str]
    ) -> dict[str, Any]:
        raw = {
            k: v for k, v in self._table(table.name, "a table").items() if k not in table.retired
        }
        unknown = sorted(k for k in raw if table.setting(k) not in model.model_fields)
        if unknown:
            raise ConfigError(f"{self.path}: [{table.name}] has no key {unknown[0]!r}")
        wanted = {table.setting(k): v for k, v in raw.items() if table.setting(k) not in given}
        if not wanted:
            return {}
        try:
            checked = model.model_validate(wanted)
        except ValidationError as exc:
            raise ConfigError(f"{self.path}: [{table.name}] {first_error(exc)}") from None
        return {name: getattr(checked, name) for name in wanted}

    def mcp_servers(self) -> dict[str, MCPServerConfig]:
        """The ``[mcp_servers.LABEL]`` tables. Raises ``ConfigError`` naming the table and
        field at fault (never a header's value)."""
        tables = self._table("mcp_servers", "a table of tables")
        out: dict[str, MCPServerConfig] = {}
        for label, table in tables.items():
            check_label(label, where=f"{self.path}: [mcp_servers]")
            if not isinstance(table, dict):
                raise ConfigError(f"{self.path}: [mcp_servers.{label}] must be a table")
            try:
                out[label] = MCPServerConfig.model_validate(table)
            except ValidationError as exc:
                raise ConfigError(
                    f"{self.path}: [mcp_servers.{label}] {first_error(exc)}"
                ) from None
        return out

    def provider_tables(self) -> dict[str, Any]:
        """The ``[providers.NAME]`` tables as written: each is made a ``ProviderConfig``
        when the providers are asked for (``Settings.provider_configs``)."""
        return self._table("providers", "a table")

    def _table(self, name: str, what: str) -> dict[str, Any]:
        table = self.tables.get(name, {})
        if not isinstance(table, dict):
            raise ConfigError(f"{self.path}: [{name}] must be {what}")
        return table
