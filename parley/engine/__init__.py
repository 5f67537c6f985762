"""The run engine: state machine, turn loop and run ownership. ``Engine`` and the
``TurnHandle`` it gives back are the interface every face uses (docs/architecture.md); the
package's modules are its inside.

These are the names a face may use, and no more: the engine and a turn's handle, the inputs
of a turn, a run's entries and the sink a stream may give a turn (``engine.tap``), a
model's profile, token counting, the estimate of a request's size, and the compaction item
the Responses face reads and makes (``engine.compaction``).
"""

from parley.engine.compaction import (
    COMPACTION_INSTRUCTIONS,
    COMPACTION_TYPE,
    LEAST_COMPACTION_THRESHOLD,
    SUMMARY_HEAD,
    compaction_item,
    decode_summary,
    marker_covers,
    summary_chat,
    transcript_line,
)
from parley.engine.context import (
    CHARS_PER_TOKEN,
    CONTEXT_LENGTH_EXCEEDED,
    always_sent,
    estimate,
)
from parley.engine.engine import Engine
from parley.engine.file_inputs import FileInputs
from parley.engine.handle import TurnHandle, TurnOutcome

# Hosted tools' names, whole modules whose insides the faces still reach: kept until the
# hosted tools' interface (``engine.hosted``) replaces them.
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
from parley.engine.hub import Entry
from parley.engine.inputs import Approval, NewMessage, RunConfig, ThreadTarget
from parley.engine.profile import ModelProfile
from parley.engine.tap import FrameSink
from parley.engine.tool_results import Decision, SubmittedAnswer
from parley.engine.usage import UsageCounter, UsageSource

__all__ = [
    "CHARS_PER_TOKEN",
    "COMPACTION_INSTRUCTIONS",
    "COMPACTION_TYPE",
    "CONTEXT_LENGTH_EXCEEDED",
    "LEAST_COMPACTION_THRESHOLD",
    "SUMMARY_HEAD",
    "Approval",
    "CodeInterpreterCall",
    "Decision",
    "Engine",
    "Entry",
    "FileInputs",
    "FileSearchCall",
    "FrameSink",
    "McpApprovalRequest",
    "McpApprovalResponse",
    "McpCall",
    "McpListTools",
    "ModelProfile",
    "NewMessage",
    "Record",
    "RunConfig",
    "SubmittedAnswer",
    "ThreadTarget",
    "TurnHandle",
    "TurnOutcome",
    "UsageCounter",
    "UsageSource",
    "WebSearchCall",
    "always_sent",
    "code_interpreter",  # a hosted tool's module (above)
    "compaction_item",
    "decode_summary",
    "estimate",
    "file_search",  # a hosted tool's module (above)
    "marker_covers",
    "record_of",
    "summary_chat",
    "transcript_line",
    "web_search",  # a hosted tool's module (above)
]
