"""The SDK's multi-request helpers, written once for both clients.

A helper is a *plan*: a generator that yields steps (``Fetch`` a call, ``Sleep``, stream a
turn, run tools) and receives each step's result. ``Client`` carries the steps out with
blocking I/O, ``AsyncClient`` with ``await``; the decisions live here only. A step that
raises a ``ParleyError`` is thrown back into the plan.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import time
from collections.abc import Awaitable, Callable, Generator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from parley.errors import Conflict, InternalError, ParleyError
from parley.events import (
    ActionItem,
    ContentDelta,
    DoneEvent,
    ErrorEvent,
    Event,
    HostedToolEvent,
    ReasoningDelta,
    RunStatusEvent,
    ToolCallsEvent,
    UsageEvent,
)
from parley.sdk import _calls
from parley.sdk._calls import Call
from parley.sdk.models import (
    Action,
    RespondResult,
    Run,
    RunError,
    ToolResult,
    TurnResult,
)
from parley.types import TERMINAL_STATUSES, RunStatus, Usage

R = TypeVar("R")
TR = TypeVar("TR", bound=TurnResult)


class ToolLoopLimitExceeded(ParleyError):
    """``respond()`` reached ``max_turns`` while the model still asked for tools.

    The run is cancelled first, so its thread is free again. ``result`` holds what the loop
    had gathered.
    """

    status_code = 0
    error_type = "max_turns_exceeded"

    def __init__(self, message: str, *, run_id: str, result: RespondResult) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.result = result


class RunFailed(ParleyError):
    """A run the SDK waited on ended ``failed``: ``respond()``, or a turn stream's
    ``final_result()``, unless called with ``raise_on_failure=False``.

    ``code`` and ``message`` are the run's error (``upstream_auth``, and the provider's
    words, safe to show), ``run_id`` its id and ``result`` what the call gathered (a
    ``RespondResult`` from ``respond()``, a ``TurnResult`` from a stream), text included.
    Only ``failed`` raises: ``incomplete`` (cut short, as by a token limit) and
    ``cancelled`` runs carry their text and are answered as results.
    """

    #: Shown in tracebacks as ``parley.RunFailed``, the name to catch it by.
    __module__ = "parley"

    status_code = 0
    error_type = "run_failed"

    def __init__(self, result: TurnResult) -> None:
        error = result.error
        super().__init__(
            error.message if error is not None else "The run failed without saying why.",
            code=error.code if error is not None else None,
        )
        self.run_id = result.run_id
        self.result = result

    def __str__(self) -> str:
        return f"run {self.run_id} failed: {self.code}: {self.message}"


def raise_if_failed(result: TR) -> TR:
    """``result`` itself, unless its run ended ``failed``: then ``RunFailed``."""
    if result.status == RunStatus.FAILED:
        raise RunFailed(result)
    return result


@dataclass(frozen=True, slots=True)
class Fetch:
    call: Call[Any]


@dataclass(frozen=True, slots=True)
class Sleep:
    seconds: float


@dataclass(frozen=True, slots=True)
class StreamTurn:
    """Stream one turn, hand each event to ``on_event``; the result is a ``TurnResult``."""

    call: Call[Any]


@dataclass(frozen=True, slots=True)
class RunTools:
    """Run these tool calls; the result is one ``Answer`` per action, in order."""

    actions: list[ActionItem]


Step = Fetch | Sleep | StreamTurn | RunTools
Plan = Generator[Step, Any, R]


def drive(plan: Plan[R], perform: Callable[[Step], Any]) -> R:
    """Carry a plan out with a blocking ``perform``."""
    value: Any = None
    error: ParleyError | None = None
    while True:
        try:
            step = plan.throw(error) if error is not None else plan.send(value)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        try:
            value, error = perform(step), None
        except ParleyError as exc:
            value, error = None, exc


async def adrive(plan: Plan[R], perform: Callable[[Step], Awaitable[Any]]) -> R:
    """Carry a plan out with an asynchronous ``perform``."""
    value: Any = None
    error: ParleyError | None = None
    while True:
        try:
            step = plan.throw(error) if error is not None else plan.send(value)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        try:
            value, error = await perform(step), None
        except ParleyError as exc:
            value, error = None, exc


# --------------------------------------------------------------------------- tool outputs


def tool_output(result: Any) -> str:
    """What a tool returned, as the output string sent to the model."""
    return result if isinstance(result, str) else json.dumps(result, default=str)


def tool_error(exc: BaseException) -> str:
    """A tool's failure as an output the model can read."""
    return f"Error: {type(exc).__name__}: {exc}"


