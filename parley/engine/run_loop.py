"""One turn of a run: call the model, stream its events, and finish the turn.

The turn runs in its own task, owned by the engine, never by an HTTP connection. Events get
a per-run sequence number and go to the live channel at once; they reach the database's
event log, with the streamed text, at every checkpoint (``engine.checkpoints``) and when the
turn ends. A turn ends one of five ways, each in one transaction written before its closing
events are published: ``action_required`` (the model asked for tools), ``completed``,
``failed`` (typed error event), ``cancelled`` or ``incomplete`` (shutdown).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Connection

from parley.config import Settings
from parley.engine import states
from parley.engine.budget import budget_left, call_parameters
from parley.engine.bus import RedisBus
from parley.engine.checkpoints import Checkpointer
from parley.engine.context import Window, always_sent, answer_room, fit_start
from parley.engine.early import EarlyStart
from parley.engine.history import Item, items_of
from parley.engine.hub import Entry, RunChannel
from parley.engine.usage import UsageSource
from parley.errors import InternalError, ParleyError, UpstreamError, UpstreamTimeout
from parley.events import (
    ActionItem,
    ContentDelta,
    DoneEvent,
    ErrorEvent,
    ModelEvent,
    ReasoningDelta,
    ReasoningPart,
    RunStatusEvent,
    TextPart,
    ToolCallPart,
    ToolCallsEvent,
    UsageEvent,
)
from parley.metrics import Metrics
from parley.providers.accumulator import AnswerAccumulator
from parley.providers.base import ChatMessage, ModelOptions, ModelRequest
from parley.providers.options import ToolRule, tool_rule
from parley.providers.registry import ProviderRegistry
from parley.store import runs as run_store
from parley.store import threads as thread_store
from parley.store.db import Database, new_id, now, send_ahead
from parley.store.records import Run
from parley.store.tables import TOOL_FIELD_LENGTH, without_nul
from parley.types import Role, RunStatus, ToolCall, ToolSpec, Usage

log = logging.getLogger("parley.engine")

#: Model calls a turn may make in a row when no tool call it asked for could be run (its
#: arguments unreadable, or its tool not allowed by ``tool_choice``): each is answered with a
#: tool error and the model called again.
MAX_CALL_ROUNDS = 3


class TurnStopped(Exception):
    """The run left ``in_progress`` under the turn (cancelled from elsewhere)."""


class StreamClock:
    """First-token and idle timeouts of one model call, on a single loop timer.

    The streaming loop only stamps ``last`` (and sets ``started`` at the first text,
    reasoning or tool call); the timer, when it fires, moves itself to the deadline that
    stamp implies, or calls ``stop`` with the error, which answers whether it stopped the
    call (``error`` is then set)."""

    __slots__ = ("_handle", "_loop", "error", "first", "idle", "last", "started", "stop_call")

    def __init__(
        self, stop_call: Callable[[UpstreamTimeout], bool], first: float, idle: float
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self.stop_call, self.first, self.idle = stop_call, first, idle
        self.last = self._loop.time()
        self.started = False
        self.error: UpstreamTimeout | None = None
        self._handle: asyncio.TimerHandle | None = None
        if first or idle:
            self._handle = self._loop.call_at(self.last + (first or idle), self._check)

    def begin(self) -> None:
        """The model started its answer (its first text, reasoning or tool call): from now
        on the idle limit applies, so a timer set for the first-token deadline is moved."""
        self.started = True
        if self._handle is not None and self.idle:
            self._handle.cancel()
            self._handle = self._loop.call_at(self.last + self.idle, self._check)

    def _check(self) -> None:
        limit = self.idle if self.started else self.first
        if not limit:
            if not self.started:  # no first-token limit: the idle one starts at the start
                self._handle = self._loop.call_at(self._loop.time() + self.idle, self._check)
            else:
                self._handle = None
            return
        deadline = self.last + limit
        if self._loop.time() < deadline:
            self._handle = self._loop.call_at(deadline, self._check)
            return
        if self.started:
            what = f"sent nothing for {limit:g} s in the middle of its answer (idle_timeout)"
        else:
            what = f"did not start its answer within {limit:g} s (first_token_timeout)"
        error = UpstreamTimeout(f"The model {what}.", code="upstream_timeout")
        if self.stop_call(error):
            self.error = error

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


@dataclass(eq=False)
class Turn:
    run: Run
    message_id: str
    #: The thread's messages before the turn's own (``engine.history``).
    context: list[Item]
    channel: RunChannel
    #: Sequence number of the last event emitted.
    seq: int
    #: Events emitted but not yet in the database's log.
    unsaved: list[Entry] = field(default_factory=list)
    acc: AnswerAccumulator = field(default_factory=AnswerAccumulator)
    #: Why the task is being cancelled: "cancel" (user), "shutdown", or "remote".
    stop_reason: str | None = None
    #: Set once the turn writes its end: from then on it is not interrupted.
    settling: bool = False
    task: asyncio.Task[None] | None = None
    #: The upstream call, when it was started before the claim (``engine.early``).
    early: EarlyStart | None = None
    #: Set when a follower on another replica watches this run (``engine.bus``).
    remote: RedisBus | None = None
    #: The timeouts of the model call in progress.
    clock: StreamClock | None = None
    #: Calls the turn fails with, stored with their tool errors (``MAX_CALL_ROUNDS``).
    unanswered: list[ToolCall] = field(default_factory=list)
    #: Model calls made so far, and the tokens of those already finished.
    rounds: int = 1
    spent: Usage = field(default_factory=Usage)
    #: Set when the run's output token budget was used up before the model call the turn
    #: was about to make (``engine.budget``): the turn ends without it.
    out_of_budget: bool = False
    #: Messages of the thread its last model call left out (``engine.context``); None
    #: before the turn's first call.
    dropped: int | None = None
    #: Whom the turn's tokens count against (``engine.usage``); None: not counted.
    source: UsageSource | None = None
    _remote_batch: list[Entry] = field(default_factory=list)

    def record(self, event: Any) -> Entry:
        """Number the event and queue it for the log, without publishing it."""
        self.seq += 1
        entry = (self.seq, event.type, event.model_dump_json())
        self.unsaved.append(entry)
        return entry

    def stop_model(self, _: UpstreamTimeout) -> bool:
        """Stop the turn for a model that went quiet (``StreamClock``), unless it is
        writing its end."""
        if self.settling or self.task is None:
            return False
        self.task.cancel()
        return True

    def texts(self) -> tuple[str, str | None, list[list[Any]] | None]:
        """The answer and reasoning so far, and their order (``AnswerAccumulator.layout``)."""
        acc = self.acc
        return acc.text, acc.reasoning or None, acc.layout

    def run_totals(self) -> dict[str, int]:
        """The run's token counts with this turn's added, and the messages its last model
        call left out (when it made one)."""
        used, run = self.usage(), self.run
        totals = {
            "input_tokens": run.input_tokens + used.input_tokens,
            "output_tokens": run.output_tokens + used.output_tokens,
            "reasoning_tokens": run.reasoning_tokens + used.reasoning_tokens,
            "cached_tokens": run.cached_tokens + used.cached_tokens,
        }
        if self.dropped is not None:
            totals["dropped_messages"] = self.dropped
        return totals

    def tool_errors(self, calls: list[ToolCall]) -> list[tuple[str, str]]:
        """``(call id, tool error)`` of the calls whose arguments could not be read."""
        invalid = self.acc.invalid
        return [(c.id, invalid[c.id]) for c in calls if c.id in invalid]

    def usage(self) -> Usage:
        """The tokens of this turn's model calls."""
        return self.spent + self.acc.usage

    def call_usage(self) -> dict[str, int] | None:
        """The tokens of the model call that wrote the turn's current message, as stored
        with it; None when the turn made no call for it."""
        return None if self.out_of_budget else self.acc.usage.model_dump()

    def budget_left(self) -> int | None:
        """What the run's next model call may use of its output token budget (None: the
        run has none): the budget less the run's earlier turns and this turn's calls."""
        used = self.run.output_tokens + self.spent.output_tokens
        return budget_left(self.run.options, used)

    def emit(self, event: Any) -> None:
        """Number, queue for the log, and publish to live followers at once."""
        entry = self.record(event)
        self.channel.publish(entry)
        if self.remote is not None:
            self._to_remote([entry])

    def publish_closing(self, entries: list[Entry]) -> None:
        """Publish the committed end of the turn, and close its channel."""
        self.channel.publish_many(entries)
        self.channel.close()
        if self.remote is not None:
            self._to_remote(entries)

    def _to_remote(self, entries: list[Entry]) -> None:
        # Entries of one loop iteration go out as one message.
        if not self._remote_batch:
            asyncio.get_running_loop().call_soon(self._flush_remote)
        self._remote_batch.extend(entries)

    def _flush_remote(self) -> None:
        batch, self._remote_batch = self._remote_batch, []
        if batch and self.remote is not None:
            self.remote.publish(self.run.id, batch)


