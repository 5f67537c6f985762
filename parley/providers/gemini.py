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

The request's body, with its options (``ModelOptions``), is built in ``gemini_request``
(``request_body``); parallel calls have no switch.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncGenerator, Mapping
from contextlib import aclosing
from typing import Any
from urllib.parse import quote

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
from parley.providers.base import ModelRequest
from parley.providers.embedding_wire import GEMINI_BATCH, gemini_body, gemini_result
from parley.providers.embeddings import EmbedRequest, EmbedResult
from parley.providers.gemini_request import SIGNATURES_KEY, generation_config, request_body
from parley.providers.http_provider import HTTPProvider
from parley.providers.sse import iter_sse
from parley.providers.transport import NO_RETRIES, RetryPolicy
from parley.providers.upstream_errors import shorten_detail
from parley.providers.usage import detail, usage_part
from parley.providers.windows import as_window

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
#: What a finish reason or an error status must look like to be passed on.
_ENUM = re.compile(r"[A-Z][A-Z0-9_]{0,63}")


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
