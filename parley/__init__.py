"""Parley: a self-hostable assistants platform.

The public surface is the SDK (``Client``, ``AsyncClient``), the event vocabulary and the
error hierarchy; everything else is reached through its own subpackage.
"""

import typing as _typing

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
    RateLimited,
    ServiceUnavailable,
    UpstreamError,
    UpstreamTimeout,
    ValidationFailed,
)

if _typing.TYPE_CHECKING:
    from parley.events import (
        ActionItem,
        ContentDelta,
        DoneEvent,
        ErrorEvent,
        Event,
        ReasoningDelta,
        RunStatusEvent,
        ToolCallsEvent,
        ToolResultEvent,
        ToolStartEvent,
        UsageEvent,
        parse_event,
    )
    from parley.sdk import AsyncClient, Client, Decision, RunFailed, ToolLoopLimitExceeded
    from parley.types import RunStatus

#: Exports imported on first use, so ``import parley`` (and every ``parley`` command,
#: which imports the package first) does not load pydantic models and httpx up front.
_LAZY = {
    **dict.fromkeys(
        (
            "ActionItem",
            "ContentDelta",
            "DoneEvent",
            "ErrorEvent",
            "Event",
            "ReasoningDelta",
            "RunStatusEvent",
            "ToolCallsEvent",
            "ToolResultEvent",
            "ToolStartEvent",
            "UsageEvent",
            "parse_event",
        ),
        "parley.events",
    ),
    **dict.fromkeys(
        ("AsyncClient", "Client", "Decision", "RunFailed", "ToolLoopLimitExceeded"), "parley.sdk"
    ),
    "RunStatus": "parley.types",
}


def _lazy_getattr(
    namespace: dict[str, _typing.Any], exports: dict[str, str]
) -> _typing.Callable[[str], _typing.Any]:
    """The module ``__getattr__`` of a package whose ``exports`` (name: module) are imported
    on first use, then kept in its ``namespace`` (its ``globals()``)."""

    def __getattr__(name: str) -> _typing.Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {namespace['__name__']!r} has no attribute {name!r}")
        import importlib

        value = namespace[name] = getattr(importlib.import_module(module), name)
        return value

    return __getattr__


__getattr__ = _lazy_getattr(globals(), _LAZY)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


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
    "Decision",
    "DoneEvent",
    "ErrorEvent",
    "Event",
    "InternalError",
    "InvalidRequest",
    "NotFound",
    "ParleyError",
    "PayloadTooLarge",
    "PermissionDenied",
    "RateLimited",
    "ReasoningDelta",
    "RunFailed",
    "RunStatus",
    "RunStatusEvent",
    "ServiceUnavailable",
    "ToolCallsEvent",
    "ToolLoopLimitExceeded",
    "ToolResultEvent",
    "ToolStartEvent",
    "UpstreamError",
    "UpstreamTimeout",
    "UsageEvent",
    "ValidationFailed",
    "__version__",
    "parse_event",
]
