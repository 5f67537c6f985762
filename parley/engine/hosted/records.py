"""The typed records of what hosted tools do, as a run stores them: tool lists, calls,
approvals.

The engine builds records, never a face's shapes; each face turns a record into its own
(the Responses face's items and events, the Assistants face's run steps) through one table
keyed by record type. A record is stored as a JSON object (``to_stored``: the message's
``item``), read back by ``record_of``; the stored form is the one rows already hold, so
databases written before records existed read as they did.

A record's fields are its stored keys, in order, after its ``type``; those named in
``OPTIONAL`` are left out while they are None (or False). Keys a record does not know (an
item a client gave back with more in it) are kept in ``extra`` and stored after the
others.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Self


@dataclass(slots=True, kw_only=True)
class Record:
    """One hosted item, typed."""

    #: The stored ``type``, and the keys left out while they hold nothing.
    type: ClassVar[str]
    OPTIONAL: ClassVar[frozenset[str]] = frozenset()

    id: str
    #: Stored keys this record does not know, kept as they were.
    extra: dict[str, Any] = field(default_factory=dict)

    def to_stored(self) -> dict[str, Any]:
        """The record as a run stores it (a message's ``item``)."""
        stored: dict[str, Any] = {"type": self.type}
        for f in fields(self):
            if f.name == "extra":
                continue
            value = getattr(self, f.name)
            if f.name in self.OPTIONAL and (value is None or value is False):
                continue
            stored[f.name] = value
        return {**stored, **self.extra}

    @classmethod
    def from_stored(cls, item: Mapping[str, Any]) -> Self:
        """The record of a stored item of its ``type``."""
        known = {f.name: f for f in fields(cls) if f.name != "extra"}
        given = {k: v for k, v in item.items() if k in known}
        extra = {k: v for k, v in item.items() if k not in known and k != "type"}
        return cls(**given, extra=extra)


@dataclass(slots=True, kw_only=True)
class McpListTools(Record):
    """An MCP server's tools, as listed for a conversation (``error``: why it could not)."""

    type: ClassVar[str] = "mcp_list_tools"
    OPTIONAL: ClassVar[frozenset[str]] = frozenset({"error"})

    server_label: str = ""
    #: Each tool: its ``name`` and ``input_schema``, its ``description`` and
    #: ``annotations`` when it has them.
    tools: list[dict[str, Any]] = field(default_factory=list)
    status: str = "in_progress"
    error: str | None = None


@dataclass(slots=True, kw_only=True)
class McpCall(Record):
    """A call of an MCP server's tool the server ran: its arguments (JSON text), and its
    output or error."""

    type: ClassVar[str] = "mcp_call"

    server_label: str = ""
    name: str = ""
    arguments: str = "{}"
    output: str | None = None
    error: dict[str, Any] | None = None
    status: str = "in_progress"
    approval_request_id: str | None = None


@dataclass(slots=True, kw_only=True)
class McpApprovalRequest(Record):
    """A call that waits for the client's approval (its ``id`` is the request's)."""

    type: ClassVar[str] = "mcp_approval_request"

    server_label: str = ""
    name: str = ""
    arguments: str = "{}"


@dataclass(slots=True, kw_only=True)
class McpApprovalResponse(Record):
    """The client's answer to an approval request."""

    type: ClassVar[str] = "mcp_approval_response"
    OPTIONAL: ClassVar[frozenset[str]] = frozenset({"reason"})

    approval_request_id: str = ""
    approve: bool = False
    reason: str | None = None


@dataclass(slots=True, kw_only=True)
class FileSearchCall(Record):
    """A search of the user's files: its queries, and its results (kept whatever
    ``show_results`` says: whether the request asked to see them)."""

    type: ClassVar[str] = "file_search_call"
    OPTIONAL: ClassVar[frozenset[str]] = frozenset({"error", "unindexed", "unindexed_more"})

    queries: list[str] = field(default_factory=list)
    status: str = "in_progress"
    results: list[dict[str, Any]] | None = None
    show_results: bool = False
    #: The model's call (the Assistants API names a run step's call by it).
    call_id: str | None = None
    error: str | None = None
    #: The files of the thread's stores the search could not find, and how many more.
    unindexed: list[dict[str, Any]] | None = None
    unindexed_more: int | None = None


@dataclass(slots=True, kw_only=True)
class CodeInterpreterCall(Record):
    """Code run in a container: its outputs (logs, images), and the files it wrote."""

    type: ClassVar[str] = "code_interpreter_call"
    OPTIONAL: ClassVar[frozenset[str]] = frozenset(
        {"error", "limit", "restarted", "skipped", "skipped_total", "removed"}
    )

    status: str = "in_progress"
    code: str = ""
    container_id: str | None = None
    outputs: list[dict[str, Any]] | None = None
    show_outputs: bool = False
    call_id: str | None = None
    files: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    limit: str | None = None
    restarted: bool = False
    skipped: list[dict[str, Any]] | None = None
    skipped_total: int | None = None
    removed: dict[str, Any] | None = None


@dataclass(slots=True, kw_only=True)
class WebSearchCall(Record):
    """A search of the web: its ``action`` (the query, and the pages as ``sources``), and
    what the model read of the pages (``pages``)."""

    type: ClassVar[str] = "web_search_call"
    OPTIONAL: ClassVar[frozenset[str]] = frozenset({"pages", "error"})

    status: str = "in_progress"
    action: dict[str, Any] = field(default_factory=dict)
    show_sources: bool = False
    call_id: str | None = None
    pages: list[dict[str, Any]] | None = None
    error: str | None = None


#: The record class of each stored hosted item type; a new kind adds its own
#: (``register``).
RECORDS: dict[str, type[Record]] = {
    r.type: r
    for r in (
        McpListTools,
        McpCall,
        McpApprovalRequest,
        McpApprovalResponse,
        FileSearchCall,
        CodeInterpreterCall,
        WebSearchCall,
    )
}


def record_of(item: Mapping[str, Any]) -> Record | None:
    """The record of a stored item; None when it is no hosted tool's (a compaction
    marker, say)."""
    kind = RECORDS.get(str(item.get("type")))
    return None if kind is None else kind.from_stored(item)
