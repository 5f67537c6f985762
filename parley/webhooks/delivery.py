"""The delivery worker: it sends the outbox's webhook events (``store.webhooks``).

Every replica runs one (``Deliveries``, started and stopped with the engine's upkeep). Each
round it looks whether any delivery is due (a read), claims a few (each claim lasts the
attempt's timeout and a margin), and sends each in a task of its own:

    POST <endpoint url>   content-type: application/json
    webhook-id: <event id>   webhook-timestamp: <unix seconds, at this attempt>
    webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">

as the Standard Webhooks scheme that OpenAI uses says, keyed by the endpoint's secret (the
bytes of the base64 after ``whsec_``), so ``openai.OpenAI(webhook_secret=...).webhooks
.unwrap(body, headers)`` verifies it. Redirects are not followed, and every connection goes
only where the address policy allows (``webhook_policy``; checked after DNS), through an
aiohttp session of ``parley.guarded_http`` opened with the first delivery.

A 2xx answer delivers it. Anything else (another status, a timeout, a refused address, a
connection error) schedules a retry after ``webhook_backoff_seconds``, doubled at each
attempt (an hour at most), a random fifth more or less; past ``webhook_retry_hours`` after
the event (or its replay) it ends ``failed``. A worker that dies mid-attempt loses its
claim when the claim runs out: the delivery is sent again (at least once). Ended deliveries
are kept as long as the runs' event logs (``event_retention_hours``), then deleted.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import importlib
import logging
import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from parley import __version__
from parley.config import ConfigError, Settings
from parley.mcp.addresses import AddressPolicy, AddressRefused
from parley.metrics import Metrics
from parley.store import webhooks as store
from parley.store.db import Database, now, until_woken
from parley.wake import Wake

if TYPE_CHECKING:
    import aiohttp

log = logging.getLogger("parley.webhooks")

#: Deliveries one replica sends at once.
CONCURRENCY = 8
#: Seconds a claim outlasts the attempt's own timeout.
CLAIM_MARGIN = 5.0
#: The longest wait between two retries.
MAX_BACKOFF = 3600.0


def webhook_policy(settings: Settings) -> AddressPolicy:
    """Where endpoints may point: public addresses, and what ``PARLEY_WEBHOOK_ALLOW_URLS``
    adds. Raises ``ConfigError`` naming a bad entry."""
    try:
        return AddressPolicy.parse(settings.webhook_allow_urls, setting="PARLEY_WEBHOOK_ALLOW_URLS")
    except ValueError as exc:
        raise ConfigError(f"PARLEY_WEBHOOK_ALLOW_URLS: {exc}") from None


def signature(secret: str, webhook_id: str, timestamp: int, body: str) -> str:
    """The ``webhook-signature`` header: ``v1,`` and the base64 of the HMAC-SHA256 of
    ``{id}.{timestamp}.{body}``, keyed by the secret's bytes (the base64 after ``whsec_``)."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{webhook_id}.{timestamp}.{body}".encode()
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def signed_headers(secret: str, webhook_id: str, body: str, *, at: int) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "user-agent": f"Parley-Webhooks/{__version__}",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(at),
        "webhook-signature": signature(secret, webhook_id, at, body),
    }


def backoff(settings: Settings, attempt: int) -> float:
    """Seconds before the retry after attempt number ``attempt`` (1 for the first)."""
    delay = min(settings.tuning.webhook_backoff_seconds * 2.0 ** min(attempt - 1, 30), MAX_BACKOFF)
    return delay * random.uniform(0.8, 1.2)


