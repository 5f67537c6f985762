"""Limits per API key and per client address, answered with 429 and ``Retry-After``.

Three limits, each off at 0 (the default):

* **requests per key**: at most ``rate_limit_requests`` per window of
  ``rate_limit_window_seconds``. A window starts at a key's first request and lasts its
  length (a fixed window: up to twice the limit can pass around a window's end).
* **failed authentications per address**: after ``auth_failure_limit`` of them within
  ``auth_failure_window_seconds``, every request from that address is refused, before any
  key is looked at, until the window that counted them ends.
* **turns in progress per key**: a turn takes a slot before it starts and gives it back when
  its task ends.

Before a turn takes its slot, it reserves tokens of the key's daily token budget too, when
the app gives ``Limits`` its ``budgets`` (``server.usage.KeyBudgets``; per key, not a limit
of this module's counters), and settles them with the slot when it ends.

Where the counters live: with ``PARLEY_REDIS_URL``, in Redis, shared by every replica; each
request makes at most one round trip (one Lua script does the address and the key checks).
A slot of a turn is a member of a sorted set scored by the end of its lease; the replica
that holds it renews its slots every third of ``lease_seconds``, so a slot of a replica
that died frees itself when its lease ends. Without Redis each process counts on its own.

A limiter outage must not take the API down: when Redis fails, requests pass (fail open)
and a warning is logged, once per outage; Redis is tried again after a few seconds.
"""

from __future__ import annotations

import contextlib
import logging
import math
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Literal, Protocol

from parley.config import Settings
from parley.errors import RateLimited
from parley.server.leased_redis import LeasedScripts, ms

log = logging.getLogger("parley.server")

#: ``Retry-After`` of a refused turn: when a turn ends is unknown.
_RUN_RETRY_AFTER = 1.0
_PREFIX = "parley:limit"
#: The "slot" of a turn let through while Redis fails: nothing to give back.
_UNCOUNTED = ""


@dataclass(frozen=True, slots=True)
class Policy:
    requests: int = 0
    window: float = 60.0
    runs: int = 0
    failures: int = 0
    failure_window: float = 60.0
    lease: float = 15.0

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        return cls(
            requests=settings.rate_limit_requests,
            window=settings.rate_limit_window_seconds,
            runs=settings.rate_limit_concurrent_runs,
            failures=settings.auth_failure_limit,
            failure_window=settings.auth_failure_window_seconds,
            lease=settings.lease_seconds,
        )

    @property
    def per_request(self) -> bool:
        """Whether any limit is checked on every request."""
        return self.requests > 0 or self.failures > 0


@dataclass(frozen=True, slots=True)
class Refusal:
    limit: Literal["auth_failures", "requests"]
    retry_after: float


class Counters(Protocol):
    """Where the counts are kept: in this process, or in Redis."""

    async def check(self, address: str, key: str | None) -> Refusal | None:
        """Refuse a blocked address; count the request against the key (when given)."""

    async def failed(self, address: str) -> None: ...

    async def acquire(self, key: str) -> str | None:
        """A slot id for one more turn of ``key``; None when it has all it may have."""

    def release(self, key: str, slot: str) -> None: ...

    async def aclose(self) -> None: ...


# ---------------------------------------------------------------------- in this process


