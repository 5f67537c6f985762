"""Adapter for the OpenAI Responses API (``POST {base_url}/responses``).

The call is stateless (``store: false``): each call carries the whole context as ``input``
items. Its typed SSE events become model events: ``response.output_text.delta`` →
``TextPart``, ``response.reasoning_summary_text.delta`` / ``response.reasoning_text.delta``
→ ``ReasoningPart``, a ``function_call`` item added → ``ToolCallPart`` (keyed by its
``output_index``, with call id and name), ``response.function_call_arguments.delta`` →
``ToolCallPart`` argument fragments, ``response.completed`` / ``response.incomplete`` →
``UsagePart`` and ``FinishPart``; ``error`` and ``response.failed`` are an
``UpstreamError``. Every failure is an ``UpstreamError`` (or ``UpstreamTimeout``) with a
message safe to show a user.

Reasoning goes back. A stateless call (``store`` false) to a reasoning model asks for
``include: ["reasoning.encrypted_content"]``: the o-series, gpt-5 and codex models by name,
or any model given a ``reasoning`` parameter (OpenAI answers 400 to a model that does not
reason, so the include is not always on). The finished items of an answer
(``response.output_item.done``) are kept in output order: each ``reasoning`` item whole, as
it came, and the ``message`` and ``function_call`` items by id; when the answer has
reasoning, they are yielded as ``StatePart({"model": ..., "output": [...]})`` just before
the ``FinishPart``. An assistant message whose ``provider_state`` holds them, for the same
model, sends them back in that order (reasoning items, its text as output ``message``
items, its ``function_call`` items with their ids), as the API requires for the reasoning
behind function calls; when they no longer fit the message (another model, changed calls,
a reasoning item that is neither encrypted nor stored), the message goes as plain items.
A user message's ``images`` become ``input_image`` parts after its ``input_text``, and its
files ``input_file`` parts (``file_parts``).

The request's body is built in ``openai_responses_request`` (``request_body``): its
options become ``tool_choice``, ``parallel_tool_calls``, ``text.format`` and ``reasoning``
(``effort``, ``summary``); the parameters' own keys win, inside ``text`` and ``reasoning``
too.

HTTP goes through ``transport.HTTPTransport``, which every adapter shares; this module holds
only what is particular to the Responses API.
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
from parley.providers.base import ModelRequest
from parley.providers.embedding_wire import OPENAI_BATCH, openai_body, openai_result
from parley.providers.embeddings import EmbedRequest, EmbedResult
from parley.providers.http_provider import HTTPProvider
from parley.providers.openai_responses_request import MESSAGE_KEYS, request_body, wire_input
from parley.providers.sse import iter_sse
from parley.providers.transport import NO_RETRIES, RetryPolicy
from parley.providers.upstream_errors import malformed, shorten_detail
from parley.providers.usage import detail, usage_part
from parley.providers.windows import listed_windows

__all__ = ["OpenAIResponsesProvider", "request_body", "wire_input"]

#: How the user is told who failed.
_LABEL = "OpenAI Responses API"
#: The events whose deltas are reasoning text.
_REASONING_DELTAS = frozenset({"response.reasoning_summary_text.delta", "response.reasoning_text.delta"})  # fmt: skip


class OpenAIResponsesProvider(HTTPProvider):
    """Streams answers of the OpenAI Responses API (or a server speaking the same API).

    HTTP goes through an ``HTTPTransport`` (opened on first use, closed by ``aclose``;
    proxies come from the environment). A ``session`` passed in is used as is (with this
    provider's timeouts) and left open. ``headers`` are added to every call
    (``OpenAI-Organization``, ...) and may replace the defaults.
    """

    refused_options = frozenset({"stop", "seed", "presence_penalty", "frequency_penalty"})
    hands_back_state = True

    label = _LABEL

    def __init__(
        self,
        base_url: str = "https://api.openai.com/v1",
        api_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        connect_timeout: float = 10.0,
        read_timeout: float = 120.0,
        session: aiohttp.ClientSession | None = None,
        retry: RetryPolicy = NO_RETRIES,
    ) -> None:
        super().__init__(
            auth={"Authorization": f"Bearer {api_key}"} if api_key else {},
            headers=headers,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            session=session,
            retry=retry,
        )
        root = base_url.rstrip("/")
        self._stream_url = root + "/responses"
        self._models_url = root + "/models"
        self._embeddings_url = root + "/embeddings"

    async def list_models(self) -> list[str]:
        """The model ids the API lists (``GET /models``), sorted."""
        return sorted(await self.model_listing())

    async def model_listing(self) -> dict[str, int | None]:
        """Every model id the API lists (``GET /models``), with the context window its
        entry gives, where a server speaking this API gives one (``listed_window``;
        OpenAI gives none)."""
        async with self._lister(_error_message) as get:
            return listed_windows(await get(self._models_url, self._list_headers, None))

    #: Embeddings (``embedding_wire``): inputs per call, and token ids are passed through.
    embed_batch = OPENAI_BATCH
    takes_token_ids = True

    async def embed(self, request: EmbedRequest) -> EmbedResult:
        """The vectors of ``request.inputs`` (``POST {base_url}/embeddings``)."""
        answer = await self._post_json(
            self._embeddings_url, openai_body(request), _error_message, what="an embeddings answer"
        )
        return openai_result(answer, request, self.label)

    async def stream(self, request: ModelRequest) -> AsyncGenerator[ModelEvent, None]:
        """Call the model and yield its events; closing the iterator closes the response."""
        body = orjson.dumps(request_body(request))
        model = request.model
        call = self._transport(self._stream_url).call(
            body, lambda response: _read(response, model), message_from_body=_error_message
        )
        async with aclosing(call) as events:
            async for event in events:
                yield event


async def _read(response: http_response.Response, model: str) -> AsyncGenerator[ModelEvent, None]:
    """The events of a successful answer of ``model``: streamed, or one JSON response."""
    if response.content_type == "application/json":
        for event in _response_events(await response.read(), model):
            yield event
        return
    state = _StreamState(model)
    async with aclosing(iter_sse(response.chunks())) as events:
        async for name, data in events:
            for event in state.read(name, data):
                yield event
            if state.ended:
                break
    if not state.ended:
        raise upstream_errors.truncated(_LABEL)
    await response.drain(http_response.DRAIN_TIMEOUT)


# ---------------------------------------------------------------------------- response


class _Output:
    """The finished output items of one response, kept to send back on the next call:
    reasoning items whole, message and function_call items by id, by output index."""

    __slots__ = ("_items", "_model", "_reasoning", "_unknown")

    def __init__(self, model: str) -> None:
        self._model = model
        self._items: dict[int, dict[str, Any]] = {}
        self._reasoning = False
        self._unknown = False

    def add(self, index: Any, item: dict[str, Any]) -> None:
        """Keep a finished item (``output_index`` ``index``)."""
        kind = item.get("type")
        if kind == "reasoning" and isinstance(item.get("id"), str):
            self._reasoning = True
            entry = item  # as it came: id, summary, encrypted_content, ...
        elif kind == "message":
            entry = {key: item[key] for key in MESSAGE_KEYS if key in item}
            entry["type"] = "message"
            entry["chars"] = _text_length(item.get("content"))
        elif kind == "function_call" and isinstance(item.get("call_id"), str):
            entry = {"type": "function_call", "call_id": item["call_id"]}
            if isinstance(item.get("id"), str):
                entry["id"] = item["id"]
        else:
            self._unknown = True  # an item this adapter cannot send back
            return
        if type(index) is not int:
            self._unknown = True
            return
        self._items[index] = entry

    def state(self) -> list[ModelEvent]:
        """A ``StatePart`` with the items in output order, when the answer has reasoning to
        send back; a reasoning item with no item after it is left out (the API refuses it
        alone)."""
        if not self._reasoning or self._unknown:
            return []
        output = [self._items[index] for index in sorted(self._items)]
        while output and output[-1]["type"] == "reasoning":
            output.pop()
        if not any(entry["type"] == "reasoning" for entry in output):
            return []
        return [StatePart({"model": self._model, "output": output})]


def _text_length(content: Any) -> int:
    """The length of the text of a message item's ``output_text`` parts."""
    if not isinstance(content, list):
        return 0
    return sum(
        len(part["text"])
        for part in content
        if isinstance(part, dict)
        and part.get("type") == "output_text"
        and isinstance(part.get("text"), str)
    )


class _StreamState:
    """What one stream has said so far: the function calls opened, which of them had
    argument deltas, the last reasoning part, the items finished, and whether the response
    ended."""

    __slots__ = ("_calls", "_output", "_reasoning_key", "_with_arguments", "ended")

    def __init__(self, model: str) -> None:
        self._calls: set[int] = set()
        self._with_arguments: set[int] = set()
        self._reasoning_key: tuple[Any, ...] | None = None
        self._output = _Output(model)
        self.ended = False

    def read(self, name: str, data: bytes) -> list[ModelEvent]:
        """The model events of one SSE event (``name`` its ``event:`` line)."""
        try:
            payload = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise malformed("an event that is not valid JSON", provider_label=_LABEL) from None
        if not isinstance(payload, dict):
            raise malformed("an event that is not a JSON object", provider_label=_LABEL)
        kind = payload.get("type", name)
        if kind == "response.output_text.delta":
            return [TextPart(text)] if (text := _delta(payload)) else []
        if kind in _REASONING_DELTAS:
            return self._reasoning(kind, payload)
        if kind == "response.function_call_arguments.delta":
            index = _index(payload)
            self._with_arguments.add(index)
            delta = _delta(payload)
            return [ToolCallPart(index=index, arguments=delta)] if delta else []
        if kind in ("response.output_item.added", "response.output_item.done"):
            return self._item(kind, payload)
        if kind in ("response.completed", "response.incomplete"):
            self.ended = True
            return self._end(kind, _object(payload.get("response"), f"a {kind} whose response"))
        if kind == "response.failed":
            response = _object(payload.get("response"), "a response.failed whose response")
            raise _stream_error(response.get("error"))
        if kind == "error":
            raise _stream_error(payload.get("error", payload))
        # response.created, content_part / *.done events, event types added later, ...:
        # nothing we use.
        return []

    def _reasoning(self, kind: str, payload: dict[str, Any]) -> list[ModelEvent]:
        text = _delta(payload)
        if not text:
            return []
        key = (payload.get("item_id"), payload.get("summary_index"), payload.get("content_index"))
        summary = kind == "response.reasoning_summary_text.delta"
        parts: list[ModelEvent] = []
        if self._reasoning_key is not None and key != self._reasoning_key:
            parts.append(ReasoningPart("\n\n", summary))  # summary parts are paragraphs
        self._reasoning_key = key
        parts.append(ReasoningPart(text, summary))
        return parts

    def _item(self, kind: str, payload: dict[str, Any]) -> list[ModelEvent]:
        item = _object(payload.get("item"), f"a {kind} whose item")
        done = kind == "response.output_item.done"
        if done:
            self._output.add(payload.get("output_index"), item)
        if item.get("type") != "function_call":
            return []  # message and reasoning items come as deltas
        index = _index(payload)
        if done:
            # Arguments sent whole, by a server that sends no argument deltas.
            arguments = item.get("arguments")
            if index in self._with_arguments or not isinstance(arguments, str) or not arguments:
                return []
            self._with_arguments.add(index)
            return [ToolCallPart(index=index, arguments=arguments)]
        self._calls.add(index)
        part = _call_start(index, item)
        if part.arguments:
            self._with_arguments.add(index)
        return [part]

    def _end(self, kind: str, response: dict[str, Any]) -> list[ModelEvent]:
        if kind == "response.completed":
            calls = self._calls or _output_calls(response)
            reason = "tool_calls" if calls else "stop"
        else:
            reason = _incomplete_reason(response)
        return [*self._output.state(), FinishPart(reason), *_usage_parts(response.get("usage"))]


def _call_start(index: int, item: dict[str, Any]) -> ToolCallPart:
    """The first fragment of the call a ``function_call`` item opens (its arguments are
    normally empty: they come as deltas)."""
    call_id, name, arguments = item.get("call_id"), item.get("name"), item.get("arguments")
    if not isinstance(call_id, str) or not isinstance(name, str):
        raise malformed("a function_call item without a call_id and name", provider_label=_LABEL)
    if not isinstance(arguments, str):
        arguments = ""
    return ToolCallPart(index=index, id=call_id, name=name, arguments=arguments)


def _incomplete_reason(response: dict[str, Any]) -> str:
    details = response.get("incomplete_details")
    reason = details.get("reason") if isinstance(details, dict) else None
    if not isinstance(reason, str) or not reason:
        return "incomplete"
    return "length" if reason == "max_output_tokens" else reason


def _output_calls(response: dict[str, Any]) -> bool:
    output = response.get("output")
    return isinstance(output, list) and any(
        isinstance(item, dict) and item.get("type") == "function_call" for item in output
    )


def _usage_parts(usage: Any) -> list[ModelEvent]:
    if usage is None:
        return []
    usage = _object(usage, "usage that")
    given, made = usage.get("input_tokens", 0), usage.get("output_tokens", 0)
    if type(given) is not int or type(made) is not int:
        raise malformed("token counts that are not integers", provider_label=_LABEL)
    return [
        usage_part(
            given,
            made,
            reasoning_tokens=detail(usage.get("output_tokens_details"), "reasoning_tokens"),
            cached_tokens=detail(usage.get("input_tokens_details"), "cached_tokens"),
        )
    ]


def _delta(payload: dict[str, Any]) -> str:
    delta = payload.get("delta")
    if not isinstance(delta, str):
        raise malformed(f"a {payload.get('type')} without its text", provider_label=_LABEL)
    return delta


def _index(payload: dict[str, Any]) -> int:
    index = payload.get("output_index")
    if type(index) is not int:
        raise malformed("an output event without an output_index", provider_label=_LABEL)
    return index


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise malformed(f"{what} is not an object", provider_label=_LABEL)
    return value


def _response_events(raw: bytes, model: str) -> list[ModelEvent]:
    """The events of a whole ``response`` object (a server that ignored ``stream``)."""
    try:
        response = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise malformed("an answer that is not valid JSON", provider_label=_LABEL) from None
    if not isinstance(response, dict) or not isinstance(response.get("output"), list):
        raise malformed("an answer without output", provider_label=_LABEL)
    if response.get("status") == "failed":
        raise _stream_error(response.get("error"))
    events: list[ModelEvent] = []
    output = _Output(model)
    for index, item in enumerate(response["output"]):
        if isinstance(item, dict):
            events.extend(_item_events(index, item))
            output.add(index, item)
    events.extend(output.state())
    if response.get("status") == "incomplete":
        events.append(FinishPart(_incomplete_reason(response)))
    else:
        events.append(FinishPart("tool_calls" if _output_calls(response) else "stop"))
    events.extend(_usage_parts(response.get("usage")))
    return events


def _item_events(index: int, item: dict[str, Any]) -> list[ModelEvent]:
    kind = item.get("type")
    if kind == "function_call":
        return [_call_start(index, item)]
    parts = item.get("summary" if kind == "reasoning" else "content")
    if kind not in ("message", "reasoning") or not isinstance(parts, list):
        return []
    pieces = [p.get("text") for p in parts if isinstance(p, dict)]
    text = "\n\n".join(p for p in pieces if isinstance(p, str) and p)
    if not text:
        return []
    return [TextPart(text) if kind == "message" else ReasoningPart(text, summary=True)]


# ------------------------------------------------------------------------------ errors


def _stream_error(error: Any) -> UpstreamError:
    """The error for an ``error`` event or a failed response (``error`` its error object)."""
    detail = _error_detail(error)
    return UpstreamError(
        f"The {_LABEL} reported an error during the stream" + (f": {detail}" if detail else "."),
        code="upstream_stream_error",
    )


def _error_detail(error: Any) -> str:
    if not isinstance(error, dict):
        return ""
    message = error.get("message")
    if not isinstance(message, str) or not message.strip():
        code = error.get("code")
        return code if isinstance(code, str) else ""
    return shorten_detail(message)


def _error_message(body: Any) -> str:
    """The API's own message from an HTTP error body (``{"error": {"message", "type",
    "code"}}``), shortened; or ``""``."""
    if not isinstance(body, dict):
        return ""
    error = body.get("error")
    if isinstance(error, str):
        return shorten_detail(error)
    return _error_detail(error)
