"""The conversation processor of ``parley chat`` and ``parley ask``: one user message in,
streamed turns and client-side tool calls until the run ends.

It follows the seed design (``terminal-chat-streaming``) box by box::

    ConversationProcessor.process_conversation(text)
      ├─ streaming?  yes: _handle_streaming_completion()
      │                     └─ StreamingResponseHandler.stream_response()
      │                          reader task: for each event -> state + output.event()
      │                          watchdog:   first chunk / idle / whole-turn timeouts
      │              no:  _handle_regular_completion()   (process(stream=False))
      │                     the turn's hosted calls first (its result's items)
      ├─ tool calls? ToolProcessor.process_tool_calls(manifest)
      │                 hosted MCP calls waiting for approval: asked, answered through the
      │                   SDK's approve callback ("approved" / "denied")
      │                 ToolHub.run_calls(): concurrent (limit), confirmation, ✓/✗ per call
      │              -> submit_tool_outputs(all outputs, as text) -> next turn (process(run_id))
      └─ finished:   output.finished(result)   (final rendering, usage, elapsed)

Tool calls are not accumulated here: the server assembles them (by index, arguments parsed
once) and streams the finished manifest (``tool_calls``), one action per call, so parallel
calls stay separate.

Interrupts. ``interrupt()`` (the Ctrl+C handler) cancels the task doing the current step,
the reader of the stream or the tool calls, so it stops at once, not at the next chunk;
what arrived is kept and shown, and the run is cancelled on the server, which keeps the
partial text. Timeouts end a turn the same way, with a note saying which one fired.

What the user sees is the ``ChatOutput``'s business (``parley.terminal.output``): a live
``StreamView`` in a terminal, plain text in a pipe, JSON lines for ``parley ask --json``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import signal
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from parley.errors import Conflict, ParleyError
from parley.events import (
    ActionItem,
    ContentDelta,
    DoneEvent,
    ErrorEvent,
    Event,
    HostedToolEvent,
    ReasoningDelta,
    ToolCallsEvent,
    UsageEvent,
)
from parley.sdk import AsyncClient
from parley.sdk._loops import decision_of, tool_target
from parley.sdk.models import TurnResult
from parley.sdk.stream import AsyncStream
from parley.terminal import hosted_cards
from parley.terminal.hosted import approval_question
from parley.terminal.lines import shown_name
from parley.terminal.session import ChatOptions, Session
from parley.terminal.turns import ChatOutput, ExchangeResult, ToolRecord, TurnState

if TYPE_CHECKING:
    from parley.terminal.mcp_tools import ToolOutcome

__all__ = [
    "NO_TERMINAL",
    "ConversationProcessor",
    "StreamingResponseHandler",
    "ToolProcessor",
    "on_sigint",
]

T = TypeVar("T")

#: Model turns of one exchange before the run is cancelled (a model that never stops
#: calling tools).
MAX_TURNS = 16
NO_TERMINAL = (
    "Not run: this tool needs the user's confirmation and no terminal is attached to ask "
    "(use --confirm never, or allow the tool in the MCP config)."
)
NO_TERMINAL_HOSTED = (
    "Not run: {name} on {server} needs the user's approval and no terminal is attached to "
    "ask (use --confirm never to approve such calls)."
)
_ACTIVE = frozenset({"queued", "in_progress", "action_required"})


# -------------------------------------------------------------------- interrupts


class _Interrupted(Exception):
    """The step was cancelled by ``ConversationProcessor.interrupt()``."""


class _Steps:
    """The tasks of the current exchange; ``interrupt()`` cancels them all at once."""

    def __init__(self) -> None:
        self.interrupted = False
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if self.interrupted:
            task.cancel()
        return task

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` as a task the interrupt can cancel; ``_Interrupted`` if it did."""
        task = self.spawn(coro)
        try:
            await asyncio.wait([task])
        finally:
            if not task.done():  # we were cancelled ourselves: take the step down with us
                task.cancel()
        if task.cancelled():
            raise _Interrupted
        return task.result()

    def interrupt(self) -> None:
        self.interrupted = True
        for task in list(self._tasks):
            task.cancel()


