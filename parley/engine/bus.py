"""Cross-replica streaming over Redis (optional: ``PARLEY_REDIS_URL``).

Without Redis every replica still serves everything: the database is the source of truth,
and a replica follows a run that runs elsewhere by reading its event log, which running
turns checkpoint every ``checkpoint_seconds``. Redis makes that live:

* **watch**: a replica following a run it does not run sets ``parley:watch:{run}`` (it
  expires unless renewed). The replica running the turn sees it at its next checkpoint tick
  and from then on also publishes the turn's events on ``parley:run:{run}``. Runs nobody
  follows from elsewhere cost nothing.
* **cancel**: a cancel received by one replica is broadcast on ``parley:cancel``; the
  replica running the turn stops it at once.

Redis holds no state of its own: a follower merges what it hears with the database log by
sequence number and fills any gap from the log, so a lost message only costs latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson

from parley.engine.hub import Entry

log = logging.getLogger("parley.engine")

CANCEL_CHANNEL = "parley:cancel"
WATCH_SECONDS = 30


def _run_channel(run_id: str) -> str:
    return f"parley:run:{run_id}"


def _watch_key(run_id: str) -> str:
    return f"parley:watch:{run_id}"


class RedisBus:
    """One replica's Redis: the commands go through the client's connection pool; every
    subscription (the cancel channel, and the channel of each run this replica follows)
    shares one pub/sub connection, which ``_listen`` reads and hands out. A connection per
    follower would run the pool dry at its size (100) and end followers' streams."""

    def __init__(self, url: str) -> None:
        import redis.asyncio as aioredis

        self.redis: Any = aioredis.from_url(url)
        self._listener: asyncio.Task[None] | None = None
        self._publishing: set[asyncio.Task[Any]] = set()
        #: The queues of the followers of each run channel this replica listens to.
        self._feeds: dict[str, set[asyncio.Queue[bytes]]] = {}
        self._pubsub: Any = None  # the shared pub/sub connection, while it is up

    async def start(self, on_cancel: Callable[[str], None]) -> None:
        """Check the connection and listen for cancels from other replicas."""
        await self.redis.ping()
        self._listener = asyncio.create_task(self._listen(on_cancel))

    async def _listen(self, on_cancel: Callable[[str], None]) -> None:
        while True:
            try:
                async with self.redis.pubsub() as pubsub:
                    self._pubsub = pubsub
                    # After a reconnect, every run still followed here too.
                    await pubsub.subscribe(CANCEL_CHANNEL, *self._feeds)
                    async for message in pubsub.listen():
                        if message["type"] == "message":
                            self._deliver(message["channel"].decode(), message["data"], on_cancel)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("lost Redis (cancels, followed runs); reconnecting", exc_info=True)
                self._pubsub = None
                await asyncio.sleep(1.0)
            finally:
                self._pubsub = None

    def _deliver(self, channel: str, data: bytes, on_cancel: Callable[[str], None]) -> None:
        if channel == CANCEL_CHANNEL:
            on_cancel(data.decode())
            return
        for queue in self._feeds.get(channel, ()):
            queue.put_nowait(data)

    async def aclose(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        if self._publishing:
            await asyncio.wait(self._publishing, timeout=2)
        await self.redis.aclose()

    async def watched(self, run_ids: list[str]) -> set[str]:
        """Which of these runs someone follows from another replica."""
        if not run_ids:
            return set()
        values = await self.redis.mget([_watch_key(r) for r in run_ids])
        return {r for r, v in zip(run_ids, values, strict=True) if v}

    def publish(self, run_id: str, entries: list[Entry]) -> None:
        """Publish in the background; a failure only costs followers latency."""
        task = asyncio.ensure_future(
            self.redis.publish(_run_channel(run_id), orjson.dumps(entries))
        )
        self._publishing.add(task)
        task.add_done_callback(self._published)

    def _published(self, task: asyncio.Task[Any]) -> None:
        self._publishing.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("could not publish run events to Redis: %s", task.exception())

    async def cancel(self, run_id: str) -> None:
        await self.redis.publish(CANCEL_CHANNEL, run_id)

    @contextlib.asynccontextmanager
    async def subscription(self, run_id: str) -> AsyncIterator[Subscription]:
        """Live events of a run running elsewhere, watched for as long as this is open.

        Redis failing here costs the follower only latency: it is subscribed again when
        the shared connection comes back, and reads the run's log meanwhile."""
        channel = _run_channel(run_id)
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        feeds = self._feeds.setdefault(channel, set())
        first = not feeds
        feeds.add(queue)
        try:
            if first:
                await self._tell_pubsub("subscribe", channel)
            sub = Subscription(self.redis, queue, run_id)
            await sub.renew()
            yield sub
        finally:
            feeds.discard(queue)
            if not feeds and self._feeds.get(channel) is feeds:
                del self._feeds[channel]
                await self._tell_pubsub("unsubscribe", channel)

    async def _tell_pubsub(self, command: str, channel: str) -> None:
        """(Un)subscribe the shared connection, if it is up (``_listen`` subscribes every
        followed run when it connects). Only sends: ``_listen`` reads the answers."""
        from redis.exceptions import RedisError

        pubsub = self._pubsub
        if pubsub is None:
            return
        try:
            await getattr(pubsub, command)(channel)
        except (RedisError, OSError) as exc:  # the listener reconnects, and subscribes again
            log.debug("could not %s %s: %s", command, channel, exc)


class Subscription:
    def __init__(self, redis: Any, queue: asyncio.Queue[bytes], run_id: str) -> None:
        self.redis = redis
        self.queue = queue
        self.run_id = run_id
        self._renewed = 0.0

    async def renew(self) -> None:
        """Tell the replica running the turn that someone follows it (it then publishes)."""
        from redis.exceptions import RedisError

        self._renewed = time.monotonic()
        try:
            await self.redis.set(_watch_key(self.run_id), b"1", ex=WATCH_SECONDS)
        except (RedisError, OSError) as exc:  # without Redis the follower reads the log
            log.debug("could not watch run %s: %s", self.run_id, exc)

    async def next(self, wait: float) -> list[Entry] | None:
        """The next published batch, or None after ``wait`` seconds of silence."""
        if time.monotonic() - self._renewed > WATCH_SECONDS / 3:
            await self.renew()
        try:
            async with asyncio.timeout(wait):
                data = await self.queue.get()
        except TimeoutError:
            return None
        return [(int(s), str(t), str(d)) for s, t, d in orjson.loads(data)]
