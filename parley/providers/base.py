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
