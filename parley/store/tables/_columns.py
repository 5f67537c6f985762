"""The column types of the schema, its ``metadata`` and its naming conventions.

Every column that holds content (text, names and JSON from a model, a tool or a client)
stores U+0000 as U+FFFD, on every database: PostgreSQL can hold NUL in neither text nor
JSONB, and such a string must be stored the same way wherever it lands. Ids, statuses and
the event log's JSON text (whose NULs are escapes) are plain columns: they are bound on the
hot path, and a NUL in an id never gets this far (``server.limits``).
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from sqlalchemy import (
    JSON,
    Dialect,
    MetaData,
    String,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator, TypeEngine

NUL, REPLACEMENT = "\x00", "\ufffd"


def without_nul(value: Any) -> Any:
    """``value`` (a string, or JSON data) with U+0000 in its strings replaced by U+FFFD."""
    if isinstance(value, str):
        return value.replace(NUL, REPLACEMENT) if NUL in value else value
    if isinstance(value, dict):
        return {without_nul(k): without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_nul(v) for v in value]
    return value


class Name(TypeDecorator[str]):
    """``VARCHAR(n)`` of content: U+0000 is stored as U+FFFD."""

    impl = String
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return value.replace(NUL, REPLACEMENT) if value and NUL in value else value


class Content(Name):
    """``TEXT`` of content: U+0000 is stored as U+FFFD."""

    impl = Text
    cache_ok = True  # not inherited: without it, no statement with such a column is cached


_ESCAPED_NUL = b"\\u0000"


def json_text(value: Any) -> str:
    """The JSON text a JSON column stores (the engines' ``json_serializer``): orjson's,
    with U+0000 in strings as U+FFFD. A NUL in a string is always escaped in the text, so
    only a value whose text holds that escape is walked; a value orjson cannot write
    (an integer past 64 bits) falls back to the standard library's."""
    if value is None:  # most of a new message's JSON columns
        return "null"
    try:
        text = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:
        return json.dumps(without_nul(value), ensure_ascii=False)
    if _ESCAPED_NUL in text:
        text = orjson.dumps(without_nul(value), option=orjson.OPT_NON_STR_KEYS)
    return text.decode()


def json_value(text: str | bytes) -> Any:
    """A JSON column's value from its text (the engines' ``json_deserializer``); text
    orjson refuses (a NaN or a huge integer stored by an older version) is read by the
    standard library."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


class JsonType(TypeDecorator[Any]):
    """JSON (JSONB on PostgreSQL) whose strings store U+0000 as U+FFFD: the engines write
    it with ``json_text``."""

    impl = JSON
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        return dialect.type_descriptor(JSONB() if dialect.name == "postgresql" else JSON())


metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

Json = JsonType()

#: How full PostgreSQL packs the pages of the tables a running turn updates at every
#: heartbeat or checkpoint (``runs``: its lease; ``messages``: the text so far). The room
#: left lets an update put the row's new version on its own page, with no new index
#: entries (a heap-only tuple); at 100, most updates move the row and write an entry in
#: every index of the table.
UPDATED_FILLFACTOR = 70
