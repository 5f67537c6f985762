"""The engine: owns runs. Starts turns, takes tool outputs, cancels, follows event logs, and
keeps runs honest in the background (lease heartbeats, orphaned and expired runs).

``Engine``'s public methods are the one interface of every face (see docs/architecture.md):
``add_message``, ``create_run``, ``start_turn`` / ``start_first_turn`` (a ``TurnHandle``
back: the turn's events, its outcome, its cancel), ``submit_tool_outputs``, ``cancel``,
``follow``, ``profile`` and ``place``. No module outside ``parley.engine`` touches a ``Turn``.

The engine composes its parts: ``TurnRunner`` runs each turn (``engine.run_loop``),
``Follower`` reads runs' events (``engine.following``), ``Upkeep`` does the background work
between ``start`` and ``stop`` (``engine.upkeep``), and ``engine.calls`` makes the model
calls that store nothing.

Every status change goes through ``states.move`` (compare-and-set) inside one of the
transactions of ``engine.transactions``; none spans a model call.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import socket
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from typing import Any

from parley.config import Settings
from parley.engine import idle_runs, placing
from parley.engine import transactions as tx
from parley.engine.bus import RedisBus
from parley.engine.calls import call_model, complete
from parley.engine.checkpoints import Checkpointer
from parley.engine.early import EarlyStart, first_turn_request, items_request
from parley.engine.following import Follower
from parley.engine.handle import TurnHandle
from parley.engine.history import HistoryCache, SharedHistory
from parley.engine.hosted import hosted_entries
from parley.engine.hub import Entry
from parley.engine.inputs import NewMessage, RunConfig, ThreadTarget
from parley.engine.launch import Launcher
from parley.engine.profile import ModelProfile, profile_of
from parley.engine.run_loop import TurnRunner
from parley.engine.scratch import ScratchThreads
from parley.engine.tool_results import SubmittedAnswer
from parley.engine.turn import Turn
from parley.engine.upkeep import Upkeep
from parley.engine.usage import UsageCounter, UsageSource
from parley.errors import Conflict, InvalidRequest, ServiceUnavailable
from parley.events import ModelEvent
from parley.metrics import Metrics
from parley.providers.base import ModelRequest
from parley.providers.registry import ProviderRegistry
from parley.store import runs as run_store
from parley.store.db import Database
from parley.store.records import Message, Run, Thread
from parley.types import Role, Usage

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
        #: The turns running here, by run id.
        self.turns: dict[str, Turn] = {}
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
            interval=settings.tuning.checkpoint_seconds,
            bus=self.bus,
        )
        runner = self.runner = TurnRunner(db, providers, settings, self.checkpointer, self.metrics)
        runner.hosted.containers.usage = usage
        #: Reads files given with messages (``engine.file_inputs``), for turns and faces.
        self.files = runner.files
        self.launcher = Launcher(
            db,
            providers,
            runner,
            self.turns,
            self._check_open,
            usage,
            started=self._turn_started,
        )
        #: Scratch threads (``store.threads``) a face here holds, until it lets go
        #: (``release_scratch``).
        self.scratch = ScratchThreads(db)
        self.follower = Follower(db, settings, self.metrics, self.turns, self.bus)
        self.upkeep = Upkeep(
            db,
            settings,
            self.lease,
            self.checkpointer,
            self.turns,
            self.scratch.held,
            providers=providers,
            metrics=self.metrics,
            usage=usage,
        )
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
        await self.upkeep.start()
        await self.runner.hosted.containers.start()

    def _turn_started(self) -> None:
        """A turn started here: the checkpoints and the heartbeat, asleep while none ran,
        go on."""
        self.checkpointer.turn_started()
        self.upkeep.turn_started()

    async def stop(self) -> None:
        """Stop background work; turns still running end ``incomplete``, text kept; no new
        turn starts (503). Safe to call more than once."""
        self.closing = True
        # The turns first: their streams end at once, whatever stopping the background
        # work takes (an extraction process, a webhook attempt, a busy database).
        turns = list(self.turns.values())
        for turn in turns:
            turn.stop_reason = "shutdown"
            if turn.task and not turn.settling:
                turn.task.cancel()
        tasks = [t.task for t in turns if t.task]
        if tasks:
            await asyncio.wait(tasks, timeout=10)
        await self.upkeep.stop()
        # The connections holding scratch threads end with the server: let go of them.
        await self.scratch.release_all()
        await self.runner.hosted.aclose()
        await self.files.aclose()
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
            idle_runs.add_message,
            user_id=user_id,
            thread_id=thread_id,
            content=content,
            images=images,
            role=role,
            metadata=metadata,
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
            tx.append_messages,
            user_id=user_id,
            thread_id=thread_id,
            messages=messages,
            metadata=metadata,
            history=self.history,
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
            idle_runs.create_run,
            user_id=user_id,
            thread_id=thread_id,
            assistant_id=assistant_id,
            check_model=self.providers.check_model,
            model=model,
            instructions=instructions,
            tools=tools,
            parameters=parameters,
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
        turn = await self.launcher.launch(
            None,
            source,
            None,
            tx.claim_queued,
            user_id=user_id,
            run_id=run_id,
            lease=self.lease,
            history=self.history,
            thread_id=thread_id,
            assistant_id=assistant_id,
        )
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
        early = None
        known = self.launcher.assistants.get(assistant_id)
        if (
            thread_id is None
            and not images
            and known is not None
            and known.user_id == user_id
            and not hosted_entries(known.tools)  # their tools are listed in the turn first
        ):
            early = EarlyStart.begin(
                self.providers,
                known.model,
                lambda model_id: first_turn_request(known, content, model_id),
            )
        try:
            turn = await self.launcher.launch(
                early,
                source,
                None,
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
        except BaseException:
            self.launcher.assistants.pop(assistant_id, None)
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
        secrets: Mapping[str, Mapping[str, str]] | None = None,
    ) -> TurnHandle:
        """A turn from items (the OpenAI faces): store ``messages`` at the end of the target
        thread (a new one, an existing one, a branch of one, or after a run's answer:
        ``ThreadTarget.after_run``), create the run from ``config`` and start its turn,
        atomically. Tool results among the messages may answer the pending calls of the
        thread's ``action_required`` run, which then completes (``transactions.claim_items``).
        A target not ``placed`` is placed first (``place``). ``secrets``: the headers of
        the servers of the run's hosted tools, by server label, held by the turn only
        (``engine.hosted``)."""
        if not target.placed:
            target = await self.place(user_id=user_id, target=target)
        early = None
        if target.thread_id is None and not hosted_entries(config.tools):
            early = EarlyStart.begin(
                self.providers,
                config.model,
                lambda model_id: items_request(config, messages, model_id),
            )
        turn = await self.launcher.launch(
            early,
            source,
            secrets,
            tx.claim_items,
            user_id=user_id,
            target=target,
            messages=messages,
            config=config,
            lease=self.lease,
            history=self.history,
            check_model=self.providers.check_model,
        )
        assert turn is not None
        handle = TurnHandle(self, turn)
        if target.scratch:
            thread_id = turn.run.thread_id
            self.scratch.held.add(thread_id)
            handle.when_done(lambda: self.scratch.turn_ended(thread_id))
        return handle

    async def place(self, *, user_id: str, target: ThreadTarget) -> ThreadTarget:
        """Where a turn at ``target`` would go, checked for the caller as its claim would
        check it (``engine.placing``): a face that places its target as it plans the
        request hears of a thread or run it cannot use before it starts anything."""
        if target.thread_id is None and target.after_run_id is None:
            return target
        return await self.db.read(placing.place, user_id=user_id, target=target)

    # ----------------------------------------------------------------- scratch threads

    def release_scratch(self, thread_id: str) -> None:
        """The face is done with a scratch thread it held (``ThreadTarget.scratch``): it
        goes now, or once its turn ends; should this fail, the sweep deletes it once its
        hold has run out. Synchronous, so that a face's ``finally`` can call it even when
        cancelled."""
        if self.closing and thread_id not in self.scratch.held:
            return  # let go of when the engine stopped
        self.scratch.release(thread_id)

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

    def call_model(
        self, model: str, request_of: Callable[[str], ModelRequest]
    ) -> AsyncGenerator[ModelEvent, None]:
        """One model call that stores nothing, as its events: ``request_of(model_id)`` is
        sent to ``model``'s provider (``provider/model-id``). The provider's first-token and
        idle timeouts apply, as in a turn: a model that goes quiet ends the call with
        ``UpstreamTimeout``. Closing the generator stops the upstream call at once."""
        return call_model(self.providers, self.metrics, model, request_of, check=self._check_open)

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
        return await complete(
            self.providers,
            self.metrics,
            model=model,
            messages=messages,
            instructions=instructions,
            parameters=parameters,
        )

    async def container_deleted(self, container_id: str) -> None:
        """A container was deleted: its sandbox here is closed and its directory removed at
        once (other replicas close theirs within their next round of reaping)."""
        await self.runner.hosted.containers.forget(container_id)

    def profile(self, model: str) -> ModelProfile:
        """What ``model`` can do, from its provider: its API's kind, its qualified name,
        its context window, what its API cannot be asked. Raises ``InvalidRequest`` for a
        model no provider here serves (code ``unknown_model``, ...), as a turn of it would."""
        return profile_of(self.providers, model)

    # ----------------------------------------------------------------- tool outputs

    async def submit_tool_outputs(
        self, *, user_id: str, run_id: str, outputs: list[tuple[str, SubmittedAnswer]]
    ) -> Run:
        """Store ``(tool_call_id, answer)`` pairs atomically (``idle_runs.store_outputs``)."""
        seen: set[str] = set()
        for call_id, _ in outputs:
            if call_id in seen:
                raise InvalidRequest(
                    f"tool_call_id {call_id} is listed twice.", code="duplicate_tool_output"
                )
            seen.add(call_id)
        run = await self.db.write(
            idle_runs.store_outputs, user_id=user_id, run_id=run_id, outputs=outputs
        )
        if run is None:
            raise Conflict("The run expired waiting for tool outputs.", code="run_expired")
        return run

    # ----------------------------------------------------------------------- cancel

    async def cancel(self, *, user_id: str, run_id: str) -> Run:
        """Cancel the run; a running turn's upstream call stops at once, text kept."""
        await self.db.write(idle_runs.cancel, user_id=user_id, run_id=run_id)
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
        return await self.db.read(run_store.get_run, run_id=run_id)

    def _cancelled_elsewhere(self, run_id: str) -> None:
        turn = self.turns.get(run_id)
        if turn is not None and turn.task is not None and not turn.settling:
            turn.stop_reason = "remote"
            turn.task.cancel()

    # ------------------------------------------------------------------ event logs

    def follow(self, run_id: str, *, after: int) -> AsyncIterator[list[Entry]]:
        """The run's events after ``after``: the stored log, then live events while the run
        is in progress (here, or on another replica through the database). An empty batch
        means nothing happened for a keep-alive interval."""
        return self.follower.follow(run_id, after=after)


def node_name(settings: Settings) -> str | None:
    """This server's name across restarts: ``node_id``, else its host name and port (a
    fixed port: a server on a random one has no name). Hashed to a short fixed length."""
    name = settings.node_id or (f"{socket.gethostname()}:{settings.port}" if settings.port else "")
    return hashlib.sha256(name.encode()).hexdigest()[:16] if name else None
