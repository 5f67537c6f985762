"""Attribute filters of a search (OpenAI's ``ComparisonFilter`` and ``CompoundFilter``):
parsed and checked once (a 400 names the field at fault), then compiled to a SQL condition
on the chunks' ``attributes`` JSON for SQLite or PostgreSQL.

A comparison holds only where the attribute has the value's type: ``{"type": "gt", "key":
"year", "value": 2020}`` is false for a file whose ``year`` is the string ``"2021"``, or
which has no ``year``. ``ne`` and ``nin`` are the negations of ``eq`` and ``in``, so they
hold for a file without the attribute.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from sqlalchemy import and_, cast, false, func, literal, not_, or_, true
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.elements import ColumnElement

from parley.errors import InvalidRequest
from parley.store.tables import json_text

Scalar: TypeAlias = str | int | float | bool
Comparator = Literal["eq", "ne", "gt", "gte", "lt", "lte", "in", "nin"]
COMPARATORS: tuple[Comparator, ...] = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "nin")
_ORDERED = ("gt", "gte", "lt", "lte")
#: The longest attribute key (OpenAI's limit), the deepest nesting, the most comparisons.
MAX_KEY = 64
MAX_DEPTH = 8
MAX_COMPARISONS = 100


@dataclass(frozen=True, slots=True)
class Comparison:
    type: Comparator
    key: str
    value: Scalar | tuple[str | int | float, ...]


@dataclass(frozen=True, slots=True)
class Compound:
    type: Literal["and", "or"]
    filters: tuple[Filter, ...]


Filter: TypeAlias = Comparison | Compound


def parse_filter(raw: Any, param: str = "filters") -> Filter:
    """A filter from its JSON form; ``InvalidRequest`` (400) naming the field at fault."""
    count = [0]
    return _parse(raw, param, 0, count)


def _parse(raw: Any, param: str, depth: int, count: list[int]) -> Filter:
    if not isinstance(raw, Mapping):
        raise _bad(f"'{param}' must be an object.", param)
    kind = raw.get("type")
    if kind in ("and", "or"):
        if depth >= MAX_DEPTH:
            raise _bad(f"Filters nest at most {MAX_DEPTH} deep.", param)
        _only(raw, {"type", "filters"}, param)
        items = raw.get("filters")
        if not isinstance(items, list) or not items:
            raise _bad(f"'{param}.filters' must be a non-empty array.", f"{param}.filters")
        parsed = tuple(
            _parse(item, f"{param}.filters[{i}]", depth + 1, count) for i, item in enumerate(items)
        )
        return Compound(kind, parsed)
    if kind not in COMPARATORS:
        allowed = ", ".join(repr(c) for c in (*COMPARATORS, "and", "or"))
        raise _bad(f"'{param}.type' must be one of {allowed}.", f"{param}.type")
    _only(raw, {"type", "key", "value"}, param)
    count[0] += 1
    if count[0] > MAX_COMPARISONS:
        raise _bad(f"A filter holds at most {MAX_COMPARISONS} comparisons.", param)
    key = raw.get("key")
    if not isinstance(key, str) or not 0 < len(key) <= MAX_KEY or '"' in key or "\\" in key:
        raise _bad(
            f"'{param}.key' must be an attribute name of 1 to {MAX_KEY} characters"
            ' without " or \\.',
            f"{param}.key",
        )
    return Comparison(kind, key, _value(kind, raw.get("value"), f"{param}.value"))


def _value(kind: str, value: Any, param: str) -> Scalar | tuple[str | int | float, ...]:
    if kind in ("in", "nin"):
        if not isinstance(value, list) or not value:
            raise _bad(f"'{param}' must be a non-empty array for '{kind}'.", param)
        if not all(_is_text_or_number(v) for v in value):
            raise _bad(f"'{param}' must hold only strings and numbers.", param)
        return tuple(value)
    if kind in _ORDERED:
        if not _is_text_or_number(value):
            raise _bad(f"'{param}' must be a string or a number for '{kind}'.", param)
        return value  # type: ignore[no-any-return]
    if not (_is_text_or_number(value) or isinstance(value, bool)):
        raise _bad(f"'{param}' must be a string, a number or a boolean.", param)
    return value  # type: ignore[no-any-return]


def _is_text_or_number(value: Any) -> bool:
    return isinstance(value, str | int | float) and not isinstance(value, bool)


def _only(raw: Mapping[str, Any], fields: set[str], param: str) -> None:
    extra = sorted(set(raw) - fields)
    if extra:
        raise _bad(f"Unknown field '{param}.{extra[0]}'.", f"{param}.{extra[0]}")


def _bad(message: str, param: str) -> InvalidRequest:
    return InvalidRequest(message, param=param, code="invalid_filter")


def compile_filter(
    node: Filter, attributes: ColumnElement[Any], dialect: str
) -> ColumnElement[bool]:
    """``node`` as a condition on the JSON column ``attributes``; never NULL, so that a
    negation holds where the attribute is missing."""
    if isinstance(node, Compound):
        parts = [compile_filter(f, attributes, dialect) for f in node.filters]
        return and_(true(), *parts) if node.type == "and" else or_(false(), *parts)
    attribute = (
        _SQLite(attributes, node.key) if dialect == "sqlite" else _Postgres(attributes, node.key)
    )
    if node.type in ("in", "nin"):
        assert isinstance(node.value, tuple)
        found = or_(false(), *(attribute.equals(v) for v in node.value))
        return found if node.type == "in" else not_(found)
    assert not isinstance(node.value, tuple)
    if node.type in ("eq", "ne"):
        equal = attribute.equals(node.value)
        return equal if node.type == "eq" else not_(equal)
    return attribute.compare(node.type, node.value)


def _kind(value: Scalar) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "string" if isinstance(value, str) else "number"


class _SQLite:
    """An attribute through ``json_type`` (``text``, ``integer``, ``real``, ``true``,
    ``false``, NULL when missing) and ``json_extract``."""

    _TYPES = {
        "string": ("text",),
        "number": ("integer", "real"),
        "true": ("true",),
        "false": ("false",),
    }

    def __init__(self, attributes: ColumnElement[Any], key: str) -> None:
        path = f'$."{key}"'
        self.type = func.coalesce(func.json_type(attributes, path), "")
        self.value = func.json_extract(attributes, path)

    def _typed(self, value: Scalar) -> ColumnElement[bool]:
        return self.type.in_(self._TYPES[_kind(value)])

    def equals(self, value: Scalar) -> ColumnElement[bool]:
        if isinstance(value, bool):
            return self._typed(value)
        return and_(self._typed(value), func.coalesce(self.value == value, False))

    def compare(self, op: str, value: Scalar) -> ColumnElement[bool]:
        return and_(self._typed(value), func.coalesce(_ordered(self.value, op, value), False))


class _Postgres:
    """An attribute through ``jsonb_typeof`` and jsonb's own comparison (numbers by
    value, strings by text), so that no cast can fail."""

    def __init__(self, attributes: ColumnElement[Any], key: str) -> None:
        self.value = attributes.op("->", return_type=JSONB)(literal(key))
        self.type = func.coalesce(func.jsonb_typeof(self.value), "")

    def _typed(self, value: Scalar) -> ColumnElement[bool]:
        return self.type == ("boolean" if isinstance(value, bool) else _kind(value))

    def _json(self, value: Scalar) -> ColumnElement[Any]:
        return cast(literal(json_text(value)), JSONB)

    def equals(self, value: Scalar) -> ColumnElement[bool]:
        return and_(self._typed(value), func.coalesce(self.value == self._json(value), False))

    def compare(self, op: str, value: Scalar) -> ColumnElement[bool]:
        ordered = _ordered(self.value, op, self._json(value))
        return and_(self._typed(value), func.coalesce(ordered, False))


def _ordered(left: Any, op: str, right: Any) -> ColumnElement[bool]:
    if op == "gt":
        return left > right  # type: ignore[no-any-return]
    if op == "gte":
        return left >= right  # type: ignore[no-any-return]
    if op == "lt":
        return left < right  # type: ignore[no-any-return]
    return left <= right  # type: ignore[no-any-return]
