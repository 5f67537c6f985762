"""Adapter for OpenAI-compatible Chat Completions APIs (OpenAI, vLLM, llama.cpp, DeepSeek, ...).

``POST {base_url}/chat/completions`` with ``stream: true``; the SSE chunks become model
events: ``delta.content`` → ``TextPart``, ``delta.reasoning_content`` / ``delta.reasoning``
(or, without either, the text of OpenRouter's ``delta.reasoning_details``) →
``ReasoningPart``, ``delta.tool_calls[]`` → ``ToolCallPart``, ``usage`` → ``UsagePart``,
``finish_reason`` → ``FinishPart``. The request's options (``ModelOptions``) become
``tool_choice``, ``parallel_tool_calls``, ``response_format`` and ``reasoning_effort``,
unless its parameters set them already. Every failure is an ``UpstreamError`` (or
``UpstreamTimeout``) with a message safe to show a user. A chunk with an ``error`` (an
error part way through the stream, the HTTP status long sent) fails the turn; the
``usage`` it may carry as well (OpenRouter) is passed on first.

This adapter is on the server's hot path. It talks HTTP through ``transport.HTTPTransport``
(aiohttp), which every adapter shares; this module holds only what is particular to Chat
Completions.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncGenerator, Mapping
from contextlib import aclosing
from typing import Any

import aiohttp
import orjson

from parley.errors import UpstreamError
from parley.events import FinishPart, ModelEvent, ReasoningPart, TextPart, ToolCallPart, UsagePart
from parley.providers import http_response, upstream_errors
from parley.providers.base import ChatMessage, ModelRequest
from parley.providers.embedding_wire import OPENAI_BATCH, openai_body, openai_result
from parley.providers.embeddings import EmbedRequest, EmbedResult
from parley.providers.file_parts import as_text, data_url, native, with_file_texts
from parley.providers.http_provider import HTTPProvider
from parley.providers.options import add_unset, openai_response_format, openai_tool_choice
from parley.providers.sse import iter_sse
from parley.providers.think_tags import ThinkTagSplitter
from parley.providers.transport import NO_RETRIES, RetryPolicy
from parley.providers.upstream_errors import malformed, shorten_detail
from parley.providers.usage import detail, usage_part
from parley.providers.windows import listed_windows


class OpenAIChatProvider(HTTPProvider):
    """Streams Chat Completions from one OpenAI-compatible endpoint.

    HTTP goes through an ``HTTPTransport`` (see there: the client and its keep-alive
    connection pool are opened on first use and live until ``aclose``; proxies come from
    the environment). A ``session`` passed in is used as is (with this provider's timeouts)
    and left open.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        connect_timeout: float = 10.0,
        read_timeout: float = 120.0,
        session: aiohttp.ClientSession | None = None,
        retry: RetryPolicy = NO_RETRIES,
        think_tags: bool = False,
        reasoning_back: bool = False,
    ) -> None:
        super().__init__(
            auth={"Authorization": f"Bearer {api_key}"} if api_key else {},
            headers=headers,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            session=session,
            retry=retry,
        )
        #: Split ``<think>…</think>`` out of the answer text into reasoning.
        self._think_tags = think_tags
        #: Send stored reasoning back as ``reasoning_content`` on tool-call turns (DeepSeek).
        self._reasoning_back = reasoning_back
        root = base_url.rstrip("/")
        self._stream_url = root + "/chat/completions"
        self._models_url = root + "/models"
        self._embeddings_url = root + "/embeddings"

    async def list_models(self) -> list[str]:
        """The model ids the endpoint lists (``GET /models``), sorted."""
        return sorted(await self.model_listing())

    async def model_listing(self) -> dict[str, int | None]:
        """Every model id the endpoint lists (``GET /models``), with the context window
        its entry gives (vLLM, OpenRouter, llama.cpp and others give one: ``listed_window``;
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
        body = orjson.dumps(request_body(request, reasoning_back=self._reasoning_back))
        splitter = ThinkTagSplitter() if self._think_tags else None
        read = functools.partial(_read, splitter=splitter)
        call = self._transport(self._stream_url).call(body, read, message_from_body=_error_message)
        async with aclosing(call) as events:
            async for event in events:
                yield event


async def _read(
    response: http_response.Response, *, splitter: ThinkTagSplitter | None
) -> AsyncGenerator[ModelEvent, None]:
    """The events of a successful answer: streamed up to ``[DONE]``, or one JSON
    completion (a server that ignored ``stream``)."""
    if response.content_type == "application/json":
        answer = _completion_events(await response.read())
        for event in splitter.apply(answer) if splitter else answer:
            yield event
        return
    done = finished = False
    async with aclosing(iter_sse(response.chunks())) as events:
        async for _name, data in events:
            if data == b"[DONE]":
                done = True
                break
            chunk = _chunk(data)
            if chunk.get("error") is not None:
                for event in _spent(chunk):
                    yield event
                raise _stream_error(chunk)
            parts = _chunk_parts(chunk)
            for event in splitter.apply(parts) if splitter else parts:
                if type(event) is FinishPart:
                    finished = True
                yield event
    if splitter:
        for event in splitter.flush():
            yield event
    if done:
        await response.drain(http_response.DRAIN_TIMEOUT)
    elif not finished:
        raise upstream_errors.truncated()


# ----------------------------------------------------------------------------- request


def request_body(request: ModelRequest, *, reasoning_back: bool = False) -> dict[str, Any]:
    """The JSON body of a streaming Chat Completions call for ``request``."""
    messages: list[dict[str, Any]] = []
    if request.instructions:
        messages.append({"role": "system", "content": request.instructions})
    for message in request.messages:
        wire = _wire_message(message)
        if reasoning_back and message.tool_calls and message.reasoning:
            wire["reasoning_content"] = message.reasoning
        messages.append(wire)
    body: dict[str, Any] = dict(request.parameters)
    stream_options = body.get("stream_options")
    body.update(
        model=request.model,
        messages=messages,
        stream=True,
        stream_options={
            **(stream_options if isinstance(stream_options, dict) else {}),
            "include_usage": True,
        },
    )
    if request.tools:
        body["tools"] = [tool.model_dump() for tool in request.tools]
    add_unset(body, _option_fields(request))
    return body


def _option_fields(request: ModelRequest) -> dict[str, Any]:
    """The request's options as Chat Completions fields: ``tool_choice`` and
    ``parallel_tool_calls`` (only with tools: the API refuses them alone),
    ``response_format`` and ``reasoning_effort``; None where an option is unset. A reasoning
    summary has no field here."""
    options = request.options
    fields: dict[str, Any] = {
        "response_format": openai_response_format(options.response_format, flat=False),
        "reasoning_effort": options.reasoning_effort,
    }
    if request.tools:
        fields["tool_choice"] = openai_tool_choice(options.tool_choice, flat=False)
        fields["parallel_tool_calls"] = options.parallel_tool_calls
    return fields


def _wire_message(message: ChatMessage) -> dict[str, Any]:
    role = str(message.role)
    if role == "tool":
        return {
            "role": "tool",
            "tool_call_id": message.tool_call_id or "",
            "content": message.content,
        }
    if role != "assistant":
        if message.images or any(native(f) for f in message.files):
            return {"role": role, "content": _content_parts(message)}
        return {"role": role, "content": with_file_texts(message)}
    if not message.tool_calls:
        return {"role": "assistant", "content": message.content}
    return {
        "role": "assistant",
        "content": message.content or None,
        "tool_calls": [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": orjson.dumps(call.arguments).decode()},
            }
            for call in message.tool_calls
        ],
    }


def _content_parts(message: ChatMessage) -> list[dict[str, Any]]:
    """The content of a message with images or files, as content parts: its text (when it
    has any), then one ``image_url`` part per image (data URLs and http(s) URLs both go as
    ``url``), then one part per file: a ``file`` part (``file_data``, ``filename``) where
    it goes as bytes, else a text part (``file_parts``)."""
    parts: list[dict[str, Any]] = []
    if message.content:
        parts.append({"type": "text", "text": message.content})
    parts.extend({"type": "image_url", "image_url": {"url": url}} for url in message.images)
    for file in message.files:
        if native(file):
            parts.append(
                {"type": "file", "file": {"filename": file.filename, "file_data": data_url(file)}}
            )
        else:
            parts.append({"type": "text", "text": as_text(file)})
    return parts


# ---------------------------------------------------------------------------- response


def chunk_events(data: bytes | str) -> list[ModelEvent]:
    """The model events of one ``chat.completion.chunk`` (the ``data`` of one SSE event);
    a chunk with an ``error`` raises it."""
    chunk = _chunk(data)
    if chunk.get("error") is not None:
        raise _stream_error(chunk)
    return _chunk_parts(chunk)


def _chunk(data: bytes | str) -> dict[str, Any]:
    try:
        chunk = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise malformed("a chunk that is not valid JSON") from None
    if not isinstance(chunk, dict):
        raise malformed("a chunk that is not a JSON object")
    return chunk


def _stream_error(chunk: dict[str, Any]) -> UpstreamError:
    detail = _error_message(chunk)
    return UpstreamError(
        "The upstream provider reported an error during the stream"
        + (f": {detail}" if detail else "."),
        code="upstream_stream_error",
    )


def _spent(chunk: dict[str, Any]) -> list[ModelEvent]:
    """The usage an error chunk carries, if it can be read: the error, not a bad count,
    is what the turn fails with."""
    usage = chunk.get("usage")
    if not usage:
        return []
    try:
        return [_usage_part(usage)]
    except UpstreamError:
        return []


def _chunk_parts(chunk: dict[str, Any]) -> list[ModelEvent]:
    events: list[ModelEvent] = []
    choices = chunk.get("choices")
    if choices:
        if not isinstance(choices, list):
            raise malformed("a chunk whose choices are not a list")
        for choice in choices:
            if not isinstance(choice, dict):
                raise malformed("a chunk with a choice that is not an object")
            if choice.get("index", 0) in (0, None):
                _choice_events(choice, choice.get("delta"), events)
    usage = chunk.get("usage")
    if usage:
        events.append(_usage_part(usage))
    return events


def _choice_events(choice: dict[str, Any], delta: Any, events: list[ModelEvent]) -> None:
    if delta:
        if not isinstance(delta, dict):
            raise malformed("a chunk whose delta is not an object")
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        if reasoning and isinstance(reasoning, str):
            events.append(ReasoningPart(reasoning))
        elif details := delta.get("reasoning_details"):  # beside a string, the same again
            _reasoning_details(details, events)
        content = delta.get("content")
        if content:
            if isinstance(content, str):
                events.append(TextPart(content))
            elif isinstance(content, list):
                _content_chunks(content, events)
            else:
                raise malformed("a chunk whose content is not text")
        tool_calls = delta.get("tool_calls")
        if tool_calls:
            if not isinstance(tool_calls, list):
                raise malformed("a chunk whose tool_calls are not a list")
            events.extend(_tool_fragment(fragment, None) for fragment in tool_calls)
    finish = choice.get("finish_reason")
    if finish:
        if not isinstance(finish, str):
            raise malformed("a chunk whose finish_reason is not text")
        events.append(FinishPart(finish))


#: OpenRouter's ``reasoning_details`` types that carry text to show: the field holding it,
#: and whether it is a summary of the reasoning rather than the reasoning.
_REASONING_DETAILS = {"reasoning.text": ("text", False), "reasoning.summary": ("summary", True)}


def _reasoning_details(details: Any, events: list[ModelEvent]) -> None:
    """Reasoning sent only as OpenRouter's ``reasoning_details``, a list of typed objects:
    ``reasoning.text`` is the reasoning, ``reasoning.summary`` a summary of it. Signatures
    and ``reasoning.encrypted`` data are opaque: never shown, never read; objects of other
    types, or of another shape, carry nothing to show."""
    if not isinstance(details, list):
        return
    for item in details:
        kind = item.get("type") if isinstance(item, dict) else None
        if not isinstance(kind, str) or kind not in _REASONING_DETAILS:  # a list is no key
            continue
        field, summary = _REASONING_DETAILS[kind]
        text = item.get(field)
        if isinstance(text, str) and text:
            events.append(ReasoningPart(text, summary=summary))


def _content_chunks(chunks: list[Any], events: list[ModelEvent]) -> None:
    """Content sent as typed chunks (Mistral's reasoning models): ``text`` chunks are the
    answer, ``thinking`` chunks hold the reasoning as a list of text chunks."""
    for chunk in chunks:
        if not isinstance(chunk, dict):
            raise malformed("a content chunk that is not an object")
        kind = chunk.get("type")
        if kind == "text":
            text = chunk.get("text")
            if not isinstance(text, str):
                raise malformed("a text chunk without text")
            if text:
                events.append(TextPart(text))
        elif kind == "thinking":
            parts = chunk.get("thinking")
            if not isinstance(parts, list):
                raise malformed("a thinking chunk whose thinking is not a list")
            for part in parts:
                text = part.get("text") if isinstance(part, dict) else None
                if isinstance(text, str) and text:
                    events.append(ReasoningPart(text))
        # other chunk types (references, images) carry no text to stream


def _tool_fragment(fragment: Any, default_index: int | None) -> ToolCallPart:
    if not isinstance(fragment, dict):
        raise malformed("a tool call that is not an object")
    function = fragment.get("function") or {}
    if not isinstance(function, dict):
        raise malformed("a tool call whose function is not an object")
    index = fragment.get("index", default_index)
    call_id = fragment.get("id")
    name = function.get("name")
    arguments = function.get("arguments") or ""
    if isinstance(arguments, dict):  # some servers send the object itself
        arguments = orjson.dumps(arguments).decode()
    if (
        not (index is None or (isinstance(index, int) and not isinstance(index, bool)))
        or not isinstance(call_id, str | None)
        or not isinstance(name, str | None)
        or not isinstance(arguments, str)
    ):
        raise malformed("a tool call with fields of the wrong type")
    return ToolCallPart(index=index, id=call_id or None, name=name or None, arguments=arguments)


def _usage_part(usage: Any) -> UsagePart:
    if not isinstance(usage, dict):
        raise malformed("usage that is not an object")
    prompt = usage.get("prompt_tokens") or 0
    completion = usage.get("completion_tokens") or 0
    total = usage.get("total_tokens") or 0
    if not isinstance(prompt, int) or not isinstance(completion, int):
        raise malformed("token counts that are not integers")
    # Some servers (xAI) leave reasoning tokens out of completion_tokens but count them
    # in total_tokens; the output is everything the model generated, reasoning included.
    if isinstance(total, int) and total - prompt > completion:
        completion = total - prompt
    reasoning = detail(usage.get("completion_tokens_details"), "reasoning_tokens")
    # OpenAI and most others give the cached tokens in prompt_tokens_details; DeepSeek
    # says prompt_cache_hit_tokens as well, Together cached_tokens beside prompt_tokens.
    cached = (
        detail(usage.get("prompt_tokens_details"), "cached_tokens")
        or detail(usage, "prompt_cache_hit_tokens")
        or detail(usage, "cached_tokens")
    )
    return usage_part(prompt, completion, reasoning_tokens=reasoning, cached_tokens=cached)


def _completion_events(raw: bytes) -> list[ModelEvent]:
    """The events of a whole ``chat.completion`` (a server that ignored ``stream``)."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise malformed("an answer that is not valid JSON") from None
    choices = body.get("choices") if isinstance(body, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise malformed("an answer without choices")
    message = choices[0].get("message")
    if not isinstance(message, dict):
        raise malformed("an answer without a message")
    events: list[ModelEvent] = []
    calls = message.pop("tool_calls", None) or []
    if not isinstance(calls, list):
        raise malformed("an answer whose tool_calls are not a list")
    _choice_events({"finish_reason": None}, message, events)
    events.extend(_tool_fragment(call, i) for i, call in enumerate(calls))
    _choice_events({"finish_reason": choices[0].get("finish_reason") or "stop"}, None, events)
    if body.get("usage"):
        events.append(_usage_part(body["usage"]))
    return events


# ------------------------------------------------------------------------------ errors


def _error_message(body: Any) -> str:
    """The upstream's own error message from a JSON error body, shortened; or ``""``."""
    if not isinstance(body, dict):
        return ""
    error = body.get("error")
    message = error.get("message") if isinstance(error, dict) else error
    if message is None:
        message = body.get("message")
    if not isinstance(message, str):
        return ""
    return shorten_detail(message)