# -------------------------------------------------------------------- streaming


class StreamingResponseHandler:
    """Streams one turn into a ``TurnState`` and the output, under the three timeouts.

    A reader task consumes the stream; this coroutine watches the clock. When a timeout
    fires, or on an interrupt, the reader is cancelled where it waits (closing the stream)
    and what arrived stays in the state. ``0`` turns a timeout off.
    """

    def __init__(
        self,
        output: ChatOutput,
        steps: _Steps,
        *,
        first_chunk_timeout: float,
        idle_timeout: float,
        turn_timeout: float,
    ) -> None:
        self._output = output
        self._steps = steps
        self._first = first_chunk_timeout
        self._idle = idle_timeout
        self._turn = turn_timeout

    async def stream_response(self, open_stream: Callable[[], Awaitable[AsyncStream]]) -> TurnState:
        """Raises ``ParleyError`` when the request is refused or the connection is lost."""
        state = TurnState()
        reader = self._steps.spawn(self._read(open_stream, state))
        try:
            while not reader.done():
                deadline, why = self._deadline(state)
                wait = None if deadline is None else deadline - time.monotonic()
                if wait is not None and wait <= 0:
                    state.timed_out = why
                    reader.cancel()
                    wait = None
                elif state.first_chunk_at is None and self._idle > 0:
                    # The idle deadline starts at the first chunk, which may come before
                    # the first-chunk deadline: look again by then (exact, as the chunk
                    # came after the start).
                    wait = self._idle if wait is None else min(wait, self._idle)
                await asyncio.wait([reader], timeout=wait)
        finally:
            if not reader.done():
                reader.cancel()
                await asyncio.wait([reader])
        if reader.cancelled():
            state.interrupted = state.timed_out is None and self._steps.interrupted
            if state.timed_out is None and not state.interrupted:
                raise asyncio.CancelledError
        else:
            reader.result()  # a ParleyError from the request or the stream
        return state

    async def _read(
        self, open_stream: Callable[[], Awaitable[AsyncStream]], state: TurnState
    ) -> None:
        stream = await open_stream()
        async with stream:
            async for event in stream:
                _take(event, state, self._output)

    def _deadline(self, state: TurnState) -> tuple[float | None, str]:
        """The next moment a timeout fires, and what to say when it does."""
        candidates: list[tuple[float, str]] = []
        if self._turn > 0:
            candidates.append(
                (state.started_at + self._turn, f"timed out: the turn took over {self._turn:g} s")
            )
        if state.first_chunk_at is None:
            if self._first > 0:
                why = f"timed out: no answer within {self._first:g} s"
                candidates.append((state.started_at + self._first, why))
        elif self._idle > 0 and state.last_chunk_at is not None:
            why = f"timed out: nothing for {self._idle:g} s"
            candidates.append((state.last_chunk_at + self._idle, why))
        if not candidates:
            return None, ""
        return min(candidates)


# ------------------------------------------------------------------------ tools