def missing_tool(name: str) -> str:
    return f"Error: no tool named {name!r} is available"


def answer_of(result: Any, action: ActionItem) -> Answer:
    """What the target of ``action`` returned, as its answer: for a call that waits for
    approval, its ``Decision`` as it is; anything else as an output string
    (``tool_output``)."""
    if action.approval is not None and isinstance(result, Decision):
        return result
    return tool_output(result)


def run_tool(target: Callable[[], Any] | None, action: ActionItem) -> Answer:
    """Call one tool and turn whatever happens into its answer."""
    if target is None:
        return missing_tool(action.name)
    try:
        result = target()
        if inspect.isawaitable(result):
            _discard(result)
            raise TypeError(f"tool {action.name!r} is async: use it with AsyncClient")
        return answer_of(result, action)
    except Exception as exc:  # noqa: BLE001 - the model is told about any tool failure
        return tool_error(exc)


def _discard(awaitable: Awaitable[Any]) -> None:
    """Close a coroutine that will never be awaited (no "never awaited" warning)."""
    close = getattr(awaitable, "close", None)
    if callable(close):
        close()


Targets = Callable[[ActionItem], Callable[[], Any] | None]
#: What ``poll_and_execute_action`` runs: ``fn(name, arguments)``, or
#: ``fn(name, arguments, action)`` to get the ``ActionItem`` too.
ToolExecutor = (
    Callable[[str, dict[str, Any]], Any] | Callable[[str, dict[str, Any], ActionItem], Any]
)


#: ``approve(action)`` for a call the server runs once approved (``ActionItem.approval``):
#: true to run it, or a ``Decision`` to give a reason too; may be a coroutine function with
#: ``AsyncClient``.
Approver = Callable[[ActionItem], Any]


@dataclass(frozen=True, slots=True)
class Decision:
    """What an ``approve`` callback may return in place of a bool: whether to run the call,
    and why. The reason goes with the approval (``approve`` and ``reason`` on
    ``submit_tool_outputs``): the model is told it with a denial, and the thread keeps it
    with the approval either way."""

    approve: bool
    reason: str | None = None


#: What running one action answers: a tool's output, or the decision on a call that waits
#: for approval.
Answer = str | Decision


def tool_target(
    tools: Mapping[str, Callable[..., Any]],
    action: ActionItem,
    approve: Approver | None = None,
) -> Callable[[], Any] | None:
    """How ``respond()`` calls the tool of an action: ``tools[name](**arguments)``; for a
    call the server runs once approved, ``approve(action)``, whose answer is the action's
    answer (a ``Decision``; with no ``approve``, denied)."""
    if action.approval is not None:
        return lambda: _approval(approve, action)
    fn = tools.get(action.name)
    if fn is None:
        return None
    return lambda: fn(**action.arguments)


def _approval(approve: Approver | None, action: ActionItem) -> Any:
    if approve is None:
        return Decision(approve=False)
    answer = approve(action)
    if inspect.isawaitable(answer):
        return _awaited_approval(answer)
    return decision_of(answer)


async def _awaited_approval(answer: Awaitable[Any]) -> Decision:
    return decision_of(await answer)


def decision_of(answer: Any) -> Decision:
    """What an ``approve`` callback returned, as a ``Decision``: itself, or a bool's."""
    return answer if isinstance(answer, Decision) else Decision(approve=bool(answer))


