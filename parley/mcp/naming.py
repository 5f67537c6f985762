"""How MCP tools are shown to a model: their names and their input schemas.

A tool keeps its own name unless two servers offer it: then every copy is exposed as
``<server>__<tool>``. Names are made to match ``^[a-zA-Z0-9_-]{1,64}$`` (what providers
accept): other characters become ``_`` and long names are cut at 64; a clash left after that
gets a ``_2``, ``_3`` suffix. Servers are taken in config order, tools in listing order, so
the names stay the same from one start to the next.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["EMPTY_SCHEMA", "exposed_names", "parameters_schema"]

EMPTY_SCHEMA: Mapping[str, Any] = {"type": "object", "properties": {}}

_MAX_NAME = 64
_NOT_IN_NAME = re.compile(r"[^a-zA-Z0-9_-]")


def _sanitise(name: str) -> str:
    return _NOT_IN_NAME.sub("_", name)[:_MAX_NAME] or "_"


def exposed_names(offers: Sequence[tuple[str, str]]) -> list[str]:
    """The name each ``(server, tool)`` gets, in order, by the rule in the module docstring."""
    owners: dict[str, set[str]] = {}
    for server, tool in offers:
        owners.setdefault(_sanitise(tool), set()).add(server)
    taken: set[str] = set()
    names = []
    for server, tool in offers:
        name = _sanitise(tool)
        if len(owners[name]) > 1:
            name = f"{_sanitise(server)}__{name}"[:_MAX_NAME]
        wanted, n = name, 1
        while name in taken:
            n += 1
            name = f"{wanted[: _MAX_NAME - len(str(n)) - 1]}_{n}"
        taken.add(name)
        names.append(name)
    return names


def parameters_schema(schema: Mapping[str, Any] | None) -> dict[str, Any]:
    """An input schema as Parley accepts it: an object schema with ``properties``."""
    if not schema or schema.get("type", "object") != "object":
        return dict(EMPTY_SCHEMA)
    params = {"type": "object", **schema}
    if not isinstance(params.get("properties"), dict):
        params["properties"] = {}
    return params
