"""One exchange of ``POST /api/messages/process``: the seed's flow A, as browser events.

    thread → status message → create_message → status run → create_run(model=) → run
      → status streaming → the turn's events (reasoning.delta, content.delta, tool_calls)
      → the run is action_required: status tools → tool.start ...
        → poll_and_execute_action(our tools) → tool.result ... → status tools_done
        → the next turn's events → ...
    → usage → status done → done

The Parley server runs the calls of its MCP servers, its file searches and the code
interpreter itself: their ``hosted_tool`` events pass through as they come. When the server
refuses the code interpreter, the run is made again without it and a ``notice`` says so. A call that waits for the user's approval ends the turn with its
action: the exchange runs the app's own tools of that turn, sends ``approval`` for each call
that waits, and ends (``done`` with ``action_required``). ``ApprovalExchange`` is the answer
to one: it approves or denies the call, then goes on as above (the approved call runs first,
on the server, then the answer streams).

Every exchange ends with ``done``; a failure on the way becomes an ``error`` event first
(``Exchange.events`` is the stream's boundary, the one place that turns any exception into
an event). If the browser goes away mid-stream, the exchange goes on without it (its tools
still run), so the thread holds the whole answer when the page comes back.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from parley.errors import Conflict, InvalidRequest, NotFound, ParleyError
from parley.events import (
    ActionItem,
    ContentDelta,
    ErrorEvent,
    HostedToolEvent,
    ReasoningDelta,
    ToolCallsEvent,
    ToolResultEvent,
    ToolStartEvent,
    UsageEvent,
    encode_event,
)
from parley.sdk import TurnAccumulator
from parley.sdk.models import Run, Thread
from parley.sdk.tools import ToolRegistry
from parley.types import TERMINAL_STATUSES, RunStatus, Usage
from parley.web.attachments import citations_of
from parley.web.backend import Backend, Problem, problem_of, title_of
from parley.web.events import (
    ApprovalAsked,
    CitationsFound,
    ExchangeDone,
    NoticeGiven,
    RunStarted,
    StatusNote,
    ThreadOpened,
)

__all__ = ["MAX_TOOL_ROUNDS", "ApprovalExchange", "Ask", "Exchange", "WebEvent"]

log = logging.getLogger(__name__)

#: Tool rounds in one exchange before the app gives up (and cancels the run).
MAX_TOOL_ROUNDS = 8
#: Seconds ``poll_and_execute_action`` waits for the run to ask for its tools.
TOOL_WAIT = 30.0
TOOL_POLL_INTERVAL = 0.2

#: What one exchange sends the browser (see ``parley.web.events``).
WebEvent = (
    ContentDelta
    | ReasoningDelta
    | ToolCallsEvent
    | HostedToolEvent
    | ErrorEvent
    | ToolStartEvent
    | ToolResultEvent
    | UsageEvent
    | ThreadOpened
    | RunStarted
    | StatusNote
    | ApprovalAsked
    | CitationsFound
    | NoticeGiven
    | ExchangeDone
)

_DONE_TEXT = {
    RunStatus.COMPLETED: "Done.",
    RunStatus.CANCELLED: "Stopped.",
    RunStatus.FAILED: "The run failed.",
    RunStatus.ACTION_REQUIRED: "Waiting for your approval.",
}
#: The events of a turn's stream the browser gets as they are (status and usage are
#: gathered by the turn's ``TurnAccumulator`` instead, ``done`` ends the whole exchange).
_PASSED_ON = (ContentDelta, ReasoningDelta, ToolCallsEvent, HostedToolEvent, ErrorEvent)


@dataclass(frozen=True, slots=True)
class Ask:
    """What the browser asked: ``thread`` is the session's thread (checked), or None for a
    new one named after ``content``."""

    content: str
    model: str
    owner: str
    thread: Thread | None = None


class _ToolRound:
    """The ``tool_executor`` of one ``poll_and_execute_action``: runs the registry's tool and
    records each result with the id of the call it answers."""

    def __init__(self, tools: ToolRegistry) -> None:
        self._tools = tools
        self.results: list[ToolResultEvent] = []

    def __call__(self, name: str, arguments: dict[str, Any], action: ActionItem) -> str:
        output, is_error = self._tools.execute(name, arguments)
        self.results.append(
            ToolResultEvent(
                tool_call_id=action.tool_call_id, name=name, output=output, is_error=is_error
            )
        )
        return output


class Exchange:
    """The events of one message's exchange; iterate ``sse()`` (text) or ``events()``."""

    def __init__(self, backend: Backend, ask: Ask) -> None:
        self.backend = backend
        self.client = backend.client
        self.ask = ask
        self.thread_id: str | None = ask.thread.id if ask.thread else None
        self.run_id: str | None = None
        self.status: RunStatus | None = None
        self.usage = Usage()
        self._calls: list[ActionItem] = []
        #: Whether a ``file_search`` call ran: the answer may cite the files.
        self._searched = False
        #: Why the server refused the code interpreter, when it did in this exchange.
        self._code_refused: str | None = None

    def sse(self) -> Iterator[bytes]:
        """The exchange as server-sent events; finished unwatched if the browser leaves."""
        events = self.events()
        try:
            for event in events:
                yield encode_event(event)
        except GeneratorExit:
            log.info("the browser left exchange of run %s; finishing it", self.run_id)
            for _ in events:
                pass
            raise

    def events(self) -> Iterator[WebEvent]:
        try:
            yield from self._exchange()
            yield from self._citations()
        except ParleyError as exc:
            yield from self._failed(problem_of(exc, self.backend.base_url))
        except Exception:  # the stream's boundary: every failure becomes an event (logged)
            log.exception("parley web: the exchange of run %s failed", self.run_id)
            yield from self._failed(
                Problem(500, "internal_error", "The web app failed while answering.")
            )
        final = self.status or RunStatus.FAILED
        yield UsageEvent(run_id=self.run_id, **self.usage.model_dump())
        yield StatusNote(state="done", text=_DONE_TEXT.get(final, f"The run ended: {final}."))
        yield ExchangeDone(status=final, run_id=self.run_id, thread_id=self.thread_id)

    # ------------------------------------------------------------------ the flow

    def _exchange(self) -> Iterator[WebEvent]:
        yield self._open_thread()
        assert self.thread_id is not None
        yield StatusNote(state="message", text="Saving your message…")
        message = self.client.messages.create_message(
            thread_id=self.thread_id, content=self.ask.content, role="user"
        )
        yield StatusNote(state="run", text=f"Starting the run with {self.ask.model}…")
        run = self._create_run()
        if self._code_refused is not None:
            yield NoticeGiven(code="code_interpreter_off", text=code_off_text(self._code_refused))
        assistant_id = run.assistant_id or self.backend.assistant_id()  # made by create_run
        self.run_id, self.status = run.id, run.status
        yield RunStarted(run_id=run.id)
        yield from self._rounds(assistant_id, message.id)

    def _rounds(self, assistant_id: str, message_id: str | None) -> Iterator[WebEvent]:
        """The run's turns, and the app's tools between them, until it ends or waits for
        the user's approval."""
        assert self.run_id is not None
        rounds = 0
        while True:
            yield StatusNote(state="streaming", text="Streaming the answer…")
            yield from self._turn(assistant_id, message_id)
            if self.status != RunStatus.ACTION_REQUIRED:
                return
            if any(call.approval is not None for call in self._calls):
                yield from self._ask_approval()
                return
            if rounds == MAX_TOOL_ROUNDS:
                yield self._give_up()
                return
            rounds += 1
            names = ", ".join(dict.fromkeys(call.name for call in self._calls)) or "tools"
            yield StatusNote(state="tools", text=f"Running {names}…")
            for call in self._calls:
                yield ToolStartEvent(
                    tool_call_id=call.tool_call_id, name=call.name, arguments=call.arguments
                )
            handled, results = self._run_tools(assistant_id)
            yield from results
            if not handled:  # the run ended (or stopped waiting) on its own
                self.status = self.client.runs.retrieve(self.run_id).status
                return
            yield StatusNote(state="tools_done", text="Tool results sent back to the model.")

    def _open_thread(self) -> WebEvent:
        thread = self.ask.thread
        if thread is None:
            thread = self.backend.create_thread(self.ask.owner, title_of(self.ask.content))
            self.thread_id = thread.id
        title = thread.metadata.get("title")
        return ThreadOpened(thread_id=thread.id, title=title if isinstance(title, str) else "")

    def _create_run(self) -> Run:
        try:
            return self._create_run_once()
        except NotFound:  # our assistant was deleted meanwhile: make it again, once
            self.backend.forget_assistant()
            return self._create_run_once()

    def _create_run_once(self) -> Run:
        """The run; made again without the code interpreter when the server refuses it."""
        assert self.thread_id is not None
        tools = self.backend.run_tools(self.ask.thread)
        try:
            return self.client.runs.create_run(
                assistant_id=self.backend.assistant_id(),
                thread_id=self.thread_id,
                model=self.ask.model,
                tools=tools,
            )
        except InvalidRequest as exc:
            if not self.backend.code_interpreter_refused(exc, tools):
                raise
            self._code_refused = exc.message
        return self.client.runs.create_run(
            assistant_id=self.backend.assistant_id(),
            thread_id=self.thread_id,
            model=self.ask.model,
            tools=self.backend.run_tools(self.ask.thread),
        )

    def _turn(self, assistant_id: str, message_id: str | None) -> Iterator[WebEvent]:
        assert self.run_id is not None
        sync_stream = self.client.synchronous_inference_stream
        sync_stream.setup(
            thread_id=self.thread_id,
            assistant_id=assistant_id,
            message_id=message_id,
            run_id=self.run_id,
        )
        turn = TurnAccumulator()
        try:
            for event in sync_stream.stream_chunks():
                turn.add(event)
                if isinstance(event, HostedToolEvent):
                    self._searched |= event.item.get("type") == "file_search_call"
                if isinstance(event, _PASSED_ON):
                    yield event
            self.status = turn.status or self.status
            self._calls = turn.actions
        except Conflict:
            if not self._has_ended():  # stopped between two turns: not an error
                raise
        finally:
            sync_stream.close()
            self.usage += turn.usage

    def _run_tools(self, assistant_id: str) -> tuple[bool, list[ToolResultEvent]]:
        assert self.run_id is not None
        executor = _ToolRound(self.backend.tools)
        try:
            handled = self.client.runs.poll_and_execute_action(
                run_id=self.run_id,
                thread_id=self.thread_id,
                assistant_id=assistant_id,
                tool_executor=executor,
                timeout=TOOL_WAIT,
                interval=TOOL_POLL_INTERVAL,
            )
        except Conflict:
            if not self._has_ended():  # stopped while the tools ran: not an error
                raise
            handled = False
        self._calls = []
        return handled, executor.results

    def _ask_approval(self) -> Iterator[WebEvent]:
        """The turn asked for calls that wait for approval: run the app's own tools of the
        turn (each output sent by its action), then ask for the others."""
        assert self.run_id is not None
        calls, self._calls = self._calls, []
        own = [call for call in calls if call.approval is None]
        if own:
            names = ", ".join(dict.fromkeys(call.name for call in own))
            yield StatusNote(state="tools", text=f"Running {names}…")
        for call in own:
            yield ToolStartEvent(
                tool_call_id=call.tool_call_id, name=call.name, arguments=call.arguments
            )
            output, is_error = self.backend.tools.execute(call.name, call.arguments)
            self.client.submit_tool_output(action_id=call.action_id, output=output)
            yield ToolResultEvent(
                tool_call_id=call.tool_call_id, name=call.name, output=output, is_error=is_error
            )
        yield from approvals_asked(self.run_id, calls)
        yield StatusNote(state="approval", text="Waiting for your approval…")

    def _citations(self) -> Iterator[WebEvent]:
        """The answer's citations of the files a ``file_search`` call found, if any."""
        if not self._searched or self.run_id is None or self.thread_id is None:
            return
        page = self.client.messages.list(thread_id=self.thread_id, run_id=self.run_id)
        found = [c for m in page.data if m.role == "assistant" for c in citations_of(m)]
        if found:
            yield CitationsFound(run_id=self.run_id, citations=found)

    def _has_ended(self) -> bool:
        """Whether the run has ended (stopped, say); its status is kept."""
        assert self.run_id is not None
        self.status = self.client.runs.retrieve(self.run_id).status
        return self.status in TERMINAL_STATUSES

    # ---------------------------------------------------------------- endings

    def _give_up(self) -> WebEvent:
        assert self.run_id is not None
        self.status = self._cancel() or self.status
        return ErrorEvent(
            run_id=self.run_id,
            code="too_many_tool_rounds",
            message=f"The model still asked for tools after {MAX_TOOL_ROUNDS} rounds; "
            "the run was stopped.",
        )

    def _failed(self, problem: Problem) -> Iterator[WebEvent]:
        yield ErrorEvent(run_id=self.run_id, code=problem.type, message=problem.message)
        if self.run_id is None:
            self.status = RunStatus.FAILED
            return
        try:
            status = self.client.runs.retrieve(self.run_id).status
            if status in (RunStatus.QUEUED, RunStatus.ACTION_REQUIRED):
                # Nobody will stream it or run its tools now: free the thread.
                status = self._cancel() or status
        except ParleyError:
            status = RunStatus.FAILED
        self.status = status

    def _cancel(self) -> RunStatus | None:
        assert self.run_id is not None
        try:
            return self.client.runs.cancel(self.run_id).status
        except Conflict:  # it ended on its own meanwhile
            return None