class ToolProcessor:
    """Runs the calls of one manifest through the MCP hub, concurrently, asking first where
    the confirmation mode says so; returns one record per call, in manifest order."""

    def __init__(self, session: Session, output: ChatOutput) -> None:
        self._session = session
        self._output = output
        #: Tools the user answered "always" for, this session.
        self.allowed: set[str] = set()
        #: Hosted MCP tools (server label, tool) the user answered "always" for.
        self.allowed_hosted: set[tuple[str, str]] = set()

    async def process_tool_calls(self, actions: Sequence[ActionItem]) -> list[ToolRecord]:
        """One record per call, in manifest order: the calls the server runs once approved
        (hosted MCP) are asked about first, one after the other; the others run here."""
        records = {a.tool_call_id: await self._approval(a) for a in actions if a.approval}
        local = [a for a in actions if not a.approval]
        if local:
            for record in await self._run_local(local):
                records[record.tool_call_id] = record
        return [records[a.tool_call_id] for a in actions]

    async def _approval(self, action: ActionItem) -> ToolRecord:
        """Ask whether the server may run ``action`` (a hosted MCP call); the answer goes
        through the SDK's approval callback and becomes the action's output."""
        approval = action.approval or {}
        name = str(approval.get("name") or action.name)
        key = (str(approval.get("server_label") or ""), name)

        async def approve(_action: ActionItem) -> bool:
            if key in self.allowed_hosted or self._session.options.confirm == "never":
                return True
            if not self._output.can_confirm:
                self._output.notice(
                    NO_TERMINAL_HOSTED.format(name=shown_name(name), server=shown_name(key[0]))
                )
                return False
            answer = await self._output.ask(approval_question(action))
            if answer == "always":
                self.allowed_hosted.add(key)
            return answer != "no"

        target = tool_target({}, action, approve)
        assert target is not None, "an action with an approval always has a target"
        answer = target()
        decision = await answer if inspect.isawaitable(answer) else answer
        output = "approved" if decision_of(decision).approve else "denied"
        denied = output != "approved"
        record = ToolRecord(
            tool_call_id=action.tool_call_id,
            name=name,
            arguments=action.arguments,
            output=output,
            is_error=denied,
            text="not approved" if denied else "approved",
            kind=output,
        )
        self._output.tool_finished(action, record)
        return record

    async def _run_local(self, actions: Sequence[ActionItem]) -> list[ToolRecord]:
        self._output.tool_calls(actions)
        hub = self._session.hub
        by_id = {action.tool_call_id: action for action in actions}
        if hub is None:
            records = [_no_tool(action) for action in actions]
            for action, record in zip(actions, records, strict=True):
                self._output.tool_finished(action, record)
            return records
        opts = self._session.options

        def started(call_id: str, name: str, arguments: Mapping[str, Any]) -> None:
            self._output.tool_started(by_id[call_id])

        def done(outcome: ToolOutcome) -> None:
            action = by_id[outcome.call_id or ""]
            self._output.tool_finished(action, self._record(action, outcome))

        outcomes = await hub.run_calls(
            [(a.tool_call_id, a.name, a.arguments) for a in actions],
            limit=max(1, opts.max_parallel_tools),
            approve=self._approve,
            confirm=opts.confirm,
            on_start=started,
            on_done=done,
        )
        return [self._record(by_id[o.call_id or ""], o) for o in outcomes]

    async def _approve(self, name: str, arguments: Mapping[str, Any]) -> bool | str:
        if name in self.allowed:
            return True
        if not self._output.can_confirm:
            return NO_TERMINAL
        answer = await self._output.confirm(name, arguments)
        if answer == "always":
            self.allowed.add(name)
        return answer != "no"

    @staticmethod
    def _record(action: ActionItem, outcome: ToolOutcome) -> ToolRecord:
        return ToolRecord(
            tool_call_id=action.tool_call_id,
            name=action.name,
            arguments=action.arguments,
            output=outcome.output,
            is_error=outcome.is_error,
            text=outcome.text,
            kind=outcome.kind,
        )


def _no_tool(action: ActionItem) -> ToolRecord:
    text = f"Unknown tool {action.name!r}: no MCP server is configured in this chat."
    return ToolRecord(
        tool_call_id=action.tool_call_id,
        name=action.name,
        arguments=action.arguments,
        output=f"Error: {text}",
        is_error=True,
        text=text,
        kind="unknown_tool",
    )


# -------------------------------------------------------------------- processor


