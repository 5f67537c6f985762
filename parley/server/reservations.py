"""Token reservations of API keys with a daily budget, shared by the replicas through Redis
(``server.usage.KeyBudgets`` keeps them in its own process when there is no Redis).

Per key and UTC day, a hash ``parley:budget:<key hash>:<day>`` holds:

* ``r:<id>``: the tokens a call in progress reserved;
* ``s:<replica>``: the tokens a replica counted for the key that day since it started,
  brought up to date whenever it reserves or settles;

and a sorted set ``...:leases`` holds the reservations by the end of their lease, which
their replica renews every third of it: the reservations of a replica that died free
themselves when their lease ends. One Lua script takes a reservation when the key's tokens
(the most of what the asking replica knows, from the database and its own count, and of
the replicas' counts here) plus the tokens reserved are under the budget; another settles
it: the reservation goes and the replica's count comes up, in one step.

A Redis that fails does not take the budgets down: the caller reserves in its own process
meanwhile (``reserve`` answers None), and a warning is logged, once per outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
import time
from typing import Any

log = logging.getLogger("parley.server")

_PREFIX = "parley:budget"
#: Seconds a Redis call may take before the reservation is taken locally.
_REDIS_TIMEOUT = 1.0
#: Seconds a failed Redis call keeps reservations local before Redis is tried again.
_OUTAGE_SECONDS = 5.0
#: How long a day's hash is kept (ms): past its day, with room for clocks that differ.
_DAY_TTL_MS = 2 * 86_400 * 1000

#: KEYS: the day's hash, its leases. ARGV: this replica's field, its count, the tokens it
#: knows the key used, the budget, the tokens wanted, the reservation's field, lease (ms),
#: ttl (ms). Answers {1, used, tokens reserved} or {0, used, tokens reserved by others}.
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
for _, id in ipairs(gone) do redis.call('HDEL', KEYS[1], id) end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local mine = tonumber(ARGV[2])
if mine > tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0') then
  redis.call('HSET', KEYS[1], ARGV[1], mine)
end
local spent, reserved = 0, 0
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if string.sub(all[i], 1, 2) == 's:' then
    spent = spent + tonumber(all[i + 1])
  else
    reserved = reserved + tonumber(all[i + 1])
  end
end
local used = math.max(tonumber(ARGV[3]), spent)
local budget = tonumber(ARGV[4])
if used + reserved >= budget then return {0, used, reserved} end
local tokens = math.min(tonumber(ARGV[5]), budget - used - reserved)
redis.call('HSET', KEYS[1], ARGV[6], tokens)
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[7]), ARGV[6])
redis.call('PEXPIRE', KEYS[1], ARGV[8])
redis.call('PEXPIRE', KEYS[2], ARGV[8])
return {1, used, tokens}
"""

#: KEYS: the day's hash, its leases. ARGV: this replica's field, its count, the
#: reservation's field.
_SETTLE = """
redis.call('HDEL', KEYS[1], ARGV[3])
redis.call('ZREM', KEYS[2], ARGV[3])
local mine = tonumber(ARGV[2])
if mine > tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0') then
  redis.call('HSET', KEYS[1], ARGV[1], mine)
end
return 0
"""

#: KEYS: lease sets; ARGV: lease (ms), then the reservation of each set, in order. A
#: reservation that is gone is not brought back.
_RENEW = """
local t = redis.call('TIME')
local ends = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, 'XX', ends, ARGV[i + 1])
end
return 0
"""


def _ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


class SharedReservations:
    """Reservations in Redis, shared by every replica using it."""

    def __init__(self, url: str, lease: float) -> None:
        import redis.asyncio as aioredis
        from redis.exceptions import RedisError

        self.redis: Any = aioredis.from_url(
            url, socket_timeout=_REDIS_TIMEOUT, socket_connect_timeout=_REDIS_TIMEOUT
        )
        self._errors: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError)
        self._reserve = self.redis.register_script(_RESERVE)
        self._settle = self.redis.register_script(_SETTLE)
        self._renew = self.redis.register_script(_RENEW)
        self.lease = lease
        #: This replica's field of its counts.
        self.replica = f"s:{secrets.token_hex(8)}"
        #: Reservations held by this process: field -> its lease set.
        self._held: dict[str, str] = {}
        self._down_until = 0.0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._renewer: asyncio.Task[None] | None = None

    @staticmethod
    def _keys(key_hash: str, day: str) -> list[str]:
        name = f"{_PREFIX}:{key_hash}:{day}"
        return [name, f"{name}:leases"]

    async def _run(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        """The script's answer, or None while Redis is failing."""
        if self._down_until and time.monotonic() < self._down_until:
            return None
        try:
            answer = await script(keys=keys, args=args)
        except self._errors as exc:
            if not self._down_until:
                log.warning("token budgets reserve per replica: Redis does not answer (%s)", exc)
            self._down_until = time.monotonic() + _OUTAGE_SECONDS
            return None
        if self._down_until:
            self._down_until = 0.0
            log.warning("token budgets reserve through Redis again")
        return answer

    async def reserve(
        self,
        *,
        key_hash: str,
        day: str,
        field: str,
        used: int,
        counted: int,
        budget: int,
        tokens: int,
    ) -> tuple[bool, int, int] | None:
        """Reserve ``tokens`` (at most what the budget has left) as ``field``: whether it
        was taken, the key's tokens used, and the tokens reserved (by this reservation
        when taken, else by the others). ``used`` is what this replica knows the key used,
        ``counted`` what it counted itself. None while Redis fails."""
        keys = self._keys(key_hash, day)
        args = [self.replica, counted, used, budget, tokens, field, _ms(self.lease), _DAY_TTL_MS]
        answer = await self._run(self._reserve, keys, args)
        if answer is None:
            return None
        taken, used_now, amount = (int(x) for x in answer)
        if taken:
            self._held[field] = keys[1]
            if self._renewer is None:
                self._renewer = asyncio.create_task(self._renew_forever(), name="parley budgets")
        return bool(taken), used_now, amount

    def settle(self, *, key_hash: str, day: str, field: str, counted: int) -> None:
        """Let go of the reservation ``field`` and bring this replica's count up to
        ``counted``, in a task of its own (its lease ends it if Redis fails)."""
        self._held.pop(field, None)
        keys = self._keys(key_hash, day)
        task = asyncio.get_running_loop().create_task(
            self._run(self._settle, keys, [self.replica, counted, field])
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(self.lease / 3)
            if self._held:
                held = list(self._held.items())
                keys = [leases for _, leases in held]
                await self._run(self._renew, keys, [_ms(self.lease), *(f for f, _ in held)])

    async def aclose(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=_REDIS_TIMEOUT * 2)
        await self.redis.aclose()
