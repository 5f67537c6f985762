"""The scratch threads a face here holds (``ThreadTarget.scratch``: a response that is not to
be kept), and their deletion once let go.

A held thread's hold is renewed with the leases (``engine.upkeep``) until the face lets go
of it (``release``); it is deleted then, or once its turn ends. A deletion that fails, or
a holder that died, leaves the thread to the sweep, which deletes it once its hold has run
out (``store.threads``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from parley.engine import sweeps
from parley.store.db import Database

log = logging.getLogger("parley.engine")


class ScratchThreads:
    def __init__(self, db: Database) -> None:
        self.db = db
        #: The threads held here, by id.
        self.held: set[str] = set()
        #: Deletions under way (kept from the garbage collector).
        self._writes: set[asyncio.Task[None]] = set()

    def release(self, thread_id: str) -> None:
        """The face is done with the thread: it goes now, or once its turn ends."""
        self.held.discard(thread_id)
        self._write(sweeps.let_go_scratch, thread_id)

    def turn_ended(self, thread_id: str) -> None:
        """A turn of a scratch thread ended: the thread goes unless a face here still holds
        it (a WebSocket may continue it); one whose holder died is the sweep's."""
        if thread_id not in self.held:
            self._write(sweeps.end_scratch, thread_id)

    async def release_all(self) -> None:
        """Let go of every thread held here, and wait a while for the deletions."""
        for thread_id in sorted(self.held):
            self.release(thread_id)
        if self._writes:
            await asyncio.wait(list(self._writes), timeout=5)

    def _write(self, write: Callable[..., bool], thread_id: str) -> None:
        task = asyncio.ensure_future(self._delete(write, thread_id))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _delete(self, write: Callable[..., bool], thread_id: str) -> None:
        try:
            await self.db.write(write, thread_id=thread_id)
        except Exception:  # a boundary: the sweep deletes it once it is held no more
            log.warning("a scratch thread is left to the sweep", exc_info=True)
