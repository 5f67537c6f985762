"""The Responses events of the tools the server runs (``engine.hosted``), from the run's
``hosted_tool`` events and the approvals of its manifest.

An MCP server's tool list: ``output_item.added``, ``mcp_list_tools.in_progress``, then
``mcp_list_tools.completed`` (or ``.failed``) and ``output_item.done``. A call the server
runs: ``output_item.added`` (its arguments still empty), ``mcp_call.in_progress``,
``mcp_call_arguments.delta`` and ``.done``, then ``mcp_call.completed`` (or ``.failed``)
and ``output_item.done``, in OpenAI's order. A call waiting for the client's approval: its
``mcp_approval_request`` item, added and done. A file search: ``output_item.added``,
``file_search_call.in_progress`` and ``.searching``, then ``file_search_call.completed``
(unless it failed) and ``output_item.done``; the files it found are kept (``found``) for
the citations of the text that follows. A code interpreter call: ``output_item.added``,
``code_interpreter_call.in_progress``, ``code_interpreter_call_code.delta`` and ``.done``,
``code_interpreter_call.interpreting``, then ``code_interpreter_call.completed`` and
``output_item.done``; the files its code wrote are kept (``found``) for the
``container_file_citation`` annotations of the text that follows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from parley.engine import (
    CodeInterpreterCall,
    FileSearchCall,
    McpCall,
    McpListTools,
    WebSearchCall,
)
from parley.server.faces.responses.hosted_items import Found, approval_request_item, hosted_item

Event = dict[str, Any]
Make = Callable[..., Event]
Item = dict[str, Any]
Where = dict[str, Any]


def _started(*names: str) -> Callable[[Make, Where, Item], list[Event]]:
    """Events that only name the item, as it starts (``in_progress``, ``searching``)."""
    return lambda make, where, item: [make(f"response.{n}", **where) for n in names]


def _mcp_call_started(make: Make, where: Where, item: Item) -> list[Event]:
    arguments = item["arguments"]
    return [
        make("response.mcp_call.in_progress", **where),
        make("response.mcp_call_arguments.delta", **where, delta=arguments),
        make("response.mcp_call_arguments.done", **where, arguments=arguments),
    ]


def _code_started(make: Make, where: Where, item: Item) -> list[Event]:
    code = item.get("code") or ""
    return [
        make("response.code_interpreter_call.in_progress", **where),
        make("response.code_interpreter_call_code.delta", **where, delta=code),
        make("response.code_interpreter_call_code.done", **where, code=code),
        make("response.code_interpreter_call.interpreting", **where),
    ]


def _outcome(make: Make, where: Where, item: Item) -> list[Event]:
    """``.completed`` or ``.failed`` of an MCP item; neither for one cut short (its server
    died: ``engine.sweeps``)."""
    status = item.get("status")
    if status == "incomplete":
        return []
    return [
        make(f"response.{item['type']}.{'failed' if status == 'failed' else 'completed'}", **where)
    ]


def _completed(make: Make, where: Where, item: Item) -> list[Event]:
    """``.completed`` of a search or code call that completed (none when it failed)."""
    if item.get("status") != "completed":
        return []
    return [make(f"response.{item['type']}.completed", **where)]


@dataclass(frozen=True, slots=True)
class Streamed:
    """How the Responses face streams one type of hosted record: what its item shows empty
    as it is added, and its events as it starts and as it ends."""

    blank: Mapping[str, Any] = field(default_factory=dict)
    started: Callable[[Make, Where, Item], list[Event]] = lambda make, where, item: []
    ended: Callable[[Make, Where, Item], list[Event]] = lambda make, where, item: []


#: The face's table of hosted records: how each type streams. A new kind adds its entry.
STREAMED: dict[str, Streamed] = {
    McpListTools.type: Streamed({"tools": []}, _started("mcp_list_tools.in_progress"), _outcome),
    McpCall.type: Streamed(
        {"status": "in_progress", "arguments": "", "output": None}, _mcp_call_started, _outcome
    ),
    FileSearchCall.type: Streamed(
        {"status": "in_progress", "results": None},
        _started("file_search_call.in_progress", "file_search_call.searching"),
        _completed,
    ),
    CodeInterpreterCall.type: Streamed(
        {"status": "in_progress", "code": "", "outputs": None},
        _code_started,
        _completed,
    ),
    WebSearchCall.type: Streamed(
        {"status": "in_progress"},
        _started("web_search_call.in_progress", "web_search_call.searching"),
        _completed,
    ),
}
#: A type the table does not have (a compaction marker): added and done as it is.
_PLAIN = Streamed()


class HostedItems:
    """The hosted items of one response's stream, by item id, in its ``output``. Their
    events are made by the stream's ``make`` (its numbering), given to each call: held
    here, it would tie the stream and this in a reference cycle."""

    def __init__(self, output: list[dict[str, Any]]) -> None:
        self.output = output
        self.index: dict[str, int] = {}
        #: The items started and not ended: their index.
        self.open: dict[str, int] = {}
        #: What the response's calls found that the text after them may cite.
        self.found = Found()

    def events(self, make: Make, phase: str, item: dict[str, Any]) -> list[Event]:
        """The events of a hosted item as it starts or ends (``HostedToolEvent``)."""
        streamed = STREAMED.get(item["type"], _PLAIN)
        item_id, shown = item["id"], hosted_item(item)
        events: list[Event] = []
        index = self.index.get(item_id)
        if index is None:
            index = self.index[item_id] = len(self.output)
            self.output.append(shown)
            added = {**shown, **streamed.blank}
            events.append(make("response.output_item.added", output_index=index, item=added))
        where = {"item_id": item_id, "output_index": index}
        if phase == "started":
            self.open[item_id] = index
            return events + streamed.started(make, where, item)
        self.output[index] = shown
        self.open.pop(item_id, None)
        self.found.add(item)
        events += streamed.ended(make, where, item)
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
