"""Lua scripts on a Redis shared by the replicas, with leases that free a dead replica's
holds: the ground of the rate limiter's counters (``server.ratelimit``) and of the token
reservations of daily budgets (``server.reservations``).

A hold is a member of a sorted set scored by the end of its lease; the replica that took it
renews all it holds every third of the lease (the subclass's renewal script), so a hold of a
replica that died ends by itself. A Redis that fails never takes the API down: ``run``
answers None for a few seconds after a failure, a warning is logged once per outage, and
the caller falls back (the limits give way, the reservations are taken locally).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger("parley.server")

#: Seconds a Redis call may take before the caller falls back.
REDIS_TIMEOUT = 1.0
#: Seconds after a failed Redis call before Redis is tried again.
OUTAGE_SECONDS = 5.0


def ms(seconds: float) -> int:
    """``seconds`` in whole milliseconds, at least one."""
    return max(1, math.ceil(seconds * 1000))


class LeasedScripts:
    """A Redis client, the outage state, and the holds of this process. ``down`` and
    ``back`` are the warnings of an outage's start and end; ``renew`` is the Lua script that
    extends leases (KEYS: the holds' sets; ARGV: the lease in ms, then each hold's member)."""

    def __init__(self, url: str, *, lease: float, renew: str, down: str, back: str) -> None:
        import redis.asyncio as aioredis
        from redis.exceptions import RedisError

        self.redis: Any = aioredis.from_url(
            url, socket_timeout=REDIS_TIMEOUT, socket_connect_timeout=REDIS_TIMEOUT
        )
        self._errors: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError)
        self.lease = lease
        self._renew = self.redis.register_script(renew)
        self._down, self._back = down, back
        self._down_until = 0.0
        #: What this process holds: member -> its sorted set.
        self._held: dict[str, str] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._renewer: asyncio.Task[None] | None = None

    @property
    def failing(self) -> bool:
        """Whether Redis failed within the last ``OUTAGE_SECONDS``."""
        return bool(self._down_until) and time.monotonic() < self._down_until

    async def run(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        """The script's answer, or None while Redis is failing."""
        if self.failing:
            return None
        try:
            answer = await script(keys=keys, args=args)
        except self._errors as exc:
            if not self._down_until:
                log.warning("%s: Redis does not answer (%s)", self._down, exc)
            self._down_until = time.monotonic() + OUTAGE_SECONDS
            return None
        if self._down_until:
            self._down_until = 0.0
            log.warning("%s: Redis answers", self._back)
        return answer

    def hold(self, member: str, leases: str, name: str) -> None:
        """Renew ``member`` of the sorted set ``leases`` until ``let_go``; ``name`` names the
        renewing task, started with the first hold."""
        self._held[member] = leases
        if self._renewer is None:
            self._renewer = asyncio.create_task(self._renew_forever(), name=name)

    def let_go(self, member: str) -> str | None:
        """Renew ``member`` no more; answers its set (None: not held here)."""
        return self._held.pop(member, None)

    def later(self, work: Coroutine[Any, Any, Any]) -> None:
        """Run ``work`` in a task of its own, waited for by ``aclose``."""
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(self.lease / 3)
            if self._held:
                held = list(self._held.items())
                keys = [leases for _, leases in held]
                await self.run(self._renew, keys, [ms(self.lease), *(m for m, _ in held)])

    async def aclose(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=REDIS_TIMEOUT * 2)
        await self.redis.aclose()
