"""The Responses events of the tools the server runs (``engine.hosted``), from the run's
``hosted_tool`` events and the approvals of its manifest.

An MCP server's tool list: ``output_item.added``, ``mcp_list_tools.in_progress``, then
``mcp_list_tools.completed`` (or ``.failed``) and ``output_item.done``. A call the server
runs: ``output_item.added`` (its arguments still empty), ``mcp_call.in_progress``,
``mcp_call_arguments.delta`` and ``.done``, then ``mcp_call.completed`` (or ``.failed``)
and ``output_item.done``, in OpenAI's order. A call waiting for the client's approval: its
``mcp_approval_request`` item, added and done. A file search: ``output_item.added``,
``file_search_call.in_progress`` and ``.searching``, then ``file_search_call.completed``
(unless it failed) and ``output_item.done``; the files it found are kept (``files``) for
the citations of the text that follows. A code interpreter call: ``output_item.added``,
``code_interpreter_call.in_progress``, ``code_interpreter_call_code.delta`` and ``.done``,
``code_interpreter_call.interpreting``, then ``code_interpreter_call.completed`` and
``output_item.done``; the files its code wrote are kept (``written``) for the
``container_file_citation`` annotations of the text that follows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from parley.engine import code_interpreter, file_search, web_search
from parley.server.faces.responses.hosted_items import approval_request_item, hosted_item

Event = dict[str, Any]
Make = Callable[..., Event]


class HostedItems:
    """The hosted items of one response's stream, by item id, in its ``output``. Their
    events are made by the stream's ``make`` (its numbering), given to each call: held
    here, it would tie the stream and this in a reference cycle."""

    def __init__(self, output: list[dict[str, Any]]) -> None:
        self.output = output
        self.index: dict[str, int] = {}
        #: The items started and not ended: their index.
        self.open: dict[str, int] = {}
        #: The files the response's searches found: id by name.
        self.files: dict[str, str] = {}
        #: The files the response's code wrote: container and file id by path and name.
        self.written: dict[str, tuple[str, str]] = {}
        #: The pages the response's web searches found: title by URL.
        self.pages: dict[str, str] = {}

    def events(self, make: Make, phase: str, item: dict[str, Any]) -> list[Event]:
        """The events of a hosted item as it starts or ends (``HostedToolEvent``)."""
        kind, item_id = item["type"], item["id"]
        shown = hosted_item(item)
        events: list[Event] = []
        index = self.index.get(item_id)
        if index is None:
            index = self.index[item_id] = len(self.output)
            self.output.append(shown)
            added = shown
            if kind == "mcp_call":  # its arguments follow, as deltas
                added = {**shown, "status": "in_progress", "arguments": "", "output": None}
            elif kind == "mcp_list_tools":
                added = {**shown, "tools": []}
            elif kind == "file_search_call":
                added = {**shown, "status": "in_progress", "results": None}
            elif kind == "code_interpreter_call":
                added = {**shown, "status": "in_progress", "code": "", "outputs": None}
            elif kind == "web_search_call":
                added = {**shown, "status": "in_progress"}
            events.append(make("response.output_item.added", output_index=index, item=added))
        where = {"item_id": item_id, "output_index": index}
        if phase == "started":
            self.open[item_id] = index
            if kind == "mcp_list_tools":
                events.append(make("response.mcp_list_tools.in_progress", **where))
            elif kind == "mcp_call":
                arguments = item["arguments"]
                events += [
                    make("response.mcp_call.in_progress", **where),
                    make("response.mcp_call_arguments.delta", **where, delta=arguments),
                    make("response.mcp_call_arguments.done", **where, arguments=arguments),
                ]
            elif kind == "file_search_call":
                events += [
                    make("response.file_search_call.in_progress", **where),
                    make("response.file_search_call.searching", **where),
                ]
            elif kind == "code_interpreter_call":
                code = item.get("code") or ""
                events += [
                    make("response.code_interpreter_call.in_progress", **where),
                    make("response.code_interpreter_call_code.delta", **where, delta=code),
                    make("response.code_interpreter_call_code.done", **where, code=code),
                    make("response.code_interpreter_call.interpreting", **where),
                ]
            elif kind == "web_search_call":
                events += [
                    make("response.web_search_call.in_progress", **where),
                    make("response.web_search_call.searching", **where),
                ]
            return events
        self.output[index] = shown
        self.open.pop(item_id, None)
        status = item.get("status")
        # A call cut short (its server died: ``engine.sweeps``) neither completed nor failed.
        if kind in ("mcp_list_tools", "mcp_call") and status != "incomplete":
            outcome = "failed" if status == "failed" else "completed"
            events.append(make(f"response.{kind}.{outcome}", **where))
        elif kind == "file_search_call":
            self.files.update(file_search.cited_files([item]))
            if status == "completed":
                events.append(make("response.file_search_call.completed", **where))
        elif kind == "code_interpreter_call":
            self.written.update(code_interpreter.written_files([item]))
            if status == "completed":
                events.append(make("response.code_interpreter_call.completed", **where))
        elif kind == "web_search_call":
            self.pages.update(web_search.cited_pages([item]))
            if status == "completed":
                events.append(make("response.web_search_call.completed", **where))
        events.append(make("response.output_item.done", output_index=index, item=shown))
        return events

    def close(self, make: Make) -> list[Event]:
        """The items a response ended before they did (its turn stopped or died in the
        middle of a call): each ends ``incomplete``."""
        events = []
        for index in self.open.values():
            item = {**self.output[index], "status": "incomplete"}
            self.output[index] = item
            events.append(make("response.output_item.done", output_index=index, item=item))
        self.open.clear()
        return events

    def approval(self, make: Make, action: dict[str, Any]) -> list[Event]:
        """The ``mcp_approval_request`` of a manifest's approval action."""
        hosted = {**action["approval"], "approval_request_id": action["action_id"]}
        item = approval_request_item(hosted, action["arguments"])
        index = len(self.output)
        self.output.append(item)
        return [
            make("response.output_item.added", output_index=index, item=item),
            make("response.output_item.done", output_index=index, item=item),
        ]
