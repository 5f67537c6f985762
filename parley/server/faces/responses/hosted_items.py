"""The server's hosted items as the Responses API shows them, from what a run stores: a
tool list (``mcp_list_tools``), a call the server ran (``mcp_call``), a call that waits for
the client's approval (``mcp_approval_request``), a file search (``file_search_call``,
its ``results`` null unless the request's ``include`` asked for them); and the
``file_citation`` annotations of an answer's text (``citations_of``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from parley.engine import file_search

#: What a ``file_search_call`` item keeps that the API does not show.
_SEARCH_ONLY = ("show_results", "error", "call_id")


def hosted_item(item: dict[str, Any], *, results: bool = False) -> dict[str, Any]:
    """A hosted tool's stored item as the API shows it: a tool list has no status; a file
    search shows its results only when asked to (by the request that made it, or with
    ``results``: a later read's ``include``)."""
    kind = item.get("type")
    if kind == "mcp_list_tools":
        return {k: v for k, v in item.items() if k != "status"}
    if kind == "file_search_call":
        shown = {k: v for k, v in item.items() if k not in _SEARCH_ONLY}
        if not (results or item.get("show_results")):
            shown["results"] = None
        return shown
    return dict(item)


def citations_of(text: str, files: Mapping[str, str]) -> list[dict[str, Any]]:
    """The ``file_citation`` annotations of an answer's ``text``: one where it names a file
    the response's searches found (``files``: id by name), its ``index`` just after the
    mention."""
    return [
        {"type": "file_citation", "file_id": c.file_id, "filename": c.filename, "index": c.end}
        for c in file_search.citations(text, files)
    ]


def with_citations(item: dict[str, Any], files: Mapping[str, str]) -> dict[str, Any]:
    """A ``message`` output item, its text annotated with ``citations_of``."""
    if not files or item.get("type") != "message":
        return item
    content = [
        {**part, "annotations": citations_of(part["text"], files)}
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
    return {
        "type": "mcp_approval_request",
        "id": hosted["approval_request_id"],
        "server_label": hosted["server_label"],
        "name": hosted["name"],
        "arguments": arguments,
    }
