"""Token usage per API key: one row per UTC day, key, model and face (the API that made
the calls), which calls add to with upserts (``add_usage``, or ``add_tallies`` for many
calls counted together), and reports that add them up by day, user, key, model or face
(``usage_report``). Every model call a client makes counts here, a run's turns included
(``engine.usage``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import func, null, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from parley.store.tables import api_keys, key_usage

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
    """The UTC day of Unix time ``at``: ``YYYY-MM-DD``. Every call and every budget check
    asks for the day of now: the last day's text is kept with the seconds it spans."""
    global _last_day
    start, end, text = _last_day
    if start <= at < end:
        return text
    midnight = (at // _DAY) * _DAY  # Unix time has no leap seconds: a day is 86,400 s
    text = datetime.fromtimestamp(midnight, UTC).date().isoformat()
    _last_day = (midnight, midnight + _DAY, text)
    return text


_DAY = 86_400.0
#: ``day_of``'s last answer: the day's first second, the next day's, and its text.
_last_day: tuple[float, float, str] = (0.0, 0.0, "")


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


#: What a usage report may be grouped by, and the column each one reads.
GROUPS = ("day", "user", "key", "model", "face")


@dataclass(frozen=True, slots=True)
class UsageFilter:
    """Which rows of ``key_usage`` a report adds up: UTC days from ``since`` to ``until``
    (``YYYY-MM-DD``, both included), of a user, of a key (by hash), of a model; None: any."""

    since: str | None = None
    until: str | None = None
    user_id: str | None = None
    key_hash: str | None = None
    model: str | None = None


@dataclass(frozen=True, slots=True)
class UsageLine:
    """The calls and tokens of one group of a report; the fields it is not grouped by are
    None. ``api_key_id`` is None as well for a key that no longer exists."""

    day: str | None
    user_id: str | None
    api_key_id: str | None
    model: str | None
    face: str | None
    requests: int
    input_tokens: int
    output_tokens: int
    reasoning_tokens: int
    cached_tokens: int

    @property
    def total_tokens(self) -> int:
        """Input and output tokens: what a key's daily budget counts."""
        return self.input_tokens + self.output_tokens


def usage_report(
    conn: Connection,
    *,
    where: UsageFilter,
    group_by: tuple[str, ...],
    limit: int | None = None,
    offset: int = 0,
) -> list[UsageLine]:
    """The calls and tokens of the rows ``where`` picks, one line per group of
    ``group_by`` (names of ``GROUPS``; none: one line for all, zeros when no row
    matches), in the groups' order; ``limit`` lines from ``offset`` on."""
    c, k = key_usage.c, api_keys.c
    columns: dict[str, Any] = {
        "day": c.day,
        "user": c.user_id,
        "key": c.key_hash,
        "model": c.model,
        "face": c.face,
    }
    grouped = [columns[name] for name in GROUPS if name in group_by]
    key_id = func.max(k.id) if "key" in group_by else null()
    query = (
        select(
            *(
                columns[name].label(name) if name in group_by else null().label(name)
                for name in GROUPS
            ),
            key_id.label("api_key_id"),
            *(func.coalesce(func.sum(c[name]), 0).label(name) for name in ("requests", *_TOKENS)),
        )
        .select_from(key_usage.outerjoin(api_keys, k.key_hash == c.key_hash))
        .group_by(*grouped)
        .order_by(*grouped)
        .offset(offset)
    )
    if where.since is not None:
        query = query.where(c.day >= where.since)
    if where.until is not None:
        query = query.where(c.day <= where.until)
    if where.user_id is not None:
        query = query.where(c.user_id == where.user_id)
    if where.key_hash is not None:
        query = query.where(c.key_hash == where.key_hash)
    if where.model is not None:
        query = query.where(c.model == where.model)
    if limit is not None:
        query = query.limit(limit)
    return [
        UsageLine(
            day=row.day,
            user_id=row.user,
            api_key_id=row.api_key_id,
            model=row.model,
            face=row.face,
            requests=int(row.requests),
            **{name: int(row._mapping[name]) for name in _TOKENS},
        )
        for row in conn.execute(query)
    ]


def key_tokens(conn: Connection, *, key_hash: str, day: str) -> int:
    """Input and output tokens counted for the key on ``day`` by every replica (the
    written counts only)."""
    c = key_usage.c
    query = select(func.coalesce(func.sum(c.input_tokens + c.output_tokens), 0)).where(
        c.key_hash == key_hash, c.day == day
    )
    return int(conn.execute(query).scalar_one())


def key_of(conn: Connection, *, key_id: str) -> tuple[str, str] | None:
    """The user id and key hash of the API key with id ``key_id`` (revoked or not), or
    None."""
    k = api_keys.c
    row = conn.execute(select(k.user_id, k.key_hash).where(k.id == key_id)).first()
    return None if row is None else (row.user_id, row.key_hash)


def parse_day(text: str) -> str:
    """``text`` if it is a day ``YYYY-MM-DD``.

    Raises:
        ValueError: it is not.
    """
    try:
        day: date | None = date.fromisoformat(text)
    except ValueError:
        day = None
    if day is None or len(text) != 10:  # 20261124 reads as a day too
        raise ValueError(f"{text!r} is not a day as YYYY-MM-DD")
    return text


def parse_groups(text: str) -> tuple[str, ...]:
    """The groups of a comma-separated list such as ``day,model`` (empty: none).

    Raises:
        ValueError: a name not in ``GROUPS``, or one given twice.
    """
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    for name in names:
        if name not in GROUPS:
            raise ValueError(f"cannot group by {name!r}: use any of {', '.join(GROUPS)}")
    if len(set(names)) < len(names):
        raise ValueError("a group is given twice")
    return names


def key_budget(conn: Connection, *, key_hash: str, day: str) -> tuple[str, int, int] | None:
    """The key's id, its daily token budget and its input and output tokens counted on
    ``day`` by every replica (the written counts only); None when the key has no budget."""
    k = api_keys.c
    row = conn.execute(select(k.id, k.daily_token_budget).where(k.key_hash == key_hash)).first()
    if row is None or row.daily_token_budget is None:
        return None
    return row.id, row.daily_token_budget, key_tokens(conn, key_hash=key_hash, day=day)
