"""Adapter for the Gemini API (Google AI Studio's ``generativelanguage.googleapis.com``).

``POST {base_url}/models/{model}:streamGenerateContent?alt=sse`` with the key in the
``x-goog-api-key`` header (never in the URL, so it stays out of logs); each SSE event is one
``GenerateContentResponse``, whose first candidate's parts become model events:
``{text}`` → ``TextPart``, ``{text, thought: true}`` → ``ReasoningPart``, ``{functionCall}``
→ one whole ``ToolCallPart`` (Gemini sends a call at once, with an id only sometimes: one
is made up when missing), ``usageMetadata`` → ``UsagePart`` and ``finishReason`` →
``FinishPart``. Every failure is an ``UpstreamError`` (or ``UpstreamTimeout``) with a
message safe to show a user.

HTTP goes through ``transport.HTTPTransport``, which is bound to one URL; the model id is
part of Gemini's URL, so there is one transport per model id, made on first use.

Thought signatures: thinking models (Gemini 2.5, 3) put an opaque ``thoughtSignature`` on
some parts of an answer, which must come back unchanged on the same part when the
conversation goes on (Gemini 3 refuses a function call step without its signature). The
adapter notes each one with where it was (``StreamState``) and yields them in one
``StatePart`` at the end of the answer; the engine hands them back with that answer as
``ChatMessage.provider_state``, and ``request_body`` puts each on its part again. The shape
is described at ``StreamState.state_part``. Thought-summary parts (``thought: true``) are
reasoning summaries (``ReasoningPart(summary=True)``), never sent back: a signature on one is not kept (no part to put it on again).

The request's options (``ModelOptions``): a tool choice becomes ``toolConfig``'s
``functionCallingConfig`` (``_function_calling``), a JSON response format
``responseMimeType`` and ``responseJsonSchema``, a reasoning effort and summary
``thinkingConfig`` (``_thinking``), unless the parameters set those; parallel calls have
no switch.

A user message's images go before its text: a ``data:`` URL as ``inlineData``, an
``http(s)`` URL as ``fileData`` (with a ``mimeType`` when the file name says it); so do its
files, as ``inlineData`` (``file_parts``).
"""

from __future__ import annotations

import posixpath
import re
import secrets
from collections.abc import AsyncGenerator, Mapping
from contextlib import aclosing
from typing import Any
from urllib.parse import quote, urlsplit

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
    UsagePart,
)
from parley.providers import http_response, upstream_errors
from parley.providers.base import (
    ChatMessage,
    FileInput,
    ModelOptions,
    ModelRequest,
    split_data_url,
)
from parley.providers.embedding_wire import GEMINI_BATCH, gemini_body, gemini_result
from parley.providers.embeddings import EmbedRequest, EmbedResult
from parley.providers.file_parts import base64_data, native, text_base64
from parley.providers.http_provider import HTTPProvider
from parley.providers.options import ToolRule, json_schema_of, offered_tools, tool_rule
from parley.providers.sse import iter_sse
from parley.providers.transport import NO_RETRIES, RetryPolicy
from parley.providers.upstream_errors import shorten_detail
from parley.providers.usage import detail, usage_part
from parley.providers.windows import as_window
from parley.types import FunctionSpec, ToolSpec

