"""Typed answers of the Parley HTTP API (see ``docs/api.md``).

Every model accepts fields it does not know (a newer server may add some) and keeps them
as extra attributes. ``Page[T]`` is one page of a list endpoint and can walk the following
pages through ``after``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Discriminator, Field, PrivateAttr, Tag, field_validator

from parley.events import ActionItem
from parley.types import ActionStatus, RunStatus, ToolCall, Usage

__all__ = [
    "Action",
    "ActionItem",
    "ApiKey",
    "ApiKeyCreated",
    "Assistant",
    "Container",
    "ContainerFile",
    "ContentPart",
    "Deleted",
    "FileCounts",
    "FileObject",
    "FunctionCall",
    "FunctionDefinition",
    "Image",
    "ImagePart",
    "Message",
    "MessagePart",
    "Page",
    "RequiredAction",
    "RequiredToolCall",
    "RespondResult",
    "Run",
    "RunError",
    "RunUsage",
    "SubmitToolOutputs",
    "Text",
    "TextPart",
    "Thread",
    "ToolCall",
    "ToolDefinition",
    "ToolResult",
    "TurnResult",
    "Usage",
    "User",
    "UserCreated",
    "VectorStore",
    "VectorStoreFile",
    "VectorStoreFileError",
]

T = TypeVar("T")


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow")


class FunctionDefinition(_Model):
    name: str
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=dict)


class ToolDefinition(_Model):
    """A tool as the server stores it: ``{"type": "function", "function": {...}}``; or a
    tool the server runs, ``{"type": "mcp", "server_label": ..., ...}`` (its fields kept:
    ``model_extra``), with no ``function``."""

    type: str = "function"
    function: FunctionDefinition | None = None


class Assistant(_Model):
    """An assistant, in the Assistants API's shape; ``parameters`` (Parley) holds every other
    parameter its runs send the model (``max_tokens``, ...)."""

    id: str
    object: str = "assistant"
    created_at: int = 0
    name: str | None = None
    description: str | None = None
    model: str
    instructions: str | None = None
    tools: list[ToolDefinition] = Field(default_factory=list)
    tool_resources: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)
    temperature: float | None = None
    top_p: float | None = None
    #: ``"auto"``, or ``{"type": "text" | "json_object" | "json_schema", ...}``.
    response_format: str | dict[str, Any] = "auto"
    reasoning_effort: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)


class Thread(_Model):
    id: str
    object: str = "thread"
    created_at: int = 0
    metadata: dict[str, Any] = Field(default_factory=dict)
    tool_resources: dict[str, Any] = Field(default_factory=dict)


# ---------------------------------------------------------------------------- messages


class Image(_Model):
    """An image of a message: a ``data:`` URL or an ``http(s)://`` address."""

    url: str
    detail: str = "auto"


class Text(_Model):
    value: str = ""
    annotations: list[Any] = Field(default_factory=list)


class TextPart(_Model):
    """``{"type": "text", "text": {"value": ..., "annotations": []}}``"""

    type: Literal["text"] = "text"
    text: Text


class ImagePart(_Model):
    """``{"type": "image_url", "image_url": {"url": ..., "detail": "auto"}}``"""

    type: Literal["image_url"] = "image_url"
    image_url: Image


class ContentPart(_Model):
    """A part of a kind this SDK does not know (a newer server's); kept as it came."""

    type: str


def _part_kind(part: Any) -> str:
    kind = part.get("type") if isinstance(part, dict) else getattr(part, "type", None)
    return kind if kind in ("text", "image_url") else "other"


#: One part of a message's content: text, an image, or a kind this SDK does not know.
MessagePart = Annotated[
    Annotated[TextPart, Tag("text")]
    | Annotated[ImagePart, Tag("image_url")]
    | Annotated[ContentPart, Tag("other")],
    Discriminator(_part_kind),
]


class Message(_Model):
    """A message of a thread. ``content`` is a list of parts, as in the Assistants API:
    its text, then its images; ``text`` and ``images`` read them back.

    Parley's fields beside OpenAI's: ``seq`` (its place in the thread), ``reasoning``,
    ``tool_calls`` (of an assistant message), ``tool_call_id`` (of a ``tool`` message),
    ``item`` (the item of a tool the server ran: an MCP server's tool list, a call).
    """

    id: str
    object: str = "thread.message"
    created_at: int = 0
    thread_id: str
    #: ``in_progress``, ``incomplete`` or ``completed``.
    status: str = "completed"
    incomplete_details: dict[str, Any] | None = None
    completed_at: int | None = None
    incomplete_at: int | None = None
    role: str
    content: list[MessagePart] = Field(default_factory=list)
    assistant_id: str | None = None
    run_id: str | None = None
    attachments: list[dict[str, Any]] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    seq: int = 0
    reasoning: str | None = None
    tool_calls: list[ToolCall] = Field(default_factory=list)
    tool_call_id: str | None = None
    item: dict[str, Any] | None = None

    @property
    def text(self) -> str:
        """The message's text: its text parts, a blank line between two."""
        return "\n\n".join(p.text.value for p in self.content if isinstance(p, TextPart))

    @property
    def images(self) -> list[Image]:
        """The message's images, in order (each with its ``url``)."""
        return [p.image_url for p in self.content if isinstance(p, ImagePart)]


# -------------------------------------------------------------------------------- runs


class RunError(_Model):
    """Why a run or turn failed; ``message`` is safe to show a user."""

    code: str
    message: str


class FunctionCall(_Model):
    name: str
    #: The arguments as JSON text, as OpenAI sends them.
    arguments: str = "{}"


