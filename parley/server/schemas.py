"""Request and response schemas of the native API: ``XCreate`` / ``XUpdate`` / ``XPublic``."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any, Generic, Literal, NotRequired, TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from typing_extensions import TypedDict

from parley.events import ActionItem
from parley.store.records import Action, ApiKey, Assistant, Message, Run, Thread, User
from parley.types import ActionStatus, RunStatus, ToolCall, ToolSpec, Usage, image_type

T = TypeVar("T")

Metadata = dict[str, Any]


def _storable(value: Any, depth: int = 0) -> None:
    """Refuse text no database can store the same way: NUL characters (PostgreSQL has no
    room for them) and unpaired UTF-16 surrogates (not Unicode at all)."""
    if isinstance(value, str):
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError(
                    "text contains an unpaired surrogate (not valid Unicode)"
                ) from None
        if "\x00" in value:
            raise ValueError("text contains a NUL character (\\u0000), which cannot be stored")
    elif isinstance(value, dict):
        if depth > 64:
            raise ValueError("JSON nested too deeply")
        for key, item in value.items():
            _storable(key, depth + 1)
            _storable(item, depth + 1)
    elif isinstance(value, list):
        if depth > 64:
            raise ValueError("JSON nested too deeply")
        for item in value:
            _storable(item, depth + 1)


class _Body(BaseModel):
    """A request body: unknown fields refused, every string storable."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _only_storable_text(cls, data: Any) -> Any:
        _storable(data)
        return data


