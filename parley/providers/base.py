"""The provider interface: one Protocol with one async streaming method.

An adapter knows *how* to talk to one kind of API; a ``ProviderConfig`` (``parley.config``)
says *where* and *with which key*. ``stream`` yields model events (``parley.events``) and
raises ``UpstreamError`` / ``UpstreamTimeout`` with a message safe to show a user.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any, Protocol

from parley.events import ModelEvent
from parley.types import Role, ToolCall, ToolSpec


@dataclass(slots=True)
class FileInput:
    """A file given with a user message.

    As a thread keeps it: the user's ``file_id``, or the bytes given inline (``data``),
    and its ``filename``. Before the model call (``engine.file_inputs``) its ``data`` and
    ``media_type`` are read and, for a provider that reads it as text
    (``file_parts.reads_natively`` says no), its ``text``; ``missing`` says why a file
    could not be read then (deleted since): the model is told so instead."""

    filename: str
    file_id: str | None = None
    data: bytes | None = None
    media_type: str | None = None
    text: str | None = None
    missing: str | None = None


@dataclass(slots=True)
class ChatMessage:
    role: Role
    content: str = ""
    reasoning: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str | None = None
    #: Image URLs of a user message: ``data:image/...;base64,...`` or ``http(s)://``.
    images: list[str] = field(default_factory=list)
    #: Files given with a user message (``FileInput``), after its images.
    files: list[FileInput] = field(default_factory=list)
    #: What this provider stored with the answer for the next turn (``StatePart``); only
    #: handed back to the provider that wrote it.
    provider_state: dict[str, Any] | None = None


def split_data_url(url: str) -> tuple[str, str] | None:
    """``(media_type, base64 data)`` of a ``data:...;base64,...`` URL; None for any other
    URL. (The API checked the URL when the message was created.)"""
    if not url.startswith("data:"):
        return None
    head, _, data = url.partition(",")
    return head[len("data:") :].removesuffix(";base64"), data


#: ``ModelOptions.tool_choice``: ``"auto"``, ``"none"``, ``"required"``, one function
#: (``{"type": "function", "name": NAME}``) or a subset of the tools
#: (``{"type": "allowed_tools", "mode": "auto" | "required", "tools": [{"type": "function",
#: "name": NAME}, ...]}``).
ToolChoice = str | dict[str, Any]


@dataclass(slots=True)
class ModelOptions:
    """What every protocol can ask of a model call, in one neutral form that each adapter
    translates to its API's own fields (or leaves out where its API has none). ``None``
    everywhere: the provider's defaults, and nothing extra is sent.

    - ``tool_choice``: see ``ToolChoice``.
    - ``parallel_tool_calls``: whether the model may ask for several calls at once.
    - ``response_format``: ``{"type": "text"}``, ``{"type": "json_object"}`` or
      ``{"type": "json_schema", "name": NAME, "schema": {...}, "strict": bool,
      "description": TEXT}`` (the Responses API's ``text.format``).
    - ``reasoning_effort``: ``"none"``, ``"minimal"``, ``"low"``, ``"medium"``, ``"high"``
      or ``"xhigh"``; ``reasoning_summary``: ``"auto"``, ``"concise"`` or ``"detailed"``.
    """

    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: dict[str, Any] | None = None
    reasoning_effort: str | None = None
    reasoning_summary: str | None = None

    @classmethod
    def of(cls, data: dict[str, Any] | None) -> ModelOptions:
        """The options stored with a run (a JSON object of these fields)."""
        if not data:
            return cls()
        return cls(**{k: v for k, v in data.items() if k in _OPTION_NAMES})


_OPTION_NAMES = frozenset(ModelOptions.__dataclass_fields__)


@dataclass(slots=True)
class ModelRequest:
    """One model call: the model id within its provider, the context and the tools."""

    model: str
    messages: list[ChatMessage]
    instructions: str | None = None
    tools: list[ToolSpec] = field(default_factory=list)
    #: Sampling and other parameters passed through (``temperature``, ``max_tokens``, ...).
    parameters: dict[str, Any] = field(default_factory=dict)
    #: Tool choice, structured output and reasoning, in the neutral form.
    options: ModelOptions = field(default_factory=ModelOptions)


class Provider(Protocol):
    def stream(self, request: ModelRequest) -> AsyncGenerator[ModelEvent, None]:
        """Call the model and yield its events as they arrive. Closing the iterator
        (``aclose``) must stop the upstream call at once."""
        ...
