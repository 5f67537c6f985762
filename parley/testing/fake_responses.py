"""A scripted fake of the OpenAI Responses API, for tests: real HTTP/1.1 over real sockets.

The streams it sends are built here in the documented wire format (``response.created``,
``response.output_item.added`` / ``.done``, ``response.output_text.delta``,
``response.reasoning_summary_text.delta``, ``response.function_call_arguments.delta``,
``response.completed`` / ``.incomplete`` / ``.failed`` and ``error``, each with its
``sequence_number``); they are constructed examples, not recordings of the API.

``FakeResponses`` runs inside the test's event loop. Each ``POST /v1/responses`` takes the
next ``Answer`` queued with ``answer(...)`` (the last one is repeated); ``GET /v1/models``
lists ``models``. Every request is kept in ``requests`` (method, target, lower-cased headers,
JSON body); ``active`` counts the connections open now, ``connections`` all accepted.
Responses are keep-alive; an SSE answer is chunked, one event per write.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from parley.testing.loopback import Received
from parley.testing.scripted import Answer, ScriptedAPI, sse

__all__ = [
    "Answer",
    "FakeResponses",
    "Item",
    "Received",
    "error_body",
    "error_event",
    "function_call",
    "message",
    "reasoning",
    "response_events",
    "sse",
]

Event = tuple[str, dict[str, Any]]

# ---------------------------------------------------------------------------- streams


@dataclass(frozen=True, slots=True)
class Item:
    """One output item of a streamed response: the events it streams at ``output_index``
    (``events(index)``) and the item as the final response lists it (``done``)."""

    events: Callable[[int], list[Event]]
    done: dict[str, Any]


def message(*pieces: str, item_id: str = "msg_fake", phase: str | None = None) -> Item:
    """An assistant message whose text comes as ``response.output_text.delta`` events
    (``phase``: ``commentary`` or ``final_answer``, as newer models label their messages)."""
    text = "".join(pieces)
    part = {"type": "output_text", "text": text, "annotations": []}
    done = {"id": item_id, "type": "message", "status": "completed", "role": "assistant", "content": [part]}  # fmt: skip
    if phase is not None:
        done["phase"] = phase

    def events(index: int) -> list[Event]:
        at = {"item_id": item_id, "output_index": index, "content_index": 0}
        started = {**done, "status": "in_progress", "content": []}
        return [
            ("response.output_item.added", {"output_index": index, "item": started}),
            ("response.content_part.added", {**at, "part": {**part, "text": ""}}),
            *(("response.output_text.delta", {**at, "delta": p, "logprobs": []}) for p in pieces),
            ("response.output_text.done", {**at, "text": text, "logprobs": []}),
            ("response.content_part.done", {**at, "part": part}),
            ("response.output_item.done", {"output_index": index, "item": done}),
        ]

    return Item(events, done)


def reasoning(
    *summaries: Sequence[str], item_id: str = "rs_fake", encrypted_content: str | None = None
) -> Item:
    """A reasoning item with one summary part per sequence of ``summaries``, its text coming
    as ``response.reasoning_summary_text.delta`` events. With ``encrypted_content`` (what
    ``include: ["reasoning.encrypted_content"]`` asks for), the finished item carries it and
    the item as first added only its first half: the API documents that value as possibly
    incomplete there."""
    texts = ["".join(pieces) for pieces in summaries]
    done: dict[str, Any] = {"id": item_id, "type": "reasoning", "summary": [{"type": "summary_text", "text": t} for t in texts]}  # fmt: skip
    started: dict[str, Any] = {**done, "summary": []}
    if encrypted_content is not None:
        done["encrypted_content"] = encrypted_content
        started["encrypted_content"] = encrypted_content[: len(encrypted_content) // 2]

    def events(index: int) -> list[Event]:
        out: list[Event] = [("response.output_item.added", {"output_index": index, "item": started})]  # fmt: skip
        for n, pieces in enumerate(summaries):
            at = {"item_id": item_id, "output_index": index, "summary_index": n}
            part = {"type": "summary_text", "text": texts[n]}
            out.append(("response.reasoning_summary_part.added", {**at, "part": {**part, "text": ""}}))  # fmt: skip
            out.extend(
                ("response.reasoning_summary_text.delta", {**at, "delta": p}) for p in pieces
            )
            out.append(("response.reasoning_summary_text.done", {**at, "text": texts[n]}))
            out.append(("response.reasoning_summary_part.done", {**at, "part": part}))
        out.append(("response.output_item.done", {"output_index": index, "item": done}))
        return out

    return Item(events, done)


def function_call(call_id: str, name: str, *fragments: str, item_id: str | None = None) -> Item:
    """A ``function_call`` item whose arguments come as argument delta events."""
    item_id = item_id or "fc_" + call_id
    arguments = "".join(fragments)
    done = {"id": item_id, "type": "function_call", "status": "completed", "arguments": arguments, "call_id": call_id, "name": name}  # fmt: skip

    def events(index: int) -> list[Event]:
        at = {"item_id": item_id, "output_index": index}
        started = {**done, "status": "in_progress", "arguments": ""}
        return [
            ("response.output_item.added", {"output_index": index, "item": started}),
            *(("response.function_call_arguments.delta", {**at, "delta": f}) for f in fragments),
            ("response.function_call_arguments.done", {**at, "arguments": arguments}),
            ("response.output_item.done", {"output_index": index, "item": done}),
        ]

    return Item(events, done)


def response_events(
    items: Sequence[Item],
    *,
    status: Literal["completed", "incomplete", "failed"] = "completed",
    input_tokens: int = 12,
    output_tokens: int = 7,
    reasoning_tokens: int = 0,
    cached_tokens: int = 0,
    incomplete_reason: str = "max_output_tokens",
    error: dict[str, Any] | None = None,
    model: str = "gpt-test",
    end: bool = True,
) -> list[Event]:
    """The events of one streamed response, in order, numbered; the last one says how it
    ended (``status``), and is left out unless ``end``. Its usage counts the
    ``reasoning_tokens`` among the output tokens and the ``cached_tokens`` among the input."""
    response: dict[str, Any] = {
        "id": "resp_fake",
        "object": "response",
        "created_at": 1700000000,
        "status": "in_progress",
        "model": model,
        "output": [],
        "usage": None,
        "error": None,
        "incomplete_details": None,
    }
    events: list[Event] = [
        ("response.created", {"response": response}),
        ("response.in_progress", {"response": response}),
    ]
    for index, item in enumerate(items):
        events.extend(item.events(index))
    if end:
        final = {**response, "status": status, "output": [item.done for item in items]}
        if status != "failed":
            final["usage"] = {
                "input_tokens": input_tokens,
                "input_tokens_details": {"cached_tokens": cached_tokens},
                "output_tokens": output_tokens,
                "output_tokens_details": {"reasoning_tokens": reasoning_tokens},
                "total_tokens": input_tokens + output_tokens,
            }
        if status == "incomplete":
            final["incomplete_details"] = {"reason": incomplete_reason}
        if status == "failed":
            final["error"] = error or {"code": "server_error", "message": "The model failed."}
        events.append((f"response.{status}", {"response": final}))
    return [
        (name, {"type": name, "sequence_number": n, **data})
        for n, (name, data) in enumerate(events)
    ]


def error_event(message: str, code: str = "server_error") -> Event:
    """An ``error`` event of the stream."""
    return ("error", {"type": "error", "code": code, "message": message, "param": None})


def error_body(message: str, kind: str = "invalid_request_error", code: str | None = None) -> dict[str, Any]:  # fmt: skip
    """The API's HTTP error body."""
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


# ----------------------------------------------------------------------------- server


class FakeResponses(ScriptedAPI):
    """``POST /v1/responses`` streams the queued answers; ``GET /v1/models`` lists
    ``models``; with ``api_key``, a request without ``Authorization: Bearer <api_key>``
    gets a 401."""

    chat_path = "/v1/responses"
    models_path = "/v1/models"
    base_path = "/v1"
    default_models = ("gpt-test-1", "gpt-test-2")

    def authorized(self, request: Received) -> bool:
        return request.headers.get("authorization") == f"Bearer {self.api_key}"

    def unauthorized_body(self) -> Any:
        return error_body("Incorrect API key provided.", code="invalid_api_key")

    def not_found_body(self) -> Any:
        return error_body("Not found", code="not_found")

    def models_page(self) -> Any:
        listed = [{"id": m, "object": "model", "owned_by": "fake"} for m in self.models]
        return {"object": "list", "data": listed}

    def default_answer(self) -> Answer:
        return Answer(response_events([message("Hi")]))
