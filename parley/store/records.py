"""Typed rows: what the store's data functions return (one dataclass per table)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Self

from parley.types import Usage


class _Record:
    @classmethod
    def from_row(cls, row: Any) -> Self:
        return cls.of(row._mapping)

    @classmethod
    def of(cls, values: Any) -> Self:
        """The record of a row's values by column name (those of its fields)."""
        return cls(**{name: values[name] for name in _names(cls)})

    def values(self) -> dict[str, Any]:
        """Column values, for an insert."""
        return {name: getattr(self, name) for name in _names(type(self))}


_NAMES: dict[type, tuple[str, ...]] = {}


def _names(cls: type) -> tuple[str, ...]:
    """The names of a record's fields (``dataclasses.fields`` looks them up every time)."""
    names = _NAMES.get(cls)
    if names is None:
        names = _NAMES[cls] = tuple(f.name for f in fields(cls))
    return names


@dataclass(slots=True)
class User(_Record):
    id: str
    name: str
    is_admin: bool
    created_at: float
    #: When an admin disabled the user (None: enabled); its keys do not authenticate.
    disabled_at: float | None = None


@dataclass(slots=True)
class ApiKey(_Record):
    id: str
    user_id: str
    prefix: str
    created_at: float
    last_used_at: float | None
    revoked_at: float | None
    #: When the key stops authenticating (None: never).
    expires_at: float | None = None
    #: Input plus output tokens the key may use per UTC day (None: no budget).
    daily_token_budget: int | None = None


@dataclass(slots=True)
class Assistant(_Record):
    id: str
    user_id: str
    name: str
    model: str
    instructions: str | None
    tools: list[dict[str, Any]]
    parameters: dict[str, Any]
    metadata: dict[str, Any]
    created_at: float
    description: str | None = None
    options: dict[str, Any] | None = None


@dataclass(slots=True)
class Thread(_Record):
    id: str
    user_id: str
    metadata: dict[str, Any]
    created_at: float


@dataclass(slots=True)
class Message(_Record):
    id: str
    thread_id: str
    seq: int
    role: str
    content: str
    reasoning: str | None
    tool_calls: list[dict[str, Any]] | None
    tool_call_id: str | None
    run_id: str | None
    created_at: float
    images: list[dict[str, Any]] | None = None
    provider_state: dict[str, Any] | None = None
    phase: str | None = None
    #: The order of an assistant message's reasoning and text (``tables.messages``).
    layout: list[list[Any]] | None = None
    metadata: dict[str, Any] | None = None
    #: The tokens of the model call that wrote it (``tables.messages``), as ``Usage`` fields.
    usage: dict[str, int] | None = None
    #: A hosted tool's item (``tables.messages``).
    item: dict[str, Any] | None = None


@dataclass(slots=True)
class Run(_Record):
    id: str
    user_id: str
    thread_id: str
    assistant_id: str | None
    model: str
    instructions: str | None
    tools: list[dict[str, Any]]
    parameters: dict[str, Any]
    status: str
    input_tokens: int
    output_tokens: int
    #: Of the output tokens, those spent reasoning; of the input, those read from the
    #: provider's prompt cache.
    reasoning_tokens: int
    cached_tokens: int
    error_code: str | None
    error_message: str | None
    last_seq: int
    created_at: float
    started_at: float | None
    completed_at: float | None
    expires_at: float | None
    #: When its turn paused for tool outputs (None once they start its next turn).
    paused_at: float | None = None
    metadata: dict[str, Any] | None = None
    options: dict[str, Any] | None = None
    request: dict[str, Any] | None = None
    #: The thread's messages its last model call left out (None before its first call).
    dropped_messages: int | None = None
    #: When its event log was pruned (``store.retention``); None while it is whole.
    events_pruned_at: float | None = None

    @property
    def usage(self) -> Usage:
        """The tokens of every model call of the run."""
        return Usage.of(self)


@dataclass(slots=True)
class Action(_Record):
    id: str
    run_id: str
    tool_call_id: str
    position: int
    name: str
    arguments: dict[str, Any]
    status: str
    output: str | None
    created_at: float
    #: None: a client's tool call; ``approval``: a hosted call awaiting approval.
    kind: str | None = None


@dataclass(slots=True)
class StoredEvent(_Record):
    seq: int
    type: str
    data: str


