"""``GET /readyz``: whether this replica should get traffic (``/healthz`` only says that the
process answers).

Ready when the database answers, its schema is at the newest migration, and Redis (when
configured) answers ``PING``, each within ``CHECK_SECONDS``; not while the server drains or
shuts down. A schema once seen at head stays so (migrations only move forward), so later
probes cost one ``SELECT 1`` (from the one-row version table). What failed is named, never why in the driver's words.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from parley.config import Settings
from parley.engine import Engine
from parley.store.db import Database
from parley.store.schema import at_head

__all__ = ["CHECK_SECONDS", "Readiness"]

#: Seconds each check may take (probes commonly give up after one second).
CHECK_SECONDS = 0.8


class Readiness:
    def __init__(self, settings: Settings) -> None:
        self.redis_url = settings.redis_url
        self._at_head = False

    async def check(self, db: Database, engine: Engine) -> tuple[int, dict[str, Any]]:
        """The status code and body of ``/readyz``."""
        if engine.draining or engine.closing:
            return 503, {"status": "draining"}
        names = ["database"]
        checks: list[Awaitable[str]] = [self._database(db)]
        if self.redis_url:
            names.append("redis")
            checks.append(self._redis(self.redis_url))
        results = dict(zip(names, await asyncio.gather(*checks), strict=True))
        if results["database"] == "ok":
            results["migrations"] = "ok" if self._at_head else "behind"
        ready = all(result == "ok" for result in results.values())
        return (200 if ready else 503), {
            "status": "ready" if ready else "unready",
            "checks": results,
        }

    async def _database(self, db: Database) -> str:
        known = self._at_head
        try:
            probe = db.read(at_head, seen=known)
            self._at_head = await asyncio.wait_for(probe, CHECK_SECONDS) or known
        except TimeoutError:
            return "timeout"
        except Exception:  # noqa: BLE001 - a boundary: any failure of the database is "not ready"
            return "unreachable"
        return "ok"

    @staticmethod
    async def _redis(url: str) -> str:
        import redis.asyncio as aioredis
        from redis.exceptions import RedisError

        client = aioredis.Redis.from_url(
            url, socket_connect_timeout=CHECK_SECONDS, socket_timeout=CHECK_SECONDS
        )
        try:
            await asyncio.wait_for(client.ping(), CHECK_SECONDS)
        except TimeoutError:
            return "timeout"
        except (RedisError, OSError):
            return "unreachable"
        finally:
            await client.aclose()
        return "ok"
