"""The Parley SDK: typed sync and async clients of a Parley server (``docs/sdk.md``).

Imports only the vocabulary (``parley.events``, ``parley.types``, ``parley.errors``,
``parley.config``), never the server, engine, store or providers.
"""

from parley.sdk._async_resources import AsyncInferenceStream
from parley.sdk._calls import normalize_tools
from parley.sdk._loops import ToolLoopLimitExceeded, TurnAccumulator
from parley.sdk._resources import InferenceStream
from parley.sdk.async_client import AsyncClient
from parley.sdk.client import Client
from parley.sdk.images import image_data_url
from parley.sdk.models import (
    Action,
    ActionItem,
    ApiKey,
    ApiKeyCreated,
    Assistant,
    Deleted,
    FunctionDefinition,
    Image,
    Message,
    Page,
    RequiredAction,
    RespondResult,
    Run,
    RunError,
    Thread,
    ToolCall,
    ToolDefinition,
    ToolResult,
    TurnResult,
    Usage,
    User,
    UserCreated,
)
from parley.sdk.stream import AsyncStream, ServerSentEvent, SSEDecoder, Stream
from parley.sdk.tools import Tool, ToolRegistry, schema_of

__all__ = [
    "Action",
    "ActionItem",
    "ApiKey",
    "ApiKeyCreated",
    "Assistant",
    "AsyncClient",
    "AsyncInferenceStream",
    "AsyncStream",
    "Client",
    "Deleted",
    "FunctionDefinition",
    "Image",
    "InferenceStream",
    "Message",
    "Page",
    "RequiredAction",
    "RespondResult",
    "Run",
    "RunError",
    "SSEDecoder",
    "ServerSentEvent",
    "Stream",
    "Thread",
    "Tool",
    "ToolCall",
    "ToolDefinition",
    "ToolLoopLimitExceeded",
    "ToolRegistry",
    "ToolResult",
    "TurnAccumulator",
    "TurnResult",
    "Usage",
    "User",
    "UserCreated",
    "image_data_url",
    "normalize_tools",
    "schema_of",
]
