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

HTTP goes through ``transport.HTTPTransport``, which every adapter shares; this module holds
only what is particular to the Responses API. Not sent back yet: reasoning items (they would
need ``include: ["reasoning.encrypted_content"]``), so a later turn carries the visible text
and tool calls only.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from contextlib import aclosing
from typing import Any

import aiohttp
import orjson

from parley.errors import UpstreamError
from parley.events import FinishPart, ModelEvent, ReasoningPart, TextPart, ToolCallPart, UsagePart
from parley.providers import transport
from parley.providers.base import ChatMessage, ModelRequest
from parley.providers.sse import iter_sse
from parley.providers.transport import (
    NO_RETRIES,
    HTTPTransport,
    RetryPolicy,
    malformed,
    shorten_detail,
)
from parley.types import ToolSpec

__all__ = ["OpenAIResponsesProvider", "request_body", "wire_input"]

#: How the user is told who failed.
_LABEL = "OpenAI Responses API"
#: Parameter names of Chat Completions that the Responses API spells otherwise.
_RENAMED = {"max_tokens": "max_output_tokens", "max_completion_tokens": "max_output_tokens"}
#: The events whose deltas are reasoning text.
_REASONING_DELTAS = frozenset({"response.reasoning_summary_text.delta", "response.reasoning_text.delta"})  # fmt: skip


class OpenAIResponsesProvider:
    """Streams answers of the OpenAI Responses API (or a server speaking the same API).

    HTTP goes through an ``HTTPTransport`` (opened on first use, closed by ``aclose``;
    proxies come from the environment). A ``session`` passed in is used as is (with this
    provider's timeouts) and left open. ``headers`` are added to every call
    (``OpenAI-Organization``, ...) and may replace the defaults.
    """

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
        root = base_url.rstrip("/")
        common: dict[str, str] = {}
        if api_key:
            common["Authorization"] = f"Bearer {api_key}"
        wire_headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        wire_headers.update(common)
        wire_headers.update(headers or {})
        self._transport = HTTPTransport(
            root + "/responses",
            wire_headers,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            session=session,
            provider_label=_LABEL,
            retry=retry,
        )
        self._models_url = root + "/models"
        self._list_headers = {k: v for k, v in wire_headers.items() if k.lower() != "accept"}
        self._connect_timeout = connect_timeout

    async def list_models(self) -> list[str]:
        """The model ids the API lists (``GET /models``), sorted."""
        timeout = aiohttp.ClientTimeout(total=None, connect=self._connect_timeout, sock_read=10)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout, cookie_jar=aiohttp.DummyCookieJar()) as http,
                http.get(self._models_url, headers=self._list_headers) as response,
            ):
                if response.status >= 400:
                    raise _list_error(response.status)
                body = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise UpstreamError(
                f"Could not list the {_LABEL}'s models: {type(exc).__name__}.",
                code="upstream_unreachable",
            ) from None
        data = body.get("data") if isinstance(body, dict) else None
        return sorted({str(m["id"]) for m in data or () if isinstance(m, dict) and "id" in m})

    async def aclose(self) -> None:
        """Close the HTTP client this provider opened (a later call opens a new one)."""
        await self._transport.aclose()

    async def stream(self, request: ModelRequest) -> AsyncGenerator[ModelEvent, None]:
        """Call the model and yield its events; closing the iterator closes the response."""
        body = orjson.dumps(request_body(request))
        call = self._transport.call(body, _read, message_from_body=_error_message)
        async with aclosing(call) as events:
            async for event in events:
                yield event


async def _read(response: transport.Response) -> AsyncGenerator[ModelEvent, None]:
    """The events of a successful answer: streamed, or one JSON response."""
    if response.content_type == "application/json":
        for event in _response_events(await response.read()):
            yield event
        return
    state = _StreamState()
    async with aclosing(iter_sse(response.chunks())) as events:
        async for name, data in events:
            for event in state.read(name, data):
                yield event
            if state.ended:
                break
    if not state.ended:
        raise transport.truncated(_LABEL)
    await response.drain(transport.DRAIN_TIMEOUT)


