"""Adapter for Ollama's native chat API.

``POST {base_url}/api/chat`` with ``stream: true``; the answer is NDJSON, one JSON object
per line: ``message.content`` → ``TextPart``, ``message.thinking`` → ``ReasoningPart``,
``message.tool_calls[]`` → one whole ``ToolCallPart`` per call (Ollama sends each call at
once, its arguments as an object), and the last line, ``done: true``, → ``FinishPart`` and
``UsagePart`` (``prompt_eval_count`` / ``eval_count``). A line ``{"error": "..."}`` is an
``UpstreamError``. Every failure is an ``UpstreamError`` (or ``UpstreamTimeout``) with a
message safe to show a user. Of the request's options, Ollama takes a JSON ``format``, a
``think`` switch or level, and the tools a tool choice allows (``request_body``).
``POST {base_url}/api/show`` tells a model's context window (``model_window``).

HTTP goes through ``transport.HTTPTransport``, shared by every adapter; this module holds
only what is particular to Ollama.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncGenerator, AsyncIterable, Mapping
from contextlib import aclosing
from typing import Any

import aiohttp
import orjson

from parley.errors import UpstreamError
from parley.events import FinishPart, ModelEvent, ReasoningPart, TextPart, ToolCallPart, UsagePart
from parley.providers import http_response, upstream_errors
from parley.providers.base import ChatMessage, ModelOptions, ModelRequest, split_data_url
from parley.providers.embedding_wire import OLLAMA_BATCH, ollama_body, ollama_result
from parley.providers.embeddings import EmbedRequest, EmbedResult
from parley.providers.file_parts import with_file_texts
from parley.providers.http_provider import HTTPProvider
from parley.providers.options import add_unset, json_schema_of, offered_tools, tool_rule
from parley.providers.sse import MAX_LINE, LineTooLong
from parley.providers.transport import NO_RETRIES, RetryPolicy
from parley.providers.upstream_errors import malformed, shorten_detail
from parley.providers.windows import as_window

__all__ = ["DEFAULT_BASE_URL", "OllamaProvider", "ndjson_lines", "request_body", "show_window"]

DEFAULT_BASE_URL = "http://127.0.0.1:11434"
#: How the user is told who failed.
_LABEL = "Ollama server"

#: Request parameters that go into Ollama's ``options`` under the same name.
_OPTIONS = frozenset(
    {
        "temperature",
        "top_p",
        "top_k",
        "min_p",
        "typical_p",
        "seed",
        "stop",
        "num_ctx",
        "num_predict",
        "num_keep",
        "num_batch",
        "num_gpu",
        "num_thread",
        "repeat_penalty",
        "repeat_last_n",
        "presence_penalty",
        "frequency_penalty",
        "mirostat",
        "mirostat_tau",
        "mirostat_eta",
    }
)
#: Request parameters that go at the top level of the body.
_TOP_LEVEL = ("think", "keep_alive", "format")
#: ``think`` levels for each reasoning effort, for the models that take levels (gpt-oss:
#: Ollama refuses a level for any other model, which takes true or false).
_THINK_LEVELS = {
    "minimal": "low",
    "low": "low",
    "medium": "medium",
    "high": "high",
    "xhigh": "high",
}
#: Request parameters that mean ``options.num_predict``.
_MAX_TOKENS = ("max_tokens", "max_completion_tokens", "max_output_tokens")
#: The ``num_ctx`` line of an ``/api/show`` answer's ``parameters`` (one per line, the
#: name, spaces, the value).
_NUM_CTX = re.compile(r"^\s*num_ctx\s+(\d+)\s*$", re.MULTILINE)


class OllamaProvider(HTTPProvider):
    """Streams chat answers from one Ollama server (or a proxy in front of one).

    HTTP goes through an ``HTTPTransport`` (see there: the client and its keep-alive
    connection pool are opened on first use and live until ``aclose``; proxies come from
    the environment). A ``session`` passed in is used as is and left open. ``api_key``, when
    given, is sent as ``Authorization: Bearer``: Ollama itself takes none, a proxy may.
    """

    label = _LABEL
    accept = "application/x-ndjson"

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        api_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        connect_timeout: float = 10.0,
        read_timeout: float = 300.0,
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
        self._stream_url = root + "/api/chat"
        self._tags_url = root + "/api/tags"
        self._show_url = root + "/api/show"
        self._embed_url = root + "/api/embed"

    async def list_models(self) -> list[str]:
        """The names of the models the server has pulled (``GET /api/tags``), sorted."""
        async with self._lister(_error_message) as get:
            body = await get(self._tags_url, self._list_headers, None)
        models = body.get("models") if isinstance(body, dict) else None
        if not isinstance(models, list):
            return []
        return sorted(
            m["name"] for m in models if isinstance(m, dict) and isinstance(m.get("name"), str)
        )

    async def model_window(self, model_id: str) -> int | None:
        """The context window the server gives ``model_id`` (``POST /api/show``,
        ``show_window``); None when it does not have the model or says nothing of it.
        Raises ``UpstreamError`` when the server cannot be asked."""
        async with self._lister(_error_message) as get:
            shown = await get(
                self._show_url, self._list_headers, post={"model": model_id}, none_if_missing=True
            )
        return show_window(shown)

    #: Embeddings (``embedding_wire``): inputs per call; text only.
    embed_batch = OLLAMA_BATCH
    takes_token_ids = False

    async def embed(self, request: EmbedRequest) -> EmbedResult:
        """The vectors of ``request.inputs`` (``POST {base_url}/api/embed``)."""
        answer = await self._post_json(
            self._embed_url, ollama_body(request), _error_message, what="an embeddings answer"
        )
        return ollama_result(answer, request, self.label)

    async def stream(self, request: ModelRequest) -> AsyncGenerator[ModelEvent, None]:
        """Call the model and yield its events; closing the iterator closes the response."""
        body = orjson.dumps(request_body(request))
        call = self._transport(self._stream_url).call(
            body,
            _read,
            message_from_body=_error_message,
            refine=lambda error, status: _with_pull_hint(error, status, request.model),
        )
        async with aclosing(call) as events:
            async for event in events:
                yield event


async def _read(response: http_response.Response) -> AsyncGenerator[ModelEvent, None]:
    """The events of a successful answer, one NDJSON line after another."""
    reader = _LineReader()
    async with aclosing(ndjson_lines(response.chunks())) as lines:
        async for line in lines:
            for event in reader.events(line):
                yield event
            if reader.done:
                break
    if not reader.done:
        raise upstream_errors.truncated(_LABEL)
    await response.drain(http_response.DRAIN_TIMEOUT)


# ----------------------------------------------------------------------------- request


def request_body(request: ModelRequest) -> dict[str, Any]:
    """The JSON body of a streaming ``/api/chat`` call for ``request``.

    Known sampling parameters go into ``options`` (``max_tokens`` as ``num_predict``, a
    single ``stop`` string as a list), an ``options`` dict is merged in as is, ``think``,
    ``keep_alive`` and ``format`` go at the top level; other parameters are not sent.
    Ollama has no tool choice: the tools a choice does not allow are not sent (none for
    ``none``), and a required call cannot be asked for. The options' ``format`` and
    ``think`` (``_option_fields``) are sent where the parameters do not set them.
    """
    messages: list[dict[str, Any]] = []
    if request.instructions:
        messages.append({"role": "system", "content": request.instructions})
    names: dict[str, str] = {}  # tool call id → tool name, for the tool results
    for message in request.messages:
        messages.append(_wire_message(message, names))
    body: dict[str, Any] = {"model": request.model, "messages": messages, "stream": True}
    tools = offered_tools(request.tools, tool_rule(request.options.tool_choice))
    if tools:
        body["tools"] = [tool.model_dump() for tool in tools]
    params = request.parameters
    for key in _TOP_LEVEL:
        if params.get(key) is not None:
            body[key] = params[key]
    add_unset(body, _option_fields(request.model, request.options))
    options = _options(params)
    if options:
        body["options"] = options
    return body


def _option_fields(model: str, options: ModelOptions) -> dict[str, Any]:
    """``format`` and ``think`` for the options: ``"json"`` or the JSON Schema itself for a
    JSON answer; false for no reasoning, else true, or a level for gpt-oss."""
    fields: dict[str, Any] = {}
    json, schema = json_schema_of(options.response_format)
    if json:
        fields["format"] = schema if schema is not None else "json"
    effort = options.reasoning_effort
    if effort == "none":
        fields["think"] = False
    elif effort in _THINK_LEVELS:
        fields["think"] = _THINK_LEVELS[effort] if "gpt-oss" in model else True
    return fields


def _options(params: Mapping[str, Any]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for key in _MAX_TOKENS:
        if params.get(key) is not None:
            options["num_predict"] = params[key]
            break
    options.update((k, v) for k, v in params.items() if k in _OPTIONS and v is not None)
    if isinstance(options.get("stop"), str):
        options["stop"] = [options["stop"]]
    extra = params.get("options")
    if isinstance(extra, Mapping):
        options.update(extra)
    return options


def _wire_message(message: ChatMessage, names: dict[str, str]) -> dict[str, Any]:
    role = str(message.role)
    wire: dict[str, Any] = {"role": role, "content": with_file_texts(message)}
    if role == "tool":
        name = names.get(message.tool_call_id or "")
        if name:
            wire["tool_name"] = name
        return wire
    if role != "assistant":
        if message.images:
            wire["images"] = _images(message.images)
        return wire
    if message.reasoning:
        wire["thinking"] = message.reasoning
    if message.tool_calls:
        for call in message.tool_calls:
            names[call.id] = call.name
        wire["tool_calls"] = [
            {"function": {"name": call.name, "arguments": call.arguments}}
            for call in message.tool_calls
        ]
    return wire


def _images(urls: list[str]) -> list[str]:
    """The raw base64 data of each image (Ollama takes no ``data:`` prefix). Ollama does not
    fetch images itself, so an http(s) address is refused before anything is sent."""
    images: list[str] = []
    for url in urls:
        inline = split_data_url(url)
        if inline is None:
            raise UpstreamError(
                "Ollama cannot fetch images from an address: give the image inline as a "
                "data: URL (data:image/png;base64,...) instead.",
                code="unsupported_image",
            )
        images.append(inline[1])
    return images


# ---------------------------------------------------------------------------- response


async def ndjson_lines(
    chunks: AsyncIterable[bytes], *, max_line: int = MAX_LINE
) -> AsyncGenerator[bytes, None]:
    """Yield each non-blank line of an NDJSON body read in pieces cut anywhere, without its
    line break; a last line without one is yielded too. Closing this generator closes
    ``chunks`` when it can be closed."""
    rest = b""  # an unfinished line, waiting for the rest of it
    try:
        async for chunk in chunks:
            lines = chunk.split(b"\n")
            if rest:
                lines[0] = rest + lines[0]
            rest = lines.pop()
            if len(rest) > max_line:
                raise LineTooLong(f"a line of the stream is longer than {max_line} bytes")
            for line in lines:
                if line.strip():
                    yield line
        if rest.strip():
            yield rest
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()


class _LineReader:
    """Turns the lines of one answer into model events; counts tool calls for their index."""

    __slots__ = ("calls", "done")

    def __init__(self) -> None:
        self.calls = 0
        self.done = False

    def events(self, line: bytes) -> list[ModelEvent]:
        """The model events of one NDJSON line."""
        try:
            data = orjson.loads(line)
        except orjson.JSONDecodeError:
            raise malformed("a line that is not valid JSON", provider_label=_LABEL) from None
        if not isinstance(data, dict):
            raise malformed("a line that is not a JSON object", provider_label=_LABEL)
        if data.get("error") is not None:
            detail = _error_message(data)
            raise UpstreamError(
                f"The {_LABEL} reported an error during the stream"
                + (f": {detail}" if detail else "."),
                code="upstream_stream_error",
            )
        events: list[ModelEvent] = []
        message = data.get("message")
        if message is not None:
            if not isinstance(message, dict):
                raise malformed("a line whose message is not an object", provider_label=_LABEL)
            self._message_events(message, events)
        if data.get("done") is True:
            self.done = True
            events.append(FinishPart(self._finish_reason(data.get("done_reason"))))
            events.append(_usage_part(data))
        return events

    def _message_events(self, message: dict[str, Any], events: list[ModelEvent]) -> None:
        thinking = message.get("thinking")
        content = message.get("content")
        calls = message.get("tool_calls")
        if not isinstance(thinking, str | None) or not isinstance(content, str | None):
            raise malformed("a message whose text is not a string", provider_label=_LABEL)
        if thinking:
            events.append(ReasoningPart(thinking))
        if content:
            events.append(TextPart(content))
        if calls:
            if not isinstance(calls, list):
                raise malformed("a message whose tool_calls are not a list", provider_label=_LABEL)
            for call in calls:
                events.append(self._tool_call(call))

    def _tool_call(self, call: Any) -> ToolCallPart:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            raise malformed("a tool call without a function", provider_label=_LABEL)
        name = function.get("name")
        arguments = function.get("arguments")
        if isinstance(arguments, dict):
            arguments = orjson.dumps(arguments).decode()
        elif arguments is None:
            arguments = ""
        if not isinstance(name, str) or not isinstance(arguments, str):
            raise malformed("a tool call with fields of the wrong type", provider_label=_LABEL)
        call_id = call.get("id")  # recent servers give one; older ones do not
        if not isinstance(call_id, str) or not call_id:
            call_id = f"call_{secrets.token_hex(12)}"
        index, self.calls = self.calls, self.calls + 1
        return ToolCallPart(index=index, id=call_id, name=name, arguments=arguments)

    def _finish_reason(self, reason: Any) -> str:
        if self.calls:
            return "tool_calls"
        return reason if isinstance(reason, str) and reason else "stop"


def _usage_part(data: dict[str, Any]) -> UsagePart:
    prompt = data.get("prompt_eval_count") or 0
    output = data.get("eval_count") or 0
    if not isinstance(prompt, int) or not isinstance(output, int):
        raise malformed("token counts that are not integers", provider_label=_LABEL)
    return UsagePart(input_tokens=prompt, output_tokens=output)


# ------------------------------------------------------------------------------ windows


def show_window(shown: Any) -> int | None:
    """The context window in an ``/api/show`` answer: the model's ``num_ctx`` parameter
    when it sets one (the context the server loads it with, and cuts prompts to), else
    what the model itself takes (``model_info``'s ``<architecture>.context_length``; the
    server may load it with less: its default, or ``OLLAMA_CONTEXT_LENGTH``)."""
    if not isinstance(shown, dict):
        return None
    parameters = shown.get("parameters")
    if isinstance(parameters, str) and (found := _NUM_CTX.search(parameters)):
        return as_window(int(found[1]))
    info = shown.get("model_info")
    if not isinstance(info, dict):
        return None
    architecture = info.get("general.architecture")
    if isinstance(architecture, str) and f"{architecture}.context_length" in info:
        return as_window(info[f"{architecture}.context_length"])
    lengths = [v for k, v in info.items() if isinstance(k, str) and k.endswith(".context_length")]
    return as_window(lengths[0]) if len(lengths) == 1 else None


# ------------------------------------------------------------------------------ errors


def _error_message(body: Any) -> str:
    """Ollama's own error message from a JSON body (``{"error": "..."}``), shortened."""
    if not isinstance(body, dict):
        return ""
    error = body.get("error")
    if isinstance(error, dict):  # an OpenAI-style proxy in front of Ollama
        error = error.get("message")
    return shorten_detail(error) if isinstance(error, str) else ""


def _with_pull_hint(error: UpstreamError, status: int, model: str) -> UpstreamError:
    """A missing model (HTTP 404) keeps Ollama's message, with how to get the model."""
    if status != 404 or "not found" not in error.message.lower():
        return error
    return UpstreamError(
        f"{error.message.rstrip('.')} (run `ollama pull {model}` on the Ollama server).",
        code=error.code,
    )
