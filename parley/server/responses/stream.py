"""A run's events as the Responses API's streaming events.

``ResponseEvents`` reads the run's own events (``content.delta``, ``reasoning.delta``,
``tool_calls``, ``usage``, ``error``, ``done``) in order and gives the protocol's events,
numbered from 0 by ``sequence_number``: ``response.created``, ``response.in_progress``,
then each output item's lifecycle (``output_item.added``, ``content_part.added``, text or
reasoning deltas, their ``.done``, ``content_part.done``, ``output_item.done``), then one
of ``response.completed``, ``response.failed`` or ``response.incomplete``.

The translation depends on nothing but the run's event log and the run as created, so a
replay of the log (``GET /v1/responses/{id}?stream=true``) numbers every event as the live
stream did, and ``starting_after`` resumes from any of them.

Reasoning streams as ``response.reasoning.delta`` / ``.done`` (the Open Responses names;
OpenAI's API calls them ``response.reasoning_text.*``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import orjson

from parley.engine import Entry
from parley.server.responses.items import call_item, reasoning_id
from parley.server.responses.resource import STATUS, incomplete_reason, usage
from parley.types import RunStatus

Event = dict[str, Any]

_TERMINAL = {
    "completed": "response.completed",
    "failed": "response.failed",
    "incomplete": "response.incomplete",
    "cancelled": "response.incomplete",
}


class _Open:
    """The output item being streamed: a message's text, or its reasoning."""

    __slots__ = ("index", "item_id", "kind", "message_id", "phase", "texts")

    def __init__(self, kind: str, item_id: str, message_id: str, index: int) -> None:
        self.kind = kind
        self.item_id = item_id
        self.message_id = message_id
        self.index = index
        self.texts: list[str] = []


class ResponseEvents:
    """The translator of one response's stream. ``head`` is the response object without
    output (``resource.head``)."""

    def __init__(self, head: dict[str, Any]) -> None:
        self.head = head
        self.seq = -1
        self.output: list[dict[str, Any]] = []
        self.open: _Open | None = None
        self.usage: dict[str, Any] | None = None
        self.error: dict[str, Any] | None = None
        self.finished = False

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

    def feed(self, entry: Entry) -> list[Event]:
        """The protocol's events for one of the run's events."""
        _, kind, data = entry
        if kind == "content.delta" or kind == "reasoning.delta":
            event = orjson.loads(data)
            return self._delta(
                "message" if kind == "content.delta" else "reasoning",
                event["message_id"],
                event["text"],
            )
        if kind == "tool_calls":
            return self._calls(orjson.loads(data))
        if kind == "usage":
            event = orjson.loads(data)
            self.usage = usage(event["input_tokens"], event["output_tokens"])
        elif kind == "error":
            event = orjson.loads(data)
            self.error = {"code": event["code"], "message": event["message"]}
        elif kind == "done":
            return self._finish(RunStatus(orjson.loads(data)["status"]))
        return []

    # ------------------------------------------------------------------------ items

    def _delta(self, kind: str, message_id: str, text: str) -> list[Event]:
        events: list[Event] = []
        current = self.open
        if current is None or current.kind != kind or current.message_id != message_id:
            if current is not None:
                events += self._close("completed")
            current = self._begin(kind, message_id, events)
        current.texts.append(text)
        extra: dict[str, Any]
        name, extra = (
            ("response.output_text.delta", {"logprobs": []})
            if kind == "message"
            else ("response.reasoning.delta", {})
        )
        events.append(
            self._event(
                name,
                item_id=current.item_id,
                output_index=current.index,
                content_index=0,
                delta=text,
                **extra,
            )
        )
        return events

    def _begin(self, kind: str, message_id: str, events: list[Event]) -> _Open:
        index = len(self.output)
        if kind == "message":
            item_id = message_id
            if any(item["id"] == item_id for item in self.output):
                item_id = f"{message_id}_{index}"  # text again after reasoning: a new item
            item: dict[str, Any] = {
                "id": item_id,
                "type": "message",
                "status": "in_progress",
                "role": "assistant",
                "content": [],
            }
            part: dict[str, Any] = {
                "type": "output_text",
                "text": "",
                "annotations": [],
                "logprobs": [],
            }
        else:
            item_id = reasoning_id(message_id)
            if any(item["id"] == item_id for item in self.output):
                item_id = f"{item_id}_{index}"
            item = {
                "id": item_id,
                "type": "reasoning",
                "status": "in_progress",
                "summary": [],
                "content": [],
            }
            part = {"type": "reasoning_text", "text": ""}
        self.output.append(item)
        self.open = _Open(kind, item_id, message_id, index)
        events.append(self._event("response.output_item.added", output_index=index, item=item))
        events.append(
            self._event(
                "response.content_part.added",
                item_id=item_id,
                output_index=index,
                content_index=0,
                part=part,
            )
        )
        return self.open

    def _close(self, status: str) -> list[Event]:
        current, self.open = self.open, None
        if current is None:
            return []
        text = "".join(current.texts)
        where = {"item_id": current.item_id, "output_index": current.index, "content_index": 0}
        if current.kind == "message":
            part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
            done = self._event("response.output_text.done", **where, text=text, logprobs=[])
        else:
            part = {"type": "reasoning_text", "text": text}
            done = self._event("response.reasoning.done", **where, text=text)
        item = {**self.output[current.index], "status": status, "content": [part]}
        self.output[current.index] = item
        return [
            done,
            self._event("response.content_part.done", **where, part=part),
            self._event("response.output_item.done", output_index=current.index, item=item),
        ]

    def _calls(self, manifest: dict[str, Any]) -> list[Event]:
        events = self._close("completed")
        message_id = manifest.get("message_id") or self._last_message_id()
        for action in manifest["actions"]:
            item = call_item(
                message_id, action["tool_call_id"], action["name"], action["arguments"]
            )
            index = len(self.output)
            self.output.append(item)
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

    def _last_message_id(self) -> str:
        for item in reversed(self.output):
            if item["type"] == "message":
                return str(item["id"])
        return ""

    # ----------------------------------------------------------------------- the end

    def _finish(self, run_status: RunStatus) -> list[Event]:
        status = STATUS[run_status]
        item_status = "completed" if status in ("completed", "failed") else "incomplete"
        events = self._close(item_status)
        self.finished = True
        response = self.final(status)
        events.append(self._event(_TERMINAL.get(status, "response.completed"), response=response))
        return events

    def final(self, status: str) -> dict[str, Any]:
        """The whole response object as the stream ends with ``status``."""
        response = {
            **self.head,
            "status": status,
            "output": self.output,
            "usage": self.usage or usage(0, 0),
            "completed_at": int(time.time()),
        }
        if status == "failed":
            response["error"] = self.error or {"code": "server_error", "message": "failed"}
        if status in ("incomplete", "cancelled"):
            response["incomplete_details"] = {"reason": incomplete_reason(None)}
        return response


def translate(head: dict[str, Any], entries: Iterator[Entry]) -> Iterator[Event]:
    """Every event of a response, from its run's whole event log."""
    events = ResponseEvents(head)
    yield from events.start()
    for entry in entries:
        yield from events.feed(entry)


def sse_frame(event: Event) -> bytes:
    """One Responses event as a server-sent event (``event`` is its ``type``; no ``id``)."""
    kind: str = event["type"]
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


DONE_FRAME = b"data: [DONE]\n\n"
