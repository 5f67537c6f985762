"""The run steps of the Assistants API, in OpenAI's shapes.

Run steps are not stored: they are read from the assistant messages a run wrote (one
``message_creation`` step for a message's text, one ``tool_calls`` step for its calls)
and from the run's actions (the calls' outputs). Each of those messages is the answer of
one model call, and keeps that call's tokens (``messages.usage``): they are the ``usage``
of the call's first step, its ``message_creation`` step when it wrote text, else its
``tool_calls`` step; a ``tool_calls`` step after text of the same call counts 0 tokens.
So the steps' usage adds up to the run's, each call counted once. A step in progress has
no usage (null), nor has one of a message stored before messages kept their tokens.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel

from parley.server.faces.kit.bodies import timestamp
from parley.server.faces.kit.resources import RunError, RunUsage, arguments_json
from parley.store.records import Action, Message, Run
from parley.types import ActionStatus, RunStatus, ToolCall, Usage

__all__ = [
    "RunStepPublic",
    "calls_step_id",
    "message_step_id",
    "run_step",
    "run_steps",
    "step_message_id",
    "tool_call_detail",
]

#: A step's status once its run ended without finishing it: the run's own (a run cut
#: short, ``incomplete``, is not ``failed``, and neither are its steps).
_STEP_ENDED = {
    RunStatus.CANCELLED: "cancelled",
    RunStatus.FAILED: "failed",
    RunStatus.INCOMPLETE: "incomplete",
    RunStatus.EXPIRED: "expired",
}


def message_step_id(message_id: str) -> str:
    """The ``message_creation`` step of a message."""
    return "step_m" + message_id.removeprefix("msg_")


def calls_step_id(message_id: str) -> str:
    """The ``tool_calls`` step of a message's calls."""
    return "step_t" + message_id.removeprefix("msg_")


def step_message_id(step_id: str) -> str | None:
    """The message a step id was made from; None for an id no step has."""
    if not step_id.startswith(("step_m", "step_t")) or len(step_id) > 64:
        return None
    return "msg_" + step_id[len("step_m") :]


def tool_call_detail(call: ToolCall, output: str | None) -> dict[str, Any]:
    return {
        "id": call.id,
        "type": "function",
        "function": {
            "name": call.name,
            "arguments": arguments_json(call.arguments),
            "output": output,
        },
    }


class RunStepPublic(BaseModel):
    id: str
    object: Literal["thread.run.step"] = "thread.run.step"
    created_at: int
    run_id: str
    assistant_id: str | None
    thread_id: str
    type: Literal["message_creation", "tool_calls"]
    status: str
    cancelled_at: int | None
    completed_at: int | None
    expired_at: int | None
    failed_at: int | None
    last_error: RunError | None
    step_details: dict[str, Any]
    #: The tokens of the model call the step is of (see the module's docstring).
    usage: RunUsage | None = None
    metadata: dict[str, Any]


def run_steps(
    run: Run,
    answers: list[Message],
    actions: list[Action],
    results: Mapping[str, str] | None = None,
) -> list[RunStepPublic]:
    """The steps of a run, oldest first: for each assistant message the run wrote, a
    ``message_creation`` step when it holds text (or is being written), then a
    ``tool_calls`` step when it holds calls. A call is answered by its action's output, or,
    for a call the run answered itself with a tool error (one it could not run, so not an
    action), by its tool result among ``results`` (the run's, by call id)."""
    status = RunStatus(run.status)
    outputs = {a.tool_call_id: a for a in actions}
    steps: list[RunStepPublic] = []
    for i, m in enumerate(answers):
        tokens = None if m.usage is None else Usage.model_validate(m.usage)
        newest = i == len(answers) - 1
        ended_at = timestamp(answers[i + 1].created_at) if not newest else None
        if newest and status not in (RunStatus.IN_PROGRESS, RunStatus.ACTION_REQUIRED):
            ended_at = timestamp(run.completed_at)
        calls = [ToolCall.model_validate(c) for c in m.tool_calls or ()]
        writing = newest and status == RunStatus.IN_PROGRESS
        if m.content or (writing and not calls):
            state = "in_progress" if writing else "completed"
            if newest and status in _STEP_ENDED and status != RunStatus.EXPIRED and not calls:
                state = _STEP_ENDED[status]
            steps.append(
                run_step(run, m, "message_creation", state=state, ended_at=ended_at, tokens=tokens)
            )
            tokens = None if tokens is None else Usage()  # the call is counted: by this step
        if calls:
            done = [_answer(c, outputs, results or {}) for c in calls]
            answered = all(given for given, _ in done)
            state = "completed" if answered else "in_progress"
            if not answered and status in _STEP_ENDED:
                state = _STEP_ENDED[status]
            details = [
                tool_call_detail(c, output) for c, (_, output) in zip(calls, done, strict=True)
            ]
            step = run_step(
                run, m, "tool_calls", state=state, ended_at=ended_at, calls=details, tokens=tokens
            )
            steps.append(step)
    return steps


def _answer(
    call: ToolCall, actions: Mapping[str, Action], results: Mapping[str, str]
) -> tuple[bool, str | None]:
    """Whether a call has its output, and the output."""
    action = actions.get(call.id)
    if action is not None:
        return action.status == ActionStatus.COMPLETED, action.output
    return call.id in results, results.get(call.id)


def run_step(
    run: Run,
    m: Message,
    kind: Literal["message_creation", "tool_calls"],
    *,
    state: str = "in_progress",
    ended_at: int | None = None,
    calls: list[dict[str, Any]] | None = None,
    tokens: Usage | None = None,
) -> RunStepPublic:
    """One step of the run, of the message ``m``: the writing of its text, or its tool
    ``calls`` (their ``tool_call_detail``), in ``state`` (ended at ``ended_at``), with the
    tokens of its model call. The list endpoints' steps and the streamed ones are all made
    here."""
    details: dict[str, Any] = {"type": kind}
    if kind == "message_creation":
        step_id = message_step_id(m.id)
        details["message_creation"] = {"message_id": m.id}
    else:
        step_id = calls_step_id(m.id)
        details["tool_calls"] = calls or []
    error = None
    if state == "failed" and run.error_code:
        error = RunError(code=run.error_code, message=run.error_message or "")
    return RunStepPublic(
        id=step_id,
        created_at=int(m.created_at),
        run_id=run.id,
        assistant_id=run.assistant_id,
        thread_id=run.thread_id,
        type=kind,
        status=state,
        cancelled_at=ended_at if state == "cancelled" else None,
        completed_at=ended_at if state == "completed" else None,
        expired_at=ended_at if state == "expired" else None,
        failed_at=ended_at if state == "failed" else None,
        last_error=error,
        step_details=details,
        usage=None if tokens is None or state == "in_progress" else RunUsage.of(tokens),
        metadata={},
    )
