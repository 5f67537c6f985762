"""The objects of the Assistants resources, in OpenAI's Assistants v2 shapes: assistants,
threads, messages (content as parts) and runs; a run's steps are in ``run_steps``. The
native API answers with the same objects; what OpenAI's API has no field for is added
beside its fields (an assistant's ``parameters``, a message's ``reasoning`` and
``tool_calls``, the actions of a run's ``required_action``).
"""

from __future__ import annotations

import json
from typing import Any, Literal, TypedDict, cast

from pydantic import BaseModel

from parley.events import ActionItem
from parley.server.faces.kit.bodies import MAX_INTEGER, timestamp
from parley.server.faces.kit.hosted import shown_tools
from parley.store.records import Action, Assistant, Message, Run, Thread
from parley.types import Role, RunStatus, ToolCall, Usage


class RunRecord(TypedDict, total=False):
    """What an Assistants run keeps of its request (``RunConfig.request``): the face, and
    the run's token limits, answered back on the run. The engine adds ``input_seqs``."""

    face: str
    max_prompt_tokens: int | None
    max_completion_tokens: int | None
    input_seqs: list[int]


def run_record(run: Run) -> RunRecord:
    """The record an Assistants run keeps of its request (empty for another face's)."""
    return cast(RunRecord, run.request or {})


#: A run's status as OpenAI names it (``requires_action`` is Parley's ``action_required``).
RUN_STATUS = {status: status.value for status in RunStatus} | {
    RunStatus.ACTION_REQUIRED: "requires_action"
}


def _count(value: Any) -> int | None:
    """A count stored with a run or an assistant, when it is one: what is not (a number
    stored by an older version that no request may bring now) reads as none."""
    ok = isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_INTEGER
    return value if ok else None