def _finish_calls(turn: Turn) -> list[ToolCall]:
    """The answer's tool calls as the database can store them: a fresh id for an id
    already used in the thread (some models number their calls from 0 on every turn) or
    too long to store; a call whose name is too long for any tool, or that the run's
    ``tool_choice`` does not allow (``none``, another function, a tool outside
    ``allowed_tools``), answered with a tool error; names and arguments without NUL, so the
    manifest and the stored calls agree."""
    acc = turn.acc
    if not acc.has_tool_calls:
        return []
    taken = (c.id for i in turn.context for c in i.chat.tool_calls)
    calls = acc.finish_tool_calls(taken=taken)
    rule = tool_rule(ModelOptions.of(turn.run.options).tool_choice)
    finished = []
    for call in calls:
        update: dict[str, Any] = {"arguments": without_nul(call.arguments)}
        if len(call.id) > TOOL_FIELD_LENGTH:
            update["id"] = new_id("call")
            if call.id in acc.invalid:
                acc.invalid[update["id"]] = acc.invalid.pop(call.id)
        name = without_nul(call.name)
        if len(name) > TOOL_FIELD_LENGTH:
            name = name[:TOOL_FIELD_LENGTH]
            acc.invalid[update.get("id", call.id)] = (
                f"Error: no tool was run: the tool name is longer than {TOOL_FIELD_LENGTH} "
                "characters, and no tool has such a name."
            )
        elif rule is not None and not rule.allows(name):
            acc.invalid.setdefault(
                update.get("id", call.id),
                f"Error: no tool was run: {name} may not be called in this turn "
                f"({_allowed(rule)}). Answer without it.",
            )
        update["name"] = name
        finished.append(call.model_copy(update=update))
    return finished


