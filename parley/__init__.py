"""Parley: a self-hostable assistants platform.

The public surface is the SDK (``Client``, ``AsyncClient``), the event vocabulary and the
error hierarchy; everything else is reached through its own subpackage.
"""

from parley.errors import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationFailed,
    Conflict,
    InternalError,
    InvalidRequest,
    NotFound,
    ParleyError,
    PayloadTooLarge,
    PermissionDenied,
    ServiceUnavailable,
    UpstreamError,
    UpstreamTimeout,
    ValidationFailed,
)
from parley.events import (
    ActionItem,
    ContentDelta,
    DoneEvent,
    ErrorEvent,
    Event,
    ReasoningDelta,
    RunStatusEvent,
    ToolCallsEvent,
    UsageEvent,
    parse_event,
)
from parley.sdk import AsyncClient, Client, ToolLoopLimitExceeded
from parley.types import RunStatus

__version__ = "0.1.0"

__all__ = [
    "APIConnectionError",
    "APITimeoutError",
    "ActionItem",
    "AsyncClient",
    "AuthenticationFailed",
    "Client",
    "Conflict",
    "ContentDelta",
    "DoneEvent",
    "ErrorEvent",
    "Event",
    "InternalError",
    "InvalidRequest",
    "NotFound",
    "ParleyError",
    "PayloadTooLarge",
    "PermissionDenied",
    "ReasoningDelta",
    "RunStatus",
    "RunStatusEvent",
    "ServiceUnavailable",
    "ToolCallsEvent",
    "ToolLoopLimitExceeded",
    "UpstreamError",
    "UpstreamTimeout",
    "UsageEvent",
    "ValidationFailed",
    "__version__",
    "parse_event",
]
