"""Request schemas of the Assistants resources: assistants, threads, messages."""

from __future__ import annotations

from typing import Any

from pydantic import (
    Field,
)

from parley.server.faces.kit.bodies import (
    Body,
    MessageCreate,
    Metadata,
    Parameters,
    ReasoningEffort,
    ToolResources,
    Tools,
)

#: ``provider/model-id``; the demo model is always there.
_MODEL_EXAMPLES = ["demo/parley", "openai/gpt-4o-mini"]


class _AssistantFields(Tools):
    """What an assistant is: its model, instructions, tools and the defaults of its runs."""

    description: str | None = Field(default=None, max_length=512)
    instructions: str | None = Field(default=None, max_length=256_000)
    tool_resources: ToolResources = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    #: ``"auto"``, or ``{"type": "text" | "json_object" | "json_schema", ...}`` as in Chat
    #: Completions.
    response_format: str | dict[str, Any] | None = None
    reasoning_effort: ReasoningEffort | None = None


class AssistantCreate(_AssistantFields):
    model: str = Field(min_length=3, max_length=256, examples=_MODEL_EXAMPLES)
    name: str | None = Field(default=None, max_length=256, examples=["Helper"])
    #: Parley: other parameters its runs send the model (``max_tokens``, ...).
    parameters: Parameters = Field(default_factory=dict)
    metadata: Metadata = Field(default_factory=dict)


class AssistantUpdate(_AssistantFields):
    name: str | None = Field(default=None, max_length=256)
    model: str | None = Field(default=None, min_length=3, max_length=256, examples=_MODEL_EXAMPLES)
    parameters: Parameters | None = None
    metadata: Metadata | None = None


class MessageUpdate(Body):
    metadata: Metadata | None = None


class ThreadUpdate(Body):
    metadata: Metadata | None = None
    tool_resources: ToolResources = None


class MessageCreateFlat(MessageCreate):
    thread_id: str