class Deliveries:
    """The delivery worker of one replica; ``owner`` names it in its claims."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        metrics: Metrics,
        *,
        owner: str,
        concurrency: int = CONCURRENCY,
    ) -> None:
        self.db = db
        self.settings = settings
        self.metrics = metrics
        self.owner = owner
        self.concurrency = concurrency
        self.policy = webhook_policy(settings)
        #: The attempts under way here, with their claims.
        self.working: dict[asyncio.Task[None], store.Claim] = {}
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.Task[None] | None = None
        #: Set to look for due deliveries now: deliveries were written here, or an attempt
        #: ended (and made room).
        self._wake = Wake()
        self._listener: Callable[[], None] | None = None
        #: When the loop next looks for due deliveries unless woken (``time.monotonic``);
        #: the upkeep's looks may push it back (``looked``).
        self._look_by = 0.0

    @property
    def claim_seconds(self) -> float:
        return self.settings.webhook_timeout_seconds + CLAIM_MARGIN

    async def start(self) -> None:
        loop = asyncio.get_running_loop()

        def written() -> None:  # on a database thread: deliveries were written here
            loop.call_soon_threadsafe(self._wake.set)

        self._listener = written
        self.db.listen(store.TOPIC, written)
        self._loop = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Stop; attempts under way are cut short and their claims given back (another
        replica, or this one started again, sends them at once)."""
        if self._listener is not None:
            self.db.unlisten(store.TOPIC, self._listener)
            self._listener = None
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop
            self._loop = None
        working = dict(self.working)
        for task in working:
            task.cancel()
        for task in working:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if working:
            try:
                await self.db.write(store.release_claims, claims=list(working.values()))
            except Exception:  # a boundary: the claims run out by themselves
                log.exception("giving back the claims of webhook deliveries failed")
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _run(self) -> None:
        """Look for due deliveries when woken (written here, or an attempt ended), when the
        next one falls due, and at least every ``webhook_poll_seconds`` (for those written
        on other replicas)."""
        next_prune = time.monotonic() + self.settings.tuning.event_prune_seconds
        while True:
            self._wake.clear()
            wait = self.settings.tuning.webhook_poll_seconds
            try:
                upcoming = await self.round()
                if upcoming is not None:
                    wait = min(wait, upcoming)
                if time.monotonic() >= next_prune:
                    next_prune = time.monotonic() + self.settings.tuning.event_prune_seconds
                    await self.prune()
            except Exception:  # a boundary: the next round tries again
                log.exception("webhook delivery round failed; retrying")
            self._look_by = time.monotonic() + wait
            await until_woken(self._wake, lambda: self._look_by)

    def looked(self, upcoming: float | None) -> None:
        """When the first pending delivery falls due (``store.next_due``), as the upkeep's
        look read it (``Upkeep.sweep``: one read for every idle look of the replica). One
        due before the loop's next look wakes it; with none pending and none sent here,
        the loop's own next look is ``webhook_poll_seconds`` away."""
        if upcoming is not None:
            if time.monotonic() + (upcoming - now()) < self._look_by:
                self._wake.set()
        elif not self.working:
            poll = self.settings.tuning.webhook_poll_seconds
            self._look_by = max(self._look_by, time.monotonic() + poll)

    async def prune(self) -> int:
        """Delete the ended deliveries older than the runs' event logs are kept
        (``event_retention_hours``; 0 keeps them all). Returns how many went."""
        hours = self.settings.event_retention_hours
        if hours <= 0:
            return 0
        pruned = 0
        while True:
            went = await self.db.write_later(store.prune, before=now() - hours * 3600)
            pruned += went
            if went < store.PRUNE_BATCH:
                return pruned

    async def round(self) -> float | None:
        """Claim the due deliveries there is room for and start sending them. Returns the
        seconds until the next pending one falls due (0: more may be due now), or None
        when none is pending (or there is no room: an attempt that ends wakes the loop)."""
        room = self.concurrency - len(self.working)
        if room <= 0:
            return None
        upcoming = await self.db.read_later(store.next_due)
        if upcoming is None:
            return None
        if upcoming > now():
            return upcoming - now()
        claims = await self.db.write_later(
            store.claim, owner=self.owner, lease_seconds=self.claim_seconds, limit=room
        )
        if claims and self._session is None:
            self._session = await self._open_session()
        for claim in claims:
            task = asyncio.create_task(self._attempt(claim))
            self.working[task] = claim
            task.add_done_callback(self._done)
        return 0.0 if len(claims) == room else None

    async def _open_session(self) -> aiohttp.ClientSession:
        """The guarded session deliveries are sent with, opened with the first one: a server
        that sends none never loads aiohttp, and the first imports it off the event loop."""
        await asyncio.to_thread(importlib.import_module, "parley.guarded_http")
        from parley.guarded_http import client_session

        return client_session(self.policy, timeout=self.settings.webhook_timeout_seconds)

    def _done(self, task: asyncio.Task[None]) -> None:
        self.working.pop(task, None)
        self._wake.set()  # room for another, and its retry may be due soon

    async def _attempt(self, claim: store.Claim) -> None:
        started = time.perf_counter()
        status_code, error = await self._send(claim)
        duration_ms = (time.perf_counter() - started) * 1000
        retry_at: float | None = None
        if status_code is None or not 200 <= status_code < 300:
            deadline = claim.retry_until or (
                claim.created_at + self.settings.webhook_retry_hours * 3600
            )
            at = now() + backoff(self.settings, claim.attempt)
            retry_at = at if at <= deadline else None
        try:
            status = await self.db.write_later(
                store.finish_attempt,
                claim=claim,
                status_code=status_code,
                error=error,
                duration_ms=duration_ms,
                retry_at=retry_at,
            )
        except Exception:  # a boundary: the claim runs out and the delivery is sent again
            log.exception("recording webhook delivery %s failed", claim.delivery_id)
            return
        self.metrics.webhook_attempt(
            "lost" if status is None else "retry" if status == "pending" else status
        )
        log.info(
            "webhook %s %s attempt %d: %s in %.0f ms -> %s",
            claim.event_type,
            claim.delivery_id,
            claim.attempt,
            status_code if status_code is not None else error,
            duration_ms,
            status or "claim lost",
        )

    async def _send(self, claim: store.Claim) -> tuple[int | None, str | None]:
        """The answer's status code, or why there was none."""
        import aiohttp  # loaded with the session

        assert self._session is not None
        headers = signed_headers(claim.secret, claim.event_id, claim.payload, at=int(time.time()))
        try:
            async with asyncio.timeout(self.settings.webhook_timeout_seconds):
                # The answer's status is all that counts: its body is never read.
                async with self._session.post(
                    claim.url,
                    data=claim.payload.encode(),
                    headers=headers,
                    allow_redirects=False,
                ) as response:
                    status_code = response.status
        except AddressRefused as exc:
            return None, f"address refused: {exc.message}"
        except TimeoutError:  # aiohttp's timeouts are TimeoutErrors too
            return None, f"no answer within {self.settings.webhook_timeout_seconds:g} s"
        except aiohttp.ClientError as exc:
            return None, f"connection failed: {type(exc).__name__}"
        return status_code, None
