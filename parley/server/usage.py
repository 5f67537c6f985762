"""Daily token budgets of API keys (``api_keys.daily_token_budget``: input plus output
tokens per UTC day, every face and replica together).

A key at or over its budget starts no new turn and no chat completion: 429
``token_budget_exceeded``, ``Retry-After`` until the next UTC midnight. A turn already
running goes on to its end, so a key may end a day a little over its budget.

What the key used today is what every replica wrote (``key_usage``) plus what this replica
counted and has not written yet (``engine.usage``). The written part is read at most every
``ttl`` seconds per key, not per request: another replica's tokens count here within
``ttl`` plus its ``usage_flush_seconds``; this replica's own count at once.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from parley.engine import UsageCounter
from parley.errors import RateLimited
from parley.store import usage as usage_store
from parley.store.db import Database, now
from parley.store.usage import day_of


@dataclass(frozen=True, slots=True)
class _Known:
    """A key's budget as read at ``expires - ttl``, and its tokens of ``day`` then:
    ``base`` plus what this replica counts of the key that day (``counted_today``)."""

    day: str
    key_id: str
    budget: int | None
    base: int
    expires: float


class KeyBudgets:
    """``check`` a key before a turn starts."""

    def __init__(self, db: Database, counter: UsageCounter, ttl: float) -> None:
        self.db = db
        self.counter = counter
        self.ttl = ttl
        self._known: dict[str, _Known] = {}

    async def check(self, key_hash: str) -> None:
        """Raise ``RateLimited`` when the key has used its budget of today (UTC).

        Raises:
            RateLimited: the key is at or over its budget.
        """
        at = now()
        day = day_of(at)
        known = self._known.get(key_hash)
        if known is None or known.day != day or known.expires < time.monotonic():
            known = await self._read(key_hash, day)
        if known.budget is None:
            return
        used = known.base + self.counter.counted_today(key_hash, day)
        if used >= known.budget:
            midnight = datetime.fromisoformat(day).replace(tzinfo=UTC) + timedelta(days=1)
            raise RateLimited(
                f"API key {known.key_id} has used its daily budget of {known.budget:,} tokens "
                f"({used:,} used today, UTC); it resets at 00:00 UTC.",
                code="token_budget_exceeded",
                retry_after=midnight.timestamp() - at,
            )

    async def _read(self, key_hash: str, day: str) -> _Known:
        # Taken before the read: what this replica writes meanwhile may count twice for
        # ``ttl`` seconds (refusing early), never be missed.
        counted = self.counter.counted_today(key_hash, day)
        unwritten = self.counter.unwritten(key_hash, day)
        read = functools.partial(usage_store.key_budget, key_hash=key_hash, day=day)
        found = await self.db.read(read)
        key_id, budget, written = found if found is not None else ("", None, 0)
        known = _Known(
            day=day,
            key_id=key_id,
            budget=budget,
            base=written + unwritten - counted,
            expires=time.monotonic() + self.ttl,
        )
        if len(self._known) >= 10_000:
            self._known.clear()
        self._known[key_hash] = known
        return known
