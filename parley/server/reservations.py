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

import secrets

from parley.server.leased_redis import LeasedScripts, ms

_PREFIX = "parley:budget"
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


class SharedReservations(LeasedScripts):
    """Reservations in Redis, shared by every replica using it."""

    def __init__(self, url: str, lease: float) -> None:
        super().__init__(
            url,
            lease=lease,
            renew=_RENEW,
            down="token budgets reserve per replica",
            back="token budgets reserve through Redis again",
        )
        self._reserve = self.redis.register_script(_RESERVE)
        self._settle = self.redis.register_script(_SETTLE)
        #: This replica's field of its counts.
        self.replica = f"s:{secrets.token_hex(8)}"

    @staticmethod
    def _keys(key_hash: str, day: str) -> list[str]:
        name = f"{_PREFIX}:{key_hash}:{day}"
        return [name, f"{name}:leases"]

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
        args = [self.replica, counted, used, budget, tokens, field, ms(self.lease), _DAY_TTL_MS]
        answer = await self.run(self._reserve, keys, args)
        if answer is None:
            return None
        taken, used_now, amount = (int(x) for x in answer)
        if taken:
            self.hold(field, keys[1], "parley budgets")
        return bool(taken), used_now, amount

    def settle(self, *, key_hash: str, day: str, field: str, counted: int) -> None:
        """Let go of the reservation ``field`` and bring this replica's count up to
        ``counted``, in a task of its own (its lease ends it if Redis fails)."""
        self.let_go(field)
        keys = self._keys(key_hash, day)
        self.later(self.run(self._settle, keys, [self.replica, counted, field]))
