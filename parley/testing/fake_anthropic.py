"""A scripted fake of the Anthropic Messages API, for tests: real HTTP/1.1 over real sockets.

The streams it sends are built here in the documented wire format (``message_start``,
``content_block_start`` / ``_delta`` / ``_stop``, ``message_delta``, ``message_stop``, with
``ping`` and ``error`` events); they are constructed examples, not recordings of the API.

``FakeAnthropic`` runs inside the test's event loop. Each ``POST /v1/messages`` takes the
next ``Answer`` queued with ``answer(...)`` (the last one is repeated); ``GET /v1/models``
lists ``models``. Every request is kept in ``requests`` (method, target, lower-cased headers,
JSON body); ``active`` counts the connections open now, ``connections`` all accepted. Responses are keep-alive; an SSE
answer is chunked, one event per write.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from parley.testing.loopback import Received
from parley.testing.scripted import Answer, ScriptedAPI, sse

__all__ = [
    "Answer",
    "Block",
    "FakeAnthropic",
    "Received",
    "error_body",
    "message_events",
    "redacted_thinking",
    "sse",
    "text",
    "thinking",
    "tool_use",
]

# ---------------------------------------------------------------------------- streams


@dataclass(frozen=True, slots=True)
class Block:
    """One content block of a streamed message: its ``content_block_start`` block and the
    ``delta`` objects of its ``content_block_delta`` events."""

    start: dict[str, Any]
    deltas: tuple[dict[str, Any], ...] = ()


def text(*pieces: str) -> Block:
    return Block(
        {"type": "text", "text": ""}, tuple({"type": "text_delta", "text": p} for p in pieces)
    )


def thinking(*pieces: str, signature: str | None = "c2lnbmF0dXJl") -> Block:
    """A ``thinking`` block: ``thinking_delta`` pieces, then its ``signature_delta`` (none
    when ``signature`` is None, as in a stream cut before it)."""
    deltas = [{"type": "thinking_delta", "thinking": p} for p in pieces]
    if signature is not None:
        deltas.append({"type": "signature_delta", "signature": signature})
    return Block({"type": "thinking", "thinking": ""}, tuple(deltas))


def redacted_thinking(data: str) -> Block:
    """A ``redacted_thinking`` block: its encrypted ``data`` comes whole in the start, with
    no deltas."""
    return Block({"type": "redacted_thinking", "data": data})


def tool_use(call_id: str, name: str, *fragments: str) -> Block:
    """A ``tool_use`` block whose input comes as ``input_json_delta`` fragments; the API's
    first fragment is often empty, as here."""
    deltas = [{"type": "input_json_delta", "partial_json": f} for f in ("", *fragments)]
    return Block({"type": "tool_use", "id": call_id, "name": name, "input": {}}, tuple(deltas))


def message_events(
    blocks: Sequence[Block],
    *,
    stop_reason: str | None = "end_turn",
    input_tokens: int = 12,
    output_tokens: int = 7,
    cache_read_input_tokens: int = 0,
    thinking_tokens: int | None = None,
    model: str = "claude-test",
    end: bool = True,
) -> list[tuple[str, dict[str, Any]]]:
    """The events of one streamed message, in order; without ``message_stop`` unless ``end``.

    Usage as the API gives it: ``input_tokens`` are those not read from the prompt cache,
    ``cache_read_input_tokens`` those read from it (both in ``message_start``); the final
    ``output_tokens`` come in ``message_delta``, with ``output_tokens_details`` (the
    ``thinking_tokens`` among them) when ``thinking_tokens`` is given, as models with
    adaptive thinking answer."""
    delta_usage: dict[str, Any] = {"output_tokens": output_tokens}
    if thinking_tokens is not None:
        delta_usage["output_tokens_details"] = {"thinking_tokens": thinking_tokens}
    events: list[tuple[str, dict[str, Any]]] = [
        (
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": "msg_fake",
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {
                        "input_tokens": input_tokens,
                        "cache_creation_input_tokens": 0,
                        "cache_read_input_tokens": cache_read_input_tokens,
                        "output_tokens": 1,
                    },
                },
            },
        ),
        ("ping", {"type": "ping"}),
    ]
    for index, block in enumerate(blocks):
        events.append(
            (
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": block.start},
            )
        )
        events.extend(
            ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
            for delta in block.deltas
        )
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    events.append(
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": delta_usage,
            },
        )
    )
    if end:
        events.append(("message_stop", {"type": "message_stop"}))
    return events


def error_body(kind: str, message: str) -> dict[str, Any]:
    """The API's error object, as an HTTP error body or the data of an ``error`` event."""
    return {"type": "error", "error": {"type": kind, "message": message}}


# ----------------------------------------------------------------------------- server


class FakeAnthropic(ScriptedAPI):
    """``POST /v1/messages`` streams the queued answers; ``GET /v1/models`` lists
    ``models``; with ``api_key``, a request without that ``x-api-key`` gets a 401."""

    chat_path = "/v1/messages"
    models_path = "/v1/models"
    default_models = ("claude-test-1", "claude-test-2")

    def authorized(self, request: Received) -> bool:
        return request.headers.get("x-api-key") == self.api_key

    def unauthorized_body(self) -> Any:
        return error_body("authentication_error", "invalid x-api-key")

    def not_found_body(self) -> Any:
        return error_body("not_found_error", "Not found")

    def models_page(self) -> Any:
        data = [{"type": "model", "id": m, "display_name": m} for m in self.models]
        return {"data": data, "has_more": False, "first_id": None, "last_id": None}

    def default_answer(self) -> Answer:
        return Answer(message_events([text("Hi")]))
