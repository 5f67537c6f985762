"""Token usage per API key: one row per UTC day, key, model and face (the API that made
the calls), which every call adds to in one upsert. For model calls that leave no run
behind (a run counts its own tokens).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from parley.store.tables import key_usage

_TOKENS = ("input_tokens", "output_tokens", "reasoning_tokens", "cached_tokens")


def _upsert(insert: Any) -> Any:
    """``INSERT ... ON CONFLICT (primary key) DO UPDATE``: one more request, its tokens added."""
    statement = insert(key_usage)
    added = {c: key_usage.c[c] + statement.excluded[c] for c in _TOKENS}
    return statement.on_conflict_do_update(
        index_elements=[c.name for c in key_usage.primary_key.columns],
        set_={"requests": key_usage.c.requests + 1, **added},
    )


# Built once per dialect (building one per call costs more than running it).
_UPSERTS = {"postgresql": _upsert(postgresql.insert), "sqlite": _upsert(sqlite.insert)}


@dataclass(frozen=True, slots=True)
class KeyUsage:
    """A row of ``key_usage``: what one key used of a model through a face in a day."""

    day: str
    key_hash: str
    model: str
    face: str
    requests: int
    input_tokens: int
    output_tokens: int
    reasoning_tokens: int
    cached_tokens: int


def day_of(at: float) -> str:
    """The UTC day of Unix time ``at``: ``YYYY-MM-DD``."""
    return datetime.fromtimestamp(at, UTC).date().isoformat()


def add_usage(
    conn: Connection,
    *,
    user_id: str,
    key_hash: str,
    model: str,
    face: str,
    at: float,
    input_tokens: int = 0,
    output_tokens: int = 0,
    reasoning_tokens: int = 0,
    cached_tokens: int = 0,
) -> None:
    """Count one call made at ``at`` (Unix seconds) with the key whose hash is
    ``key_hash``, and its tokens, in the row of its UTC day."""
    conn.execute(
        _UPSERTS[conn.dialect.name],
        {
            "day": day_of(at),
            "user_id": user_id,
            "key_hash": key_hash,
            "model": model,
            "face": face,
            "requests": 1,
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "reasoning_tokens": reasoning_tokens,
            "cached_tokens": cached_tokens,
        },
    )


def usage_rows(
    conn: Connection, *, user_id: str, key_hash: str | None = None, since_day: str | None = None
) -> list[KeyUsage]:
    """The usage rows of a user, of one key if ``key_hash`` is given, from ``since_day``
    (``YYYY-MM-DD``, included) on if given; by day, then model."""
    c = key_usage.c
    query = select(
        c.day,
        c.key_hash,
        c.model,
        c.face,
        c.requests,
        *(c[name] for name in _TOKENS),
    ).where(c.user_id == user_id)
    if key_hash is not None:
        query = query.where(c.key_hash == key_hash)
    if since_day is not None:
        query = query.where(c.day >= since_day)
    query = query.order_by(c.day, c.model, c.key_hash, c.face)
    return [KeyUsage(**row._mapping) for row in conn.execute(query)]