def code_off_text(why: str) -> str:
    """What the page says once when the server refused the code interpreter."""
    return (
        "The code interpreter is off: the Parley server cannot run code "
        f"({why.rstrip('.')}). The page goes on without it."
    )


def approvals_asked(run_id: str, calls: list[ActionItem]) -> Iterator[ApprovalAsked]:
    """``approval`` events for the calls among ``calls`` that wait for approval."""
    for call in calls:
        if call.approval is not None:
            yield ApprovalAsked(
                run_id=run_id,
                action_id=call.action_id,
                tool_call_id=call.tool_call_id,
                server_label=str(call.approval.get("server_label", "")),
                name=str(call.approval.get("name") or call.name),
                arguments=call.arguments,
            )


@dataclass(frozen=True, slots=True)
class Answer:
    """The user's answer to a call that waits for approval (``run``: its run, checked to be
    the session's and to wait for ``action_id``)."""

    run: Run
    action_id: str
    approve: bool


class ApprovalExchange(Exchange):
    """The events of answering one approval: the answer sent, then the run goes on as in
    ``Exchange`` (the approved call runs on the server first, its ``hosted_tool`` events
    streamed); when other calls of the run still wait, they are asked for again."""

    def __init__(self, backend: Backend, answer: Answer, owner: str) -> None:
        super().__init__(backend, Ask(content="", model="", owner=owner))
        self.answer = answer
        self.thread_id = answer.run.thread_id
        self.run_id = answer.run.id
        self.status = answer.run.status

    def _exchange(self) -> Iterator[WebEvent]:
        answer = self.answer
        verb = "Approving" if answer.approve else "Denying"
        yield StatusNote(state="tools", text=f"{verb} the call…")
        yield RunStarted(run_id=answer.run.id)
        run = self.client.submit_tool_output(
            action_id=answer.action_id, output="approved" if answer.approve else "denied"
        )
        self.status = run.status
        if run.status == RunStatus.ACTION_REQUIRED:  # other calls still wait
            waiting = run.required_action.actions if run.required_action else []
            yield from approvals_asked(run.id, waiting)
            yield StatusNote(state="approval", text="Waiting for your approval…")
            return
        yield StatusNote(state="tools_done", text="Your answer was sent to the run.")
        assistant_id = run.assistant_id or self.backend.assistant_id()
        yield from self._rounds(assistant_id, None)