class _Windows:
    """Fixed windows: a count per name, ending ``seconds`` after the name's first hit.
    Ended windows are swept out at most once per window length, so memory stays bounded by
    the names seen within one window."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._counts: dict[str, list[float]] = {}  # name -> [count, end]
        self._next_sweep = 0.0

    def hit(self, name: str, now: float) -> tuple[int, float]:
        """Count one more; answer the count and the seconds left in the window."""
        entry = self._counts.get(name)
        if entry is None or entry[1] <= now:
            self._sweep(now)
            entry = self._counts[name] = [0, now + self.seconds]
        entry[0] += 1
        return int(entry[0]), entry[1] - now

    def peek(self, name: str, now: float) -> tuple[int, float]:
        entry = self._counts.get(name)
        if entry is None or entry[1] <= now:
            return 0, 0.0
        return int(entry[0]), entry[1] - now

    def _sweep(self, now: float) -> None:
        if now < self._next_sweep:
            return
        self._next_sweep = now + self.seconds
        for name in [n for n, (_, end) in self._counts.items() if end <= now]:
            del self._counts[name]


class LocalCounters:
    """The counts of this process alone (no Redis): each replica limits on its own."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self._requests = _Windows(policy.window)
        self._failures = _Windows(policy.failure_window)
        self._runs: dict[str, int] = {}

    async def check(self, address: str, key: str | None) -> Refusal | None:
        now = time.monotonic()
        if self.policy.failures:
            fails, left = self._failures.peek(address, now)
            if fails >= self.policy.failures:
                return Refusal("auth_failures", left)
        if self.policy.requests and key is not None:
            count, left = self._requests.hit(key, now)
            if count > self.policy.requests:
                return Refusal("requests", left)
        return None

    async def failed(self, address: str) -> None:
        self._failures.hit(address, time.monotonic())

    async def acquire(self, key: str) -> str | None:
        held = self._runs.get(key, 0)
        if held >= self.policy.runs:
            return None
        self._runs[key] = held + 1
        return "local"

    def release(self, key: str, slot: str) -> None:
        held = self._runs.get(key, 0) - 1
        if held > 0:
            self._runs[key] = held
        else:
            self._runs.pop(key, None)

    async def aclose(self) -> None:
        self._runs.clear()


# -------------------------------------------------------------------------------- Redis

#: KEYS: failures of the address, requests of the key. ARGV: failure limit, request limit,
#: request window (ms). Answers {0, 0} (pass), {1, ms} (address blocked), {2, ms} (key over).
_CHECK = """
local fail_limit = tonumber(ARGV[1])
if fail_limit > 0 then
  local fails = tonumber(redis.call('GET', KEYS[1]) or '0')
  if fails >= fail_limit then
    return {1, redis.call('PTTL', KEYS[1])}
  end
end
local limit = tonumber(ARGV[2])
if limit > 0 then
  local n = redis.call('INCR', KEYS[2])
  if n == 1 then redis.call('PEXPIRE', KEYS[2], ARGV[3]) end
  if n > limit then
    return {2, redis.call('PTTL', KEYS[2])}
  end
end
return {0, 0}
"""

#: KEYS: failures of the address. ARGV: window (ms).
_FAIL = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
"""

#: KEYS: the key's slots (a sorted set: slot id -> end of its lease, ms of Redis's clock).
#: ARGV: limit, lease (ms), slot id. Drops the ended leases first. Answers 1 (taken) or 0.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""

#: KEYS: slot sets; ARGV: lease (ms), then the slot id of each key, in order. A slot that
#: is gone (released, or its lease ended) is not brought back.
_RENEW = """
local t = redis.call('TIME')
local lease = tonumber(ARGV[1])
local ends = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + lease
for i, key in ipairs(KEYS) do
  if redis.call('ZADD', key, 'XX', 'CH', ends, ARGV[i + 1]) == 1 then
    redis.call('PEXPIRE', key, lease)
  end