__all__ = [
    "DEFAULT_BASE_URL",
    "SIGNATURES_KEY",
    "GeminiProvider",
    "StreamState",
    "generation_config",
    "request_body",
]

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com/v1beta"
#: How the user is told who failed.
_LABEL = "Gemini API"
#: Pages of ``GET /models`` followed at most (a loop guard: the API has two or three).
_MAX_PAGES = 20
#: Gemini's finish reasons that have an OpenAI-style name; others are passed lowercased.
_FINISH_REASONS = {"STOP": "stop", "MAX_TOKENS": "length"}
#: ``request.parameters`` → ``generationConfig``: snake_case and Gemini's own camelCase.
_GENERATION_CONFIG = {
    "temperature": "temperature",
    "max_tokens": "maxOutputTokens",
    "max_output_tokens": "maxOutputTokens",
    "maxOutputTokens": "maxOutputTokens",
    "top_p": "topP",
    "topP": "topP",
    "top_k": "topK",
    "topK": "topK",
    "seed": "seed",
    "presence_penalty": "presencePenalty",
    "presencePenalty": "presencePenalty",
    "frequency_penalty": "frequencyPenalty",
    "frequencyPenalty": "frequencyPenalty",
    "thinking_config": "thinkingConfig",
    "thinkingConfig": "thinkingConfig",
    "response_mime_type": "responseMimeType",
    "responseMimeType": "responseMimeType",
}
_ENUM = re.compile(r"[A-Z][A-Z0-9_]{0,63}")
#: ``thinkingBudget`` for each reasoning effort (models before Gemini 3), as Google's own
#: OpenAI compatibility maps them; Gemini 2.5 Pro cannot stop thinking: its least is 128.
_THINKING_BUDGETS = {
    "none": 0,
    "minimal": 1024,
    "low": 1024,
    "medium": 8192,
    "high": 24576,
    "xhigh": 24576,
}
_PRO_LEAST_BUDGET = 128
#: ``thinkingLevel`` for each reasoning effort (Gemini 3 and later, which cannot stop
#: thinking); Pro models take only ``low`` and ``high`` (``_PRO_LEVELS``).
_THINKING_LEVELS = {
    "none": "minimal",
    "minimal": "minimal",
    "low": "low",
    "medium": "medium",
    "high": "high",
    "xhigh": "high",
}
_PRO_LEVELS = {"minimal": "low", "medium": "high"}
_GEMINI_MAJOR = re.compile(r"gemini-(\d+)")
#: The ``provider_state`` key under which an answer's thought signatures are kept.
SIGNATURES_KEY = "thought_signatures"
#: File name extensions whose image type is plain: ``fileData`` wants a ``mimeType``.
_IMAGE_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
}


def _malformed(what: str) -> UpstreamError:
    return upstream_errors.malformed(what, provider_label=_LABEL)


class GeminiProvider(HTTPProvider):
    """Streams ``streamGenerateContent`` from the Gemini API (or a server speaking it).

    HTTP goes through one ``HTTPTransport`` per model id (see there: each opens its client
    on first use, and all live until ``aclose``; proxies come from the environment). A
    ``session`` passed in is used as is (with this provider's timeouts) and left open.
    """

    hands_back_state = True

    label = _LABEL

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        api_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        connect_timeout: float = 10.0,
        read_timeout: float = 120.0,
        session: aiohttp.ClientSession | None = None,
        retry: RetryPolicy = NO_RETRIES,
    ) -> None:
        super().__init__(
            auth={"x-goog-api-key": api_key} if api_key else {},
            headers=headers,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            session=session,
            retry=retry,
        )
        self._base_url = base_url.rstrip("/")

    def _stream_url(self, model: str) -> str:
        name = model.removeprefix("models/")
        return f"{self._base_url}/models/{quote(name, safe='')}:streamGenerateContent?alt=sse"

    async def list_models(self) -> list[str]:
        """The ids of the models that can generate content (``GET /models``), sorted."""
        return sorted(await self.model_listing())

    async def model_listing(self) -> dict[str, int | None]:
        """The ids of the models that can generate content (``GET /models``, every page),
        with their ``inputTokenLimit``: the most a request's input may hold, taken as the
        window."""
        models: dict[str, int | None] = {}
        async with self._lister(_error_message) as get:
            token = ""
            for _ in range(_MAX_PAGES):
                params = {"pageSize": "1000", **({"pageToken": token} if token else {})}
                body = await get(f"{self._base_url}/models", self._list_headers, params)
                token = _add_models(body, models)
                if not token:
                    break
        return models

    #: Embeddings (``embedding_wire``): inputs per call (the API's batch limit); text only.
    embed_batch = GEMINI_BATCH
    takes_token_ids = False

    async def embed(self, request: EmbedRequest) -> EmbedResult:
        """The vectors of ``request.inputs`` (``POST {base_url}/models/{model}:
        batchEmbedContents``); the API gives no token count: it is estimated."""
        name = request.model.removeprefix("models/")
        url = f"{self._base_url}/models/{quote(name, safe='')}:batchEmbedContents"
        body = gemini_body(request, f"models/{name}")
        answer = await self._post_json(url, body, _error_message, what="an embeddings answer")
        return gemini_result(answer, request, self.label)

    async def stream(self, request: ModelRequest) -> AsyncGenerator[ModelEvent, None]:
        """Call the model and yield its events; closing the iterator closes the response."""
        body = orjson.dumps(request_body(request))
        http = self._transport(self._stream_url(request.model))
        call = http.call(body, _read, message_from_body=_error_message)
        async with aclosing(call) as events:
            async for event in events:
                yield event


