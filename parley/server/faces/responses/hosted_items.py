"""The server's hosted items as the Responses API shows them, from what a run stores: a
tool list (``mcp_list_tools``), a call the server ran (``mcp_call``), a call that waits for
the client's approval (``mcp_approval_request``), a file search (``file_search_call``,
its ``results`` null unless the request's ``include`` asked for them), a code interpreter
call (``code_interpreter_call``, its ``outputs`` null unless asked for likewise); and the
``file_citation`` and ``container_file_citation`` annotations of an answer's text
(``citations_of``)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from parley.engine import (
    CodeInterpreterCall,
    FileSearchCall,
    McpApprovalRequest,
    McpApprovalResponse,
    McpListTools,
    WebSearchCall,
    cited_files,
    cited_pages,
    file_citations,
    page_citations,
    written_file_citations,
    written_files,
)
from parley.server.faces.kit.hosted import INCLUDE_OUTPUTS, INCLUDE_RESULTS, INCLUDE_SOURCES

#: What a ``file_search_call`` item keeps that the API does not show.
_SEARCH_ONLY = ("show_results", "error", "call_id")
#: What a ``code_interpreter_call`` item keeps that the API does not show.
_CODE_ONLY = (
    "show_outputs",
    "error",
    "call_id",
    "files",
    "restarted",
    "skipped",
    "skipped_total",
    "removed",
    "limit",
)
#: What a listed MCP tool leaves out when it has none.
_TOOL_OPTIONAL = frozenset(("description", "annotations"))
#: What a ``web_search_call`` item keeps that the API does not show.
_WEB_ONLY = ("show_sources", "error", "call_id", "pages")


def hosted_item(item: dict[str, Any], *, include: Collection[str] = ()) -> dict[str, Any]:
    """A hosted tool's stored item as the API shows it (``SHOWN``: by record type): a tool
    list has no status; a file search shows its results, a code interpreter call its
    outputs, a web search its sources, only when asked to (by the request that made it,
    or by a later read's ``include``). A type the table does not have shows as stored."""
    shown = SHOWN.get(str(item.get("type")))
    return dict(item) if shown is None else shown(item, include)


def _approval_response(item: dict[str, Any], include: Collection[str]) -> dict[str, Any]:
    """An approval's answer: kept with "reason": null before it was left out."""
    return {k: v for k, v in item.items() if not (k == "reason" and v is None)}


def _web_search(item: dict[str, Any], include: Collection[str]) -> dict[str, Any]:
    shown = {k: v for k, v in item.items() if k not in _WEB_ONLY}
    if not (INCLUDE_SOURCES in include or item.get("show_sources")):
        shown["action"] = {k: v for k, v in item["action"].items() if k != "sources"}
    return shown


def _compaction(item: dict[str, Any], include: Collection[str]) -> dict[str, Any]:
    """A compaction marker's: what it covers is the server's own."""
    return {k: v for k, v in item.items() if k != "covers"}


def _file_search(item: dict[str, Any], include: Collection[str]) -> dict[str, Any]:
    shown = {k: v for k, v in item.items() if k not in _SEARCH_ONLY}
    if not (INCLUDE_RESULTS in include or item.get("show_results")):
        shown["results"] = None
    return shown


def _code_call(item: dict[str, Any], include: Collection[str]) -> dict[str, Any]:
    """A code call, its image outputs each its ``url`` (a ``data:`` URL of the PNG), as
    OpenAI's shape has it."""
    shown = {k: v for k, v in item.items() if k not in _CODE_ONLY}
    if not (INCLUDE_OUTPUTS in include or item.get("show_outputs")):
        shown["outputs"] = None
    elif shown.get("outputs") is not None:
        shown["outputs"] = [
            {"type": "image", "url": o["url"]} if o.get("type") == "image" else o
            for o in shown["outputs"]
        ]
    return shown


def tool_list(item: dict[str, Any]) -> dict[str, Any]:
    """An ``mcp_list_tools`` item as OpenAI shows it: no status, and no ``error`` (nor a
    tool's ``description`` or ``annotations``) unless it has one. Lists stored before the
    engine left those out hold them as null; a list given back before its tools were
    checked (``hosted_input._tools_given``) is shown as it was given."""
    shown = {k: v for k, v in item.items() if k != "status" and not (k == "error" and v is None)}
    tools = item.get("tools") or []
    if isinstance(tools, list):
        shown["tools"] = [
            {k: v for k, v in tool.items() if v is not None or k not in _TOOL_OPTIONAL}
            if isinstance(tool, dict)
            else tool
            for tool in tools
        ]
    return shown


def _file_citations(text: str, files: Mapping[str, str]) -> list[tuple[int, dict[str, Any]]]:
    """A ``file_citation`` where ``text`` names a file the searches found (id by name), its
    ``index`` just after the mention."""
    return [
        (
            c.end,
            {"type": "file_citation", "file_id": c.file_id, "filename": c.filename, "index": c.end},
        )
        for c in file_citations(text, files)
    ]


def _container_citations(
    text: str, written: Mapping[str, tuple[str, str]]
) -> list[tuple[int, dict[str, Any]]]:
    """A ``container_file_citation`` where ``text`` names a file the code wrote (container
    and file id by path and by name), spanning the mention."""
    return [
        (
            w.start,
            {
                "type": "container_file_citation",
                "container_id": w.container_id,
                "file_id": w.file_id,
                "filename": w.filename,
                "start_index": w.start,
                "end_index": w.end,
            },
        )
        for w in written_file_citations(text, written)
    ]


def _url_citations(text: str, pages: Mapping[str, str]) -> list[tuple[int, dict[str, Any]]]:
    """A ``url_citation`` where ``text`` names a page the web searches found (title by
    URL), spanning the mention."""
    return [
        (
            p.start,
            {
                "type": "url_citation",
                "url": p.url,
                "title": p.title,
                "start_index": p.start,
                "end_index": p.end,
            },
        )
        for p in page_citations(text, pages)
    ]


@dataclass(frozen=True, slots=True)
class Cited:
    """What the items of one record type give an answer's citations: what they found
    (``found``: by the name a text cites it), and the annotations a text makes of it, each
    with its place."""

    found: Callable[[Mapping[str, Any]], Mapping[str, Any]]
    annotations: Callable[[str, Any], list[tuple[int, dict[str, Any]]]]


#: The face's table of the records an answer's text may cite, by record type. A new kind
#: adds its entry when its calls find what an answer cites.
CITED: dict[str, Cited] = {
    FileSearchCall.type: Cited(lambda item: cited_files([item]), _file_citations),
    CodeInterpreterCall.type: Cited(lambda item: written_files([item]), _container_citations),
    WebSearchCall.type: Cited(lambda item: cited_pages([item]), _url_citations),
}


@dataclass(slots=True)
class Found:
    """What a response's hosted calls found so far that its text may cite, by record type
    (``CITED``)."""

    by_type: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, item: Mapping[str, Any]) -> None:
        """What one stored item found (nothing, for a type that finds nothing to cite)."""
        kind = str(item.get("type"))
        cited = CITED.get(kind)
        if cited is not None:
            self.by_type.setdefault(kind, {}).update(cited.found(item))

    def __bool__(self) -> bool:
        return any(self.by_type.values())


