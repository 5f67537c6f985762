"""A run's events as the Responses API's streaming events.

``ResponseEvents`` reads the run's own events (``content.delta``, ``reasoning.delta``,
``tool_calls``, ``usage``, ``error``, ``done``) in order and gives the protocol's events,
numbered from 0 by ``sequence_number``: ``response.created``, ``response.in_progress``,
then each output item's lifecycle (``output_item.added``, ``content_part.added``, text or
reasoning deltas, their ``.done``, ``content_part.done``, ``output_item.done``), then one
of ``response.completed``, ``response.failed`` or ``response.incomplete``.

The translation depends on nothing but the run's event log and the run as created, so a
replay of the log (``GET /v1/responses/{id}?stream=true``) numbers every event as the live
stream did, and ``starting_after`` resumes from any of them; the last event's response is
the one ``GET`` answers, its ``completed_at`` the ``ended_at`` of the run's ``done``.

A turn whose server died leaves a gap in its run's log (the events after its last
checkpoint), and the sweep numbers the closing events far past it. The translation jumps
its own numbers by as much (``skip``): the closing events come after any number the dead
server may have given, and a client resuming from the last it holds still gets them.

Reasoning streams under the Open Responses names (``response.reasoning.delta`` / ``.done``)
or OpenAI's (``response.reasoning_text.*``), by the request's dialect (``event_dialect``);
reasoning given as a summary, as a summary part (``response.reasoning_summary_*``) in both.

``ResponseFrames`` (server-sent events) and ``ResponseMessages`` (WebSocket messages) are
its translators for the kit's pump (``kit.streams``), in ``translators``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from parley.engine import Entry
from parley.server.faces.kit import sse
from parley.server.faces.responses import client_tools
from parley.server.faces.responses.dialect import REASONING_EVENTS, Dialect
from parley.server.faces.responses.hosted import HostedItems
from parley.server.faces.responses.hosted_items import with_citations
from parley.server.faces.responses.items import (
    call_item,
    reasoning_id,
    reasoning_item,
    state_item,
    text_id,
    text_item,
)
from parley.server.faces.responses.resource import STATUS, incomplete_reason, usage
from parley.types import RunStatus, Usage

Event = dict[str, Any]

#: How many of the protocol's numbers one run event may take, at most: a text delta that
#: closes one item and opens another takes six; a tool call manifest takes four per call,
#: and a turn's calls stop long before this many times a checkpoint's worth of events.
_PER_ENTRY = 8

_TERMINAL = {
    "completed": "response.completed",
    "failed": "response.failed",
    "incomplete": "response.incomplete",
    "cancelled": "response.incomplete",
}


class _Open:
    """The output item being streamed: a message's text, or its reasoning."""

    __slots__ = ("_where", "index", "item_id", "kind", "message_id", "phase", "texts")

    def __init__(self, kind: str, item_id: str, message_id: str, index: int) -> None:
        self.kind = kind
        self.item_id = item_id
        self.message_id = message_id
        self.index = index
        self.texts: list[str] = []
        self._where = b""

    def where(self) -> bytes:
        """A text delta's JSON between its ``sequence_number`` and its ``delta``."""
        if not self._where:
            item_id = orjson.dumps(self.item_id)
            self._where = b',"item_id":%b,"output_index":%d,"content_index":0,"delta":' % (
                item_id,
                self.index,
            )
        return self._where


