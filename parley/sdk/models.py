"""Typed answers of the Parley HTTP API (see ``docs/api.md``).

Every model accepts fields it does not know (a newer server may add some) and keeps them
as extra attributes. ``Page[T]`` is one page of a list endpoint and can walk the following
pages through ``after``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from parley.events import ActionItem
from parley.types import ActionStatus, RunStatus, ToolCall, Usage

__all__ = [
    "Action",
    "ActionItem",
    "ApiKey",
    "ApiKeyCreated",
    "Assistant",
    "Deleted",
    "FunctionDefinition",
    "Message",
    "Page",
    "RequiredAction",
    "RespondResult",
    "Run",
    "RunError",
    "Thread",
    "ToolCall",
    "ToolDefinition",
    "ToolResult",
    "TurnResult",
    "Usage",
    "User",
    "UserCreated",
]

T = TypeVar("T")


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow")


class FunctionDefinition(_Model):
    name: str
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=dict)


class ToolDefinition(_Model):
    """A tool as the server stores it: ``{"type": "function", "function": {...}}``."""

    type: str = "function"
    function: FunctionDefinition


class Assistant(_Model):
    id: str
    object: str = "assistant"
    created_at: int = 0
    name: str
    model: str
    instructions: str | None = None
    tools: list[ToolDefinition] = Field(default_factory=list)
    parameters: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)


class Thread(_Model):
    id: str
    object: str = "thread"
    created_at: int = 0
    metadata: dict[str, Any] = Field(default_factory=dict)


class Image(_Model):
    """An image of a user message: a ``data:`` URL or an ``http(s)://`` address."""

    url: str


class Message(_Model):
    id: str
    object: str = "thread.message"
    thread_id: str
    seq: int = 0
    role: str
    content: str = ""
    reasoning: str | None = None
    tool_calls: list[ToolCall] = Field(default_factory=list)
    tool_call_id: str | None = None
    run_id: str | None = None
    images: list[Image] = Field(default_factory=list)
    created_at: int = 0


class RunError(_Model):
    """Why a run or turn failed; ``message`` is safe to show a user."""

    code: str
    message: str


class RequiredAction(_Model):
    type: str = "submit_tool_outputs"
    actions: list[ActionItem] = Field(default_factory=list)


class Run(_Model):
    id: str
    object: str = "thread.run"
    thread_id: str
    assistant_id: str | None = None  # None for a run made through the Responses API
    model: str | None = None
    instructions: str | None = None
    tools: list[ToolDefinition] = Field(default_factory=list)
    status: RunStatus
    required_action: RequiredAction | None = None
    last_error: RunError | None = None
    usage: Usage = Field(default_factory=Usage)
    created_at: int = 0
    started_at: int | None = None
    completed_at: int | None = None
    expires_at: int | None = None


class Action(_Model):
    """A tool call of a run, waiting for (or holding) its output."""

    id: str
    object: str = "run.action"
    run_id: str
    tool_call_id: str
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    status: ActionStatus
    output: str | None = None
    created_at: int = 0

    def to_item(self) -> ActionItem:
        """The manifest entry for this action."""
        return ActionItem(
            action_id=self.id,
            tool_call_id=self.tool_call_id,
            name=self.name,
            arguments=self.arguments,
        )


class TurnResult(_Model):
    """One turn of a run, read whole (``"stream": false``) or gathered from its events."""

    run_id: str
    thread_id: str | None = None
    message_id: str | None = None
    status: RunStatus
    text: str = ""
    reasoning: str | None = None
    actions: list[ActionItem] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    error: RunError | None = None


class ToolResult(_Model):
    """A tool call that ``respond()`` ran, and the output it submitted."""

    tool_call_id: str
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    output: str


class RespondResult(TurnResult):
    """What ``respond()`` returns: the whole tool loop folded into one result.

    ``text`` and ``reasoning`` join the turns' texts (a blank line between non-empty ones),
    ``usage`` is summed over the turns, ``status`` is the last turn's.
    """

    turns: int = 0
    tool_results: list[ToolResult] = Field(default_factory=list)


class User(_Model):
    id: str
    object: str = "user"
    name: str
    is_admin: bool = False
    created_at: int = 0


class ApiKey(_Model):
    id: str
    object: str = "api_key"
    user_id: str
    prefix: str = ""
    created_at: int = 0
    last_used_at: int | None = None
    revoked: bool = False


class ApiKeyCreated(_Model):
    """A new API key; ``key`` is the secret, shown this one time only."""

    id: str
    object: str = "api_key"
    user_id: str
    prefix: str = ""
    created_at: int = 0
    key: str


class UserCreated(_Model):
    user: User
    api_key: ApiKeyCreated


class Deleted(_Model):
    id: str
    object: str
    deleted: bool


class Page(BaseModel, Generic[T]):
    """One page of a list. ``iter_all()`` / ``aiter_all()`` walk this page and the next ones.

    A page from ``Client`` walks with ``next_page()`` / ``iter_all()``; a page from
    ``AsyncClient`` with ``anext_page()`` / ``aiter_all()``.
    """

    model_config = ConfigDict(extra="allow")

    object: str = "list"
    data: list[T] = Field(default_factory=list)
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool = False

    _fetch: Callable[[str], Page[T]] | None = PrivateAttr(default=None)
    _afetch: Callable[[str], Awaitable[Page[T]]] | None = PrivateAttr(default=None)

    def has_next_page(self) -> bool:
        return self.has_more and bool(self.last_id)

    def next_page(self) -> Page[T]:
        """Fetch the page after this one (sync client)."""
        if self._fetch is None:
            raise TypeError("this page came from AsyncClient: use `await page.anext_page()`")
        if not self.has_next_page() or self.last_id is None:
            raise ValueError("this is the last page")
        return self._fetch(self.last_id)

    async def anext_page(self) -> Page[T]:
        """Fetch the page after this one (async client)."""
        if self._afetch is None:
            raise TypeError("this page came from Client: use `page.next_page()`")
        if not self.has_next_page() or self.last_id is None:
            raise ValueError("this is the last page")
        return await self._afetch(self.last_id)

    def iter_all(self) -> Iterator[T]:
        """Every item of this page and the following ones, fetching pages as needed."""
        page = self
        while True:
            yield from page.data
            if not page.has_next_page():
                return
            page = page.next_page()

    async def aiter_all(self) -> AsyncIterator[T]:
        page = self
        while True:
            for item in page.data:
                yield item
            if not page.has_next_page():
                return
            page = await page.anext_page()
