"""The one error of configuration, and how a setting's problem is put into words."""

from __future__ import annotations

import math
from typing import Any

from pydantic import ValidationError


class ConfigError(Exception):
    """The configuration cannot be used; the message says what to fix."""


def first_error(exc: ValidationError) -> str:
    """The first problem of a validation, as ``where: what`` (never the input's value)."""
    first = exc.errors(include_input=False)[0]
    where = ".".join(str(p) for p in first["loc"])
    message = first["msg"].removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def positive(name: str, value: Any, kind: type[int] | type[float]) -> Any:
    """``value`` of the setting ``name`` (``PARLEY_NAME``) as a positive number of ``kind``;
    a ``ConfigError`` saying so otherwise."""
    try:
        number = kind(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        number = None
    if isinstance(value, bool) or number is None or not math.isfinite(number) or number <= 0:
        what = "a whole number above 0" if kind is int else "a number of seconds above 0"
        raise ConfigError(f"PARLEY_{name.upper()} must be {what}, not {value!r}")
    if kind is int and isinstance(value, float) and not value.is_integer():
        raise ConfigError(f"PARLEY_{name.upper()} must be a whole number above 0, not {value!r}")
    return number