end
return 0
"""


class RedisCounters(LeasedScripts):
    """The counts in Redis, shared by every replica using it."""

    def __init__(self, url: str, policy: Policy) -> None:
        super().__init__(
            url,
            lease=policy.lease,
            renew=_RENEW,
            down="rate limits are not enforced",
            back="rate limits are enforced again",
        )
        self.policy = policy
        self._check = self.redis.register_script(_CHECK)
        self._fail = self.redis.register_script(_FAIL)
        self._acquire = self.redis.register_script(_ACQUIRE)
        self._check_args = (policy.failures, policy.requests, ms(policy.window))

    async def check(self, address: str, key: str | None) -> Refusal | None:
        requests = f"{_PREFIX}:req:{key}" if key is not None else f"{_PREFIX}:req:-"
        args = list(self._check_args)
        if key is None:
            args[1] = 0
        answer = await self.run(self._check, [f"{_PREFIX}:fail:{address}", requests], args)
        if not answer or not answer[0]:
            return None
        left = max(0, int(answer[1])) / 1000
        return Refusal("auth_failures" if answer[0] == 1 else "requests", left)

    async def failed(self, address: str) -> None:
        await self.run(self._fail, [f"{_PREFIX}:fail:{address}"], [ms(self.policy.failure_window)])

    async def acquire(self, key: str) -> str | None:
        slot = secrets.token_hex(8)
        runs = f"{_PREFIX}:runs:{key}"
        args = [self.policy.runs, ms(self.policy.lease), slot]
        answer = await self.run(self._acquire, [runs], args)
        if answer is None:
            return _UNCOUNTED  # Redis is failing: the turn goes ahead without a slot
        if not answer:
            return None
        self.hold(slot, runs, "parley limits")
        return slot

    def release(self, key: str, slot: str) -> None:
        runs = self.let_go(slot)
        if runs is not None:
            self.later(self._release(runs, slot))

    async def _release(self, runs: str, slot: str) -> None:
        if self.failing:
            return  # its lease ends it
        try:
            await self.redis.zrem(runs, slot)
        except self._errors as exc:
            log.warning("could not give a turn's slot back to Redis (its lease ends it): %s", exc)


# --------------------------------------------------------------------------- the facade


class Reserved(Protocol):
    """Tokens a call holds of its key's budget (``server.usage.Reservation``)."""

    def settle(self) -> None:
        """The call has ended (and has been counted): let go of the tokens."""


class Budgets(Protocol):
    """The daily token budgets of keys (``server.usage.KeyBudgets``)."""

    async def start(self, redis_url: str | None, lease: float) -> None: ...

    async def aclose(self) -> None: ...

    async def check(self, key_hash: str) -> None:
        """Raise ``RateLimited`` when the key has used its budget of today."""

    async def reserve(self, key_hash: str, tokens: int | None) -> Reserved | None:
        """Reserve the most a call may use (None: unknown), or raise ``RateLimited``."""