class RequiredToolCall(_Model):
    id: str
    type: str = "function"
    function: FunctionCall


class SubmitToolOutputs(_Model):
    tool_calls: list[RequiredToolCall] = Field(default_factory=list)


class RequiredAction(_Model):
    """What a ``requires_action`` run waits for: OpenAI's ``submit_tool_outputs.tool_calls``
    and, the same calls, Parley's ``actions`` (arguments parsed, each with its
    ``action_id``)."""

    type: str = "submit_tool_outputs"
    submit_tool_outputs: SubmitToolOutputs = Field(default_factory=SubmitToolOutputs)
    actions: list[ActionItem] = Field(default_factory=list)


class RunUsage(Usage):
    """A run's token counts: Parley's four and OpenAI's ``prompt_tokens``,
    ``completion_tokens`` and ``total_tokens``."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class Run(_Model):
    """A run, in the Assistants API's shape. ``status`` is a ``RunStatus``: the wire's
    ``requires_action`` reads as ``RunStatus.ACTION_REQUIRED`` (the name of the event
    stream and of ``TurnResult``)."""

    id: str
    object: str = "thread.run"
    created_at: int = 0
    thread_id: str
    assistant_id: str | None = None  # None for a run made through the Responses API
    status: RunStatus
    required_action: RequiredAction | None = None
    last_error: RunError | None = None
    expires_at: int | None = None
    started_at: int | None = None
    cancelled_at: int | None = None
    failed_at: int | None = None
    completed_at: int | None = None
    incomplete_details: dict[str, Any] | None = None
    model: str | None = None
    instructions: str | None = None
    tools: list[ToolDefinition] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    usage: RunUsage = Field(default_factory=RunUsage)
    temperature: float | None = None
    top_p: float | None = None
    max_prompt_tokens: int | None = None
    max_completion_tokens: int | None = None
    truncation_strategy: dict[str, Any] | None = None
    response_format: str | dict[str, Any] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    #: The thread's messages the run's last model call left out (None before its first).
    dropped_messages: int | None = None

    @field_validator("status", mode="before")
    @classmethod
    def _parley_status(cls, value: Any) -> Any:
        return RunStatus.ACTION_REQUIRED if value == "requires_action" else value


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
    #: The items of the tools the server ran in the turn (hosted MCP: a server's tool list,
    #: a call with its output or error), in order, each as it ended.
    items: list[dict[str, Any]] = Field(default_factory=list)


class ToolResult(_Model):
    """A tool call that ``respond()`` ran, and the output it submitted."""

    tool_call_id: str
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    output: str


class RespondResult(TurnResult):
    """What ``respond()`` returns: the whole tool loop folded into one result.

    ``text`` and ``reasoning`` join the turns' texts (a blank line between non-empty ones),
    ``usage`` is summed over the turns, ``items`` holds every turn's, ``status`` is the last
    turn's.
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


# ------------------------------------------------------------------- files and stores


class FileObject(_Model):
    """A file, in OpenAI's Files API shape (``docs/files.md``)."""

    id: str
    object: str = "file"
    bytes: int = 0
    created_at: int = 0
    expires_at: int | None = None
    filename: str = ""
    purpose: str = ""
    status: str = "processed"


class FileCounts(_Model):
    in_progress: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    total: int = 0


class VectorStore(_Model):
    """A vector store (OpenAI's ``VectorStoreObject``): the files ``file_search`` searches.
    ``status`` is ``in_progress`` while some of its files are being indexed, then
    ``completed`` (or ``expired``)."""

    id: str
    object: str = "vector_store"
    created_at: int = 0
    name: str | None = None
    usage_bytes: int = 0
    file_counts: FileCounts = Field(default_factory=FileCounts)
    status: str = "completed"
    expires_after: dict[str, Any] | None = None
    expires_at: int | None = None
    last_active_at: int | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class VectorStoreFileError(_Model):
    """Why a file could not be indexed: ``code`` (``server_error``, ``unsupported_file``,
    ``invalid_file``) and a ``message`` safe to show a user."""

    code: str
    message: str


class VectorStoreFile(_Model):
    """A file attached to a vector store (OpenAI's ``VectorStoreFileObject``); its ``id``
    is the file's. ``status``: ``in_progress`` while it is indexed, then ``completed``
    (searchable), ``failed`` (``last_error`` says why) or ``cancelled``."""

    id: str
    object: str = "vector_store.file"
    usage_bytes: int = 0
    created_at: int = 0
    vector_store_id: str
    status: str
    last_error: VectorStoreFileError | None = None
    chunking_strategy: dict[str, Any] | None = None
    attributes: dict[str, Any] | None = None

    @property
    def done(self) -> bool:
        """Whether indexing has ended (``completed``, ``failed`` or ``cancelled``)."""
        return self.status != "in_progress"


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


# ------------------------------------------------------------------------ containers


class Container(_Model):
    """A container of the code interpreter (OpenAI's ``ContainerResource``,
    ``docs/containers.md``): ``running``, or ``expired`` once unused for
    ``expires_after["minutes"]`` (its files are then gone)."""

    id: str
    object: str = "container"
    created_at: int = 0
    status: str = "running"
    expires_after: dict[str, Any] | None = None
    last_active_at: int | None = None
    memory_limit: str | None = None
    name: str = ""
    network_policy: dict[str, Any] | None = None


class ContainerFile(_Model):
    """A file in a container, at ``path`` (``/mnt/data/...``); ``source`` is ``user``
    (uploaded or copied in) or ``assistant`` (written by the model's code)."""

    id: str
    object: str = "container.file"
    created_at: int = 0
    bytes: int = 0
    container_id: str
    path: str
    source: str = "user"
