"""The run engine: state machine, turn loop and run ownership. ``Engine`` and the
``TurnHandle`` it gives back are the interface every face uses (docs/architecture.md); the
package's modules are its inside.

These are the names a face may use, and no more: the engine and a turn's handle, the inputs
of a turn, a run's entries and the sink a stream may give a turn (``engine.tap``), a
model's profile, token counting, the estimate of a request's size, and the compaction item
the Responses face reads and makes (``engine.compaction``); and of the hosted tools, what
the faces' tables need: a kind by its name (``kind_named``: the function the model sees,
what it was told of a call), the entry types a kind serves, what a ``tool_choice`` naming
one forces, a file search's entry keys, and the citations of an answer's text where it
names a file searched, a page found or a file the code wrote.
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
from parley.engine.hosted.code_interpreter import citations as written_file_citations
from parley.engine.hosted.code_interpreter import written_files
from parley.engine.hosted.file_search import DEFAULT_RESULTS as FILE_SEARCH_DEFAULT_RESULTS
from parley.engine.hosted.file_search import THREAD_STORES as FILE_SEARCH_THREAD_STORES
from parley.engine.hosted.file_search import citations as file_citations
from parley.engine.hosted.file_search import cited_files
from parley.engine.hosted.kinds import chosen_functions, entry_types, kind_named
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
from parley.engine.hosted.web_search import citations as page_citations
from parley.engine.hosted.web_search import cited_pages
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
    "FILE_SEARCH_DEFAULT_RESULTS",
    "FILE_SEARCH_THREAD_STORES",
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
    "chosen_functions",
    "cited_files",
    "cited_pages",
    "compaction_item",
    "decode_summary",
    "entry_types",
    "estimate",
    "file_citations",
    "kind_named",
    "marker_covers",
    "page_citations",
    "record_of",
    "summary_chat",
    "transcript_line",
    "written_file_citations",
    "written_files",
]
