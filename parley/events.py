"""The event vocabulary, spoken by every layer from provider adapter to browser.

Three families:

* **Run events** (pydantic models, literal ``type``): what a run stream carries on the wire
  and what the SDK yields. ``Event`` is their annotated union, ``parse_event`` reads one.
* **Client tool events** (pydantic models too): what a client that runs the tools itself
  (the terminal, the web page) reports of them, ``tool.start`` and ``tool.result``, beside
  the run events it passes on. The server never sends them.
* **Model events** (slotted dataclasses): what a provider adapter yields for one model call,
  before the engine ties it to a run and message. They never leave the server process.

Every stream of these events is framed by ``encode_event`` (server-sent events).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, TypeAdapter

from parley.types import RunStatus

# --------------------------------------------------------------------------- run events


class RunStatusEvent(BaseModel):
    type: Literal["run.status"] = "run.status"
    run_id: str
    status: RunStatus


class ContentDelta(BaseModel):
    type: Literal["content.delta"] = "content.delta"
    run_id: str
    message_id: str
    text: str


class ReasoningDelta(BaseModel):
    """A piece of the model's reasoning; ``summary`` when the provider gives a summary of
    its reasoning rather than the reasoning itself."""

    type: Literal["reasoning.delta"] = "reasoning.delta"
    run_id: str
    message_id: str
    text: str
    summary: bool = False


class ActionItem(BaseModel):
    """One entry of the tool-call manifest: a pending action the client must run."""

    action_id: str
    tool_call_id: str
    name: str
    arguments: dict[str, Any]
    #: Set for a call of a tool the server runs itself once the client approves it (its
    #: ``action_id`` is then the approval request's id): the tool, ``{"type": "mcp",
    #: "server_label": ..., "name": ...}`` in the server's own names. None: the client's
    #: own tool, which the client runs.
    approval: dict[str, Any] | None = None


class ToolCallsEvent(BaseModel):
    type: Literal["tool_calls"] = "tool_calls"
    run_id: str
    actions: list[ActionItem]
    #: The assistant message that holds the calls.
    message_id: str | None = None


class HostedToolEvent(BaseModel):
    """A tool the server runs itself (a hosted tool: ``engine.hosted``), as its item stands:
    once when it starts (``phase`` ``started``) and once when it has ended (``done``). The
    item has the shape of OpenAI's output item of the same ``type`` (``mcp_list_tools``,
    ``mcp_call``, ``mcp_approval_request``), with ``status`` ``in_progress`` while it runs,
    then ``completed`` or ``failed``."""

    type: Literal["hosted_tool"] = "hosted_tool"
    run_id: str
    phase: Literal["started", "done"]
    item: dict[str, Any]


class UsageEvent(BaseModel):
    """Token counts; on a run stream, those of every model call of the turn.
    ``reasoning_tokens`` are part of ``output_tokens`` (those the model spent reasoning),
    ``cached_tokens`` part of ``input_tokens`` (those read from the provider's prompt
    cache); both are 0 where the provider does not say."""

    type: Literal["usage"] = "usage"
    run_id: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    cached_tokens: int = 0


class ErrorEvent(BaseModel):
    """A failure safe to show a user; ``code`` is a stable machine-readable string."""

    type: Literal["error"] = "error"
    run_id: str | None = None
    code: str
    message: str


class DoneEvent(BaseModel):
    """The last event of every stream; ``status`` is the run's status when the turn ended,
    ``ended_at`` when it ended (Unix seconds; for a run closed while no turn ran, when the
    run was closed; None in events logged before it was said)."""

    type: Literal["done"] = "done"
    run_id: str
    status: RunStatus
    ended_at: int | None = None
    #: Why an ``incomplete`` run stopped short: ``max_output_tokens`` (the model reached
    #: its output token limit) or ``interrupted`` (the server running it stopped); None
    #: for every other status.
    reason: str | None = None


Event = Annotated[
    RunStatusEvent
    | ContentDelta
    | ReasoningDelta
    | ToolCallsEvent
    | HostedToolEvent
    | UsageEvent
    | ErrorEvent
    | DoneEvent,
    Field(discriminator="type"),
]

EVENT_TYPES: tuple[str, ...] = (
    "run.status",
    "content.delta",
    "reasoning.delta",
    "tool_calls",
    "hosted_tool",
    "usage",
    "error",
    "done",
)

_event_adapter: TypeAdapter[Event] = TypeAdapter(Event)


def parse_event(data: str | bytes) -> Event:
    """Parse one event from its JSON text (the ``data:`` of an SSE frame)."""
    return _event_adapter.validate_json(data)


def event_from_dict(data: dict[str, Any]) -> Event:
    return _event_adapter.validate_python(data)


# ------------------------------------------------------------------- client tool events


class ToolStartEvent(BaseModel):
    """A client started running one of the manifest's tool calls."""

    type: Literal["tool.start"] = "tool.start"
    tool_call_id: str
    name: str
    arguments: dict[str, Any]


class ToolResultEvent(BaseModel):
    """A client's tool call ended; ``output`` is the text sent back to the model."""

    type: Literal["tool.result"] = "tool.result"
    tool_call_id: str
    name: str
    output: str
    is_error: bool = False


ClientToolEvent = Annotated[ToolStartEvent | ToolResultEvent, Field(discriminator="type")]


# ------------------------------------------------------------------------------ framing


def encode_frame(seq: int | None, type_: str, data: str) -> bytes:
    """One server-sent event: ``id`` (when numbered), ``event`` and one JSON ``data`` line
    (the JSON of an event never holds a raw newline)."""
    if seq is None:
        return f"event: {type_}\ndata: {data}\n\n".encode()
    return f"id: {seq}\nevent: {type_}\ndata: {data}\n\n".encode()


def encode_event(event: BaseModel, seq: int | None = None) -> bytes:
    """An event of this vocabulary as one server-sent event, named by its ``type``."""
    return encode_frame(seq, event.type, event.model_dump_json())  # type: ignore[attr-defined]


# ------------------------------------------------------------------------- model events


@dataclass(slots=True)
class TextPart:
    """A piece of the answer text."""

    text: str


@dataclass(slots=True)
class ReasoningPart:
    """A piece of the model's reasoning (a delta, never a snapshot); ``summary`` when the
    provider says it is a summary of the reasoning (OpenAI's reasoning summaries, Gemini's
    thought summaries), not the reasoning itself."""

    text: str
    summary: bool = False


@dataclass(slots=True)
class ToolCallPart:
    """A fragment of one tool call. ``index`` keys the call within the response; ``id`` and
    ``name`` usually arrive on the first fragment only; ``arguments`` is a JSON text fragment."""

    index: int | None = None
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass(slots=True)
class UsagePart:
    """Token counts of the call so far (running totals, not increments). Of the
    ``output_tokens``, ``reasoning_tokens`` were spent reasoning; of the ``input_tokens``,
    ``cached_tokens`` were read from the provider's prompt cache. Each detail is part of its
    total, never more than it, and 0 where the provider does not say."""

    input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    cached_tokens: int = 0


@dataclass(slots=True)
class FinishPart:
    """The model said why it stopped (``stop``, ``tool_calls``, ``length``, ...)."""

    reason: str


@dataclass(slots=True)
class StatePart:
    """What the provider needs sent back with this answer on the next turn (thinking
    signatures, reasoning items, ...): JSON values, stored with the message and handed back
    to the same provider as ``ChatMessage.provider_state``. Later parts update earlier
    ones key by key."""

    data: dict[str, Any]


ModelEvent = TextPart | ReasoningPart | ToolCallPart | UsagePart | FinishPart | StatePart
