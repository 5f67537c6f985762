"""Launching turns: a claim written, then the turn's task started and watched to its end.

The turns running here are kept by run id (``turns``, the engine's own), from their claim
to the end of their task; when a turn ends, its tokens are counted against its source
(``engine.usage``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Concatenate, ParamSpec

from sqlalchemy.engine import Connection

from parley import logcontext
from parley.engine import transactions as tx
from parley.engine.early import EarlyStart
from parley.engine.hub import RunChannel
from parley.engine.run_loop import TurnRunner
from parley.engine.streaming import build_request
from parley.engine.turn import Turn
from parley.engine.usage import UsageCounter, UsageSource
from parley.errors import ParleyError
from parley.providers.registry import ProviderRegistry
from parley.store.db import Database
from parley.store.records import Assistant

log = logging.getLogger("parley.engine")

P = ParamSpec("P")


class Launcher:
    """Claims turns and runs them with ``runner``. ``check_open`` refuses a claim while the
    engine drains or stops; ``usage`` (``Launcher.usage``, may be set later) counts the
    tokens of the turns that ended."""

    def __init__(
        self,
        db: Database,
        providers: ProviderRegistry,
        runner: TurnRunner,
        turns: dict[str, Turn],
        check_open: Callable[[], None],
        usage: UsageCounter | None,
        started: Callable[[], None] = lambda: None,
    ) -> None:
        self.db = db
        self.providers = providers
        self.runner = runner
        self.turns = turns
        self.check_open = check_open
        self.usage = usage
        #: Told each time a turn starts here (the checkpointer wakes for it).
        self.started = started
        #: Assistants as last read by a claim here, for early starts (``engine.early``).
        self.assistants: dict[str, Assistant] = {}

    async def launch(
        self,
        early: EarlyStart | None,
        source: UsageSource | None,
        secrets: Mapping[str, Mapping[str, str]] | None,
        claim: Callable[Concatenate[Connection, P], tx.Claim | None],
        /,
        *args: P.args,
        **kw: P.kwargs,
    ) -> Turn | None:
        """Claim a turn (``claim(conn, *args, **kw)``, None: the run expired) and start it,
        with the ``secrets`` of its hosted tools (``Turn.secrets``).
        An early start is the turn's from here on, or, when the claim fails or the request
        changed, discarded here: shielded, this outlives a caller that went away meanwhile,
        and so does the early call the turn goes on with."""
        try:
            self.check_open()
            claimed = await self.db.write(claim, *args, **kw)
        except BaseException:
            if early is not None:
                await early.discard()
            raise
        if claimed is None:
            if early is not None:
                await early.discard()
            return None
        if claimed.assistant is not None:
            if len(self.assistants) > 10_000:
                self.assistants.clear()
            self.assistants[claimed.assistant.id] = claimed.assistant
        run = claimed.run
        dropped = None
        if early is not None:
            _, model_id = self.providers.resolve(run.model)
            try:
                request, dropped = build_request(
                    run,
                    claimed.context,
                    model_id,
                    self.providers.provider_of(run.model),
                    window=self.providers.context_window(run.model),
                )
            except ParleyError:  # too long for the model: the turn fails with it, uncalled
                request = None
            if request is None or not early.fits(request):
                await early.discard()  # an assistant changed since: call afresh, or fail
                early, dropped = None, None
        turn = Turn(
            run=run,
            message_id=claimed.message_id,
            context=claimed.context,
            channel=RunChannel(run.id, first_seq=run.last_seq + 1),
            seq=run.last_seq,
            early=early,
            dropped=dropped,
            source=source,
            secrets=secrets or {},
            approved=claimed.approved,
        )
        self.turns[run.id] = turn
        self.started()
        turn.task = asyncio.create_task(self._drive(turn), name=f"turn {run.id}")
        return turn

    async def _drive(self, turn: Turn) -> None:
        logcontext.run_id.set(turn.run.id)  # this task's context: every line of the turn
        began = time.perf_counter()
        try:
            await self.runner.run(turn)
        except Exception:
            log.exception("turn of run %s could not be settled", turn.run.id)
        finally:
            self.turns.pop(turn.run.id, None)
            turn.channel.close()
            self._count(turn)
            ms = (time.perf_counter() - began) * 1000
            log.info("turn of %s ended after %.0f ms", turn.run.model, ms)

    def _count(self, turn: Turn) -> None:
        """Count the ended turn's tokens (the ``usage`` event's) against its source."""
        source = turn.source
        if self.usage is None or source is None:
            return
        self.usage.count(
            user_id=turn.run.user_id,
            key_hash=source.key_hash,
            model=turn.run.model,
            face=source.face,
            used=turn.usage(),
        )
