"""Daily token budgets of API keys (``api_keys.daily_token_budget``: input plus output
tokens per UTC day, every face and replica together).

A call reserves tokens before it starts (``reserve``) and settles when it ends: the
reservation goes, and the tokens its answer reported count instead (``engine.usage``). A
call is let through while the key's tokens of the day plus the tokens reserved by calls in
progress are under its budget, and reserves the most it may use (``tokens``: its input and
its output cap; unknown: the rest of the budget), at most what the budget has left. So a
key passes its budget by less than one call's tokens, however many calls run at once (a
call that uses more than it reserved passes by that much more). Refused: 429
``token_budget_exceeded``, ``Retry-After`` until the next UTC midnight when the key has
used its budget, 1 s when calls in progress hold the rest of it.

What the key used today is what every replica wrote (``key_usage``) plus what this replica
counted and has not written yet (``engine.usage``). The written part is read at most every
``ttl`` seconds per key, not per request: another replica's tokens count here within
``ttl`` plus its ``usage_flush_seconds``; this replica's own count at once. With Redis the
reservations, and each replica's count of the key's tokens, are shared at once
(``server.reservations``); without it each replica reserves on its own.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from parley.engine import UsageCounter
from parley.errors import RateLimited
from parley.server.reservations import SharedReservations
from parley.store import usage as usage_store
from parley.store.db import Database, now
from parley.store.usage import day_of

#: ``Retry-After`` of a call refused while calls in progress hold the rest of the budget.
_BUSY_RETRY_AFTER = 1.0


@dataclass(frozen=True, slots=True)
class _Known:
    """A key's budget as read at ``expires - ttl``, and its tokens of ``day`` then:
    ``base`` plus what this replica counts of the key that day (``counted_today``)."""

    day: str
    key_id: str
    budget: int | None
    base: int
    expires: float


@dataclass(slots=True)
class Reservation:
    """Tokens a call in progress holds of its key's budget of ``day``; ``settle`` when
    the call ends (once is enough; more do nothing)."""

    budgets: KeyBudgets
    key_hash: str
    day: str
    name: str
    tokens: int
    shared: bool
    settled: bool = False

    def settle(self) -> None:
        if not self.settled:
            self.settled = True
            self.budgets.settle(self)


class KeyBudgets:
    """``check`` a key before a request that must know; ``reserve`` before a call starts,
    and settle the reservation when it ends."""

    def __init__(self, db: Database, counter: UsageCounter, ttl: float) -> None:
        self.db = db
        self.counter = counter
        self.ttl = ttl
        self._known: dict[str, _Known] = {}
        #: Reservations taken in this process: key hash -> field -> tokens.
        self._reserved: dict[str, dict[str, int]] = {}
        self.shared: SharedReservations | None = None

    async def start(self, redis_url: str | None, lease: float) -> None:
        """Share the reservations through Redis, when there is one (needs the loop)."""
        if redis_url:
            self.shared = SharedReservations(redis_url, lease)

    async def aclose(self) -> None:
        if self.shared is not None:
            await self.shared.aclose()

    async def check(self, key_hash: str) -> None:
        """Raise ``RateLimited`` when the key has used its budget of today (UTC).

        Raises:
            RateLimited: the key is at or over its budget.
        """
        at = now()
        day = day_of(at)
        known = await self._known_of(key_hash, day)
        if known.budget is None:
            return
        used = known.base + self.counter.counted_today(key_hash, day)
        if used >= known.budget:
            raise _over(known, used, at)

    async def reserve(self, key_hash: str, tokens: int | None) -> Reservation | None:
        """Reserve ``tokens`` of the key's budget of today (None: the most a call may
        use is unknown; it reserves the rest of the budget), at most what the budget has
        left; None when the key has no budget.

        Raises:
            RateLimited: the key has used its budget, or calls in progress hold the rest.
        """
        at = now()
        day = day_of(at)
        known = await self._known_of(key_hash, day)
        budget = known.budget
        if budget is None:
            return None
        counted = self.counter.counted_today(key_hash, day)
        used = known.base + counted
        if used >= budget:
            raise _over(known, used, at)
        wanted = budget if tokens is None else max(1, min(tokens, budget))
        name = f"r:{secrets.token_hex(8)}"
        if self.shared is not None:
            answer = await self.shared.reserve(
                key_hash=key_hash,
                day=day,
                field=name,
                used=used,
                counted=counted,
                budget=budget,
                tokens=wanted,
            )
            if answer is not None:
                taken, used, amount = answer
                if not taken:
                    raise _over(known, used, at) if used >= budget else _busy(known, used, amount)
                return Reservation(self, key_hash, day, name, amount, shared=True)
        mine = self._reserved.setdefault(key_hash, {})
        reserved = sum(mine.values())
        if used + reserved >= budget:
            raise _busy(known, used, reserved)
        amount = min(wanted, budget - used - reserved)
        mine[name] = amount
        return Reservation(self, key_hash, day, name, amount, shared=False)

    def settle(self, reservation: Reservation) -> None:
        """Let go of ``reservation``: its call has ended, and has been counted."""
        key_hash, day = reservation.key_hash, reservation.day
        if reservation.shared and self.shared is not None:
            counted = self.counter.counted_today(key_hash, day)
            self.shared.settle(key_hash=key_hash, day=day, field=reservation.name, counted=counted)
            return
        mine = self._reserved.get(key_hash)
        if mine is not None:
            mine.pop(reservation.name, None)
            if not mine:
                del self._reserved[key_hash]

    async def _known_of(self, key_hash: str, day: str) -> _Known:
        known = self._known.get(key_hash)
        if known is None or known.day != day or known.expires < time.monotonic():
            known = await self._read(key_hash, day)
        return known

    async def _read(self, key_hash: str, day: str) -> _Known:
        # Taken before the read: what this replica writes meanwhile may count twice for
        # ``ttl`` seconds (refusing early), never be missed.
        counted = self.counter.counted_today(key_hash, day)
        unwritten = self.counter.unwritten(key_hash, day)
        found = await self.db.read(usage_store.key_budget, key_hash=key_hash, day=day)
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


def _over(known: _Known, used: int, at: float) -> RateLimited:
    midnight = datetime.fromisoformat(known.day).replace(tzinfo=UTC) + timedelta(days=1)
    return RateLimited(
        f"API key {known.key_id} has used its daily budget of {known.budget:,} tokens "
        f"({used:,} used today, UTC); it resets at 00:00 UTC.",
        code="token_budget_exceeded",
        retry_after=midnight.timestamp() - at,
    )


def _busy(known: _Known, used: int, reserved: int) -> RateLimited:
    return RateLimited(
        f"API key {known.key_id} has the rest of its daily budget of {known.budget:,} tokens "
        f"reserved by calls in progress ({used:,} used today, UTC, {reserved:,} reserved); "
        "retry when one ends.",
        code="token_budget_exceeded",
        retry_after=_BUSY_RETRY_AFTER,
    )
