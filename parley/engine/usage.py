"""Tokens per API key, counted in memory and written together (``store.usage``).

Every model call that reaches a client is counted here once, when it ends: a run's turn by
the engine (``Engine._drive``, with the ``UsageSource`` its face started it with), a chat
completion, which leaves no run behind, by its route. The tokens are the ones the call's
answer reports (the turn's ``usage`` event).

Counting a call is a dictionary update on the event loop; every ``interval`` seconds the
tallies gathered since are added to their rows in one transaction, in the database's
bookkeeping line. A database write per call (an upsert and a commit on the database
thread, in the same process) used to land on the next request's way to its first chunk.

What a replica counted but has not written yet is written when the server stops; a
replica that dies loses at most ``interval`` seconds of counts. A flush that fails keeps
its tallies for the next one.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError

from parley.store import usage as usage_store
from parley.store.db import Database, now
from parley.store.usage import Tally, TallyKey, day_of
from parley.types import Usage
from parley.wake import Wake

log = logging.getLogger("parley.engine")


@dataclass(frozen=True, slots=True)
class UsageSource:
    """Whom a turn's tokens count against: the hash of the API key of the request that
    started the turn, and the face it came through (``runs``, ``assistants``,
    ``responses``)."""

    key_hash: str
    face: str


class UsageCounter:
    """``count`` each call; ``start`` the periodic writes; ``aclose`` writes the rest."""

    def __init__(self, db: Database, interval: float) -> None:
        self.db = db
        self.interval = interval
        self._tallies: dict[TallyKey, Tally] = {}
        #: Tallies being written by a flush: not in the database yet.
        self._writing: dict[TallyKey, Tally] = {}
        #: Input and output tokens this replica counted today, per key hash, written or
        #: not (for budgets: ``server.budgets``).
        self._today: tuple[str, dict[str, int]] = ("", {})
        self._task: asyncio.Task[None] | None = None
        self._wake = Wake()
        #: Set when a call is counted: with nothing to write, the writer sleeps till then.
        self._counted = asyncio.Event()
        self._stopping = False

    def count(self, *, user_id: str, key_hash: str, model: str, face: str, used: Usage) -> None:
        """One call made now, with its tokens."""
        day = day_of(now())
        key = TallyKey(day, user_id, key_hash, model, face)
        tokens = (used.input_tokens, used.output_tokens, used.reasoning_tokens, used.cached_tokens)
        self._add(key, Tally(1, *tokens))
        self._counted.set()
        if self._today[0] != day:
            self._today = (day, {})
        spent = self._today[1]
        spent[key_hash] = spent.get(key_hash, 0) + used.input_tokens + used.output_tokens
        if self.interval <= 0:
            self._wake.set()

    def counted_today(self, key_hash: str, day: str) -> int:
        """Input and output tokens this replica counted for the key on ``day`` (UTC), the
        ones already written included."""
        when, spent = self._today
        return spent.get(key_hash, 0) if when == day else 0

    def unwritten(self, key_hash: str, day: str) -> int:
        """Input and output tokens of the key on ``day`` not in the database yet."""
        return sum(
            t.input_tokens + t.output_tokens
            for tallies in (self._tallies, self._writing)
            for k, t in tallies.items()
            if k.key_hash == key_hash and k.day == day
        )

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="parley-usage")

    async def aclose(self) -> None:
        """Stop the periodic writes and write what is left."""
        self._stopping = True
        self._wake.set()
        self._counted.set()
        if self._task is not None:
            await self._task
            self._task = None
        await self.flush()

    async def flush(self) -> None:
        """Write the tallies gathered so far; on failure they wait for the next flush."""
        tallies, self._tallies = self._tallies, {}
        if not tallies:
            return
        self._writing = tallies
        try:
            await self.db.write_later(usage_store.add_tallies, tallies=tallies)
        except IntegrityError:  # a user (and so its keys) deleted since: write the others
            await self._one_by_one(tallies)
        except Exception:  # a boundary: keep the counts for the next try
            log.exception("could not write the token counts of API keys")
            self._merge(tallies)
        finally:
            self._writing = {}

    async def _one_by_one(self, tallies: dict[TallyKey, Tally]) -> None:
        for key, tally in tallies.items():
            try:
                await self.db.write_later(usage_store.add_tallies, tallies={key: tally})
            except IntegrityError:
                log.info("token counts of a deleted user dropped")

    def _merge(self, tallies: dict[TallyKey, Tally]) -> None:
        for key, tally in tallies.items():
            self._add(key, tally)

    def _add(self, key: TallyKey, tally: Tally) -> None:
        mine = self._tallies.get(key)
        if mine is None:
            self._tallies[key] = tally
        else:
            mine.add(tally)

    async def _run(self) -> None:
        """Write the tallies ``interval`` seconds after the first call counted since the
        last write (at once when ``interval`` is 0); with nothing counted, sleep: an idle
        server does not wake for this."""
        while not self._stopping:
            if not self._tallies:
                self._counted.clear()
                await self._counted.wait()
            await self._wake.wait(self.interval or None)
            self._wake.clear()
            await self.flush()
