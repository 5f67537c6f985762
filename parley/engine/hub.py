"""Live run channels: the in-process fan-out of a running turn's events.

A channel holds the events of one turn as ``(seq, type, json)`` entries. The turn appends;
any number of followers read from a sequence number on and wait for more. Publishing is an
append plus waking the waiters, so it is cheap on the hot path.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

Entry = tuple[int, str, str]


class RunChannel:
    __slots__ = ("_waiters", "closed", "entries", "first_seq", "run_id")

    def __init__(self, run_id: str, first_seq: int) -> None:
        self.run_id = run_id
        #: Sequence number of the turn's first event; earlier ones are in the database.
        self.first_seq = first_seq
        self.entries: list[Entry] = []
        self.closed = False
        self._waiters: list[asyncio.Future[None]] = []

    def publish(self, entry: Entry) -> None:
        self.entries.append(entry)
        if self._waiters:
            self._wake()

    def publish_many(self, entries: list[Entry]) -> None:
        self.entries.extend(entries)
        self._wake()

    def close(self) -> None:
        self.closed = True
        self._wake()

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    async def follow(self, after: int, *, idle_timeout: float) -> AsyncIterator[list[Entry]]:
        """Batches of entries with seq > ``after`` until the channel closes; an empty batch
        after ``idle_timeout`` seconds without news (a cue for a keep-alive)."""
        index = max(0, after + 1 - self.first_seq)
        loop = asyncio.get_running_loop()
        while True:
            if index < len(self.entries):
                batch = self.entries[index:]
                index += len(batch)
                yield batch
                continue
            if self.closed:
                return
            fut: asyncio.Future[None] = loop.create_future()
            self._waiters.append(fut)
            try:
                await asyncio.wait_for(fut, idle_timeout)
            except TimeoutError:
                yield []