class _Tools(_Body):
    """Tools given OpenAI-shaped, or flat: ``{"name", "description", "parameters"}``."""

    tools: list[ToolSpec] | None = None

    @field_validator("tools", mode="before")
    @classmethod
    def _openai_shape(cls, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        return [
            {"type": "function", "function": t}
            if isinstance(t, dict) and "function" not in t and "name" in t
            else t
            for t in value
        ]

    @field_validator("tools")
    @classmethod
    def _unique_names(cls, value: list[ToolSpec] | None) -> list[ToolSpec] | None:
        names = [t.function.name for t in value or ()]
        if len(set(names)) != len(names):
            raise ValueError("tool names must be unique")
        return value


# ------------------------------------------------------------------------------ requests


class UserCreate(_Body):
    name: str = Field(min_length=1, max_length=200)
    is_admin: bool = False


class ApiKeyCreate(_Body):
    user_id: str | None = None


#: ``provider/model-id``; the demo model is always there.
_MODEL_EXAMPLES = ["demo/parley", "openai/gpt-4o-mini"]


class AssistantCreate(_Tools):
    name: str = Field(min_length=1, max_length=256, examples=["Helper"])
    model: str = Field(min_length=3, max_length=256, examples=_MODEL_EXAMPLES)
    instructions: str | None = Field(default=None, max_length=256_000)
    parameters: dict[str, Any] = Field(default_factory=dict)
    metadata: Metadata = Field(default_factory=dict)


class AssistantUpdate(_Tools):
    name: str | None = Field(default=None, min_length=1, max_length=256)
    model: str | None = Field(default=None, min_length=3, max_length=256, examples=_MODEL_EXAMPLES)
    instructions: str | None = Field(default=None, max_length=256_000)
    parameters: dict[str, Any] | None = None
    metadata: Metadata | None = None


class ThreadCreate(_Body):
    metadata: Metadata = Field(default_factory=dict)


_DATA_URL = re.compile(r"data:(image/(?:png|jpeg|gif|webp));base64,(.*)", re.DOTALL)
MAX_IMAGES = 16


class Image(_Body):
    """An image of a user message: ``data:image/png;base64,...`` (PNG, JPEG, GIF or WebP)
    or an ``http(s)://`` address the provider fetches itself."""

    url: str = Field(min_length=1)

    @field_validator("url")
    @classmethod
    def _image_url(cls, url: str) -> str:
        if url[:8].lower().startswith(("http://", "https://")):
            if len(url) > 8192:
                raise ValueError("an image address may have at most 8192 characters")
            if not urlsplit(url).hostname:
                raise ValueError("the image address has no host")
            return url
        found = _DATA_URL.fullmatch(url)
        if found is None:
            raise ValueError(
                "give an http(s) address or a data URL: data:image/png;base64,... "
                "(png, jpeg, gif or webp)"
            )
        media_type, data = found.groups()
        try:
            decoded = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("the data URL's base64 data is not valid") from None
        if image_type(decoded) != media_type:
            raise ValueError(f"the data URL's data is not an image of type {media_type}")
        return url


class MessageCreate(_Body):
    content: str
    role: Literal["user"] = "user"
    images: list[Image] = Field(default_factory=list, max_length=MAX_IMAGES)


class MessageCreateFlat(MessageCreate):
    thread_id: str


class RunCreate(_Tools):
    thread_id: str
    assistant_id: str
    model: str | None = Field(default=None, min_length=3, max_length=256)
    instructions: str | None = Field(default=None, max_length=256_000)
    parameters: dict[str, Any] | None = None


class ToolOutput(_Body):
    tool_call_id: str = Field(min_length=1)
    output: str


class ToolOutputsSubmit(_Body):
    tool_outputs: list[ToolOutput] = Field(min_length=1)


class ToolOutputSubmit(_Body):
    """Flow B: one output, named by ``action_id`` or by ``run_id`` + ``tool_call_id``."""

    output: str
    action_id: str | None = None
    run_id: str | None = None
    tool_call_id: str | None = None

    @model_validator(mode="after")
    def _named(self) -> ToolOutputSubmit:
        if self.action_id is None and (self.run_id is None or self.tool_call_id is None):
            raise ValueError("give action_id, or run_id and tool_call_id")
        return self


class CompletionRequest(_Body):
    run_id: str
    thread_id: str | None = None
    assistant_id: str | None = None
    message_id: str | None = None
    stream: bool = True


class ProcessRequest(_Body):
    assistant_id: str | None = None
    content: str | None = None
    images: list[Image] = Field(default_factory=list, max_length=MAX_IMAGES)
    thread_id: str | None = None
    run_id: str | None = None
    stream: bool = True

    @model_validator(mode="after")
    def _one_turn_kind(self) -> ProcessRequest:
        if self.run_id is not None:
            if self.content is not None:
                raise ValueError("give content (a new turn) or run_id (the next turn), not both")
            if self.images:
                raise ValueError(
                    "images belong to a new turn: send them with assistant_id and content, "
                    "not with run_id"
                )
        elif self.assistant_id is None or self.content is None:
            raise ValueError("turn 1 needs assistant_id and content; later turns need run_id")
        return self


# ----------------------------------------------------------------------------- answers


def _ts(value: float | None) -> int | None:
    return None if value is None else int(value)


class ListPublic(BaseModel, Generic[T]):
    object: Literal["list"] = "list"
    data: list[T]
    first_id: str | None
    last_id: str | None
    has_more: bool

    @classmethod
    def of(cls, items: list[Any], has_more: bool) -> ListPublic[Any]:
        return cls(
            data=items,
            first_id=items[0].id if items else None,
            last_id=items[-1].id if items else None,
            has_more=has_more,
        )


class UserPublic(BaseModel):
    id: str
    object: Literal["user"] = "user"
    name: str
    is_admin: bool
    created_at: int

    @classmethod
    def of(cls, u: User) -> UserPublic:
        return cls(id=u.id, name=u.name, is_admin=u.is_admin, created_at=int(u.created_at))


class ApiKeyPublic(BaseModel):
    id: str
    object: Literal["api_key"] = "api_key"
    user_id: str
    prefix: str
    created_at: int
    last_used_at: int | None
    revoked: bool

    @classmethod
    def of(cls, k: ApiKey) -> ApiKeyPublic:
        return cls(
            id=k.id,
            user_id=k.user_id,
            prefix=k.prefix,
            created_at=int(k.created_at),
            last_used_at=_ts(k.last_used_at),
            revoked=k.revoked_at is not None,
        )


class ApiKeyCreated(ApiKeyPublic):
    key: str


class UserCreated(BaseModel):
    user: UserPublic
    api_key: ApiKeyCreated


class AssistantPublic(BaseModel):
    id: str
    object: Literal["assistant"] = "assistant"
    created_at: int
    name: str
    model: str
    instructions: str | None
    tools: list[dict[str, Any]]
    parameters: dict[str, Any]
    metadata: Metadata

    @classmethod
    def of(cls, a: Assistant) -> AssistantPublic:
        return cls(
            id=a.id,
            created_at=int(a.created_at),
            name=a.name,
            model=a.model,
            instructions=a.instructions,
            tools=a.tools,
            parameters=a.parameters,
            metadata=a.metadata,
        )


class ThreadPublic(BaseModel):
    id: str
    object: Literal["thread"] = "thread"
    created_at: int
    metadata: Metadata

    @classmethod
    def of(cls, t: Thread) -> ThreadPublic:
        return cls(id=t.id, created_at=int(t.created_at), metadata=t.metadata)


class Deleted(BaseModel):
    id: str
    object: str
    deleted: bool = True


class MessagePublic(BaseModel):
    id: str
    object: Literal["thread.message"] = "thread.message"
    thread_id: str
    seq: int
    role: str
    content: str
    reasoning: str | None
    tool_calls: list[ToolCall]
    tool_call_id: str | None
    run_id: str | None
    images: list[Image]
    created_at: int

    @classmethod
    def of(cls, m: Message) -> MessagePublic:
        return cls(
            id=m.id,
            thread_id=m.thread_id,
            seq=m.seq,
            role=m.role,
            content=m.content,
            reasoning=m.reasoning,
            tool_calls=[ToolCall.model_validate(c) for c in m.tool_calls or ()],
            tool_call_id=m.tool_call_id,
            run_id=m.run_id,
            images=[Image.model_construct(url=i["url"]) for i in m.images or ()],
            created_at=int(m.created_at),
        )


class ActionPublic(BaseModel):
    id: str
    object: Literal["run.action"] = "run.action"
    run_id: str
    tool_call_id: str
    name: str
    arguments: dict[str, Any]
    status: ActionStatus
    output: str | None
    created_at: int

    @classmethod
    def of(cls, a: Action) -> ActionPublic:
        return cls(
            id=a.id,
            run_id=a.run_id,
            tool_call_id=a.tool_call_id,
            name=a.name,
            arguments=a.arguments,
            status=ActionStatus(a.status),
            output=a.output,
            created_at=int(a.created_at),
        )


def action_items(actions: list[Action]) -> list[ActionItem]:
    return [
        ActionItem(action_id=a.id, tool_call_id=a.tool_call_id, name=a.name, arguments=a.arguments)
        for a in actions
    ]


class RequiredAction(BaseModel):
    type: Literal["submit_tool_outputs"] = "submit_tool_outputs"
    actions: list[ActionItem]


class RunError(BaseModel):
    code: str
    message: str


class RunPublic(BaseModel):
    id: str
    object: Literal["thread.run"] = "thread.run"
    thread_id: str
    assistant_id: str | None
    model: str
    instructions: str | None
    tools: list[dict[str, Any]]
    status: RunStatus
    required_action: RequiredAction | None
    last_error: RunError | None
    usage: Usage
    created_at: int
    started_at: int | None
    completed_at: int | None
    expires_at: int | None

    @classmethod
    def of(cls, r: Run, pending: list[Action] | None = None) -> RunPublic:
        required = None
        if r.status == RunStatus.ACTION_REQUIRED and pending:
            required = RequiredAction(actions=action_items(pending))
        error = None
        if r.error_code:
            error = RunError(code=r.error_code, message=r.error_message or "")
        return cls(
            id=r.id,
            thread_id=r.thread_id,
            assistant_id=r.assistant_id,
            model=r.model,
            instructions=r.instructions,
            tools=r.tools,
            status=RunStatus(r.status),
            required_action=required,
            last_error=error,
            usage=r.usage,
            created_at=int(r.created_at),
            started_at=_ts(r.started_at),
            completed_at=_ts(r.completed_at),
            expires_at=_ts(r.expires_at),
        )


class ErrorDetail(TypedDict):
    """One field that failed validation."""

    loc: list[str | int]
    msg: str
    type: str


class ErrorBody(TypedDict):
    """`type` is the kind of error (`not_found`, ...); `code` is a finer reason, given when
    it differs from `type`; `details` names each field of a `validation_error`."""

    type: str
    message: str
    code: NotRequired[str]
    details: NotRequired[list[ErrorDetail]]


class ErrorPublic(TypedDict):
    """Every error answer."""

    error: ErrorBody


class OpenAIErrorBody(TypedDict):
    """`type` is the Open Responses kind (`invalid_request`, `not_found`, `model_error`,
    ...); `param` names the field at fault; `code` is a finer reason."""

    message: str
    type: str
    param: str | None
    code: str | None


class OpenAIErrorPublic(TypedDict):
    """Every error answer of the OpenAI faces (`/v1/responses`, `/v1/conversations`)."""

    error: OpenAIErrorBody


class TurnResultPublic(BaseModel):
    run_id: str
    thread_id: str
    message_id: str | None
    status: RunStatus
    text: str
    reasoning: str | None
    actions: list[ActionItem]
    usage: Usage
    error: RunError | None
