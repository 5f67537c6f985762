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
class ChatMessage:
    role: Role
    content: str = ""
    reasoning: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str | None = None
    #: Image URLs of a user message: ``data:image/...;base64,...`` or ``http(s)://``.
    images: list[str] = field(default_factory=list)
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


@dataclass(slots=True)
class ModelRequest:
    """One model call: the model id within its provider, the context and the tools."""

    model: str
    messages: list[ChatMessage]
    instructions: str | None = None
    tools: list[ToolSpec] = field(default_factory=list)
    #: Sampling and other parameters passed through (``temperature``, ``max_tokens``, ...).
    parameters: dict[str, Any] = field(default_factory=dict)


class Provider(Protocol):
    def stream(self, request: ModelRequest) -> AsyncGenerator[ModelEvent, None]:
        """Call the model and yield its events as they arrive. Closing the iterator
        (``aclose``) must stop the upstream call at once."""
        ...