@dataclass(frozen=True)
class _TurnRequest:
    """How to start the next turn: turn 1 from the user's text, later ones by run id."""

    client: AsyncClient
    assistant_id: str | None = None
    content: str | None = None
    thread_id: str | None = None
    run_id: str | None = None

    async def stream(self) -> AsyncStream:
        return await self.client.process(
            assistant_id=self.assistant_id,
            content=self.content,
            thread_id=self.thread_id,
            run_id=self.run_id,
        )

    async def whole(self) -> TurnResult:
        return await self.client.process(
            assistant_id=self.assistant_id,
            content=self.content,
            thread_id=self.thread_id,
            run_id=self.run_id,
            stream=False,
        )


class ConversationProcessor:
    """Runs one user message to the end of its run, showing it on ``output``."""

    def __init__(self, session: Session, output: ChatOutput) -> None:
        self.session = session
        self.output = output
        self.tools = ToolProcessor(session, output)
        self._steps = _Steps()
        self.busy = False

    @property
    def options(self) -> ChatOptions:
        return self.session.options

    def interrupt(self) -> None:
        """Stop the current exchange at once (Ctrl+C): stream reader and tools cancelled."""
        self._steps.interrupt()

    async def process_conversation(self, text: str) -> ExchangeResult:
        """Send ``text`` and run the exchange to its end; errors are in the result."""
        self._steps = _Steps()
        self.busy = True
        try:
            return await self._exchange(text)
        finally:
            self.busy = False

    async def _exchange(self, text: str) -> ExchangeResult:
        session, client = self.session, self.session.client
        assistant = session.assistant
        assert assistant is not None, "Session.open() picks the assistant"
        self.output.begin()
        result = ExchangeResult(thread_id="")
        try:
            thread_id = await self._steps.run(session.ensure_thread(text))
            result.thread_id = thread_id

            opener = _TurnRequest(
                client, assistant_id=assistant.id, content=text, thread_id=thread_id
            )
            while True:
                self.output.turn_started(result.turns + 1)
                turn = await self._turn(opener, result)
                result.add_turn(turn)
                if turn.stopped or turn.status != "action_required" or not turn.actions:
                    break
                if result.turns >= MAX_TURNS:
                    result.note = f"stopped: still calling tools after {MAX_TURNS} turns"
                    result.stopped = "timeout"
                    break
                records = await self._steps.run(self.tools.process_tool_calls(turn.actions))
                result.tool_results.extend(records)
                run_id = turn.run_id or ""
                outputs = [{"tool_call_id": r.tool_call_id, "output": r.output} for r in records]
                await self._steps.run(client.runs.submit_tool_outputs(run_id, outputs))
                opener = _TurnRequest(client, run_id=run_id)
        except _Interrupted:
            result.stopped = "interrupted"
        except ParleyError as exc:
            result.fail(exc)
        if result.stopped is not None:
            await self._cancel_run(result)
        result.elapsed = time.monotonic() - result.started_at
        self.output.finished(result)
        return result

    async def _turn(self, opener: _TurnRequest, result: ExchangeResult) -> TurnState:
        """One model turn; a busy thread (a run left over by an earlier session) is freed
        once and the turn retried."""
        try:
            return await self._one_turn(opener)
        except Conflict as exc:
            if exc.code not in ("thread_busy", "run_in_progress") or result.turns > 0:
                raise
            if not await self._free_thread(result.thread_id):
                raise
            return await self._one_turn(opener)

    async def _one_turn(self, opener: _TurnRequest) -> TurnState:
        if self.options.stream:
            return await self._handle_streaming_completion(opener)
        return await self._handle_regular_completion(opener)

    async def _handle_streaming_completion(self, opener: _TurnRequest) -> TurnState:
        handler = StreamingResponseHandler(
            self.output,
            self._steps,
            first_chunk_timeout=self.options.first_chunk_timeout,
            idle_timeout=self.options.idle_timeout,
            turn_timeout=self.options.turn_timeout,
        )
        return await handler.stream_response(opener.stream)

    async def _handle_regular_completion(self, opener: _TurnRequest) -> TurnState:
        """The whole turn in one answer (``--no-stream``), shown as the same events: first
        the calls the server ran in it (hosted MCP: the result's ``items``), then the
        answer."""
        state = TurnState()
        limit = self.options.turn_timeout or None
        try:
            async with asyncio.timeout(limit):
                turn = await self._steps.run(opener.whole())
        except TimeoutError:
            state.timed_out = f"timed out: the turn took over {limit:g} s"
            return state
        except _Interrupted:
            state.interrupted = True
            return state
        for event in [*_ran_on_server(turn), *_turn_events(turn)]:
            _take(event, state, self.output)
        return state

    async def _cancel_run(self, result: ExchangeResult) -> None:
        """Cancel the exchange's run on the server (it keeps the partial text)."""
        client = self.session.client
        try:
            run_id = result.run_id or await self._active_run(result.thread_id)
            if run_id is None:
                return
            run = await client.runs.cancel(run_id)
            result.run_id, result.status = run.id, run.status
        except Conflict:
            pass  # it ended first
        except ParleyError as exc:
            self.output.notice(f"could not cancel the run on the server: {exc.message}", error=True)

    async def _active_run(self, thread_id: str) -> str | None:
        if not thread_id:
            return None
        runs = await self.session.client.runs.list(thread_id=thread_id, limit=1, order="desc")
        if runs.data and runs.data[0].status in _ACTIVE:
            return runs.data[0].id
        return None

    async def _free_thread(self, thread_id: str) -> bool:
        run_id = await self._active_run(thread_id)
        if run_id is None:
            return False
        with contextlib.suppress(Conflict):  # it ended meanwhile: free all the same
            await self.session.client.runs.cancel(run_id)
        self.output.notice(f"cancelled the unfinished run {run_id} of this thread")
        return True


