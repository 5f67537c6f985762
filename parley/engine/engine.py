"""The engine: owns runs. Starts turns, takes tool outputs, cancels, follows event logs, and
keeps runs honest in the background (lease heartbeats, orphaned and expired runs).

``Engine``'s public methods are the one interface of every face (see docs/architecture.md):
``add_message``, ``create_run``, ``start_turn`` / ``start_first_turn`` (a ``TurnHandle``
back: the turn's events, its outcome, its cancel), ``submit_tool_outputs``, ``cancel`` and
``follow``. No module outside ``parley.engine`` touches a ``Turn``.

Every status change goes through ``states.move`` (compare-and-set) inside one of the
transactions of ``engine.transactions``; none spans a model call.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import socket
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any

from sqlalchemy.engine import Connection

from parley import logcontext
from parley.config import Settings
from parley.engine import transactions as tx
from parley.engine.bus import RedisBus
from parley.engine.checkpoints import Checkpointer
from parley.engine.early import EarlyStart, first_turn_request, items_request
from parley.engine.handle import TurnHandle
from parley.engine.history import HistoryCache, SharedHistory
from parley.engine.hub import Entry, RunChannel
from parley.engine.inputs import NewMessage, RunConfig, ThreadTarget
from parley.engine.pruning import prune_round, pruned_ending
from parley.engine.run_loop import StreamClock, Turn, TurnRunner, build_request
from parley.engine.usage import UsageCounter, UsageSource
from parley.errors import (
    Conflict,
    InvalidRequest,
    ParleyError,
    ServiceUnavailable,
    UpstreamTimeout,
)
from parley.events import ModelEvent, ReasoningPart, TextPart, ToolCallPart, UsagePart
from parley.metrics import Metrics
from parley.providers.accumulator import AnswerAccumulator
from parley.providers.base import ChatMessage, ModelOptions, ModelRequest
from parley.providers.registry import ProviderRegistry
from parley.store import runs as run_store
from parley.store.db import Database
from parley.store.records import Assistant, Message, Run, Thread
from parley.types import Role, RunStatus, Usage

log = logging.getLogger("parley.engine")

#: Seconds a client refused by a draining server is told to wait (``Retry-After``).
DRAIN_RETRY_AFTER = 2.0


class Engine:
    def __init__(
        self,
        db: Database,
        providers: ProviderRegistry,
        settings: Settings,
        *,
        metrics: Metrics | None = None,
        usage: UsageCounter | None = None,
    ) -> None:
        self.db = db
        self.providers = providers
        self.settings = settings
        self.metrics = metrics or Metrics()
        #: Where each turn's tokens are counted when it ends (``engine.usage``).
        self.usage = usage
        self.lease = tx.Lease.of(node_name(settings), settings.lease_seconds)
        #: Runs an earlier life of this node left ``in_progress`` (``tx.earlier_leases``),
        #: closed at ``_abandoned_check`` unless their lease moved meanwhile.
        self._abandoned: dict[str, float | None] = {}
        self._abandoned_check = 0.0
        self.turns: dict[str, Turn] = {}
        #: Assistants as last read by a claim here, for early starts (``engine.early``).
        self._assistants: dict[str, Assistant] = {}
        #: Live streaming and cancels across replicas, when Redis is configured.
        self.bus = RedisBus(settings.redis_url) if settings.redis_url else None
        #: Threads' histories, kept between turns (and shared through Redis, when set).
        self.history = HistoryCache(
            max_bytes=settings.context_cache_mb * 1024 * 1024,
            shared=SharedHistory(settings.redis_url) if settings.redis_url else None,
        )
        self.checkpointer = Checkpointer(
            db,
            lambda: list(self.turns.values()),
            interval=settings.checkpoint_seconds,
            lease_seconds=settings.lease_seconds,
            bus=self.bus,
        )
        self.runner = TurnRunner(db, providers, settings, self.checkpointer, self.metrics)
        self._background: list[asyncio.Task[None]] = []
        #: Scratch threads (``store.threads``) a face here holds: their holds are renewed
        #: with the leases until the face lets go (``release_scratch``).
        self.scratch_held: set[str] = set()
        #: Deletions of scratch threads under way (kept from the garbage collector).
        self._scratch_writes: set[asyncio.Task[None]] = set()
        #: Set when the server shuts down: no new turn starts.
        self.closing = False
        #: Set while the server drains (``server.serving``): running turns go on, no new
        #: turn starts.
        self.draining = False
        self._bus_closed = False

    # ------------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        if self.bus is not None:
            await self.bus.start(self._cancelled_elsewhere)
        await self._sweep()
        self._abandoned = await self.db.read(functools.partial(tx.earlier_leases, lease=self.lease))
        # Two heartbeats and a half: a live owner (started twice by mistake) renews by then.
        self._abandoned_check = time.monotonic() + 2.5 * self._beat
        self._background = [
            asyncio.create_task(self._maintain()),
            asyncio.create_task(self.checkpointer.run()),
        ]
        if self.settings.event_retention_hours > 0:
            self._background.append(asyncio.create_task(self._prune_event_logs()))

    async def stop(self) -> None:
        """Stop background work; turns still running end ``incomplete``, text kept; no new
        turn starts (503). Safe to call more than once."""
        self.closing = True
        for task in self._background:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        turns = list(self.turns.values())
        for turn in turns:
            turn.stop_reason = "shutdown"
            if turn.task and not turn.settling:
                turn.task.cancel()
        tasks = [t.task for t in turns if t.task]
        if tasks:
            await asyncio.wait(tasks, timeout=10)
        # The connections holding scratch threads end with the server: let go of them.
        for thread_id in sorted(self.scratch_held):
            self.release_scratch(thread_id)
        if self._scratch_writes:
            await asyncio.wait(list(self._scratch_writes), timeout=5)
        if self.bus is not None and not self._bus_closed:
            self._bus_closed = True
            await self.bus.aclose()
            if self.history.shared is not None:
                await asyncio.to_thread(self.history.shared.close)

    # ------------------------------------------------------------ messages and runs

    async def add_message(
        self,
        *,
        user_id: str,
        thread_id: str,
        content: str,
        images: list[dict[str, Any]] | None = None,
        role: Role = Role.USER,
        metadata: dict[str, Any] | None = None,
    ) -> Message:
        """Add a user message (or, with ``role``, an assistant message) to a thread that
        has no turn running or waiting for tools."""
        return await self.db.write(
            functools.partial(
                tx.add_message,
                user_id=user_id,
                thread_id=thread_id,
                content=content,
                images=images,
                role=role,
                metadata=metadata,
            )
        )

    async def append_messages(
        self,
        *,
        user_id: str,
        thread_id: str | None,
        messages: list[NewMessage],
        metadata: dict[str, Any] | None = None,
    ) -> tuple[Thread, list[Message]]:
        """Store messages at the end of a thread with no turn running, or of a new thread
        (``thread_id`` None, with ``metadata``), in one transaction. Tool results may answer
        the pending calls of the thread's ``action_required`` run, as in
        ``start_items_turn``."""
        return await self.db.write(
            functools.partial(
                tx.append_messages,
                user_id=user_id,
                thread_id=thread_id,
                messages=messages,
                metadata=metadata,
                history=self.history,
            )
        )

    async def create_run(
        self,
        *,
        user_id: str,
        thread_id: str,
        assistant_id: str,
        model: str | None = None,
        instructions: str | None = None,
        tools: list[dict[str, Any]] | None = None,
        parameters: dict[str, Any] | None = None,
    ) -> Run:
        """A ``queued`` run on an idle thread, its first turn started by ``start_turn``;
        what is not given (None) comes from the assistant, ``parameters`` key by key."""
        return await self.db.write(
            functools.partial(
                tx.create_run,
                user_id=user_id,
                thread_id=thread_id,
                assistant_id=assistant_id,
                check_model=self.providers.check_model,
                model=model,
                instructions=instructions,
                tools=tools,
                parameters=parameters,
            )
        )

    # ------------------------------------------------------------------- starting turns

    async def start_turn(
        self,
        *,
        user_id: str,
        run_id: str,
        thread_id: str | None = None,
        assistant_id: str | None = None,
        source: UsageSource | None = None,
    ) -> TurnHandle:
        """Start the next turn of a ``queued`` run (flow A ``completions``, flow B turn 2);
        its tokens count against ``source`` (here and in every ``start_*``)."""
        claim = functools.partial(
            tx.claim_queued,
            user_id=user_id,
            run_id=run_id,
            lease=self.lease,
            history=self.history,
            thread_id=thread_id,
            assistant_id=assistant_id,
        )
        # Shielded: once claimed in the database, the turn runs even if the caller goes.
        turn = await asyncio.shield(self._claim_and_launch(claim, source=source))
        if turn is None:
            raise Conflict("The run expired waiting for tool outputs.", code="run_finished")
        return TurnHandle(self, turn)

    async def start_first_turn(
        self,
        *,
        user_id: str,
        assistant_id: str,
        content: str,
        images: list[dict[str, Any]] | None = None,
        thread_id: str | None = None,
        source: UsageSource | None = None,
    ) -> TurnHandle:
        """Flow B turn 1: store the user message, create the run and start it, atomically."""
        claim = functools.partial(
            tx.claim_first,
            user_id=user_id,
            assistant_id=assistant_id,
            content=content,
            images=images,
            thread_id=thread_id,
            lease=self.lease,
            history=self.history,
            check_model=self.providers.check_model,
        )
        early = None
        known = self._assistants.get(assistant_id)
        if thread_id is None and not images and known is not None and known.user_id == user_id:
            early = EarlyStart.begin(
                self.providers,
                known.model,
                functools.partial(first_turn_request, known, content),
            )
        try:
            turn = await asyncio.shield(self._claim_and_launch(claim, early, source))
        except BaseException:
            self._assistants.pop(assistant_id, None)
            raise
        assert turn is not None
        return TurnHandle(self, turn)

    async def start_items_turn(
        self,
        *,
        user_id: str,
        target: ThreadTarget,
        messages: list[NewMessage],
        config: RunConfig,
        source: UsageSource | None = None,
    ) -> TurnHandle:
        """A turn from items (the OpenAI faces): store ``messages`` at the end of the target
        thread (a new one, an existing one, or a branch of one), create the run from
        ``config`` and start its turn, atomically. Tool results among the messages may
        answer the pending calls of the thread's ``action_required`` run, which then
        completes (``transactions.claim_items``)."""
        claim = functools.partial(
            tx.claim_items,
            user_id=user_id,
            target=target,
            messages=messages,
            config=config,
            lease=self.lease,
            history=self.history,
            check_model=self.providers.check_model,
        )
        early = None
        if target.thread_id is None:
            early = EarlyStart.begin(
                self.providers, config.model, functools.partial(items_request, config, messages)
            )
        turn = await asyncio.shield(self._claim_and_launch(claim, early, source))
        assert turn is not None
        handle = TurnHandle(self, turn)
        if target.scratch:
            thread_id = turn.run.thread_id
            self.scratch_held.add(thread_id)
            handle.when_done(functools.partial(self._scratch_ended, thread_id))
        return handle

    # ----------------------------------------------------------------- scratch threads

    def release_scratch(self, thread_id: str) -> None:
        """The face is done with a scratch thread it held (``ThreadTarget.scratch``): it
        goes now, or once its turn ends; should this fail, the sweep deletes it once its
        hold has run out. Synchronous, so that a face's ``finally`` can call it even when
        cancelled."""
        if self.closing and thread_id not in self.scratch_held:
            return  # let go of when the engine stopped
        self.scratch_held.discard(thread_id)
        self._scratch_write(tx.let_go_scratch, thread_id)

    def _scratch_ended(self, thread_id: str) -> None:
        """A turn of a scratch thread ended: the thread goes unless a face here still holds
        it (a WebSocket may continue it); one whose holder died is the sweep's."""
        if thread_id not in self.scratch_held:
            self._scratch_write(tx.end_scratch, thread_id)

    def _scratch_write(self, write: Callable[..., bool], thread_id: str) -> None:
        task = asyncio.ensure_future(self._delete_scratch(write, thread_id))
        self._scratch_writes.add(task)
        task.add_done_callback(self._scratch_writes.discard)

    async def _delete_scratch(self, write: Callable[..., bool], thread_id: str) -> None:
        try:
            await self.db.write(functools.partial(write, thread_id=thread_id))
        except Exception:  # a boundary: the sweep deletes it once it is held no more
            log.warning("a scratch thread is left to the sweep", exc_info=True)

    def _check_open(self) -> None:
        """Refuse a new turn or model call while the server drains or shuts down.

        Raises:
            ServiceUnavailable: 503 ``server_draining``, with a ``Retry-After``.
        """
        if self.closing or self.draining:
            raise ServiceUnavailable(
                "The server is shutting down; retry on another replica.",
                code="server_draining",
                retry_after=DRAIN_RETRY_AFTER,
            )

    async def call_model(
        self, model: str, request_of: Callable[[str], ModelRequest]
    ) -> AsyncGenerator[ModelEvent, None]:
        """One model call that stores nothing, as its events: ``request_of(model_id)`` is
        sent to ``model``'s provider (``provider/model-id``). The provider's first-token and
        idle timeouts apply, as in a turn: a model that goes quiet ends the call with
        ``UpstreamTimeout``. Closing the generator stops the upstream call at once."""
        self._check_open()
        provider, model_id = self.providers.resolve(model)
        first, idle = self.providers.timeouts(model)
        stream = provider.stream(request_of(model_id))
        call = self.metrics.upstream_call(self.providers.provider_of(model), model_id)
        if not (first or idle):
            started = False
            try:
                async for part in stream:
                    if type(part) is UsagePart:
                        call.counted(part)
                    elif not started and isinstance(part, _ANSWERING):
                        started = True
                        call.first_token()
                    yield part
            except BaseException as exc:
                call.failed(exc)
                raise
            finally:
                call.finish()
                await stream.aclose()
            return
        reader = [asyncio.current_task()]  # the task reading the events

        def stop(_: UpstreamTimeout) -> bool:
            if reader[0] is None:
                return False
            reader[0].cancel()
            return True

        clock = StreamClock(stop, first, idle)
        time = asyncio.get_running_loop().time
        try:
            async for part in stream:
                clock.last = time()
                if not clock.started and isinstance(part, _ANSWERING):
                    clock.begin()
                    call.first_token()
                elif type(part) is UsagePart:
                    call.counted(part)
                yield part
                reader[0] = asyncio.current_task()
                clock.last = time()  # a reader slow to come back is not a quiet model
        except asyncio.CancelledError:
            if clock.error is None or reader[0] is None:
                raise
            reader[0].uncancel()
            call.failed(clock.error)
            raise clock.error from None
        except BaseException as exc:
            call.failed(exc)
            raise
        finally:
            clock.stop()
            call.finish()
            await stream.aclose()

    async def complete(
        self,
        *,
        model: str,
        messages: list[NewMessage],
        instructions: str | None = None,
        parameters: dict[str, Any] | None = None,
    ) -> tuple[str, Usage]:
        """One model call that stores nothing (no thread, no run): the answer's text and
        its tokens. For work beside a conversation, such as compaction."""
        self._check_open()
        self.providers.check_model(model)
        provider, model_id = self.providers.resolve(model)
        request = ModelRequest(
            model=model_id,
            messages=[
                ChatMessage(
                    role=m.role,
                    content=m.content,
                    images=[i["url"] for i in m.images or ()],
                )
                for m in messages
            ],
            instructions=instructions,
            parameters=dict(parameters or {}),
            options=ModelOptions(tool_choice="none"),
        )
        acc = AnswerAccumulator()
        stream = provider.stream(request)
        call = self.metrics.upstream_call(self.providers.provider_of(model), model_id)
        try:
            async for part in stream:
                acc.add(part)
        except BaseException as exc:
            call.failed(exc)
            raise
        finally:
            call.finish(acc.usage)
            await stream.aclose()
        return acc.text, acc.usage

    async def _claim_and_launch(
        self,
        claim: Callable[[Connection], tx.Claim | None],
        early: EarlyStart | None = None,
        source: UsageSource | None = None,
    ) -> Turn | None:
        """Claim a turn and start it. An early start is the turn's from here on, or, when
        the claim fails or the request changed, discarded here: shielded, this outlives a
        caller that went away meanwhile, and so does the early call the turn goes on with."""
        try:
            self._check_open()
            claimed = await self.db.write(claim)
        except BaseException:
            if early is not None:
                await early.discard()
            raise
        if claimed is None:
            if early is not None:
                await early.discard()
            return None
        if claimed.assistant is not None:
            if len(self._assistants) > 10_000:
                self._assistants.clear()
            self._assistants[claimed.assistant.id] = claimed.assistant
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
        )
        self.turns[run.id] = turn
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

    # ----------------------------------------------------------------- tool outputs

    async def submit_tool_outputs(
        self, *, user_id: str, run_id: str, outputs: list[tuple[str, str]]
    ) -> Run:
        """Store ``(tool_call_id, output)`` pairs atomically (``transactions.store_outputs``)."""
        seen: set[str] = set()
        for call_id, _ in outputs:
            if call_id in seen:
                raise InvalidRequest(
                    f"tool_call_id {call_id} is listed twice.", code="duplicate_tool_call_id"
                )
            seen.add(call_id)
        run = await self.db.write(
            functools.partial(tx.store_outputs, user_id=user_id, run_id=run_id, outputs=outputs)
        )
        if run is None:
            raise Conflict("The run expired waiting for tool outputs.", code="run_expired")
        return run

    # ----------------------------------------------------------------------- cancel

    async def cancel(self, *, user_id: str, run_id: str) -> Run:
        """Cancel the run; a running turn's upstream call stops at once, text kept."""
        await self.db.write(functools.partial(tx.cancel, user_id=user_id, run_id=run_id))
        turn = self.turns.get(run_id)
        if turn is None and self.bus is not None:
            try:  # the turn may run on another replica: tell it now
                await self.bus.cancel(run_id)
            except Exception:
                log.warning("could not broadcast a cancel; the heartbeat carries it", exc_info=True)
        if turn is not None and turn.task is not None:
            if not turn.settling:  # a settling turn sees the cancel in its own move
                turn.stop_reason = "cancel"
                turn.task.cancel()
            await asyncio.wait([turn.task], timeout=10)
        return await self.db.read(functools.partial(run_store.get_run, run_id=run_id))

    def _cancelled_elsewhere(self, run_id: str) -> None:
        turn = self.turns.get(run_id)
        if turn is not None and turn.task is not None and not turn.settling:
            turn.stop_reason = "remote"
            turn.task.cancel()

    # ------------------------------------------------------------------ event logs

    async def follow(self, run_id: str, *, after: int) -> AsyncIterator[list[Entry]]:
        """The run's events after ``after``: the stored log, then live events while the run
        is in progress (here, or on another replica through the database). An empty batch
        means nothing happened for a keep-alive interval."""
        self.metrics.follower(1)
        try:
            async for batch in self._follow(run_id, after=after):
                yield batch
        finally:
            self.metrics.follower(-1)

    async def _follow(self, run_id: str, *, after: int) -> AsyncIterator[list[Entry]]:
        idle = self.settings.keepalive_seconds
        turn = self.turns.get(run_id)
        if turn is not None:
            channel = turn.channel
            if after + 1 < channel.first_seq:
                stored = await self.db.read(
                    functools.partial(
                        run_store.read_events, run_id=run_id, after=after, before=channel.first_seq
                    )
                )
                if stored:
                    yield [(e.seq, e.type, e.data) for e in stored]
            async for batch in channel.follow(after, idle_timeout=idle):
                yield batch
            return

        if self.bus is not None:
            async for batch in self._follow_live(run_id, after):
                yield batch
            return
        quiet_since = time.monotonic()
        while True:
            status, batch = await self.db.read(functools.partial(_poll, run_id=run_id, after=after))
            if batch:
                after = batch[-1][0]
                quiet_since = time.monotonic()
                yield batch
            if status != RunStatus.IN_PROGRESS:
                return
            if time.monotonic() - quiet_since >= idle:
                quiet_since = time.monotonic()
                yield []
            await asyncio.sleep(min(self.settings.checkpoint_seconds, 0.25))

    async def _follow_live(self, run_id: str, after: int) -> AsyncIterator[list[Entry]]:
        """Follow a run that runs elsewhere: live over Redis, merged in order with the log,
        which fills any gap and says when the run stops running."""
        assert self.bus is not None
        idle = self.settings.keepalive_seconds
        quiet_since = time.monotonic()
        early: dict[int, Entry] = {}  # heard, but not yet next in order
        read_log = True
        async with self.bus.subscription(run_id) as live:
            while True:
                running = True
                if read_log:
                    status, stored = await self.db.read(
                        functools.partial(_poll, run_id=run_id, after=after)
                    )
                    running = status == RunStatus.IN_PROGRESS
                    early.update((e[0], e) for e in stored if e[0] > after)
                ready: list[Entry] = []
                while after + 1 in early:
                    entry = early.pop(after + 1)
                    ready.append(entry)
                    after = entry[0]
                if not running:
                    # The log was read after the run stopped: nothing more comes, and what
                    # is left follows a gap (the closing events of a turn that died).
                    ready += sorted(early.values())
                if ready:
                    quiet_since = time.monotonic()
                    yield ready
                if not running:
                    return
                heard = await live.next(wait=1.0)
                if heard is None:  # silence: look at the log, and keep the client alive
                    read_log = True
                    if time.monotonic() - quiet_since >= idle:
                        quiet_since = time.monotonic()
                        yield []
                    continue
                early.update((e[0], e) for e in heard if e[0] > after)
                # Read the log on a gap, or when a turn ended (the run may have stopped).
                read_log = after + 1 not in early or any(e[1] == "done" for e in heard)

    # -------------------------------------------------------------------- upkeep

    @property
    def _beat(self) -> float:
        """Seconds between lease renewals."""
        return min(1.0, self.settings.lease_seconds / 3)

    async def _maintain(self) -> None:
        started = time.monotonic()
        next_beat = started + self._beat
        next_sweep = started + self.settings.sweep_seconds
        while True:
            await asyncio.sleep(max(0.0, min(next_beat, next_sweep) - time.monotonic()))
            try:
                if time.monotonic() >= next_beat:
                    next_beat = time.monotonic() + self._beat
                    await self._heartbeat()
                if self._abandoned and time.monotonic() >= self._abandoned_check:
                    leases, self._abandoned = self._abandoned, {}
                    await self.db.write(
                        functools.partial(tx.close_abandoned, leases=leases), later=True
                    )
                if time.monotonic() >= next_sweep:
                    next_sweep = time.monotonic() + self.settings.sweep_seconds
                    await self._sweep()
            except Exception:
                log.exception("run upkeep failed; retrying")

    async def _heartbeat(self) -> None:
        """Renew the leases of the turns running here and the holds of the scratch threads
        held here; stop the turns cancelled elsewhere."""
        if not self.turns and not self.scratch_held:
            return
        ids = list(self.turns)
        beat = functools.partial(
            tx.heartbeat, lease=self.lease, run_ids=ids, scratch=sorted(self.scratch_held)
        )
        alive = await self.db.write(beat, later=True)
        for run_id in ids:
            turn = self.turns.get(run_id)
            if run_id not in alive and turn and turn.task and not turn.settling:
                turn.stop_reason = "remote"
                turn.task.cancel()

    async def _prune_event_logs(self) -> None:
        """Prune finished runs' old event logs now and then (``engine.pruning``): a task of
        its own, so that a round never holds up lease renewals."""
        while True:
            await asyncio.sleep(self.settings.event_prune_seconds)
            try:
                pruned = await prune_round(
                    self.db, retention_hours=self.settings.event_retention_hours
                )
            except Exception:  # a boundary: the next round tries again
                log.exception("pruning event logs failed; retrying")
                continue
            if pruned.runs:
                log.info("pruned the event logs of %d runs", pruned.runs)

    async def _sweep(self) -> None:
        """Expire overdue ``action_required`` runs; mark orphaned turns ``incomplete``. A
        read first: the write (and its lock) only when there is something to close."""
        here = set(self.turns)
        if await self.db.read(functools.partial(tx.sweep_due, running_here=here), later=True):
            await self.db.write(functools.partial(tx.sweep, running_here=here), later=True)


def node_name(settings: Settings) -> str | None:
    """This server's name across restarts: ``node_id``, else its host name and port (a
    fixed port: a server on a random one has no name). Hashed to a short fixed length."""
    name = settings.node_id or (f"{socket.gethostname()}:{settings.port}" if settings.port else "")
    return hashlib.sha256(name.encode()).hexdigest()[:16] if name else None


_ANSWERING = (TextPart, ReasoningPart, ToolCallPart)


def _poll(conn: Connection, *, run_id: str, after: int) -> tuple[str, list[Entry]]:
    # Status first: events written with a final status are then all visible.
    run = run_store.get_run(conn, run_id=run_id)
    if run.events_pruned_at is not None:
        return run.status, pruned_ending(run, after=after)
    status = run.status
    stored = run_store.read_events(conn, run_id=run_id, after=after)
    return status, [(e.seq, e.type, e.data) for e in stored]