async def _read(response: http_response.Response) -> AsyncGenerator[ModelEvent, None]:
    """The events of a successful answer: streamed, or one JSON array (a server that
    ignored ``alt=sse``)."""
    state = StreamState()
    if response.content_type == "application/json":
        for event in state.whole_answer(await response.read()):
            yield event
    else:
        async with aclosing(iter_sse(response.chunks())) as events:
            async for _name, data in events:
                for event in state.chunk_events(data):
                    yield event
    if not state.finished:
        raise upstream_errors.truncated(_LABEL)
    signatures = state.state_part()
    if signatures is not None:
        yield signatures


# ----------------------------------------------------------------------------- request


def request_body(request: ModelRequest) -> dict[str, Any]:
    """The JSON body of a ``streamGenerateContent`` call for ``request``."""
    system = [request.instructions] if request.instructions else []
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # tool call id → function name, from the assistant's calls
    for message in request.messages:
        role = str(message.role)
        if role == "system":
            if message.content:
                system.append(message.content)
            continue
        if role == "assistant":
            names.update((call.id, call.name) for call in message.tool_calls)
            wire_role, parts = "model", _model_parts(message)
        elif role == "tool":
            wire_role, parts = "user", [_function_response(message, names)]
        else:
            wire_role, parts = "user", [_image_part(url) for url in message.images]
            parts += [_file_part(file) for file in message.files]
            if message.content:
                parts.append({"text": message.content})
        if not parts:
            continue  # Gemini refuses a content without parts
        if contents and contents[-1]["role"] == wire_role:
            contents[-1]["parts"].extend(parts)  # e.g. the results of parallel calls
        else:
            contents.append({"role": wire_role, "parts": parts})
    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": [{"text": text} for text in system]}
    rule = tool_rule(request.options.tool_choice)
    tools = _declared(request.tools, rule)
    if tools:
        body["tools"] = [{"functionDeclarations": [_declaration(t.function) for t in tools]}]
        if rule is not None:
            body["toolConfig"] = {"functionCallingConfig": _function_calling(rule)}
    config = generation_config(request.parameters)
    _add_options(config, request.model, request.options)
    if config:
        body["generationConfig"] = config
    return body


def _declared(tools: list[ToolSpec], rule: ToolRule | None) -> list[ToolSpec]:
    """The tools declared: all of them, but only the allowed ones for a list that the
    model may choose from (``AUTO`` takes no ``allowedFunctionNames``)."""
    if rule is not None and rule.mode == "auto" and rule.names is not None:
        return offered_tools(tools, rule)
    return tools


def _function_calling(rule: ToolRule) -> dict[str, Any]:
    """``functionCallingConfig`` for a tool choice: mode ``NONE``, ``AUTO`` or ``ANY``,
    with ``allowedFunctionNames`` when a call among some tools is required."""
    if rule.mode != "required":
        return {"mode": rule.mode.upper()}
    if rule.names is None:
        return {"mode": "ANY"}
    return {"mode": "ANY", "allowedFunctionNames": list(rule.names)}


def _add_options(config: dict[str, Any], model: str, options: ModelOptions) -> None:
    """The options' part of ``generationConfig``, where the parameters did not set it: a
    JSON answer (``responseMimeType``, and ``responseJsonSchema``, which takes a plain JSON
    Schema) and ``thinkingConfig`` (``_thinking``)."""
    json, schema = json_schema_of(options.response_format)
    if json and config.get("responseMimeType") is None:
        config["responseMimeType"] = "application/json"
        if schema is not None:
            config["responseJsonSchema"] = schema
    thinking = _thinking(model, options)
    if thinking and config.get("thinkingConfig") is None:
        config["thinkingConfig"] = thinking


def _thinking(model: str, options: ModelOptions) -> dict[str, Any]:
    """``thinkingConfig`` for a reasoning effort: a ``thinkingLevel`` from Gemini 3 on, a
    ``thinkingBudget`` before (and for a model whose version its id does not say: Gemini
    3 takes budgets too); ``includeThoughts`` when a reasoning summary is asked for."""
    thinking: dict[str, Any] = {}
    effort = options.reasoning_effort
    major = _GEMINI_MAJOR.search(model)
    pro = "pro" in model
    if effort in _THINKING_LEVELS and major is not None and int(major.group(1)) >= 3:
        level = _THINKING_LEVELS[effort]
        thinking["thinkingLevel"] = _PRO_LEVELS.get(level, level) if pro else level
    elif effort in _THINKING_BUDGETS:
        budget = _THINKING_BUDGETS[effort]
        thinking["thinkingBudget"] = max(budget, _PRO_LEAST_BUDGET) if pro else budget
    if options.reasoning_summary is not None:
        thinking["includeThoughts"] = True
    return thinking