@dataclass(slots=True)
class StoredFile(_Record):
    """A file uploaded through ``/v1/files`` or completed from an upload."""

    id: str
    user_id: str
    filename: str
    purpose: str
    bytes: int
    created_at: float
    expires_at: float | None
    sha256: str
    mime_type: str | None
    #: Where its bytes live: ``local`` or ``database``, under ``storage_key``.
    storage: str
    storage_key: str


@dataclass(slots=True)
class Upload(_Record):
    """A file uploaded in parts (``/v1/uploads``)."""

    id: str
    user_id: str
    filename: str
    purpose: str
    bytes: int
    mime_type: str
    status: str
    created_at: float
    expires_at: float
    file_expires_after: int | None
    file_id: str | None


@dataclass(slots=True)
class UploadPart(_Record):
    id: str
    upload_id: str
    created_at: float
    bytes: int
    storage: str
    storage_key: str


@dataclass(slots=True)
class VectorStore(_Record):
    """A vector store (``/v1/vector_stores``): a named set of files search finds."""

    id: str
    user_id: str
    name: str | None
    metadata: dict[str, Any]
    created_at: float
    last_active_at: float
    expires_after_days: int | None
    expires_at: float | None
    #: The embedding model (``provider/model``) of its chunks; none: words only.
    embedding_model: str | None
    #: The thread whose attachments made it (Assistants v2), if one did.
    thread_id: str | None
    #: What the store is for (``description`` at its creation).
    description: str | None = None


@dataclass(slots=True)
class VectorStoreFile(_Record):
    """A file in a vector store, and where its indexing stands."""

    vector_store_id: str
    file_id: str
    user_id: str
    created_at: float
    #: ``in_progress``, ``completed``, ``failed`` or ``cancelled``.
    status: str
    last_error: dict[str, Any] | None
    attributes: dict[str, Any]
    chunking_strategy: dict[str, Any]
    usage_bytes: int
    batch_id: str | None
    lease_owner: str | None
    lease_until: float | None
    attempts: int
    #: The API key (its SHA-256) that attached it, whose usage counts its embedding.
    key_hash: str | None = None


@dataclass(slots=True)
class Container(_Record):
    """A container (``/v1/containers``): where the ``code_interpreter`` tool runs Python."""

    id: str
    user_id: str
    name: str
    #: ``running`` or ``expired``.
    status: str
    memory_limit: str
    expires_after_minutes: int
    created_at: float
    last_active_at: float
    #: ``api`` or ``auto`` (made by a ``code_interpreter`` tool for a thread).
    origin: str
    thread_id: str | None
    #: The server node that runs its Python now, if one does.
    home: str | None
    #: The API key (its SHA-256) that made it.
    key_hash: str | None

    @property
    def expires_at(self) -> float:
        return self.last_active_at + self.expires_after_minutes * 60


@dataclass(slots=True)
class ContainerFile(_Record):
    """A file in a container, at ``path`` (``/mnt/data/...``)."""

    id: str
    container_id: str
    user_id: str
    path: str
    #: ``user`` or ``assistant``.
    source: str
    bytes: int
    storage: str
    storage_key: str
    sha256: str
    created_at: float
    updated_at: float


@dataclass(slots=True)
class WebhookEndpoint(_Record):
    """Where a user's run-end events are POSTed (``/v1/webhooks``)."""

    id: str
    user_id: str
    url: str
    events: list[str]
    description: str | None
    #: ``whsec_...``: shown when it is made and when it is rotated, never listed.
    secret: str
    created_at: float


@dataclass(slots=True)
class WebhookAttempt(_Record):
    """One attempt of a delivery: the HTTP status it got, or the error, and its time."""

    delivery_id: str
    number: int
    at: float
    status_code: int | None
    error: str | None
    duration_ms: float


@dataclass(slots=True)
class WebhookDelivery(_Record):
    """One event for one endpoint, from the outbox (``store.webhooks``)."""

    id: str
    endpoint_id: str
    user_id: str
    event_id: str
    event_type: str
    payload: str
    #: ``pending``, ``delivered`` or ``failed``.
    status: str
    attempts: int
    created_at: float
    next_attempt_at: float | None
    lease_owner: str | None
    retry_until: float | None
    last_status_code: int | None
    last_error: str | None
    delivered_at: float | None