def executor_target(executor: Callable[..., Any], action: ActionItem) -> Callable[[], Any]:
    """How ``poll_and_execute_action`` calls its executor: ``fn(name, arguments)``, or
    ``fn(name, arguments, action)`` when it takes a third positional argument: the
    ``ActionItem`` (``action_id``, ``tool_call_id``), which tells two calls of one tool
    with the same arguments apart."""
    if _takes_action(executor):
        return lambda: executor(action.name, action.arguments, action)
    return lambda: executor(action.name, action.arguments)


def _takes_action(fn: Callable[..., Any]) -> bool:
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # no signature to read (some builtins)
        return False
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(p.kind in positional for p in parameters) >= 3


# --------------------------------------------------------------------------- accumulation


class TurnAccumulator:
    """Folds the events of one turn, in order, into a ``TurnResult``.

    What ``respond()`` uses for each turn; public for callers that consume a stream
    themselves and want the same result (``add`` each event, then ``result()``). The
    fields hold the turn so far, so a stream cut short still leaves its text here.
    """

    def __init__(self) -> None:
        self.run_id: str | None = None
        self.message_id: str | None = None
        self.status: RunStatus | None = None
        self.text: list[str] = []
        self.reasoning: list[str] = []
        self.actions: list[ActionItem] = []
        self.usage = Usage()
        self.error: RunError | None = None
        self.items: list[dict[str, Any]] = []

    def add(self, event: Event) -> None:
        self.run_id = self.run_id or event.run_id
        if isinstance(event, ContentDelta | ReasoningDelta):
            self.message_id = self.message_id or event.message_id
            (self.text if isinstance(event, ContentDelta) else self.reasoning).append(event.text)
        elif isinstance(event, ToolCallsEvent):
            self.actions.extend(event.actions)
        elif isinstance(event, UsageEvent):
            self.usage += Usage.model_validate(event, from_attributes=True)
        elif isinstance(event, ErrorEvent):
            self.error = RunError(code=event.code, message=event.message)
        elif isinstance(event, RunStatusEvent | DoneEvent):
            self.status = event.status
        elif isinstance(event, HostedToolEvent) and event.phase == "done":
            self.items.append(event.item)

    def result(self) -> TurnResult:
        if self.run_id is None or self.status is None:
            raise InternalError(
                "The turn stream ended without telling the run's status.", code="invalid_event"
            )
        return TurnResult(
            run_id=self.run_id,
            message_id=self.message_id,
            status=self.status,
            text="".join(self.text),
            reasoning="".join(self.reasoning) or None,
            actions=self.actions,
            usage=self.usage,
            error=self.error,
            items=self.items,
        )


# ----------------------------------------------------------------------------------- plans


def poll_and_execute_plan(run_id: str, *, timeout: float, interval: float) -> Plan[bool]:
    """Wait for ``action_required``, run the pending actions, submit all outputs at once.

    Answers True once outputs were submitted; False when the run finished, or ``timeout``
    seconds passed, without asking for tools (or with no action left pending).
    """
    deadline = time.monotonic() + timeout
    while True:
        run: Run = yield Fetch(_calls.runs_retrieve(run_id))
        if run.status == RunStatus.ACTION_REQUIRED:
            break
        remaining = deadline - time.monotonic()
        if run.status in TERMINAL_STATUSES or remaining <= 0:
            return False
        yield Sleep(min(interval, remaining))
    actions: list[Action] = yield Fetch(_calls.actions_list(run_id=run_id, status="pending"))
    if not actions:
        return False
    items = [action.to_item() for action in actions]
    answers: list[Answer] = yield RunTools(items)
    yield Fetch(_calls.runs_submit_tool_outputs(run_id, _submission(items, answers)))
    return True


class _Totals:
    """What ``respond()`` gathers across turns."""

    def __init__(self) -> None:
        self.turns: list[TurnResult] = []
        self.tool_results: list[ToolResult] = []

    def result(self, thread_id: str | None) -> RespondResult:
        last = self.turns[-1]
        reasoning = _join(turn.reasoning or "" for turn in self.turns)
        return RespondResult(
            **last.model_dump(exclude={"text", "reasoning", "usage", "thread_id", "items"}),
            thread_id=last.thread_id or thread_id,
            text=_join(turn.text for turn in self.turns),
            reasoning=reasoning or None,
            usage=sum((turn.usage for turn in self.turns), Usage()),
            turns=len(self.turns),
            tool_results=self.tool_results,
            items=[item for turn in self.turns for item in turn.items],
        )


