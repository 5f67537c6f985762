"""Adapter for the Anthropic Messages API.

``POST {base_url}/v1/messages`` with ``stream: true``; the SSE events become model events:
``message_start`` usage → ``UsagePart``, a ``tool_use`` block start → ``ToolCallPart`` (keyed
by the block index, with id and name), ``text_delta`` → ``TextPart``, ``thinking_delta`` →
``ReasoningPart``, ``input_json_delta`` → ``ToolCallPart`` argument fragments,
``message_delta`` → ``FinishPart`` and ``UsagePart`` (running totals), ``message_stop`` ends
the answer and an ``error`` event is an ``UpstreamError``. Every failure is an
``UpstreamError`` (or ``UpstreamTimeout``) with a message safe to show a user.

Blocks of the tools the API runs itself (``server_tool_use``, ``mcp_tool_use`` and their
``*_tool_result`` blocks: web search, web fetch, code execution, MCP servers, ...) and block
types added later are skipped, their deltas with them: only a ``tool_use`` block is a call
for the client to run. The answer keeps its text and its client calls; nothing of the
skipped blocks is stored, so none of them is sent back with it on later turns. A client
call made from the API's code execution (``tool_use`` with a ``caller``) is stored and sent
back as a plain call, without its ``caller``.

Thinking goes back: the ``thinking`` blocks of an answer (whole text and ``signature``) and
its ``redacted_thinking`` blocks (``data``, never shown as reasoning) are kept, in order,
and yielded as one ``StatePart({"thinking_blocks": [...]})`` when the message ends; a block
that came after some of the answer's text or ``tool_use`` blocks (interleaved thinking)
adds ``"thinking_places"`` (``_StreamState.state_events``). An assistant message whose
``provider_state`` holds them sends them in its content where they came, first unless
placed, as the API requires when extended thinking is used with tools (it refuses the
latest assistant message with its thinking blocks moved). A user message's ``images``
become ``image`` blocks before its text.

The request's body is built by ``anthropic_request`` (its options: a tool choice, parallel
calls, a reasoning effort as thinking, and a JSON response format as a forced tool,
``FORMAT_TOOL``, since the Messages API has no JSON mode). That tool's input streams back
as the answer's text, and its call ends the answer as a stop.

HTTP goes through ``transport.HTTPTransport``, which every adapter shares; this module holds
only what is particular to the Messages API.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from contextlib import aclosing
from typing import Any

import aiohttp
import orjson

from parley.errors import UpstreamError
from parley.events import (
    FinishPart,
    ModelEvent,
    ReasoningPart,
    StatePart,
    TextPart,
    ToolCallPart,
)
from parley.providers import http_response, upstream_errors
from parley.providers.anthropic_request import (
    DEFAULT_MAX_TOKENS,
    FORMAT_TOOL,
    THINKING_BUDGETS,
    request_body,
)
from parley.providers.base import ModelRequest
from parley.providers.http_provider import HTTPProvider
from parley.providers.sse import iter_sse
from parley.providers.transport import NO_RETRIES, RetryPolicy
from parley.providers.upstream_errors import malformed, shorten_detail
from parley.providers.usage import detail, usage_part
from parley.providers.windows import as_window, listed_windows

__all__ = [
    "ANTHROPIC_VERSION",
    "DEFAULT_MAX_TOKENS",
    "FORMAT_TOOL",
    "THINKING_BUDGETS",
    "AnthropicProvider",
    "request_body",
]

#: The ``anthropic-version`` header sent with every call.
ANTHROPIC_VERSION = "2023-06-01"
#: How the user is told who failed.
_LABEL = "Anthropic API"
#: Pages of ``GET /v1/models`` read at most (1,000 models each).
_MAX_MODEL_PAGES = 10

#: The content blocks kept and sent back with the answer on later turns.
_THINKING_TYPES = ("thinking", "redacted_thinking")
#: The API's ``stop_reason`` values as Parley's finish reasons; others pass through as is.
_FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "tool_use": "tool_calls",
    "max_tokens": "length",
}


class AnthropicProvider(HTTPProvider):
    """Streams Messages API answers from Anthropic (or a server speaking the same API).

    ``base_url`` is the API's root (``https://api.anthropic.com``); one ending in ``/v1`` is
    taken as well. HTTP goes through an ``HTTPTransport`` (opened on first use, closed by
    ``aclose``; proxies come from the environment). A ``session`` passed in is used as is
    (with this provider's timeouts) and left open. ``headers`` are added to every call
    (``anthropic-beta``, ...) and may replace the defaults.
    """

    refused_options = frozenset({"seed", "presence_penalty", "frequency_penalty"})
    hands_back_state = True

    label = _LABEL

    def __init__(
        self,
        base_url: str = "https://api.anthropic.com",
        api_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        connect_timeout: float = 10.0,
        read_timeout: float = 120.0,
        session: aiohttp.ClientSession | None = None,
        retry: RetryPolicy = NO_RETRIES,
    ) -> None:
        auth = {"anthropic-version": ANTHROPIC_VERSION}
        if api_key:
            auth["x-api-key"] = api_key
        super().__init__(
            auth=auth,
            headers=headers,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            session=session,
            retry=retry,
        )
        root = base_url.rstrip("/").removesuffix("/v1")
        self._stream_url = root + "/v1/messages"
        self._models_url = root + "/v1/models"

    async def list_models(self) -> list[str]:
        """The model ids the API lists (``GET /v1/models``, every page), sorted."""
        return sorted(await self.model_listing())

    async def model_listing(self) -> dict[str, int | None]:
        """Every model id the API lists (``GET /v1/models``, every page), with its
        ``max_input_tokens``: the most a request's input may hold, taken as its window."""
        listed: dict[str, int | None] = {}
        params = {"limit": "1000"}
        async with self._lister(_error_message) as get:
            for _ in range(_MAX_MODEL_PAGES):
                body = await get(self._models_url, self._list_headers, params)
                if not isinstance(body, dict):
                    break
                listed.update(listed_windows(body, _input_limit))
                last_id = body.get("last_id")
                if body.get("has_more") is not True or not isinstance(last_id, str):
                    break
                params = {"limit": "1000", "after_id": last_id}
        return listed

    async def stream(self, request: ModelRequest) -> AsyncGenerator[ModelEvent, None]:
        """Call the model and yield its events; closing the iterator closes the response."""
        body = orjson.dumps(request_body(request))
        call = self._transport(self._stream_url).call(body, _read, message_from_body=_error_message)
        async with aclosing(call) as events:
            async for event in events:
                yield event


async def _read(response: http_response.Response) -> AsyncGenerator[ModelEvent, None]:
    """The events of a successful answer: streamed, or one JSON message."""
    if response.content_type == "application/json":
        for event in _message_events(await response.read()):
            yield event
        return
    state = _StreamState()
    async with aclosing(iter_sse(response.chunks())) as events:
        async for name, data in events:
            for event in state.read(name, data):
                yield event
            if state.stopped:
                break
    if not state.stopped:
        raise upstream_errors.truncated(_LABEL)
    await response.drain(http_response.DRAIN_TIMEOUT)


# ---------------------------------------------------------------------------- response


class _Thinking:
    """A ``thinking`` block being streamed: its text so far and its signature, once sent."""

    __slots__ = ("pieces", "signature")

    def __init__(self, text: str, signature: str) -> None:
        self.pieces = [text] if text else []
        self.signature = signature


class _StreamState:
    """What one stream has said so far: token totals, the thinking blocks to send back
    (by block index, in stream order) and where each came, and whether the message ended."""

    __slots__ = (
        "answers",
        "cached_tokens",
        "calls",
        "input_tokens",
        "output_tokens",
        "places",
        "reasoning_tokens",
        "stopped",
        "texted",
        "thinking",
    )

    def __init__(self) -> None:
        self.input_tokens = 0
        self.output_tokens = 0
        self.reasoning_tokens = 0
        self.cached_tokens = 0
        self.stopped = False
        #: Block index -> a ``thinking`` block, or a ``redacted_thinking`` block as sent.
        self.thinking: dict[int, _Thinking | dict[str, Any]] = {}
        #: The indexes of the client ``tool_use`` blocks: only their input is a call's.
        self.calls: set[int] = set()
        #: The indexes of the ``FORMAT_TOOL`` blocks: their input is the answer's text.
        self.answers: set[int] = set()
        #: Whether the answer has text yet (sent back as one text block, first).
        self.texted = False
        #: Block index of a kept thinking block -> how many of the blocks that go back
        #: with the answer (its text, its ``tool_use`` blocks) came before it.
        self.places: dict[int, int] = {}

    def read(self, name: str, data: bytes) -> list[ModelEvent]:
        """The model events of one SSE event (``name`` its ``event:`` line)."""
        try:
            payload = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise malformed("an event that is not valid JSON", provider_label=_LABEL) from None
        if not isinstance(payload, dict):
            raise malformed("an event that is not a JSON object", provider_label=_LABEL)
        kind = payload.get("type", name)
        if kind == "content_block_delta":
            return self.delta_events(payload)
        if kind == "content_block_start":
            return self.block_start(payload)
        if kind == "message_start":
            message = payload.get("message")
            if not isinstance(message, dict):
                raise malformed("a message_start without a message", provider_label=_LABEL)
            return self.usage_events(message.get("usage"))
        if kind == "message_delta":
            delta = _object(payload.get("delta"), "a message_delta whose delta")
            events = self.usage_events(payload.get("usage"))
            reason = delta.get("stop_reason")
            if reason is not None:
                events.insert(0, self.finish(reason))
            return events
        if kind == "message_stop":
            self.stopped = True
            return self.state_events()
        if kind == "error":
            detail = _error_message(payload)
            raise UpstreamError(
                f"The {_LABEL} reported an error during the stream"
                + (f": {detail}" if detail else "."),
                code="upstream_stream_error",
            )
        # ping, content_block_stop and event types added later carry nothing we use.
        return []

    def delta_events(self, payload: dict[str, Any]) -> list[ModelEvent]:
        """The events of a ``content_block_delta``; thinking is also kept to send back."""
        index = _index(payload)
        delta = _object(payload.get("delta"), "a content_block_delta whose delta")
        kind = delta.get("type")
        if kind == "text_delta":
            value = _delta_text(delta, "text", kind)
            if not value:
                return []
            self.texted = True
            return [TextPart(value)]
        if kind == "thinking_delta":
            value = _delta_text(delta, "thinking", kind)
            if not value:
                return []
            block = self.thinking.get(index)
            if type(block) is _Thinking:
                block.pieces.append(value)
            return [ReasoningPart(value)]
        if kind == "input_json_delta" and index in self.answers:
            value = _delta_text(delta, "partial_json", kind)
            return [TextPart(value)] if value else []
        if kind == "input_json_delta":
            if index not in self.calls:
                return []  # the input of a tool the API runs itself
            value = _delta_text(delta, "partial_json", kind)
            return [ToolCallPart(index=index, arguments=value)] if value else []
        if kind == "signature_delta":
            block = self.thinking.get(index)
            if type(block) is _Thinking:
                block.signature = _delta_text(delta, "signature", kind)  # the whole signature
        return []  # citations_delta, ...: not kept

    def block_start(self, payload: dict[str, Any]) -> list[ModelEvent]:
        """The events of a ``content_block_start``; a thinking block is also kept."""
        events = _block_start_events(payload)
        block = payload["content_block"]  # an object: checked by _block_start_events
        kind = block.get("type")
        if kind == "tool_use" and block.get("name") == FORMAT_TOOL:
            self.answers.add(payload["index"])
            self.texted = True
            return [
                TextPart(e.arguments) for e in events if isinstance(e, ToolCallPart) and e.arguments
            ]
        if kind == "tool_use":
            self.calls.add(payload["index"])
        elif kind == "text" and block.get("text"):
            self.texted = True
        elif kind in _THINKING_TYPES:
            self.keep_thinking(payload["index"], block)
            self.places[payload["index"]] = int(self.texted) + len(self.calls)
        return events

    def finish(self, reason: Any) -> FinishPart:
        """The finish of a ``stop_reason``: a stop for the forced call of an answer in a
        JSON format (``FORMAT_TOOL``), when the answer called no client tool."""
        if reason == "tool_use" and self.answers and not self.calls:
            return FinishPart("stop")
        return _finish_part(reason)

    def keep_thinking(self, index: int, block: dict[str, Any]) -> None:
        """Keep a ``thinking`` / ``redacted_thinking`` block (from its start) to send back."""
        if block["type"] == "redacted_thinking":
            data = block.get("data")
            if not isinstance(data, str):
                raise malformed("a redacted_thinking block without its data", provider_label=_LABEL)
            self.thinking[index] = {"type": "redacted_thinking", "data": data}
            return
        text, signature = block.get("thinking") or "", block.get("signature") or ""
        if not isinstance(signature, str):
            raise malformed("a thinking block whose signature is not text", provider_label=_LABEL)
        self.thinking[index] = _Thinking(text, signature)  # text: checked by the caller

    def state_events(self) -> list[ModelEvent]:
        """A ``StatePart`` with the thinking blocks to send back, if any. A thinking block
        still without its signature is left out: the API would refuse it. When a kept block
        came after some of the text and ``tool_use`` blocks (interleaved thinking),
        ``"thinking_places"`` says, for each kept block, how many of those came before it
        (the answer's text counting as one block, as it goes back)."""
        blocks: list[dict[str, Any]] = []
        places: list[int] = []
        for index, block in self.thinking.items():
            if not isinstance(block, _Thinking):
                blocks.append(block)  # redacted_thinking, as it came
            elif block.signature:
                thought = "".join(block.pieces)
                blocks.append(
                    {"type": "thinking", "thinking": thought, "signature": block.signature}
                )
            else:
                continue
            places.append(self.places.get(index, 0))
        if not blocks:
            return []
        state: dict[str, Any] = {"thinking_blocks": blocks}
        if any(places):
            state["thinking_places"] = places
        return [StatePart(state)]

    def usage_events(self, usage: Any) -> list[ModelEvent]:
        """A ``UsagePart`` with the totals so far, when ``usage`` holds counts."""
        if usage is None:
            return []
        usage = _object(usage, "usage that")
        counts = [
            usage.get(key)
            for key in (
                "input_tokens",
                "cache_creation_input_tokens",
                "cache_read_input_tokens",
                "output_tokens",
            )
        ]
        if not all(c is None or (type(c) is int) for c in counts):
            raise malformed("token counts that are not integers", provider_label=_LABEL)
        fresh, cache_write, cache_read, output = counts
        if fresh is not None or cache_write is not None or cache_read is not None:
            # What the call read in all: cached input is counted apart from the rest, and
            # what it read from the cache is the cached part of that.
            self.input_tokens = (fresh or 0) + (cache_write or 0) + (cache_read or 0)
            self.cached_tokens = cache_read or 0
        if output is not None:
            self.output_tokens = output
        # The thinking among the output tokens, where the API says it.
        thinking = detail(usage.get("output_tokens_details"), "thinking_tokens")
        if thinking:
            self.reasoning_tokens = thinking
        return [
            usage_part(
                self.input_tokens,
                self.output_tokens,
                reasoning_tokens=self.reasoning_tokens,
                cached_tokens=self.cached_tokens,
            )
        ]


def _block_start_events(payload: dict[str, Any]) -> list[ModelEvent]:
    index = _index(payload)
    block = _object(payload.get("content_block"), "a content_block_start whose block")
    kind = block.get("type")
    if kind == "tool_use":
        call_id, name, given = block.get("id"), block.get("name"), block.get("input")
        if not isinstance(call_id, str) or not isinstance(name, str):
            raise malformed("a tool_use block without an id and name", provider_label=_LABEL)
        # The input comes as input_json_delta fragments; the start holds an empty object.
        arguments = orjson.dumps(given).decode() if isinstance(given, dict) and given else ""
        return [ToolCallPart(index=index, id=call_id, name=name, arguments=arguments)]
    text = block.get("text") if kind == "text" else block.get("thinking")
    if kind in ("text", "thinking") and text:  # normally empty: the text comes as deltas
        if not isinstance(text, str):
            raise malformed(f"a {kind} block whose text is not text", provider_label=_LABEL)
        return [TextPart(text) if kind == "text" else ReasoningPart(text)]
    # redacted_thinking, server_tool_use, *_tool_result, mcp_tool_use, types added later:
    # nothing to show, and no call for the client
    return []


def _delta_text(delta: dict[str, Any], field: str, kind: str) -> str:
    value = delta.get(field)
    if type(value) is not str:
        raise malformed(f"a {kind} without its text", provider_label=_LABEL)
    return value


def _finish_part(reason: Any) -> FinishPart:
    if not isinstance(reason, str):
        raise malformed("a stop_reason that is not text", provider_label=_LABEL)
    return FinishPart(_FINISH_REASONS.get(reason, reason))


def _index(payload: dict[str, Any]) -> int:
    index = payload.get("index")
    if type(index) is not int:
        raise malformed("a content block event without an index", provider_label=_LABEL)
    return index


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise malformed(f"{what} is not an object", provider_label=_LABEL)
    return value


def _message_events(raw: bytes) -> list[ModelEvent]:
    """The events of a whole ``message`` (a server that ignored ``stream``)."""
    try:
        message = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise malformed("an answer that is not valid JSON", provider_label=_LABEL) from None
    if not isinstance(message, dict) or not isinstance(message.get("content"), list):
        raise malformed("an answer without content", provider_label=_LABEL)
    events: list[ModelEvent] = []
    state = _StreamState()
    for index, block in enumerate(message["content"]):
        if isinstance(block, dict):
            events.extend(state.block_start({"index": index, "content_block": block}))
    events.append(state.finish(message.get("stop_reason") or "end_turn"))
    events.extend(state.usage_events(message.get("usage")))
    events.extend(state.state_events())
    return events


# ------------------------------------------------------------------------------ models


def _input_limit(model: Mapping[str, Any]) -> int | None:
    """A listed model's window (``model_listing``)."""
    return as_window(model.get("max_input_tokens"))


# ------------------------------------------------------------------------------ errors


def _error_message(body: Any) -> str:
    """The API's own message from an error body (``{"type": "error", "error": {"type",
    "message"}}``), shortened, with its error type; or ``""``."""
    if not isinstance(body, dict):
        return ""
    error = body.get("error")
    if not isinstance(error, dict):
        return ""
    message, kind = error.get("message"), error.get("type")
    if not isinstance(message, str) or not message.strip():
        return kind if isinstance(kind, str) else ""
    detail = shorten_detail(message)
    return f"{detail} ({kind})" if isinstance(kind, str) and kind else detail
