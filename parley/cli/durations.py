"""Durations written as on the command line: ``90m``, ``24h``, ``7d``, ``2w``, ``1d12h``,
``1.5h`` (units s, m, h, d, w), for ``parley keys create --expires`` and ``parley db prune
--older-than``."""

from __future__ import annotations

import re

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


def seconds_of(text: str) -> float | None:
    """The seconds ``text`` says, or None when it is no duration."""
    value = text.strip().lower()
    parts = _PART.findall(value)
    if not parts or "".join(n + u for n, u in parts) != value:
        return None
    return sum(float(n) * _UNITS[u] for n, u in parts)