def _model_parts(message: ChatMessage) -> list[dict[str, Any]]:
    """An answer's parts: its text, its calls, each with the signature it came with (see
    ``StreamState.state_part``). Stored signatures that do not fit the message are left
    out rather than put on another part."""
    state = message.provider_state
    signatures = state.get(SIGNATURES_KEY) if state else None
    if not isinstance(signatures, dict):
        signatures = {}
    parts = _text_parts(message.content, signatures.get("text"))
    calls = signatures.get("calls")
    if not isinstance(calls, dict):
        calls = {}
    for index, call in enumerate(message.tool_calls):
        part: dict[str, Any] = {"functionCall": {"name": call.name, "args": call.arguments}}
        signature = calls.get(str(index))
        if isinstance(signature, str) and signature:
            part["thoughtSignature"] = signature
        parts.append(part)
    end = signatures.get("end")
    if isinstance(end, str) and end:
        parts.append({"text": "", "thoughtSignature": end})
    return parts


def _text_parts(content: str, signed: Any) -> list[dict[str, Any]]:
    """``content`` as text parts, cut so that each signed range is a part of its own with
    its signature (an empty range: an empty text part there)."""
    if not signed or not isinstance(signed, list):
        return [{"text": content}] if content else []
    parts: list[dict[str, Any]] = []
    at = 0
    for entry in signed:
        if not isinstance(entry, list) or len(entry) != 3:
            continue
        start, end, signature = entry
        if (
            type(start) is not int
            or type(end) is not int
            or not isinstance(signature, str)
            or not signature
            or not at <= start <= end <= len(content)
        ):
            continue
        if start > at:
            parts.append({"text": content[at:start]})
        parts.append({"text": content[start:end], "thoughtSignature": signature})
        at = end
    if at < len(content):
        parts.append({"text": content[at:]})
    return parts


def _file_part(file: FileInput) -> dict[str, Any]:
    """A user message's file as inline data: a PDF's bytes, else its text (``text/plain``)."""
    if native(file):
        return {"inlineData": {"mimeType": file.media_type, "data": base64_data(file)}}
    return {"inlineData": {"mimeType": "text/plain", "data": text_base64(file)}}


def _image_part(url: str) -> dict[str, Any]:
    """A user message's image: inline data from a ``data:`` URL, else a file by its URL."""
    inline = split_data_url(url)
    if inline is not None:
        media_type, data = inline
        return {"inlineData": {"mimeType": media_type, "data": data}}
    file_data = {"fileUri": url}
    guessed = _IMAGE_TYPES.get(posixpath.splitext(urlsplit(url).path)[1].lower())
    if guessed is not None:
        file_data["mimeType"] = guessed
    return {"fileData": file_data}


def _function_response(message: ChatMessage, names: dict[str, str]) -> dict[str, Any]:
    call_id = message.tool_call_id or ""
    # Gemini matches a result to its call by name; a result whose call is not in the
    # context (it should always be) is sent under its call id rather than dropped.
    name = names.get(call_id) or call_id or "unknown_tool"
    return {"functionResponse": {"name": name, "response": {"content": message.content}}}


def _declaration(function: FunctionSpec) -> dict[str, Any]:
    declaration: dict[str, Any] = {"name": function.name}
    if function.description:
        declaration["description"] = function.description
    # Gemini refuses an OBJECT schema without properties: a tool without arguments has none.
    if function.parameters.get("properties"):
        declaration["parameters"] = function.parameters
    return declaration