class Limits:
    """What requests and turns ask: ``check`` before authentication, ``failed`` after one
    failed, and ``run_slot`` around starting a turn (which checks ``budgets`` first)."""

    def __init__(self, settings: Settings, budgets: Budgets | None = None) -> None:
        self.policy = Policy.from_settings(settings)
        self._redis_url = settings.redis_url
        self.counters: Counters = LocalCounters(self.policy)
        self.budgets = budgets

    async def start(self) -> None:
        """Use Redis when it is configured and a limit is on (needs the running loop)."""
        policy = self.policy
        if self._redis_url and (policy.per_request or policy.runs):
            self.counters = RedisCounters(self._redis_url, policy)
        if self.budgets is not None:
            await self.budgets.start(self._redis_url, policy.lease)

    async def aclose(self) -> None:
        await self.counters.aclose()
        if self.budgets is not None:
            await self.budgets.aclose()

    async def check(self, address: str, key: str | None) -> None:
        """Raise ``RateLimited`` when ``address`` is blocked or ``key`` (hash of an API key,
        None when the request has none) is over its request limit; else count the request."""
        refusal = await self._refusal(address, key)
        if refusal is None:
            return
        if refusal.limit == "auth_failures":
            raise RateLimited(
                "Too many failed authentications from this address; retry later.",
                code="too_many_auth_failures",
                retry_after=refusal.retry_after,
            )
        raise RateLimited(
            f"{self._too_many_requests()}.",
            code="too_many_requests",
            retry_after=refusal.retry_after,
        )

    async def check_message(self, address: str, key: str) -> None:
        """Count one message of a WebSocket as a request of ``key`` (hash of its API key),
        against the same limit as HTTP requests.

        Raises:
            RateLimited: ``rate_limit_exceeded``, the seconds to wait in its message.
        """
        refusal = await self._refusal(address, key)
        if refusal is None:
            return
        seconds = max(1, math.ceil(refusal.retry_after))
        wait = f"retry in {seconds} second{'s' if seconds > 1 else ''}"
        if refusal.limit == "auth_failures":
            message = f"Too many failed authentications from this address; {wait}."
        else:
            message = f"{self._too_many_requests()}; {wait}."
        raise RateLimited(message, code="rate_limit_exceeded", retry_after=refusal.retry_after)

    async def _refusal(self, address: str, key: str | None) -> Refusal | None:
        """Count one request; why it is refused, if it is."""
        if not self.policy.per_request:
            return None
        return await self.counters.check(address, key)

    def _too_many_requests(self) -> str:
        return (
            f"Too many requests with this API key: at most {self.policy.requests} every "
            f"{self.policy.window:g} seconds"
        )

    async def failed(self, address: str) -> None:
        """Count a failed authentication from ``address``."""
        if self.policy.failures:
            await self.counters.failed(address)

    async def check_budget(self, key: str) -> None:
        """Raise ``RateLimited`` when ``key`` (hash of an API key) has used its daily token
        budget (``run_slot`` does this too; for a request that must know before it
        changes anything)."""
        if self.budgets is not None:
            await self.budgets.check(key)

    @contextlib.asynccontextmanager
    async def reserve(self, key: str, tokens: int | None = None) -> AsyncIterator[None]:
        """Hold ``tokens`` (None: unknown) of ``key``'s daily budget around a model call
        that takes no turn's slot (a compaction); count the call inside.

        Raises:
            RateLimited: the key has used its budget, or calls in progress hold the rest.
        """
        reserved = None if self.budgets is None else await self.budgets.reserve(key, tokens)
        try:
            yield
        finally:
            if reserved is not None:
                reserved.settle()

    def run_slot(self, key: str, tokens: int | None = None) -> RunSlot:
        """The slot of a turn or model call of ``key`` that may use ``tokens`` at most
        (None: unknown), reserved of the key's daily budget."""
        return RunSlot(self, key, tokens)


class RunSlot:
    """One turn's place among the key's turns in progress, and the tokens it reserved of
    the key's daily budget::

    async with slot:                          # 429 when the key has all it may have
        turn = await engine.start_turn(...)   # an error here gives the slot back
        slot.hold_until(turn.when_done)       # given back when the turn ends
    """

    __slots__ = ("_held", "_id", "_reserved", "key", "limits", "tokens")

    def __init__(self, limits: Limits, key: str, tokens: int | None = None) -> None:
        self.limits = limits
        self.key = key
        self.tokens = tokens
        self._id: str | None = None
        self._reserved: Reserved | None = None
        self._held = False

    async def __aenter__(self) -> RunSlot:
        budgets = self.limits.budgets
        if budgets is not None:  # 429 when the key's tokens of the day are used or held
            self._reserved = await budgets.reserve(self.key, self.tokens)
        limit = self.limits.policy.runs
        if not limit:
            return self
        self._id = await self.limits.counters.acquire(self.key)
        if self._id is None:
            self._release(None, self._reserved)
            raise RateLimited(
                f"This API key has {limit} turn{'s' if limit > 1 else ''} in progress, the "
                "most it may have at once; retry when one ends.",
                code="too_many_runs",
                retry_after=_RUN_RETRY_AFTER,
            )
        return self

    def hold_until(self, when_done: Callable[[Callable[[], None]], None] | None) -> None:
        """Keep the slot and the tokens until the turn ends: ``when_done`` (a
        ``TurnHandle.when_done``, called after the turn was counted) is given the release.
        None gives them back at once."""
        slot, reserved = self._id, self._reserved
        if (slot is None and reserved is None) or when_done is None:
            return
        self._held = True
        when_done(lambda: self._release(slot, reserved))

    def _release(self, slot: str | None, reserved: Reserved | None) -> None:
        if slot is not None:
            self.limits.counters.release(self.key, slot)
        if reserved is not None:
            reserved.settle()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._held:
            self._release(self._id, self._reserved)