def _join(texts: Any) -> str:
    return "\n\n".join(text for text in texts if text)


def respond_plan(
    *,
    assistant_id: str,
    content: str,
    thread_id: str | None,
    max_turns: int,
    raise_on_failure: bool = True,
) -> Plan[RespondResult]:
    """Flow B end to end: stream turns with ``process``, run the tools each turn asks for,
    submit their outputs, and continue with ``process(run_id=...)`` until the run ends.
    A run that ends ``failed`` raises ``RunFailed`` (with the whole result) unless
    ``raise_on_failure`` is false: a script that prints the text must not print nothing."""
    if max_turns < 1:
        raise ValueError("max_turns must be at least 1")
    totals = _Totals()
    call = _calls.process(
        assistant_id=assistant_id, content=content, thread_id=thread_id, run_id=None, stream=True
    )
    while True:
        turn: TurnResult = yield StreamTurn(call)
        totals.turns.append(turn)
        if turn.status != RunStatus.ACTION_REQUIRED:
            break
        if len(totals.turns) >= max_turns:
            yield from _give_up(turn.run_id, max_turns, totals, thread_id)
        actions = turn.actions
        if not actions:
            pending: list[Action] = yield Fetch(
                _calls.actions_list(run_id=turn.run_id, status="pending")
            )
            actions = [action.to_item() for action in pending]
        answers: list[Answer] = yield RunTools(actions)
        totals.tool_results.extend(_tool_results(actions, answers))
        yield Fetch(_calls.runs_submit_tool_outputs(turn.run_id, _submission(actions, answers)))
        call = _calls.process(
            assistant_id=None, content=None, thread_id=None, run_id=turn.run_id, stream=True
        )
    if thread_id is None:
        run: Run = yield Fetch(_calls.runs_retrieve(totals.turns[-1].run_id))
        thread_id = run.thread_id
    result = totals.result(thread_id)
    return raise_if_failed(result) if raise_on_failure else result


def _give_up(run_id: str, max_turns: int, totals: _Totals, thread_id: str | None) -> Plan[None]:
    with contextlib.suppress(Conflict):  # it finished (or expired) on its own meanwhile
        yield Fetch(_calls.runs_cancel(run_id))
    raise ToolLoopLimitExceeded(
        f"The model still asked for tools after {max_turns} turns; run {run_id} was cancelled.",
        run_id=run_id,
        result=totals.result(thread_id),
    )


def _submission(actions: list[ActionItem], answers: list[Answer]) -> list[dict[str, Any]]:
    """The ``tool_outputs`` of ``submit_tool_outputs``: each call's output, or its approval
    (``approve``, and its ``reason`` when one was given)."""
    return [
        {"tool_call_id": action.tool_call_id, **_answered(answer)}
        for action, answer in zip(actions, answers, strict=True)
    ]


def _answered(answer: Answer) -> dict[str, Any]:
    if not isinstance(answer, Decision):
        return {"output": answer}
    if answer.reason is None:
        return {"approve": answer.approve}
    return {"approve": answer.approve, "reason": answer.reason}


def _tool_results(actions: list[ActionItem], answers: list[Answer]) -> list[ToolResult]:
    return [
        ToolResult(
            tool_call_id=action.tool_call_id,
            name=action.name,
            arguments=action.arguments,
            output=_output_of(answer),
        )
        for action, answer in zip(actions, answers, strict=True)
    ]


def _output_of(answer: Answer) -> str:
    """A ``ToolResult``'s output: a tool's, or ``approved`` or ``denied`` for an approval."""
    if isinstance(answer, Decision):
        return "approved" if answer.approve else "denied"
    return answer