def generation_config(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """``generationConfig`` from a request's parameters; the others are not sent (Gemini
    refuses unknown fields)."""
    config: dict[str, Any] = {}
    for key, value in parameters.items():
        wire = _GENERATION_CONFIG.get(key)
        if wire is not None and value is not None:
            config[wire] = value
        elif key in ("stop", "stop_sequences", "stopSequences") and value:
            config["stopSequences"] = [value] if isinstance(value, str) else list(value)
    return config


# ---------------------------------------------------------------------------- response


class StreamState:
    """What one answer needs remembered across its chunks: the calls seen (for their
    index and the finish reason), the length of its text so far, the thought signatures
    seen and where, and whether it finished."""

    __slots__ = (
        "call_signatures",
        "calls",
        "end_signature",
        "finished",
        "text_signatures",
        "texted",
    )

    def __init__(self) -> None:
        self.calls = 0
        self.finished = False
        #: Characters of answer text so far (thought text apart).
        self.texted = 0
        self.call_signatures: dict[str, str] = {}
        self.text_signatures: list[list[Any]] = []
        #: The signature of the last part without text, while nothing came after it.
        self.end_signature: str | None = None

    def state_part(self) -> StatePart | None:
        """The answer's thought signatures as a ``StatePart``; None when it had none.

        Its data is ``{"thought_signatures": {...}}`` (``SIGNATURES_KEY``), JSON only,
        each key present only when it has something:

        * ``"calls"``: ``{"<i>": signature}``, the signature of the answer's ``i``-th
          function call (0-based, in the order they came: the order of the message's
          ``tool_calls``). Of parallel calls, Gemini signs the first only.
        * ``"text"``: ``[[start, end, signature], ...]``, in order: a text part that came
          with a signature held the characters ``start:end`` of the answer's text (the
          message's ``content``); sent back, those characters are a part of their own with
          the signature, the text around them plain text parts. ``start == end`` is a
          signed part without text (``{"text": ""}`` or the signature alone) that more of
          the answer followed, sent back as an empty text part at that place.
        * ``"end"``: the signature of a part without text that ended the answer (where
          Gemini 3 signs an answer without calls), sent back as ``{"text": "",
          "thoughtSignature": ...}`` after all the other parts.
        """
        signatures: dict[str, Any] = {}
        if self.call_signatures:
            signatures["calls"] = self.call_signatures
        if self.text_signatures:
            signatures["text"] = self.text_signatures
        if self.end_signature:
            signatures["end"] = self.end_signature
        return StatePart({SIGNATURES_KEY: signatures}) if signatures else None

    def _settle_end(self) -> None:
        """More of the answer came after a signed part without text: it stays where it was."""
        signature, self.end_signature = self.end_signature, None
        self._sign_text(self.texted, self.texted, signature)

    def _sign_text(self, start: int, end: int, signature: Any) -> None:
        if isinstance(signature, str) and signature:
            self.text_signatures.append([start, end, signature])

    def _sign_textless(self, signature: Any) -> None:
        if isinstance(signature, str) and signature:
            if self.end_signature is not None:
                self._settle_end()
            self.end_signature = signature

    def whole_answer(self, raw: bytes) -> list[ModelEvent]:
        """The events of an answer sent as one JSON array of responses (no ``alt=sse``)."""
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise _malformed("an answer that is not valid JSON") from None
        chunks = body if isinstance(body, list) else [body]
        return [event for chunk in chunks for event in self._events(chunk)]

    def chunk_events(self, data: bytes) -> list[ModelEvent]:
        """The model events of one ``GenerateContentResponse`` (one SSE event's data)."""
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise _malformed("a chunk that is not valid JSON") from None
        return self._events(chunk)

    def _events(self, chunk: Any) -> list[ModelEvent]:
        if not isinstance(chunk, dict):
            raise _malformed("a chunk that is not a JSON object")
        if chunk.get("error") is not None:
            detail = _error_message(chunk)
            raise UpstreamError(
                f"The {_LABEL} reported an error during the stream"
                + (f": {detail}" if detail else "."),
                code="upstream_stream_error",
            )
        feedback = chunk.get("promptFeedback")
        if isinstance(feedback, dict) and feedback.get("blockReason"):
            reason = feedback["blockReason"]
            why = (
                f" (reason: {reason})"
                if isinstance(reason, str) and _ENUM.fullmatch(reason)
                else ""
            )
            raise UpstreamError(f"The {_LABEL} blocked the prompt{why}.", code="upstream_blocked")
        events: list[ModelEvent] = []
        candidates = chunk.get("candidates")
        if candidates:
            if not isinstance(candidates, list) or not isinstance(candidates[0], dict):
                raise _malformed("a chunk whose candidates are not a list of objects")
            self._candidate_events(candidates[0], events)
        usage = chunk.get("usageMetadata")
        if usage:
            events.append(_usage_part(usage))
        return events

    def _candidate_events(self, candidate: dict[str, Any], events: list[ModelEvent]) -> None:
        content = candidate.get("content")
        if content:
            if not isinstance(content, dict):
                raise _malformed("a candidate whose content is not an object")
            parts = content.get("parts") or []
            if not isinstance(parts, list):
                raise _malformed("a candidate whose parts are not a list")
            for part in parts:
                self._part_events(part, events)
        finish = candidate.get("finishReason")
        if finish:
            if not isinstance(finish, str):
                raise _malformed("a candidate whose finishReason is not text")
            reason = _FINISH_REASONS.get(finish, finish.lower())
            if self.calls and reason == "stop":
                reason = "tool_calls"
            events.append(FinishPart(reason))
            self.finished = True

    def _part_events(self, part: Any, events: list[ModelEvent]) -> None:
        if not isinstance(part, dict):
            raise _malformed("a part that is not an object")
        signature = part.get("thoughtSignature")
        call = part.get("functionCall")
        if call is not None:
            if self.end_signature is not None:
                self._settle_end()
            if signature and isinstance(signature, str):
                self.call_signatures[str(self.calls)] = signature
            events.append(self._tool_call(call))
            return
        text = part.get("text")
        if text is None:
            # A signature alone is kept; inline data, executable code, ...: not carried.
            if signature is not None and len(part) == 1:
                self._sign_textless(signature)
            return
        if not isinstance(text, str):
            raise _malformed("a part whose text is not text")
        if part.get("thought") is True:
            if text:
                events.append(ReasoningPart(text, summary=True))  # Gemini's thought summary
            return  # reasoning is not sent back, nor a signature on it
        if text:
            if self.end_signature is not None:
                self._settle_end()
            start = self.texted
            self.texted += len(text)
            if signature is not None:
                self._sign_text(start, self.texted, signature)
            events.append(TextPart(text))
        elif signature is not None:
            self._sign_textless(signature)

    def _tool_call(self, call: Any) -> ToolCallPart:
        if not isinstance(call, dict):
            raise _malformed("a function call that is not an object")
        name, args, call_id = call.get("name"), call.get("args"), call.get("id")
        if not isinstance(name, str) or not isinstance(args, dict | None):
            raise _malformed("a function call with fields of the wrong type")
        if not isinstance(call_id, str) or not call_id:
            call_id = f"call_{secrets.token_hex(12)}"
        index, self.calls = self.calls, self.calls + 1
        arguments = orjson.dumps(args or {}).decode()
        return ToolCallPart(index=index, id=call_id, name=name or None, arguments=arguments)


def _usage_part(usage: Any) -> UsagePart:
    if not isinstance(usage, dict):
        raise _malformed("usage that is not an object")
    counts = [usage.get(key) or 0 for key in ("promptTokenCount", "candidatesTokenCount")]
    counts.append(usage.get("thoughtsTokenCount") or 0)
    if not all(isinstance(n, int) and not isinstance(n, bool) for n in counts):
        raise _malformed("token counts that are not integers")
    prompt, candidates, thoughts = counts
    # The thoughts are generated apart from the candidates: the output is both. The prompt
    # count includes the cached content's.
    return usage_part(
        prompt,
        candidates + thoughts,
        reasoning_tokens=thoughts,
        cached_tokens=detail(usage, "cachedContentTokenCount"),
    )


# ------------------------------------------------------------------------------ models


def _add_models(body: Any, models: dict[str, int | None]) -> str:
    """Add the generating models of one ``GET /models`` page, with their input token
    limits; return the next page token."""
    if not isinstance(body, dict):
        return ""
    for model in body.get("models") or ():
        if not isinstance(model, dict) or not isinstance(model.get("name"), str):
            continue
        methods = model.get("supportedGenerationMethods") or ()
        if "generateContent" in methods or "streamGenerateContent" in methods:
            name = model["name"].removeprefix("models/")
            models[name] = as_window(model.get("inputTokenLimit"))
    token = body.get("nextPageToken")
    return token if isinstance(token, str) else ""


# ------------------------------------------------------------------------------ errors


def _error_message(body: Any) -> str:
    """The upstream's own message from ``{"error": {"code", "message", "status"}}``,
    shortened; or ``""``."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return shorten_detail(error) if isinstance(error, str) else ""
    message = error.get("message")
    status = error.get("status")
    text = message if isinstance(message, str) else ""
    if isinstance(status, str) and _ENUM.fullmatch(status):
        text = f"{status}: {text}" if text else status
    return shorten_detail(text)