def _number(value: Any) -> float | None:
    """A stored sampling parameter (``temperature``, ``top_p``), when it is a number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if abs(value) <= MAX_INTEGER else None


# ----------------------------------------------------------------------- model options


def chat_response_format(options: dict[str, Any] | None) -> str | dict[str, Any]:
    """The ``response_format`` of stored options, as Chat Completions and the Assistants
    API spell it (``"auto"`` when none was given)."""
    fmt = (options or {}).get("response_format")
    if not fmt:
        return "auto"
    if fmt.get("type") != "json_schema":
        return {"type": fmt["type"]}
    spec = {k: fmt[k] for k in ("name", "description", "schema", "strict") if k in fmt}
    return {"type": "json_schema", "json_schema": spec}


def chat_tool_choice(options: dict[str, Any] | None) -> str | dict[str, Any]:
    """The ``tool_choice`` of stored options, as the Assistants API spells it."""
    choice = (options or {}).get("tool_choice")
    if choice is None:
        return "auto"
    if isinstance(choice, dict) and choice.get("type") == "function":
        return {"type": "function", "function": {"name": choice["name"]}}
    chosen: str | dict[str, Any] = choice
    return chosen


# -------------------------------------------------------------------------- assistants


class AssistantPublic(BaseModel):
    id: str
    object: Literal["assistant"] = "assistant"
    created_at: int
    name: str | None
    description: str | None
    model: str
    instructions: str | None
    tools: list[dict[str, Any]]
    tool_resources: dict[str, Any]
    metadata: dict[str, Any]
    temperature: float | None
    top_p: float | None
    response_format: str | dict[str, Any]
    reasoning_effort: str | None
    #: Parley: every other parameter its runs send the model (``max_tokens``, ...).
    parameters: dict[str, Any]

    @classmethod
    def of(cls, a: Assistant) -> AssistantPublic:
        return cls(
            id=a.id,
            created_at=int(a.created_at),
            name=a.name or None,
            description=a.description,
            model=a.model,
            instructions=a.instructions,
            tools=a.tools,
            tool_resources={},
            metadata=a.metadata,
            temperature=_number(a.parameters.get("temperature")),
            top_p=_number(a.parameters.get("top_p")),
            response_format=chat_response_format(a.options),
            reasoning_effort=(a.options or {}).get("reasoning_effort"),
            parameters=a.parameters,
        )


# ----------------------------------------------------------------------------- threads


class ThreadPublic(BaseModel):
    id: str
    object: Literal["thread"] = "thread"
    created_at: int
    metadata: dict[str, Any]
    tool_resources: dict[str, Any]

    @classmethod
    def of(cls, t: Thread) -> ThreadPublic:
        return cls(id=t.id, created_at=int(t.created_at), metadata=t.metadata, tool_resources={})


# ---------------------------------------------------------------------------- messages


def text_part(text: str) -> dict[str, Any]:
    return {"type": "text", "text": {"value": text, "annotations": []}}


def content_parts(m: Message) -> list[dict[str, Any]]:
    """A message's content as parts: its text, then its images (an assistant message
    that holds only tool calls, or whose text has not begun, has none)."""
    has_text = m.content or (m.role == Role.USER and not m.images)
    parts = [text_part(m.content)] if has_text else []
    for image in m.images or ():
        if "file_id" in image and "url" in image:
            file = {"file_id": image["file_id"], "detail": "auto"}
            parts.append({"type": "image_file", "image_file": file})
        elif "url" in image:  # a file given through another face is not a content part here
            url = image["url"]
            parts.append({"type": "image_url", "image_url": {"url": url, "detail": "auto"}})
    return parts


#: Why the newest message of a run that ended early is incomplete, by the run's status:
#: OpenAI's reasons, and for a run ``incomplete`` the run's own (``interrupted``: its
#: server stopped mid-answer; a token limit is ``max_tokens``).
_CUT_SHORT = {
    RunStatus.CANCELLED: "run_cancelled",
    RunStatus.FAILED: "run_failed",
    RunStatus.INCOMPLETE: "interrupted",
}


def message_state(m: Message, run: tuple[Run, int] | None) -> tuple[str, str | None]:
    """A message's status (``in_progress``, ``incomplete`` or ``completed``) and why it is
    incomplete: the newest message of a run still in progress, or of a run that stopped
    before its answer ended, is not complete."""
    if run is None or m.role != Role.ASSISTANT or m.seq != run[1]:
        return "completed", None
    status = RunStatus(run[0].status)
    if status == RunStatus.IN_PROGRESS:
        return "in_progress", None
    if status in _CUT_SHORT:
        reason = "max_tokens" if run[0].error_code == "max_output_tokens" else _CUT_SHORT[status]
        return "incomplete", reason
    return "completed", None


class MessagePublic(BaseModel):
    id: str
    object: Literal["thread.message"] = "thread.message"
    created_at: int
    thread_id: str
    status: str
    incomplete_details: dict[str, Any] | None
    completed_at: int | None
    incomplete_at: int | None
    role: str
    content: list[dict[str, Any]]
    assistant_id: str | None
    run_id: str | None
    attachments: list[dict[str, Any]]
    metadata: dict[str, Any]
    #: Parley: the message's place in its thread, the model's reasoning, the tool calls
    #: an assistant message holds, the call a tool message answers, and the item of a tool
    #: the server ran that it holds (hosted MCP: a server's tool list, a call's result).
    seq: int
    reasoning: str | None
    tool_calls: list[ToolCall]
    tool_call_id: str | None
    item: dict[str, Any] | None = None

    @classmethod
    def of(cls, m: Message, run: tuple[Run, int] | None = None) -> MessagePublic:
        """The message; ``run`` is the run that wrote it, with the sequence number of the
        newest message that run wrote (``store.threads.runs_of_messages``)."""
        status, reason = message_state(m, run)
        ended = None
        if status != "in_progress" and run is not None and m.seq == run[1]:
            ended = timestamp(run[0].paused_at or run[0].completed_at)
        done_at = int(m.created_at) if ended is None else ended
        return cls(
            id=m.id,
            created_at=int(m.created_at),
            thread_id=m.thread_id,
            status=status,
            incomplete_details=None if reason is None else {"reason": reason},
            completed_at=done_at if status == "completed" else None,
            incomplete_at=done_at if status == "incomplete" else None,
            role=m.role,
            content=content_parts(m),
            assistant_id=run[0].assistant_id if run is not None else None,
            run_id=m.run_id,
            attachments=[],
            metadata=m.metadata or {},
            seq=m.seq,
            reasoning=m.reasoning,
            tool_calls=[ToolCall.model_validate(c) for c in m.tool_calls or ()],
            tool_call_id=m.tool_call_id,
            item=m.item,
        )


# -------------------------------------------------------------------------------- runs


class FunctionCall(BaseModel):
    name: str
    #: The arguments as JSON text, as OpenAI sends them.
    arguments: str


class RequiredToolCall(BaseModel):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class SubmitToolOutputs(BaseModel):
    tool_calls: list[RequiredToolCall]


class RequiredAction(BaseModel):
    type: Literal["submit_tool_outputs"] = "submit_tool_outputs"
    submit_tool_outputs: SubmitToolOutputs
    #: Parley: the same calls as actions, each with the id that flow B's
    #: ``submit_tool_output`` takes.
    actions: list[ActionItem]

    @classmethod
    def of(cls, pending: list[Action], marks: dict[str, dict[str, Any]]) -> RequiredAction:
        """The calls a run waits on: OpenAI's list holds the client's own; Parley's
        ``actions`` also the calls the server runs once approved (with their tool, from
        ``marks``: the hosted marks of the run's calls)."""
        return cls(
            submit_tool_outputs=SubmitToolOutputs(
                tool_calls=[
                    RequiredToolCall(
                        id=a.tool_call_id,
                        function=FunctionCall(name=a.name, arguments=arguments_json(a.arguments)),
                    )
                    for a in pending
                    if a.kind != "approval"
                ]
            ),
            actions=action_items(pending, marks),
        )


def action_items(pending: list[Action], marks: dict[str, dict[str, Any]]) -> list[ActionItem]:
    """Pending actions as the manifest names them (an approval with its tool)."""
    return [
        ActionItem(
            action_id=a.id,
            tool_call_id=a.tool_call_id,
            name=a.name,
            arguments=a.arguments,
            approval=_approval(marks.get(a.tool_call_id)) if a.kind == "approval" else None,
        )
        for a in pending
    ]


def _approval(mark: dict[str, Any] | None) -> dict[str, Any]:
    mark = mark or {}
    return {
        "type": mark.get("type", "mcp"),
        "server_label": mark.get("server_label"),
        "name": mark.get("name"),
    }


def arguments_json(value: Any) -> str:
    """A tool call's arguments as OpenAI's shapes hold them: compact JSON, not escaped."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class RunError(BaseModel):
    code: str
    message: str


class RunUsage(BaseModel):
    """OpenAI's token counts, and Parley's: ``reasoning_tokens`` are part of
    ``output_tokens``, ``cached_tokens`` part of ``input_tokens``."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    input_tokens: int
    output_tokens: int
    reasoning_tokens: int
    cached_tokens: int

    @classmethod
    def of(cls, r: Run | Usage) -> RunUsage:
        """The tokens of a run's model calls, or of one call (a step's)."""
        return cls(
            prompt_tokens=r.input_tokens,
            completion_tokens=r.output_tokens,
            total_tokens=r.input_tokens + r.output_tokens,
            input_tokens=r.input_tokens,
            output_tokens=r.output_tokens,
            reasoning_tokens=r.reasoning_tokens,
            cached_tokens=r.cached_tokens,
        )


def truncation_strategy(options: dict[str, Any] | None) -> dict[str, Any]:
    truncation = (options or {}).get("truncation") or {}
    count = _count(truncation.get("last_messages"))
    if truncation.get("type") == "last_messages" and count is not None:
        return {"type": "last_messages", "last_messages": count}
    return {"type": "auto", "last_messages": None}


class RunPublic(BaseModel):
    id: str
    object: Literal["thread.run"] = "thread.run"
    created_at: int
    thread_id: str
    assistant_id: str | None
    status: str
    required_action: RequiredAction | None
    last_error: RunError | None
    expires_at: int | None
    started_at: int | None
    cancelled_at: int | None
    failed_at: int | None
    completed_at: int | None
    incomplete_details: dict[str, Any] | None
    model: str
    instructions: str
    tools: list[dict[str, Any]]
    metadata: dict[str, Any]
    usage: RunUsage
    temperature: float | None
    top_p: float | None
    max_prompt_tokens: int | None
    max_completion_tokens: int | None
    truncation_strategy: dict[str, Any]
    response_format: str | dict[str, Any]
    tool_choice: str | dict[str, Any]
    parallel_tool_calls: bool
    #: Parley's own: the thread's messages the run's last model call left out to fit the
    #: model's context window or ``truncation_strategy`` (null before its first call).
    dropped_messages: int | None = None

    @classmethod
    def of(
        cls,
        r: Run,
        pending: list[Action] | None = None,
        marks: dict[str, dict[str, Any]] | None = None,
    ) -> RunPublic:
        """The run; ``pending``: its actions waiting for outputs (for ``required_action``)."""
        status = RunStatus(r.status)
        required = None
        if status == RunStatus.ACTION_REQUIRED and pending:
            required = RequiredAction.of(pending, marks or {})
        error = None
        if r.error_code and status == RunStatus.FAILED:
            error = RunError(code=r.error_code, message=r.error_message or "")
        incomplete = None
        if status == RunStatus.INCOMPLETE:
            reason = "max_completion_tokens" if r.error_code == "max_output_tokens" else None
            incomplete = {"reason": reason or "interrupted"}
        ended = timestamp(r.completed_at)
        limits = run_record(r)
        options = r.options or {}
        return cls(
            id=r.id,
            created_at=int(r.created_at),
            thread_id=r.thread_id,
            assistant_id=r.assistant_id,
            status=RUN_STATUS[status],
            required_action=required,
            last_error=error,
            expires_at=timestamp(r.expires_at),
            started_at=timestamp(r.started_at),
            cancelled_at=ended if status == RunStatus.CANCELLED else None,
            failed_at=ended if status == RunStatus.FAILED else None,
            completed_at=ended,  # whenever the run ended (Parley's, as before)
            incomplete_details=incomplete,
            model=r.model,
            instructions=r.instructions or "",
            tools=shown_tools(r.tools),
            metadata=r.metadata or {},
            usage=RunUsage.of(r),
            temperature=_number(r.parameters.get("temperature")),
            top_p=_number(r.parameters.get("top_p")),
            max_prompt_tokens=_count(limits.get("max_prompt_tokens")),
            max_completion_tokens=_count(limits.get("max_completion_tokens")),
            truncation_strategy=truncation_strategy(options),
            response_format=chat_response_format(options),
            tool_choice=chat_tool_choice(options),
            parallel_tool_calls=options.get("parallel_tool_calls", True) is not False,
            dropped_messages=r.dropped_messages,
        )