def citations_of(text: str, found: Found) -> list[dict[str, Any]]:
    """The annotations of an answer's ``text`` (``CITED``), in the order of their places."""
    pairs = [
        pair
        for kind, cited in CITED.items()
        if found.by_type.get(kind)
        for pair in cited.annotations(text, found.by_type[kind])
    ]
    pairs.sort(key=lambda pair: pair[0])
    return [annotation for _, annotation in pairs]


def with_citations(item: dict[str, Any], found: Found) -> dict[str, Any]:
    """A ``message`` output item, its text annotated with ``citations_of``."""
    if not found or item.get("type") != "message":
        return item
    content = [
        {**part, "annotations": citations_of(part["text"], found)}
        if part.get("type") == "output_text"
        else part
        for part in item.get("content") or ()
    ]
    return {**item, "content": content}


def approval_request_item(
    hosted: dict[str, Any], arguments: dict[str, Any] | str
) -> dict[str, Any]:
    """The ``mcp_approval_request`` of a hosted call that waits for the client's approval
    (its ``hosted`` mark: server, tool, and the request's id)."""
    if not isinstance(arguments, str):
        arguments = orjson.dumps(arguments).decode()
    return McpApprovalRequest(
        id=hosted["approval_request_id"],
        server_label=hosted["server_label"],
        name=hosted["name"],
        arguments=arguments,
    ).to_stored()


#: The face's table of stored hosted records: how each type shows as an output item. A new
#: kind adds its entry.
SHOWN: dict[str, Callable[[dict[str, Any], Collection[str]], dict[str, Any]]] = {
    McpListTools.type: lambda item, include: tool_list(item),
    McpApprovalResponse.type: _approval_response,
    FileSearchCall.type: _file_search,
    CodeInterpreterCall.type: _code_call,
    WebSearchCall.type: _web_search,
    "compaction": _compaction,
}
