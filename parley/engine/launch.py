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
from parley.engine.turn import Answer, HostedState, Turn, TurnLog
from parley.engine.usage import UsageCounter, UsageSource
from parley.errors import ParleyError
from parley.providers.registry import ProviderRegistry
from parley.store.db import Database, Job, on_loop
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
        #: Early starts being discarded after their callers went (``_let_go``).
        self._letting_go: set[asyncio.Task[None]] = set()

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
        with the ``secrets`` of its hosted tools (``HostedState.secrets``).
        An early start is the turn's from here on, or, when the claim fails or the request
        changed, discarded. Once a database thread writes the claim, the turn starts
        whatever becomes of the caller: one cancelled meanwhile leaves the claim to its end
        and the turn to start then (``_claimed_late``), with no task of its own in the
        usual case."""
        try:
            if early is not None:
                # One round of the event loop first: the early call's task takes its first
                # step and writes its request. The claim may run on the loop itself
                # (``Database.write``), and would otherwise hold it before the request is
                # out: the model would start only once the claim is written, its time not
                # hidden behind the model's at all.
                await asyncio.sleep(0)
            self.check_open()
            job = self.db.write_job(claim, *args, **kw)
        except BaseException:
            if early is not None:
                await early.discard()
            raise
        try:
            claimed = await asyncio.wrap_future(job)
        except asyncio.CancelledError:
            # ``wrap_future`` has cancelled the job if it was still queued: nothing written.
            if not job.cancelled():
                loop = asyncio.get_running_loop()
                job.add_done_callback(
                    lambda done: on_loop(loop, self._claimed_late, done, early, source, secrets)
                )
            elif early is not None:
                self._let_go(early)
            raise
        except BaseException:
            if early is not None:
                await early.discard()
            raise
        if claimed is None:
            if early is not None:
                await early.discard()
            return None
        return self._start(claimed, early, source, secrets)

    def _claimed_late(
        self,
        job: Job[tx.Claim | None],
        early: EarlyStart | None,
        source: UsageSource | None,
        secrets: Mapping[str, Mapping[str, str]] | None,
    ) -> None:
        """The end of a claim whose caller went while it was written: its turn starts all
        the same, or its early start is let go."""
        claimed = None if job.exception() is not None else job.result()
        if claimed is not None:
            self._start(claimed, early, source, secrets)
        elif early is not None:
            self._let_go(early)

    def _start(
        self,
        claimed: tx.Claim,
        early: EarlyStart | None,
        source: UsageSource | None,
        secrets: Mapping[str, Mapping[str, str]] | None,
    ) -> Turn:
        """Start the claimed turn's task, with the early start when it made the call the
        turn would (else the task lets it go first)."""
        if claimed.assistant is not None:
            if len(self.assistants) > 10_000:
                self.assistants.clear()
            self.assistants[claimed.assistant.id] = claimed.assistant
        run = claimed.run
        dropped = None
        misfit = None
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
                # An assistant changed since: call afresh, or fail.
                misfit, early, dropped = early, None, None
        turn = Turn(
            run=run,
            message_id=claimed.message_id,
            context=claimed.context,
            channel=RunChannel(run.id, first_seq=run.last_seq + 1),
            log=TurnLog(seq=run.last_seq),
            answer=Answer(dropped=dropped),
            hosted=HostedState(secrets=secrets or {}, approved=claimed.approved),
            early=early,
            source=source,
        )
        self.turns[run.id] = turn
        self.started()
        turn.task = asyncio.create_task(self._drive(turn, misfit), name=f"turn {run.id}")
        return turn

    def _let_go(self, early: EarlyStart) -> None:
        """Discard an early start no turn takes, in a task of its own (its caller went)."""
        task = asyncio.get_running_loop().create_task(early.discard())
        self._letting_go.add(task)
        task.add_done_callback(self._letting_go.discard)

    async def _drive(self, turn: Turn, misfit: EarlyStart | None = None) -> None:
        logcontext.run_id.set(turn.run.id)  # this task's context: every line of the turn
        began = time.perf_counter()
        try:
            if misfit is not None:
                await misfit.discard()
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
            used=turn.answer.usage(),
        )
