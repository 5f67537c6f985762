"""The run engine: state machine, turn loop and run ownership. ``Engine`` and the
``TurnHandle`` it gives back are the interface every face uses (docs/architecture.md); the
package's modules are its inside."""

from parley.engine import compaction
from parley.engine.context import (
    CHARS_PER_TOKEN,
    CONTEXT_LENGTH_EXCEEDED,
    always_sent,
    estimate,
)
from parley.engine.engine import Engine
from parley.engine.file_inputs import FileInputs
from parley.engine.handle import TurnHandle, TurnOutcome
from parley.engine.hosted import code_interpreter, file_search, web_search
from parley.engine.hosted.records import (
    CodeInterpreterCall,
    FileSearchCall,
    McpApprovalRequest,
    McpApprovalResponse,
    McpCall,
    McpListTools,
    Record,
    WebSearchCall,
    record_of,
)
from parley.engine.hub import Entry, Tap
from parley.engine.inputs import Approval, NewMessage, RunConfig, ThreadTarget
from parley.engine.profile import ModelProfile
from parley.engine.usage import UsageCounter, UsageSource

__all__ = [
    "CHARS_PER_TOKEN",
    "CONTEXT_LENGTH_EXCEEDED",
    "Approval",
    "CodeInterpreterCall",
    "Engine",
    "Entry",
    "FileInputs",
    "FileSearchCall",
    "McpApprovalRequest",
    "McpApprovalResponse",
    "McpCall",
    "McpListTools",
    "ModelProfile",
    "NewMessage",
    "Record",
    "RunConfig",
    "Tap",
    "ThreadTarget",
    "TurnHandle",
    "TurnOutcome",
    "UsageCounter",
    "UsageSource",
    "WebSearchCall",
    "always_sent",
    "code_interpreter",
    "compaction",
    "estimate",
    "file_search",
    "record_of",
    "web_search",
]