def _list_error(status: int) -> UpstreamError:
    code = "upstream_auth" if status in (401, 403) else "upstream_http_error"
    return UpstreamError(f"The {_LABEL} answered HTTP {status} to GET /models.", code=code)


# ----------------------------------------------------------------------------- request


def request_body(request: ModelRequest) -> dict[str, Any]:
    """The JSON body of a streaming, stateless Responses API call for ``request``.

    Parameters pass through (``temperature``, ``top_p``, ``reasoning``, ``store``, ...),
    with ``max_tokens`` sent as ``max_output_tokens``; ``store`` defaults to false.
    """
    body: dict[str, Any] = {}
    for key, value in request.parameters.items():
        body[_RENAMED.get(key, key)] = value
    body.setdefault("store", False)
    body.update(model=request.model, input=wire_input(request.messages), stream=True)
    if request.instructions:
        body["instructions"] = request.instructions
    if request.tools:
        body["tools"] = [_wire_tool(tool) for tool in request.tools]
    return body


def _wire_tool(tool: ToolSpec) -> dict[str, Any]:
    """A function tool in the Responses API's flat shape. ``strict`` is sent as false: the
    API may otherwise enforce strict schemas, which Parley's tools do not promise."""
    function = tool.function
    return {
        "type": "function",
        "name": function.name,
        "description": function.description,
        "parameters": function.parameters,
        "strict": False,
    }


def wire_input(messages: list[ChatMessage]) -> list[dict[str, Any]]:
    """The ``input`` items of a call: a message item per message with text, a
    ``function_call`` item per tool call and a ``function_call_output`` per tool result."""
    items: list[dict[str, Any]] = []
    for message in messages:
        role = str(message.role)
        if role == "tool":
            items.append(
                {
                    "type": "function_call_output",
                    "call_id": message.tool_call_id or "",
                    "output": message.content,
                }
            )
            continue
        if role != "assistant" or message.content or not message.tool_calls:
            items.append({"role": role, "content": message.content})
        if role == "assistant":
            items.extend(
                {
                    "type": "function_call",
                    "call_id": call.id,
                    "name": call.name,
                    "arguments": orjson.dumps(call.arguments).decode(),
                }
                for call in message.tool_calls
            )
    return items


# ---------------------------------------------------------------------------- response


class _StreamState:
    """What one stream has said so far: the function calls opened, which of them had
    argument deltas, the last reasoning part, and whether the response ended."""

    __slots__ = ("_calls", "_reasoning_key", "_with_arguments", "ended")

    def __init__(self) -> None:
        self._calls: set[int] = set()
        self._with_arguments: set[int] = set()
        self._reasoning_key: tuple[Any, ...] | None = None
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
            return self._reasoning(payload)
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

    def _reasoning(self, payload: dict[str, Any]) -> list[ModelEvent]:
        text = _delta(payload)
        if not text:
            return []
        key = (payload.get("item_id"), payload.get("summary_index"), payload.get("content_index"))
        parts: list[ModelEvent] = []
        if self._reasoning_key is not None and key != self._reasoning_key:
            parts.append(ReasoningPart("\n\n"))  # summary parts are paragraphs
        self._reasoning_key = key
        parts.append(ReasoningPart(text))
        return parts

    def _item(self, kind: str, payload: dict[str, Any]) -> list[ModelEvent]:
        item = _object(payload.get("item"), f"a {kind} whose item")
        if item.get("type") != "function_call":
            return []  # message and reasoning items come as deltas
        index = _index(payload)
        if kind == "response.output_item.done":
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
        return [FinishPart(reason), *_usage_parts(response.get("usage"))]


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
    return [UsagePart(input_tokens=given, output_tokens=made)]


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


def _response_events(raw: bytes) -> list[ModelEvent]:
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
    for index, item in enumerate(response["output"]):
        if isinstance(item, dict):
            events.extend(_item_events(index, item))
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
    return [TextPart(text) if kind == "message" else ReasoningPart(text)]


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