def _allowed(rule: ToolRule) -> str:
    if rule.mode == "none" or not rule.names:
        return "no tool may be called"
    return "the tools that may be called: " + ", ".join(rule.names)


def _provider_state(turn: Turn, provider: str) -> dict[str, Any] | None:
    """What the adapter asked to keep with the answer, marked with its provider's name."""
    state = turn.acc.state
    if not state:
        return None
    return {**state, "provider": provider}


def build_request(
    run: Run,
    context: Sequence[Item],
    model_id: str,
    provider: str,
    *,
    spent: int = 0,
    window: int | None = None,
) -> tuple[ModelRequest, int]:
    """The model's view of the thread, and how many of its messages it leaves out: every
    stored message, in order, less what the run's ``truncation`` option and the model's
    context ``window`` (tokens; None: unknown) cut (``engine.context``; the usage stored
    with earlier answers corrects its estimate). What a provider stored with an answer
    (``provider_state``) goes back only to that provider: ``provider``, the name the run's
    model resolves to (``ProviderRegistry.provider_of``). ``max_tokens`` is at most what is
    left of the run's output token budget (``engine.budget``), the turn's earlier calls
    having used ``spent`` of it.

    Only the messages sent are looked at, from the newest backwards (``context`` holds
    what each message gives the model, worked out once: ``engine.history``).

    Raises ``InvalidRequest`` (``context_length_exceeded``) for an input the window cannot
    hold."""
    parameters = call_parameters(run.parameters, run.options, run.output_tokens + spent)
    truncation = (run.options or {}).get("truncation") or {}
    start = 0
    if truncation or window:
        fixed = always_sent(run.instructions, run.tools)
        limit = None
        if window:
            limit = Window(window, answer_room(window, parameters.get("max_tokens")))
        chats = _Chats(context)
        known = _newest_count(context)
        start = fit_start(chats, truncation, fixed, window=limit, known=known, costs=chats.cost)
    messages = [_for_provider(i.chat, provider) for i in context[start:]]
    request = ModelRequest(
        model=model_id,
        messages=messages,
        instructions=run.instructions,
        tools=[ToolSpec.model_validate(t) for t in run.tools],
        parameters=parameters,
        options=ModelOptions.of(run.options),
    )
    return request, start