def _take(event: Event, state: TurnState, output: ChatOutput) -> None:
    """One event of a turn, streamed or not: into the turn's state, then onto the output."""
    state.add(event)
    output.event(event)


def _ran_on_server(turn: TurnResult) -> list[HostedToolEvent]:
    """The ``hosted_tool`` events a stream of ``turn`` would have carried: a call's start
    (its arguments, a search's queries) and end, a tool list's end."""
    events = []
    for item in turn.items:
        if hosted_cards.card_of(item).started is not None:
            events.append(HostedToolEvent(run_id=turn.run_id, phase="started", item=item))
        events.append(HostedToolEvent(run_id=turn.run_id, phase="done", item=item))
    return events


def _turn_events(turn: TurnResult) -> list[Event]:
    """The events a stream of ``turn`` would have carried (for ``--no-stream``)."""
    events: list[Event] = []
    message_id = turn.message_id or ""
    if turn.reasoning:
        events.append(
            ReasoningDelta(run_id=turn.run_id, message_id=message_id, text=turn.reasoning)
        )
    if turn.text:
        events.append(ContentDelta(run_id=turn.run_id, message_id=message_id, text=turn.text))
    if turn.actions:
        events.append(ToolCallsEvent(run_id=turn.run_id, actions=turn.actions))
    events.append(UsageEvent(run_id=turn.run_id, **turn.usage.model_dump()))
    if turn.error is not None:
        events.append(
            ErrorEvent(run_id=turn.run_id, code=turn.error.code, message=turn.error.message)
        )
    events.append(DoneEvent(run_id=turn.run_id, status=turn.status))
    return events


@contextlib.contextmanager
def on_sigint(callback: Callable[[], None]) -> Iterator[None]:
    """Call ``callback`` on the event loop for each SIGINT (Ctrl+C in a cooked terminal)
    while the block runs; the previous handler comes back afterwards."""
    loop = asyncio.get_running_loop()
    previous = signal.getsignal(signal.SIGINT)
    try:
        loop.add_signal_handler(signal.SIGINT, callback)
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, Windows
        yield
        return
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)
