"""Shared value types of the vocabulary layer: run states, roles, tool specs and usage.

Imports nothing of ours. Everything here is plain data used by every layer, from the
provider adapters to the SDK.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator


class RunStatus(StrEnum):
    QUEUED = "queued"
    IN_PROGRESS = "in_progress"
    ACTION_REQUIRED = "action_required"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    INCOMPLETE = "incomplete"


#: States a run can still leave; at most one run per thread is in one of these.
ACTIVE_STATUSES = frozenset({RunStatus.QUEUED, RunStatus.IN_PROGRESS, RunStatus.ACTION_REQUIRED})
#: States a run never leaves.
TERMINAL_STATUSES = frozenset(set(RunStatus) - ACTIVE_STATUSES)


class Role(StrEnum):
    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"
    TOOL = "tool"


class ActionStatus(StrEnum):
    PENDING = "pending"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class FunctionSpec(BaseModel):
    """A tool the model may call: a name, a description and a JSON Schema for its arguments."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})

    @field_validator("parameters")
    @classmethod
    def _object_schema(cls, value: dict[str, Any]) -> dict[str, Any]:
        """The arguments are one JSON object: its schema must describe an object."""
        if value.get("type", "object") != "object":
            raise ValueError('a tool\'s parameters must be a JSON Schema with "type": "object"')
        if not isinstance(value.get("properties", {}), dict):
            raise ValueError('"properties" must be an object mapping names to schemas')
        if not isinstance(value.get("required", []), list):
            raise ValueError('"required" must be a list of property names')
        return value


class ToolSpec(BaseModel):
    """OpenAI-style tool entry: ``{"type": "function", "function": {...}}``."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(default="function", pattern="^function$")
    function: FunctionSpec


class ToolCall(BaseModel):
    """One call the model asked for, with its arguments parsed into a JSON object."""

    id: str
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class Usage(BaseModel):
    """Token counts. ``reasoning_tokens`` are part of ``output_tokens`` (those the model
    spent reasoning), ``cached_tokens`` part of ``input_tokens`` (those read from the
    provider's prompt cache); both are 0 where the provider does not say."""

    input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    cached_tokens: int = 0

    @classmethod
    def of(cls, counts: Any) -> Usage:
        """The counts of anything that keeps them as the four same-named attributes (an
        accumulator, a run)."""
        return cls(
            input_tokens=counts.input_tokens,
            output_tokens=counts.output_tokens,
            reasoning_tokens=counts.reasoning_tokens,
            cached_tokens=counts.cached_tokens,
        )

    def __add__(self, other: Usage) -> Usage:
        """The counts of both, added field by field."""
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            reasoning_tokens=self.reasoning_tokens + other.reasoning_tokens,
            cached_tokens=self.cached_tokens + other.cached_tokens,
        )


def image_type(data: bytes) -> str | None:
    """The image type (``image/png``, ``image/jpeg``, ``image/gif`` or ``image/webp``)
    that the data's first bytes show; None for anything else."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


# A user message keeps what it was given besides its text in one list (the ``images`` of a
# stored message), in order: an image is ``{"url": URL}`` (with the ``file_id`` it was
# read from, when it was given as a file); a file is ``{"type": "file", "filename": NAME,
# "file_id": ID}`` (one of the user's files) or ``{"type": "file", "filename": NAME,
# "file_data": DATA_URL}`` (given inline).


def image_urls(attachments: list[dict[str, Any]] | None) -> list[str]:
    """The URLs of a message's images, of what it keeps besides its text."""
    return [a["url"] for a in attachments or () if "url" in a]


def file_entries(attachments: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """A message's files, of what it keeps besides its text."""
    return [a for a in attachments or () if a.get("type") == "file"]
