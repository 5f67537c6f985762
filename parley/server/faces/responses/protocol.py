"""The request bodies of the Responses and Conversations API, as typed models.

Known fields are checked; a field OpenAI's API does not know is refused (400, naming it),
as OpenAI refuses it. Items are checked loosely here (a list of objects) and strictly by
``items.parse_input``, which names the faulty item (``input[2].content``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypedDict, cast

from pydantic import (
    ConfigDict,
    Field,
    Strict,
    ValidationInfo,
    field_validator,
    model_validator,
)

from parley.providers.options import PromptCacheRetention
from parley.server.faces.kit.bodies import MAX_ITEMS, Body, Count, check_metadata
from parley.store.records import Run

#: The longest instructions, and the most input items one request may carry.
MAX_INSTRUCTIONS = 256_000
#: ``client_metadata``'s bounds: OpenAI's specification declares none, and a client's values
#: run long (one of Codex's is some 750 characters), so they are generous.
MAX_CLIENT_METADATA_PAIRS = 64
MAX_CLIENT_METADATA_KEY = 64
MAX_CLIENT_METADATA_VALUE = 4096


def _check_client_metadata(value: dict[str, Any] | None) -> dict[str, Any] | None:
    """A client's own tags of a request (Codex's ``client_metadata``): string pairs, taken
    and not kept; bounded by ``MAX_CLIENT_METADATA_*``."""
    if value is None:
        return None
    if len(value) > MAX_CLIENT_METADATA_PAIRS:
        raise ValueError(f"client_metadata holds at most {MAX_CLIENT_METADATA_PAIRS} pairs")
    for key, item in value.items():
        if len(key) > MAX_CLIENT_METADATA_KEY:
            raise ValueError(
                f"a client_metadata key has at most {MAX_CLIENT_METADATA_KEY} characters"
            )
        if not isinstance(item, str):
            raise ValueError("client_metadata values are strings")
        if len(item) > MAX_CLIENT_METADATA_VALUE:
            raise ValueError(
                f"a client_metadata value has at most {MAX_CLIENT_METADATA_VALUE} characters"
            )
    return value


class FunctionTool(Body):
    """A function tool in the Responses API's flat shape."""

    type: Literal["function"]
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class TextFormat(Body):
    type: Literal["text", "json_object", "json_schema"]
    name: str | None = Field(default=None, max_length=64)
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    description: str | None = None
    strict: bool | None = None

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @model_validator(mode="after")
    def _schema_named(self) -> TextFormat:
        if self.type == "json_schema" and (self.name is None or self.schema_ is None):
            raise ValueError("a json_schema format needs name and schema")
        return self


class TextConfig(Body):
    format: TextFormat | None = None
    verbosity: Literal["low", "medium", "high"] | None = None


class ReasoningConfig(Body):
    effort: Literal["none", "minimal", "low", "medium", "high", "xhigh"] | None = None
    summary: Literal["auto", "concise", "detailed"] | None = None
    generate_summary: Literal["auto", "concise", "detailed"] | None = None


class ConversationRef(Body):
    id: str = Field(min_length=1, max_length=64)


class StreamOptions(Body):
    include_obfuscation: bool | None = None


#: The ``include`` value that asks for reasoning items' ``encrypted_content``: in Parley,
#: the provider's state of an answer (``items.state_blob``).
ENCRYPTED_REASONING = "reasoning.encrypted_content"


def wants_state(include: list[str] | None) -> bool:
    """Whether a request's ``include`` asks for the answers' state."""
    return ENCRYPTED_REASONING in (include or ())


