"""Request and response schemas of the native API: ``XCreate`` / ``XPublic``."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    Field,
    model_validator,
)

from parley.events import ActionItem
from parley.server.faces.kit.bodies import (
    Body,
    Image,
    Parameters,
    ToolAnswer,
    ToolOutput,
    Tools,
    timestamp,
)
from parley.server.faces.kit.readers import MAX_IMAGES
from parley.store.records import Action, ApiKey, Message, User
from parley.types import ActionStatus, RunStatus, Usage


class UserCreate(Body):
    name: str = Field(min_length=1, max_length=200)
    is_admin: bool = False


class ApiKeyCreate(Body):
    user_id: str | None = None
    #: When the key stops authenticating (Unix seconds, in the future); none: never.
    expires_at: int | None = Field(default=None, ge=0)
    #: Input plus output tokens the key may use per UTC day; none: no budget. Admins only.
    daily_token_budget: int | None = Field(default=None, ge=0, le=2**62)


class RunCreate(Tools):
    thread_id: str
    assistant_id: str
    model: str | None = Field(default=None, min_length=3, max_length=256)
    instructions: str | None = Field(default=None, max_length=256_000)
    parameters: Parameters | None = None


class ToolOutputsSubmit(Body):
    tool_outputs: list[ToolOutput] = Field(min_length=1)


class ToolOutputSubmit(ToolAnswer):
    """Flow B: one output, named by ``action_id`` or by ``run_id`` + ``tool_call_id``; or,
    for a call the server runs once approved, ``approve`` true or false."""

    action_id: str | None = None
    run_id: str | None = None
    tool_call_id: str | None = None

    @model_validator(mode="after")
    def _named(self) -> ToolOutputSubmit:
        if self.action_id is None and (self.run_id is None or self.tool_call_id is None):
            raise ValueError("give action_id, or run_id and tool_call_id")
        return self


class CompletionRequest(Body):
    run_id: str
    thread_id: str | None = None
    assistant_id: str | None = None
    message_id: str | None = None
    stream: bool = True


class ProcessRequest(Body):
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
    expires_at: int | None = None
    daily_token_budget: int | None = None

    @classmethod
    def of(cls, k: ApiKey) -> ApiKeyPublic:
        return cls(
            id=k.id,
            user_id=k.user_id,
            prefix=k.prefix,
            created_at=int(k.created_at),
            last_used_at=timestamp(k.last_used_at),
            revoked=k.revoked_at is not None,
            expires_at=timestamp(k.expires_at),
            daily_token_budget=k.daily_token_budget,
        )


class ApiKeyCreated(ApiKeyPublic):
    key: str


class UserCreated(BaseModel):
    user: UserPublic
    api_key: ApiKeyCreated


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


def marks_of(message: Message | None) -> dict[str, dict[str, Any]]:
    """The hosted marks of an answer's calls, by call id (``kit.resources.action_items``)."""
    calls = message.tool_calls or [] if message is not None else []
    return {c["id"]: c["hosted"] for c in calls if c.get("hosted")}


class RunError(BaseModel):
    code: str
    message: str


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
    #: The items of the tools the server ran in the turn (hosted MCP: a server's tool list,
    #: a call with its output or error), in order, each as it ended (``hosted_tool``).
    items: list[dict[str, Any]] = Field(default_factory=list)