class ResponseEvents:
    """The translator of one response's stream. ``head`` is the response object without
    output (``resource.head``); the run's events it is given come after ``after`` (the
    sequence number of the run's event before the response's first)."""

    def __init__(
        self, head: dict[str, Any], after: int = 0, dialect: Dialect = "open-responses"
    ) -> None:
        self.head = head
        #: The names of the reasoning text's events (``event_dialect``).
        self.reasoning_events = REASONING_EVENTS[dialect]
        self.seq = -1
        self.output: list[dict[str, Any]] = []
        self.hosted = HostedItems(self.output)
        #: What the functions made of the request's custom, namespace and tool search tools
        #: stand for (``client_tools``): their calls show as their own item types.
        self.kinds = client_tools.read(head.get("tools"))[1]
        #: How many items of a family (``text``, ``thought``) each message has shown.
        self.ordinals: dict[tuple[str, str], int] = {}
        self.open: _Open | None = None
        self.usage: dict[str, Any] | None = None
        self.error: dict[str, Any] | None = None
        #: When the turn ended, as the run's ``done`` says.
        self.ended_at: int | None = None
        #: Why the run stopped short, when it did (the ``done`` event's ``reason``).
        self.reason: str | None = None
        self.finished = False
        #: The sequence number of the run's last event translated.
        self.last_entry = after
        #: The ``encrypted_content`` of each answer's provider state, by message id, for a
        #: stream that shows it (``_Stream``'s ``states``), once its model calls ended.
        self.states: dict[str, str] = {}
        #: The messages whose state went out.
        self.carried: set[str] = set()

    def skip(self, entry_seq: int) -> None:
        """Before the run's event ``entry_seq``: past a gap in the log (a dead turn's lost
        tail), jump the numbering. A run's event becomes at most a handful of the protocol's,
        so as many numbers as the log skipped, times ``_PER_ENTRY``, cover what was lost."""
        last, self.last_entry = self.last_entry, entry_seq
        if entry_seq > last + 1:
            self.seq += (entry_seq - last - 1) * _PER_ENTRY

    def _event(self, kind: str, **fields: Any) -> Event:
        self.seq += 1
        return {"type": kind, "sequence_number": self.seq, **fields}

    def start(self) -> list[Event]:
        """``response.created`` and ``response.in_progress``."""
        snapshot = {**self.head, "status": "in_progress"}
        return [
            self._event("response.created", response=snapshot),
            self._event("response.in_progress", response=snapshot),
        ]

    def frames(self, batch: list[Entry], after: int = -1) -> bytes:
        """The server-sent events of ``feed`` for each entry of ``batch`` (``sse_frame``),
        those numbered ``after`` or below left out. A text delta of the message item being
        streamed, the bulk of a stream, is written straight to its bytes (the same bytes)."""
        frames: list[bytes] = []
        for entry in batch:
            if entry[0] == self.last_entry + 1:  # no gap: ``skip``'s work is this
                self.last_entry += 1
            else:
                self.skip(entry[0])
            if entry[1] == "content.delta":
                event = orjson.loads(entry[2])
                current = self.open
                if (
                    current is not None
                    and current.kind == "message"
                    and current.message_id == event["message_id"]
                ):
                    text: str = event["text"]
                    current.texts.append(text)
                    self.seq += 1
                    if self.seq > after:
                        where = current._where or current.where()
                        frames.append(
                            b"%b%d%b%b%b"
                            % (_TEXT_DELTA, self.seq, where, orjson.dumps(text), _TAIL)
                        )
                    continue
                events = self._delta("message", event["message_id"], event["text"])
            else:
                events = self._translate(entry)
            frames += [sse_frame(e) for e in events if e["sequence_number"] > after]
        return frames[0] if len(frames) == 1 else b"".join(frames)

    def feed(self, entry: Entry) -> list[Event]:
        """The protocol's events for one of the run's events."""
        self.skip(entry[0])
        return self._translate(entry)

    def _translate(self, entry: Entry) -> list[Event]:
        _, kind, data = entry
        if kind == "content.delta":
            event = orjson.loads(data)
            return self._delta("message", event["message_id"], event["text"])
        if kind == "reasoning.delta":
            event = orjson.loads(data)
            part = "summary" if event.get("summary") else "reasoning"
            return self._delta(part, event["message_id"], event["text"])
        if kind == "tool_calls":
            return self._calls(orjson.loads(data))
        if kind == "hosted_tool":
            event, current = orjson.loads(data), self.open
            events = self._close("completed")  # the answer so far, before the tool's items
            if current is not None:
                events += self._state(current.message_id, "completed")
            return events + self.hosted.events(self._event, event["phase"], event["item"])
        if kind == "usage":
            self.usage = usage(Usage.model_validate_json(data))
        elif kind == "error":
            event = orjson.loads(data)
            self.error = {"code": event["code"], "message": event["message"]}
        elif kind == "done":
            event = orjson.loads(data)
            self.ended_at = event.get("ended_at")  # absent from logs written before it was
            self.reason = event.get("reason")  # as is this
            return self._finish(RunStatus(event["status"]))
        return []

    # ------------------------------------------------------------------------ items

    def _delta(self, kind: str, message_id: str, text: str) -> list[Event]:
        events: list[Event] = []
        current = self.open
        if current is None or current.kind != kind or current.message_id != message_id:
            if not text:
                return events  # nothing to show yet (and the stored layout has no such item)
            if current is not None:
                events += self._close("completed", last=current.message_id != message_id)
                if current.message_id != message_id:
                    events += self._state(current.message_id, "completed")
            current = self._begin(kind, message_id, events)
        current.texts.append(text)
        where = {"item_id": current.item_id, "output_index": current.index}
        if kind == "message":
            delta = self._event(
                "response.output_text.delta", **where, content_index=0, delta=text, logprobs=[]
            )
        elif kind == "summary":
            delta = self._event(
                "response.reasoning_summary_text.delta", **where, summary_index=0, delta=text
            )
        else:
            name = self.reasoning_events[0]
            delta = self._event(name, **where, content_index=0, delta=text)
        events.append(delta)
        return events

    def _begin(self, kind: str, message_id: str, events: list[Event]) -> _Open:
        index = len(self.output)
        # Items are numbered by kind within their message, as ``items.segments`` numbers
        # the stored message's, so that GET shows the ids the stream gave.
        family = "text" if kind == "message" else "thought"
        ordinal = self.ordinals[message_id, family] = self.ordinals.get((message_id, family), 0) + 1
        item: dict[str, Any]
        if kind == "message":
            item_id = text_id(message_id, ordinal)
            item = {
                "id": item_id,
                "type": "message",
                "status": "in_progress",
                "role": "assistant",
                "content": [],
            }
        else:
            item_id = reasoning_id(message_id, ordinal)
            item = {
                "id": item_id,
                "type": "reasoning",
                "status": "in_progress",
                "summary": [],
                "content": [],
            }
        self.output.append(item)
        self.open = _Open(kind, item_id, message_id, index)
        events.append(self._event("response.output_item.added", output_index=index, item=item))
        where = {"item_id": item_id, "output_index": index}
        if kind == "summary":
            part = {"type": "summary_text", "text": ""}
            added = self._event(
                "response.reasoning_summary_part.added", **where, summary_index=0, part=part
            )
        else:
            part = _part(kind, "")
            added = self._event("response.content_part.added", **where, content_index=0, part=part)
        events.append(added)
        return self.open

    def _close(self, status: str, *, last: bool = True) -> list[Event]:
        """The events that close the open item; ``last``: the last of its message (a
        reasoning item carries the message's state then)."""
        current, self.open = self.open, None
        if current is None:
            return []
        text = "".join(current.texts)
        where = {"item_id": current.item_id, "output_index": current.index}
        done_item = output_item(current.kind, current.item_id, text, status)
        blob = self.states.get(current.message_id)
        if last and current.kind != "message" and blob and current.message_id not in self.carried:
            done_item["encrypted_content"] = blob
            self.carried.add(current.message_id)
        if current.kind == "summary":
            part = done_item["summary"][0]
            closing = [
                self._event(
                    "response.reasoning_summary_text.done", **where, summary_index=0, text=text
                ),
                self._event(
                    "response.reasoning_summary_part.done", **where, summary_index=0, part=part
                ),
            ]
        else:
            closing = []
            hosted = self.hosted
            if current.kind == "message" and hosted.found:
                done_item = with_citations(done_item, hosted.found)
                closing = self._annotations(done_item, where)
            part = done_item["content"][0]
            if current.kind == "message":
                done = self._event(
                    "response.output_text.done", **where, content_index=0, text=text, logprobs=[]
                )
            else:
                name = self.reasoning_events[1]
                done = self._event(name, **where, content_index=0, text=text)
            closing += [
                done,
                self._event("response.content_part.done", **where, content_index=0, part=part),
            ]
        self.output[current.index] = done_item
        closing.append(
            self._event("response.output_item.done", output_index=current.index, item=done_item)
        )
        return closing

    def _annotations(self, item: dict[str, Any], where: dict[str, Any]) -> list[Event]:
        """``output_text.annotation.added`` for each citation of a message's text."""
        return [
            self._event(
                "response.output_text.annotation.added",
                **where,
                content_index=0,
                annotation_index=n,
                annotation=annotation,
            )
            for n, annotation in enumerate(item["content"][0]["annotations"])
        ]

    def _state(self, message_id: str, status: str) -> list[Event]:
        """A reasoning item of its own for a message's state, when it has one that no item
        of it carried (``items.state_item``)."""
        blob = self.states.get(message_id)
        if not blob or message_id in self.carried:
            return []
        self.carried.add(message_id)
        key = (message_id, "thought")
        ordinal = self.ordinals[key] = self.ordinals.get(key, 0) + 1
        item = state_item(reasoning_id(message_id, ordinal), blob, status)
        index = len(self.output)
        self.output.append(item)
        added = {k: v for k, v in item.items() if k != "encrypted_content"}
        added["status"] = "in_progress"
        return [
            self._event("response.output_item.added", output_index=index, item=added),
            self._event("response.output_item.done", output_index=index, item=item),
        ]

    def _calls(self, manifest: dict[str, Any]) -> list[Event]:
        events = self._close("completed")
        message_id = manifest.get("message_id") or self._last_message_id()
        events += self._state(message_id, "completed")
        for action in manifest["actions"]:
            if action.get("approval"):  # the server runs it once approved
                events += self.hosted.approval(self._event, action)
                continue
            item = call_item(
                message_id,
                action["tool_call_id"],
                action["name"],
                action["arguments"],
                self.kinds,
            )
            index = len(self.output)
            self.output.append(item)
            if item["type"] != "function_call":
                events += self._handed(item, index)
                continue
            arguments = item["arguments"]
            events += [
                self._event(
                    "response.output_item.added",
                    output_index=index,
                    item={**item, "arguments": "", "status": "in_progress"},
                ),
                self._event(
                    "response.function_call_arguments.delta",
                    item_id=item["id"],
                    output_index=index,
                    delta=arguments,
                ),
                self._event(
                    "response.function_call_arguments.done",
                    item_id=item["id"],
                    output_index=index,
                    name=item["name"],
                    arguments=arguments,
                ),
                self._event("response.output_item.done", output_index=index, item=item),
            ]
        return events

    def _handed(self, item: dict[str, Any], index: int) -> list[Event]:
        """The events of a custom tool's call (its input streamed as one delta) or a tool
        search's call, handed to the client."""
        if item["type"] == "custom_tool_call":
            where = {"item_id": item["id"], "output_index": index}
            text = item["input"]
            return [
                self._event(
                    "response.output_item.added", output_index=index, item={**item, "input": ""}
                ),
                self._event("response.custom_tool_call_input.delta", **where, delta=text),
                self._event("response.custom_tool_call_input.done", **where, input=text),
                self._event("response.output_item.done", output_index=index, item=item),
            ]
        return [
            self._event(
                "response.output_item.added",
                output_index=index,
                item={**item, "status": "in_progress"},
            ),
            self._event("response.output_item.done", output_index=index, item=item),
        ]

    def _last_message_id(self) -> str:
        for item in reversed(self.output):
            if item["type"] == "message":
                return str(item["id"])
        return ""

    # ----------------------------------------------------------------------- the end

    def _finish(self, run_status: RunStatus) -> list[Event]:
        status = STATUS[run_status]
        item_status = "completed" if status in ("completed", "failed") else "incomplete"
        events = self._close(item_status) + self.hosted.close(self._event)
        for message_id in self.states:
            events += self._state(message_id, item_status)
        self.finished = True
        response = self.final(status)
        events.append(self._event(_TERMINAL.get(status, "response.completed"), response=response))
        return events

    def stored_end(self, response: dict[str, Any]) -> list[Event]:
        """The terminal event of a response whose run's event log was pruned: the stored
        ``response`` whole, its output items not streamed again."""
        self.finished = True
        kind = _TERMINAL.get(response["status"], "response.completed")
        return [self._event(kind, response=response)]

    def final(self, status: str) -> dict[str, Any]:
        """The whole response object as the stream ends with ``status``."""
        response = {
            **self.head,
            "status": status,
            "output": self.output,
            "usage": self.usage or usage(Usage()),
            "completed_at": self.ended_at,
        }
        if status == "failed":
            response["error"] = self.error or {"code": "server_error", "message": "failed"}
        if status in ("incomplete", "cancelled"):
            response["incomplete_details"] = {"reason": incomplete_reason(self.reason)}
        return response


def _part(kind: str, text: str) -> dict[str, Any]:
    if kind == "message":
        return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
    return {"type": "reasoning_text", "text": text}


def output_item(kind: str, item_id: str, text: str, status: str) -> dict[str, Any]:
    """The whole item of a ``message``, ``reasoning`` or ``summary`` stream."""
    if kind == "message":
        return text_item(item_id, text, status)
    return reasoning_item(item_id, text, status, summary=kind == "summary")


def translate(head: dict[str, Any], entries: Iterator[Entry]) -> Iterator[Event]:
    """Every event of a response, from its run's whole event log."""
    events = ResponseEvents(head)
    yield from events.start()
    for entry in entries:
        yield from events.feed(entry)


def sse_frame(event: Event) -> bytes:
    """One Responses event as a server-sent event (``event`` is its ``type``; no ``id``)."""
    return sse.frame(orjson.dumps(event), event["type"])


#: A text delta's frame up to its ``sequence_number``, and after its ``delta``.
_TEXT_DELTA = (
    sse.head("response.output_text.delta")
    + b'{"type":"response.output_text.delta","sequence_number":'
)
_TAIL = b',"logprobs":[]}' + sse.END