class _Chats(Sequence[ChatMessage]):
    """The ``ChatMessage`` of each item, as ``engine.context`` reads them."""

    def __init__(self, items: Sequence[Item]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: Any) -> Any:
        return self.items[index].chat  # one at a time: ``fit_start`` slices nothing

    def cost(self, index: int) -> int:
        return self.items[index].cost


#: How far back from the newest message a stored usage is looked for.
_COUNT_SEARCH = 2000


def _newest_count(items: Sequence[Item]) -> dict[int, int]:
    """The index and count of the newest answer whose model call's usage was stored,
    among the newest ``_COUNT_SEARCH`` messages."""
    for index in range(len(items) - 1, max(-1, len(items) - 1 - _COUNT_SEARCH), -1):
        counted = items[index].counted
        if counted is not None:
            return {index: counted}
    return {}


def _for_provider(chat: ChatMessage, provider: str) -> ChatMessage:
    state = chat.provider_state
    if state and state.get("provider") != provider:
        return dataclasses.replace(chat, provider_state=None)
    return chat


class TurnRunner:
    def __init__(
        self,
        db: Database,
        providers: ProviderRegistry,
        settings: Settings,
        checkpointer: Checkpointer,
        metrics: Metrics,
    ) -> None:
        self.db = db
        self.providers = providers
        self.settings = settings
        self.checkpointer = checkpointer
        self.metrics = metrics

    async def run(self, turn: Turn) -> None:
        """The whole turn; every exit leaves the run settled, with one ``done``."""
        self.metrics.turn_started(turn.run.id, turn.run.thread_id, turn.run.model)
        turn.emit(RunStatusEvent(run_id=turn.run.id, status=RunStatus.IN_PROGRESS))
        outcome: ParleyError | list[ToolCall] | None = None
        stopped = False
        try:
            while True:
                if turn.budget_left() == 0:  # no call: the run ends incomplete
                    turn.out_of_budget, outcome = True, None
                    break
                await self._stream(turn)
                outcome = _finish_calls(turn)
                if not outcome or len(turn.acc.invalid) < len(outcome):
                    break
                # No call can be run (unreadable, or not allowed): nothing for the client.
                if turn.rounds >= MAX_CALL_ROUNDS:
                    turn.unanswered = outcome
                    outcome = UpstreamError(
                        f"The model sent only tool calls that could not be run (unreadable "
                        f"arguments, or tools not allowed) {turn.rounds} times in a row.",
                        code="malformed_tool_call",
                    )
                    break
                await self._next_round(turn, outcome)
        except ParleyError as exc:
            outcome = exc
        except (TurnStopped, asyncio.CancelledError):
            clock = turn.clock
            if clock is not None and clock.error is not None and turn.stop_reason is None:
                outcome = clock.error  # the model went quiet: a failed turn, text kept
                asyncio.current_task().uncancel()  # type: ignore[union-attr]
            else:
                stopped = True
        except Exception:
            log.exception("turn of run %s failed", turn.run.id)
            outcome = InternalError("The turn failed because of an internal error.")
        turn.settling = True
        # From here on the turn is not interrupted: it writes its end, whatever happens.
        await asyncio.shield(self._finish(turn, outcome, stopped))

    async def _finish(
        self,
        turn: Turn,
        outcome: ParleyError | list[ToolCall] | None,
        stopped: bool,
    ) -> None:
        await self.checkpointer.drain(turn)
        try:
            if stopped:
                raise TurnStopped
            if isinstance(outcome, ParleyError):
                await self._fail(turn, outcome)
            elif outcome:
                await self._pause_for_tools(turn, outcome)
            else:
                await self._complete(turn)
        except TurnStopped:
            await self._stop(turn)
        except Exception:
            log.exception("could not write the end of run %s", turn.run.id)
            await self._fail_bare(turn)

    async def _stream(self, turn: Turn) -> None:
        """Relay the model's events; the only awaits here are the upstream's."""
        stream: AsyncGenerator[ModelEvent, None]
        model = turn.run.model
        if turn.early is not None:
            stream = turn.early.parts()
            model_id, began = turn.early.request.model, turn.early.began
        else:
            began = None
            provider, model_id = self.providers.resolve(model)
            request, turn.dropped = build_request(
                turn.run,
                turn.context,
                model_id,
                self.providers.provider_of(model),
                spent=turn.spent.output_tokens,
                window=self.providers.context_window(model),
            )
            stream = provider.stream(request)
        call = self.metrics.upstream_call(
            self.providers.provider_of(model), model_id, started=began
        )
        run_id, message_id = turn.run.id, turn.message_id
        acc, emit = turn.acc, turn.emit
        clock = turn.clock = StreamClock(turn.stop_model, *self.providers.timeouts(turn.run.model))
        time = asyncio.get_running_loop().time
        try:
            async for part in stream:
                acc.add(part)
                clock.last = time()
                kind = type(part)
                if kind is TextPart:
                    emit(ContentDelta(run_id=run_id, message_id=message_id, text=part.text))  # type: ignore[union-attr]
                elif kind is ReasoningPart:
                    emit(
                        ReasoningDelta(
                            run_id=run_id,
                            message_id=message_id,
                            text=part.text,  # type: ignore[union-attr]
                            summary=part.summary,  # type: ignore[union-attr]
                        )
                    )
                elif kind is not ToolCallPart:
                    continue  # usage or provider state: not the answer itself
                if not clock.started:
                    clock.begin()
                    call.first_token()
        except BaseException as exc:
            call.failed(clock.error or exc)
            raise
        finally:
            clock.stop()
            call.finish(acc.usage)
            await stream.aclose()
            if turn.early is not None:
                early, turn.early = turn.early, None
                await early.discard()  # the first-part task and the upstream stream

    async def _next_round(self, turn: Turn, calls: list[ToolCall]) -> None:
        """Answer tool calls whose arguments could not be read with tool errors and make
        the turn call the model again, into a new assistant message; all in one
        transaction. Not interrupted meanwhile: a cancel is seen under the run's lock."""
        turn.settling = True
        await self.checkpointer.drain(turn)
        run, message_id = turn.run, turn.message_id
        entries, turn.unsaved = turn.unsaved, []
        text, reasoning, layout = turn.texts()
        state = _provider_state(turn, self.providers.provider_of(run.model))
        totals = turn.run_totals()
        usage = turn.call_usage()
        tool_calls = [c.model_dump() for c in calls]
        errors = turn.tool_errors(calls)

        def write(conn: Connection) -> tuple[str, list[Item]] | None:
            locked = run_store.lock_run(conn, run_id=run.id, user_id=run.user_id, scratch=True)
            if locked.status != RunStatus.IN_PROGRESS:
                return None
            thread_store.save_message_text(
                conn,
                message_id=message_id,
                content=text,
                reasoning=reasoning,
                layout=layout,
                tool_calls=tool_calls,
                provider_state=state,
                usage=usage,
            )
            thread_store.add_tool_messages(
                conn, user_id=run.user_id, thread_id=run.thread_id, run_id=run.id, results=errors
            )
            placeholder = thread_store.add_message(
                conn,
                user_id=run.user_id,
                thread_id=run.thread_id,
                role=Role.ASSISTANT,
                content="",
                run_id=run.id,
            )
            if entries:
                run_store.append_events(conn, run_id=run.id, events=entries)
            run_store.update_run(
                conn, run_id=run.id, last_seq=entries[-1][0] if entries else turn.seq, **totals
            )
            # This round's answer and tool errors, read back: not kept (``HistoryCache``),
            # as this transaction wrote them.
            after = turn.context[-1].message.seq if turn.context else 0
            rows = thread_store.messages_between(
                conn, thread_id=run.thread_id, first=after + 1, last=placeholder.seq - 1
            )
            return placeholder.id, turn.context + items_of(rows)

        try:
            written = await self.db.write(write)
        except BaseException:
            turn.unsaved = entries + turn.unsaved
            raise
        if written is None:  # cancelled meanwhile
            turn.unsaved = entries + turn.unsaved
            raise TurnStopped
        turn.message_id, turn.context = written
        turn.spent = turn.usage()
        turn.acc = AnswerAccumulator()
        turn.rounds += 1
        turn.settling = False

    def _closing(
        self,
        turn: Turn,
        status: RunStatus,
        *extra: Any,
        ended_at: float | None,
        reason: str | None = None,
    ) -> list[Entry]:
        """Record the closing events; they are published once the end is committed."""
        run_id = turn.run.id
        usage = UsageEvent(run_id=run_id, **turn.usage().model_dump())
        events = [*extra, usage, RunStatusEvent(run_id=run_id, status=status)]
        ended = None if ended_at is None else int(ended_at)
        reason = (reason or "interrupted") if status == RunStatus.INCOMPLETE else None
        events.append(DoneEvent(run_id=run_id, status=status, ended_at=ended, reason=reason))
        return [turn.record(e) for e in events]

    async def _settle(
        self,
        turn: Turn,
        status: RunStatus,
        *extra: Any,
        tool_calls: list[dict[str, Any]] | None = None,
        actions: list[tuple[str, str, str, dict[str, Any]]] | None = None,
        answers: list[tuple[str, str]] | None = None,
        **run_values: Any,
    ) -> None:
        """Write the end of the turn in one transaction, then publish its closing events.
        The moment it ends is the run's ``completed_at``, or its ``paused_at`` when it waits
        for tool outputs, and the ``done`` event's ``ended_at``."""
        ended_at = now()
        reason = run_values.get("error_code")
        closing = self._closing(turn, status, *extra, ended_at=ended_at, reason=reason)
        entries, turn.unsaved = turn.unsaved, []
        run, message_id = turn.run, turn.message_id
        text, reasoning, layout = turn.texts()
        provider_state = _provider_state(turn, self.providers.provider_of(run.model))
        usage = turn.call_usage()
        values = {
            **turn.run_totals(),
            "lease_owner": None,
            "lease_expires_at": None,
            "last_seq": entries[-1][0],
            "paused_at" if status == RunStatus.ACTION_REQUIRED else "completed_at": ended_at,
            **run_values,
        }

        def write(conn: Connection) -> bool:
            if not states.move(conn, run.id, status, source=RunStatus.IN_PROGRESS, **values):
                return False
            if answers:  # tool errors for calls the client is not asked to run
                thread_store.add_tool_messages(
                    conn,
                    user_id=run.user_id,
                    thread_id=run.thread_id,
                    run_id=run.id,
                    results=answers,
                )
            send_ahead(conn)
            thread_store.save_message_text(
                conn,
                message_id=message_id,
                content=text,
                reasoning=reasoning,
                layout=layout,
                tool_calls=tool_calls,
                provider_state=provider_state,
                usage=usage,
            )
            if actions:
                run_store.create_actions(conn, run_id=run.id, calls=actions)
            run_store.append_events(conn, run_id=run.id, events=entries)
            return True

        try:  # its client has the answer's text already: behind the turns about to start
            written = await self.db.write(write, later=True)
        except BaseException:
            written = False
            raise
        finally:
            if not written:  # not written, or stopped from elsewhere: take the closing back
                turn.unsaved = entries[: len(entries) - len(closing)]
                turn.seq -= len(closing)
        if not written:
            raise TurnStopped
        turn.publish_closing(closing)
        self.metrics.turn_ended(status)

    async def _complete(self, turn: Turn) -> None:
        """The model's answer ended: the run is ``completed``, or ``incomplete`` when the
        model stopped at its output token limit (the text is kept) or the run's output
        token budget was used up before the call (``engine.budget``)."""
        if turn.out_of_budget:
            await self._settle(
                turn,
                RunStatus.INCOMPLETE,
                error_code="max_output_tokens",
                error_message="The run used up its output token budget before this turn.",
            )
            return
        if turn.acc.finish_reason == "length":
            await self._settle(
                turn,
                RunStatus.INCOMPLETE,
                error_code="max_output_tokens",
                error_message="The answer stopped at its output token limit.",
            )
            return
        await self._settle(turn, RunStatus.COMPLETED)

    async def _pause_for_tools(self, turn: Turn, calls: list[ToolCall]) -> None:
        """Hand the calls to the client; calls whose arguments could not be read are
        answered here with a tool error and are not in the manifest."""
        run_id, invalid = turn.run.id, turn.acc.invalid
        runnable = [c for c in calls if c.id not in invalid]
        # Action ids are chosen here so the manifest and the rows agree.
        action_ids = [new_id("act") for _ in runnable]
        manifest = ToolCallsEvent(
            run_id=run_id,
            message_id=turn.message_id,
            actions=[
                ActionItem(action_id=aid, tool_call_id=c.id, name=c.name, arguments=c.arguments)
                for aid, c in zip(action_ids, runnable, strict=True)
            ],
        )
        await self._settle(
            turn,
            RunStatus.ACTION_REQUIRED,
            manifest,
            tool_calls=[c.model_dump() for c in calls],
            actions=[
                (aid, c.id, c.name, c.arguments)
                for aid, c in zip(action_ids, runnable, strict=True)
            ],
            answers=turn.tool_errors(calls),
            expires_at=now() + self.settings.action_expiry_seconds,
        )

    async def _fail(self, turn: Turn, exc: ParleyError) -> None:
        error = ErrorEvent(run_id=turn.run.id, code=exc.code, message=exc.message)
        calls = turn.unanswered
        await self._settle(
            turn,
            RunStatus.FAILED,
            error,
            tool_calls=[c.model_dump() for c in calls] if calls else None,
            answers=turn.tool_errors(calls),
            error_code=exc.code,
            error_message=exc.message,
        )

    async def _stop(self, turn: Turn) -> None:
        """The turn was stopped: by a cancel (the run is already ``cancelled``), by shutdown
        (the run becomes ``incomplete``), or from another replica. Keep the partial text."""
        run = turn.run
        if turn.stop_reason in (None, "shutdown"):
            try:
                await self._settle(turn, RunStatus.INCOMPLETE)
                return
            except TurnStopped:
                pass
        current = await self.db.read(functools.partial(run_store.get_run, run_id=run.id))
        # A sweep that took this turn for dead wrote the run's closing events already,
        # numbered past this turn's: keep the text and events, and pass those on.
        swept = current.last_seq > turn.seq
        status = RunStatus(current.status)
        closing = [] if swept else self._closing(turn, status, ended_at=current.completed_at)
        entries, turn.unsaved = turn.unsaved, []
        message_id = turn.message_id
        text, reasoning, layout = turn.texts()
        values: dict[str, Any] = turn.run_totals()
        usage = turn.call_usage()
        if entries and not swept:
            values["last_seq"] = entries[-1][0]

        def write(conn: Connection) -> list[Entry]:
            thread_store.save_message_text(
                conn,
                message_id=message_id,
                content=text,
                reasoning=reasoning,
                layout=layout,
                usage=usage,
            )
            if entries:
                run_store.append_events(conn, run_id=run.id, events=entries)
            run_store.update_run(conn, run_id=run.id, **values)
            if not swept:
                return closing
            stored = run_store.read_events(conn, run_id=run.id, after=turn.seq)
            return [(e.seq, e.type, e.data) for e in stored]

        turn.publish_closing(await self.db.write(write))
        self.metrics.turn_ended(status)

    async def _fail_bare(self, turn: Turn) -> None:
        """The end of the turn could not be written (the database refused it): fail the
        run with its closing events and nothing else. Followers get ``error`` and ``done``
        whatever happens; if even this cannot be written, the run stays ``in_progress``
        until its lease runs out and a sweep closes it ``incomplete``."""
        run = turn.run
        error = ErrorEvent(
            run_id=run.id,
            code="internal_error",
            message="The turn's answer could not be stored; the text so far is kept.",
        )
        ended_at = now()
        closing = self._closing(turn, RunStatus.FAILED, error, ended_at=ended_at)
        entries, turn.unsaved = turn.unsaved, []
        values = {
            "lease_owner": None,
            "lease_expires_at": None,
            "last_seq": entries[-1][0],
            "completed_at": ended_at,
            "error_code": error.code,
            "error_message": error.message,
        }

        def write(conn: Connection) -> None:
            if states.move(conn, run.id, RunStatus.FAILED, source=RunStatus.IN_PROGRESS, **values):
                run_store.append_events(conn, run_id=run.id, events=entries)

        try:
            await self.db.write(write)
        except Exception:
            log.exception("could not fail run %s; its lease will run out", run.id)
        turn.publish_closing(closing)
        self.metrics.turn_ended(RunStatus.FAILED)