class ResponseCreate(Body):
    """``POST /v1/responses`` (and a WebSocket ``response.create``)."""

    model: str | None = Field(default=None, min_length=1, max_length=256)
    input: str | list[dict[str, Any]] | None = None
    instructions: str | None = Field(default=None, max_length=MAX_INSTRUCTIONS)
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    max_output_tokens: Count | None = None
    max_tool_calls: Count | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    top_logprobs: Annotated[int, Strict(), Field(ge=0, le=20)] | None = None
    metadata: dict[str, Any] | None = None
    #: A client's own tags (Codex sends them): checked, then ignored, never echoed.
    client_metadata: dict[str, Any] | None = None
    user: str | None = Field(default=None, max_length=256)
    safety_identifier: str | None = Field(default=None, max_length=256)
    prompt_cache_key: str | None = Field(default=None, max_length=256)
    prompt_cache_retention: PromptCacheRetention | None = None  # as Chat Completions takes it
    service_tier: str | None = Field(default=None, max_length=32)
    text: TextConfig | None = None
    reasoning: ReasoningConfig | None = None
    truncation: Literal["auto", "disabled"] | None = None
    store: bool | None = None
    background: bool | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    previous_response_id: str | None = Field(default=None, min_length=1, max_length=64)
    conversation: str | ConversationRef | None = None
    include: list[str] | None = None
    context_management: list[dict[str, Any]] | None = None

    _metadata = field_validator("metadata")(check_metadata)
    _check_client_metadata = field_validator("client_metadata")(_check_client_metadata)

    @field_validator("input")
    @classmethod
    def _not_too_many(cls, value: Any) -> Any:
        if isinstance(value, list) and len(value) > MAX_ITEMS:
            raise ValueError(f"input holds at most {MAX_ITEMS} items")
        return value

    @property
    def conversation_id(self) -> str | None:
        c = self.conversation
        return c.id if isinstance(c, ConversationRef) else c


class WebSocketCreate(ResponseCreate):
    """A WebSocket message: ``{"type": "response.create", ...}``. ``stream`` and
    ``stream_options`` are taken and ignored (the socket always streams); ``background`` is
    refused when true. ``generate: false`` asks for a warm-up: an empty response, no model
    call, that a next message continues (``websocket.Connection.warm_up``)."""

    type: Literal["response.create"]
    generate: bool | None = None

    @field_validator("background", mode="before")
    @classmethod
    def _no_background(cls, value: Any, info: ValidationInfo) -> Any:
        if value:  # a field's own error, so that its param names it
            raise ValueError(f"{info.field_name} is not sent over a WebSocket")
        return value


class CompactCreate(Body):
    """``POST /v1/responses/compact``."""

    model: str = Field(min_length=1, max_length=256)
    input: str | list[dict[str, Any]] | None = None
    instructions: str | None = Field(default=None, max_length=MAX_INSTRUCTIONS)
    previous_response_id: str | None = Field(default=None, min_length=1, max_length=64)
    prompt_cache_key: str | None = Field(default=None, max_length=256)


class ConversationCreate(Body):
    items: list[dict[str, Any]] | None = Field(default=None, max_length=20)
    metadata: dict[str, Any] | None = None

    _metadata = field_validator("metadata")(check_metadata)


class ConversationUpdate(Body):
    metadata: dict[str, Any] | None

    _metadata = field_validator("metadata")(check_metadata)


class ItemsCreate(Body):
    items: list[dict[str, Any]] = Field(min_length=1, max_length=20)


class ResponseRecord(TypedDict, total=False):
    """What a response's run keeps of its request (``RunConfig.request``, stored as
    ``runs.request``), to answer it back as it was sent: the echoed fields as given, and
    Parley's own notes. The engine adds ``input_seqs``: the sequence numbers of the first
    and last messages the request added."""

    api: Literal["responses"]
    store: bool
    background: bool
    #: The names of the function tools given with ``strict: true``.
    strict_tools: list[str]
    #: What the functions made of custom, namespace and tool search tools stand for, by
    #: name (``client_tools``), and the tools as given when some were not functions.
    tool_kinds: dict[str, dict[str, Any]]
    tools_given: list[dict[str, Any]]
    tool_choice: Any
    truncation: str
    parallel_tool_calls: bool
    top_p: float
    presence_penalty: float
    frequency_penalty: float
    top_logprobs: int
    temperature: float
    max_output_tokens: int
    max_tool_calls: int
    service_tier: str
    safety_identifier: str
    prompt_cache_key: str
    user: str
    previous_response_id: str
    text: dict[str, Any]
    reasoning: dict[str, Any]
    conversation: dict[str, str]
    input_seqs: list[int]


def record_of(run: Run) -> ResponseRecord:
    """The record a response's run keeps of its request (empty for a run of another face)."""
    return cast(ResponseRecord, run.request or {})
