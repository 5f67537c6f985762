"""The Parley SDK: typed sync and async clients of a Parley server (``docs/sdk.md``).

Imports only the vocabulary (``parley.events``, ``parley.types``, ``parley.errors``,
``parley.client_settings``), never the server, engine, store or providers.
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
    ContentPart,
    Deleted,
    FunctionCall,
    FunctionDefinition,
    Image,
    ImagePart,
    Message,
    MessagePart,
    Page,
    RequiredAction,
    RequiredToolCall,
    RespondResult,
    Run,
    RunError,
    RunUsage,
    SubmitToolOutputs,
    Text,
    TextPart,
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
    "ContentPart",
    "Deleted",
    "FunctionCall",
    "FunctionDefinition",
    "Image",
    "ImagePart",
    "InferenceStream",
    "Message",
    "MessagePart",
    "Page",
    "RequiredAction",
    "RequiredToolCall",
    "RespondResult",
    "Run",
    "RunError",
    "RunUsage",
    "SSEDecoder",
    "ServerSentEvent",
    "Stream",
    "SubmitToolOutputs",
    "Text",
    "TextPart",
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
