"""Token usage per API key: one row per UTC day, key, model and face (the API that made
the calls), which calls add to with upserts (``add_usage``, or ``add_tallies`` for many
calls counted together). For model calls that leave no run behind (a run counts its own
tokens).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from parley.store.tables import key_usage

_TOKENS = ("input_tokens", "output_tokens", "reasoning_tokens", "cached_tokens")


def _upsert(insert: Any) -> Any:
    """``INSERT ... ON CONFLICT (primary key) DO UPDATE``: the requests and tokens added."""
    statement = insert(key_usage)
    added = {c: key_usage.c[c] + statement.excluded[c] for c in ("requests", *_TOKENS)}
    return statement.on_conflict_do_update(
        index_elements=[c.name for c in key_usage.primary_key.columns], set_=added
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


@dataclass(frozen=True, slots=True)
class TallyKey:
    """Which row of ``key_usage`` calls count in."""

    day: str
    user_id: str
    key_hash: str
    model: str
    face: str


@dataclass(slots=True)
class Tally:
    """Calls counted together, and their tokens."""

    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    cached_tokens: int = 0

    def add(self, other: Tally) -> None:
        self.requests += other.requests
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.reasoning_tokens += other.reasoning_tokens
        self.cached_tokens += other.cached_tokens


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
    key = TallyKey(day_of(at), user_id, key_hash, model, face)
    tally = Tally(1, input_tokens, output_tokens, reasoning_tokens, cached_tokens)
    add_tallies(conn, {key: tally})


def add_tallies(conn: Connection, tallies: Mapping[TallyKey, Tally]) -> None:
    """Add each tally to its row (one upsert per row, in one statement)."""
    if not tallies:
        return
    conn.execute(
        _UPSERTS[conn.dialect.name],
        [
            {
                "day": key.day,
                "user_id": key.user_id,
                "key_hash": key.key_hash,
                "model": key.model,
                "face": key.face,
                "requests": tally.requests,
                "input_tokens": tally.input_tokens,
                "output_tokens": tally.output_tokens,
                "reasoning_tokens": tally.reasoning_tokens,
                "cached_tokens": tally.cached_tokens,
            }
            for key, tally in tallies.items()
        ],
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
