"""A fake OpenAI-compatible Chat Completions server, for tests and benchmarks.

It speaks real HTTP/1.1 over real sockets (raw asyncio streams: keep-alive, Content-Length
request bodies, chunked responses with one SSE event per write), so adapters under test read
the real wire format. Run it in a background thread (``FakeUpstream``), inside a running
loop (``FakeUpstreamServer``), or as a process::

    python -m parley.testing.fake_upstream --port 0 [--host 127.0.0.1] [--chunks 22] [--gap-ms 5]

which prints ``listening on http://127.0.0.1:PORT`` once it accepts connections.

Endpoints: ``POST /v1/chat/completions`` (also without ``/v1``), ``GET /v1/models``,
``GET /_requests`` (the chat request bodies received, as a JSON list), ``POST /_reset``.
Embeddings in OpenAI's, Gemini's and Ollama's formats (``POST /v1/embeddings``,
``POST /v1beta/models/{model}:batchEmbedContents`` and ``:embedContent``, ``POST
/api/embed``): deterministic lexical vectors, see ``fake_embeddings``; the requests are kept
in ``embedding_requests``.
A message whose content is a list of content parts (``text``, ``image_url``, ``file``) is
checked like OpenAI checks it: a malformed part is a 400 ``invalid_request_error`` (the
request is still recorded); image URLs are recorded, never fetched.

The model lists of every provider kind, in each API's shape, for the context windows
Parley reads from them: ``GET /v1/models`` (OpenAI's, with vLLM's ``max_model_len``; with
an ``anthropic-version`` header, Anthropic's, with ``max_input_tokens``), ``GET
/v1beta/models`` and ``GET /v1beta/models/{model}`` (Gemini's, with ``inputTokenLimit``),
``GET /api/tags`` and ``POST /api/show`` (Ollama's: a model's ``num_ctx`` in its
``parameters``). They list ``text``, ``reasoning`` and ``tools``, and each model of
``FakeUpstreamServer.windows`` with its window; ``listing_fault`` makes every one of them
fail (``"error"``: HTTP 500) or hang (``"hang"``).

The request's ``model`` chooses the behaviour (``N`` chunks, ``MS`` milliseconds; defaults
come from ``--chunks`` / ``--gap-ms``)::

    text[:N[:MS]]    N content chunks, MS apart; the text is expected_text(N)
    slow:MS          the default text, MS between chunks
    reasoning[:N]    expected_reasoning(N) as reasoning_content, then expected_text(N)
    echo             the last user message, word by word
    tools[:N]        N parallel tool calls (default 1), finish_reason "tool_calls": call i
                     uses the request's tool i (cycling; "tool_i" when none are given) with
                     tool_arguments(tool, i), streamed like OpenAI (a first fragment with
                     index, id, type and name, then three argument fragments)
    badargs[:N]      as tools[:N], but the first call's arguments are BAD_ARGUMENTS (not JSON)
    auto[:N[:MS]]    a model that uses tools when it may: when the request offers tools
                     (and its tool_choice is not "none") and its last message is a user
                     message, one call to the first offered tool with tool_arguments(tool, 0),
                     finish_reason "tool_calls"; otherwise the text of text[:N[:MS]]
    preface[:N[:MS]] as auto, but a call comes after the N content chunks of text[:N]
                     (a model that says what it is about to do, then calls the tool)
    error[:STATUS[:S]] HTTP STATUS (default 500) with an OpenAI-style JSON error body
                     (and ``Retry-After: S``, when S is given)
    badkey           HTTP 401 with OpenAI's message for a refused key, but with the whole
                     key the request sent in it, as some OpenAI-compatible servers say it
    flaky:K[:STATUS] the first K requests with this exact model string answer STATUS (default
                     503, with ``Retry-After: 0``); later ones stream the default text
    hang             status and headers, then nothing until the client goes away
    stall:K          K content chunks, then nothing until the client goes away
    malformed        one content chunk, then a data line that is not JSON
    truncate[:K]     K content chunks (default 3), then the connection is cut mid-body
    cut[:K]          K content chunks (default 3), then a clean end of the body without
                     finish_reason or [DONE]
    replay:PATH      the SSE file PATH sent verbatim, one event (up to a blank line) per write
    constrained[:N]  a model without tool calling asked for a constrained JSON answer (its
                     response_format's choice of a reply or tool calls): it calls the
                     offered tools the user's message names (N calls where several are
                     allowed), or replies, in JSON streamed a few characters a chunk (see
                     ``fake_constrained``); a request without such a choice gets the text
                     of ``text``

Any other model behaves like ``text``. A request's ``max_tokens`` (or
``max_completion_tokens``) cuts an answer's text to that many chunks, with finish_reason
``length``. When the request's last message is a tool result, ``text``, ``slow``,
``reasoning``, ``echo``, ``tools``, ``badargs``, ``auto`` and ``preface`` answer
``tool_results_text([(name, output), ...])`` instead, so a test can see that the next turn
got the results. Streams end with a finish chunk, a usage chunk when the request asks for
``stream_options.include_usage`` (prompt_tokens: words of the messages, the words of all but
the newest one cached; completion_tokens: chunks streamed, the reasoning chunks its
reasoning_tokens), then ``data: [DONE]``. Without ``stream: true`` the answer is one
``chat.completion`` JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import secrets
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from parley.testing.fake_constrained import constrained_chunks
from parley.testing.fake_embeddings import embedding_delay, embeddings_answer, embeddings_kind
from parley.testing.fake_gemini import gemini_error
from parley.testing.loopback import Connection, LoopbackFake, Request

DEFAULT_CHUNKS = 22
_WORDS = (
    *("Parley", "streams", "every", "token", "from", "the", "fake", "upstream", "so", "that"),
    *("tests", "can", "compare", "the", "stored", "answer", "with", "the", "expected", "text"),
    "exactly",
)
_THOUGHTS = ("First", "I", "think", "about", "the", "question", "and", "then", "I", "answer")
_WORD = re.compile(r"\S+\s*|\s+")
#: The modes read by name alone (any N and MS as ``text`` reads them); an unknown one is ``text``.
_PLAIN_MODES = frozenset(
    {"text", "reasoning", "echo", "hang", "stall", "malformed", "auto", "preface", "badkey"}
)
#: Modes whose answer becomes tool_results_text() after a tool result.
_TEXT_LIKE = frozenset({"text", "slow", "reasoning", "echo", "tools", "badargs", "auto", "preface"})
#: The models every model list names (beside those of ``FakeUpstreamServer.windows``).
_LISTED = ("text", "reasoning", "tools")
#: What ``/api/show`` says every model takes (``model_info``), whatever its ``num_ctx``.
_OLLAMA_TRAINED = 131_072


# ------------------------------------------------------------------- expected content


def _cycle(words: Sequence[str], n: int, end: str) -> list[str]:
    return [words[i % len(words)] + (" " if i < n - 1 else end) for i in range(n)]


def text_chunks(n: int) -> list[str]:
    """The content chunks of ``text:n``."""
    return _cycle(_WORDS, n, ".")


def expected_text(n: int = DEFAULT_CHUNKS) -> str:
    """The whole answer of ``text:n`` (and of ``reasoning:n``)."""
    return "".join(text_chunks(n))


def expected_reasoning(n: int = DEFAULT_CHUNKS) -> str:
    """The reasoning of ``reasoning:n``."""
    return "".join(_cycle(_THOUGHTS, n, "."))


#: The arguments of the first call in ``badargs`` mode: JSON cut short.
BAD_ARGUMENTS = '{"city": "Par'


def tool_results_text(results: Sequence[tuple[str, str]]) -> str:
    """The answer to a request ending with tool results ``(tool name, output)``."""
    quoted = "; ".join(f'{name} returned "{output}"' for name, output in results)
    return f"Fake upstream got tool results: {quoted}."


def tool_arguments(tool: Mapping[str, Any] | None, index: int) -> dict[str, Any]:
    """The arguments of call ``index`` to ``tool`` (a request's OpenAI tool entry).

    From the tool's JSON Schema: the first enum value when there is one, else a string
    ``"<property> <index>"``, an integer ``index + 1``, a number ``index + 0.5``, ``true``;
    other properties are left out. Without a tool: ``{"q": "query <index>"}``.
    """
    if tool is None:
        return {"q": f"query {index}"}
    function = tool.get("function")
    parameters = function.get("parameters") if isinstance(function, dict) else None
    properties = parameters.get("properties") if isinstance(parameters, dict) else None
    arguments: dict[str, Any] = {}
    for name, prop in (properties or {}).items():
        kind = prop.get("type") if isinstance(prop, dict) else None
        if isinstance(prop, dict) and prop.get("enum"):
            arguments[name] = prop["enum"][0]
        elif kind == "string":
            arguments[name] = f"{name} {index}"
        elif kind == "integer":
            arguments[name] = index + 1
        elif kind == "number":
            arguments[name] = index + 0.5
        elif kind == "boolean":
            arguments[name] = True
    return arguments


# ------------------------------------------------------------------------- the plan


@dataclass(slots=True)
class Spec:
    """A parsed ``model`` string."""

    mode: str
    count: int
    gap: float  # seconds
    argument: str = ""


def parse_model(model: str, chunks: int = DEFAULT_CHUNKS, gap_ms: float = 0.0) -> Spec:
    """Read the behaviour spec language of the module docstring."""
    mode, _, rest = model.partition(":")
    if mode == "replay":
        return Spec(mode, 0, gap_ms / 1000, argument=rest)
    parts = rest.split(":") if rest else []
    numbers: list[float] = []
    for part in parts:
        try:
            numbers.append(float(part))
        except ValueError:
            break
    count = int(numbers[0]) if numbers else chunks
    gap = (numbers[1] if len(numbers) > 1 else gap_ms) / 1000
    if mode == "slow":
        count, gap = chunks, (numbers[0] if numbers else gap_ms) / 1000
    elif mode == "tools":
        count = int(numbers[0]) if numbers else 1
    elif mode in ("truncate", "cut"):
        count = int(numbers[0]) if numbers else 3
    elif mode == "error":
        count = int(numbers[0]) if numbers else 500
        if len(numbers) > 1:  # the Retry-After of the error answer
            return Spec(mode, count, 0.0, argument=f"{numbers[1]:g}")
    elif mode in ("badargs", "constrained"):
        count = int(numbers[0]) if numbers else 1
    elif mode not in _PLAIN_MODES:
        mode = "text"
    return Spec(mode, max(0, min(count, 100_000)), max(0.0, gap))


@dataclass(slots=True)
class _Answer:
    """What a request gets: content and reasoning chunks, or whole tool calls."""

    content: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    #: Cut short at the request's ``max_tokens`` (its content chunks are tokens).
    cut: bool = False

    @property
    def finish_reason(self) -> str:
        if self.cut:
            return "length"
        return "tool_calls" if self.calls else "stop"

    def limited(self, body: dict[str, Any]) -> _Answer:
        """The answer within the request's ``max_tokens`` (or ``max_completion_tokens``):
        as many content chunks, then finish_reason ``length``, as OpenAI cuts one."""
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        if not isinstance(limit, int) or self.calls or len(self.content) <= limit:
            return self
        return _Answer(self.content[:limit], self.reasoning, cut=True)

    def deltas(self) -> list[dict[str, Any]]:
        """One delta per chunk; a call is a first fragment then three argument fragments."""
        deltas: list[dict[str, Any]] = [{"reasoning_content": p} for p in self.reasoning]
        deltas += [{"content": piece} for piece in self.content]
        for index, call in enumerate(self.calls):
            raw = call["function"]["arguments"]
            first = {**call, "function": {**call["function"], "arguments": ""}}
            deltas.append({"tool_calls": [{"index": index, **first}]})
            third = max(1, -(-len(raw) // 3))
            deltas.extend(
                {"tool_calls": [{"index": index, "function": {"arguments": raw[i : i + third]}}]}
                for i in range(0, len(raw), third)
            )
        return deltas


def _tool_results(messages: list[Any]) -> list[tuple[str, str]]:
    names: dict[str, str] = {}
    for message in messages:
        for call in message.get("tool_calls") or ():
            names[call.get("id", "")] = call.get("function", {}).get("name", "")
    results: list[tuple[str, str]] = []
    for message in reversed(messages):
        if message.get("role") != "tool":
            break
        call_id = message.get("tool_call_id", "")
        results.append((names.get(call_id) or call_id, _content_text(message.get("content"))))
    return results[::-1]


def _content_text(content: Any) -> str:
    if isinstance(content, list):  # content parts
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return content if isinstance(content, str) else ""


def _tool_calls(body: dict[str, Any], count: int) -> list[dict[str, Any]]:
    tools = [t for t in body.get("tools") or () if isinstance(t, dict)]
    calls = []
    for index in range(count):
        tool = tools[index % len(tools)] if tools else None
        name = str(tool["function"]["name"]) if tool else f"tool_{index}"
        arguments = orjson.dumps(tool_arguments(tool, index)).decode()
        calls.append(
            {
                "id": f"call_{secrets.token_hex(8)}",
                "type": "function",
                "function": {"name": name, "arguments": arguments},
            }
        )
    return calls


def _may_call_tools(body: dict[str, Any], messages: list[dict[str, Any]]) -> bool:
    """``auto`` mode: the request offers a tool, allows calls and ends with a user message."""
    offered = any(isinstance(t, dict) for t in body.get("tools") or ())
    allowed = body.get("tool_choice") != "none"
    return offered and allowed and bool(messages) and messages[-1].get("role") == "user"


def plan_answer(spec: Spec, body: dict[str, Any]) -> _Answer:
    """What a request gets (fault modes add their fault while streaming), within its
    ``max_tokens``."""
    return _plan(spec, body).limited(body)


def _plan(spec: Spec, body: dict[str, Any]) -> _Answer:
    messages = [m for m in body.get("messages") or () if isinstance(m, dict)]
    if spec.mode in _TEXT_LIKE and messages and messages[-1].get("role") == "tool":
        return _Answer(_WORD.findall(tool_results_text(_tool_results(messages))))
    if spec.mode == "tools":
        return _Answer(calls=_tool_calls(body, spec.count))
    if spec.mode == "auto" and _may_call_tools(body, messages):
        return _Answer(calls=_tool_calls(body, 1))
    if spec.mode == "preface" and _may_call_tools(body, messages):
        return _Answer(text_chunks(spec.count), calls=_tool_calls(body, 1))
    if spec.mode == "badargs":
        calls = _tool_calls(body, spec.count)
        calls[0]["function"]["arguments"] = BAD_ARGUMENTS
        return _Answer(calls=calls)
    if spec.mode == "constrained":
        chunks = constrained_chunks(body, spec.count)
        return _Answer(chunks if chunks is not None else text_chunks(DEFAULT_CHUNKS))
    if spec.mode == "echo":
        users = [m for m in messages if m.get("role") == "user"]
        said = _content_text(users[-1].get("content")) if users else ""
        return _Answer(_WORD.findall(said or "(nothing)"))
    reasoning = _cycle(_THOUGHTS, spec.count, ".") if spec.mode == "reasoning" else []
    return _Answer(text_chunks(spec.count), reasoning)


def _usage(body: dict[str, Any], deltas: list[dict[str, Any]]) -> dict[str, Any]:
    """OpenAI's usage of an answer: a word of the messages is a prompt token, the words of
    the messages before the newest are cached (the prefix an earlier call of the
    conversation sent), and a chunk streamed is a completion token, a reasoning one a
    reasoning token among them."""
    words = [
        len(_content_text(m.get("content")).split())
        for m in body.get("messages") or ()
        if isinstance(m, dict)
    ]
    prompt, completion = sum(words), len(deltas)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": sum(words[:-1]), "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": sum("reasoning_content" in d for d in deltas),
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


# ------------------------------------------------------------------------- the server


class _Stream:
    """One chunked SSE response: one chunk per write."""

    __slots__ = ("_conn", "_head")

    def __init__(self, conn: Connection, model: str) -> None:
        self._conn = conn
        created = int(time.time())
        self._head = {
            "id": f"chatcmpl-{secrets.token_hex(6)}",
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
        }

    async def start(self) -> None:
        await self._conn.begin_chunked()

    async def raw(self, payload: bytes) -> None:
        await self._conn.send_chunk(payload)

    async def chunk(
        self, delta: dict[str, Any] | None, finish: str | None = None, usage: Any = None
    ) -> None:
        choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
        data: dict[str, Any] = {**self._head, "choices": choices}
        if usage is not None:
            data["usage"] = usage
        await self.raw(b"data: " + orjson.dumps(data) + b"\n\n")

    async def end(self) -> None:
        await self.raw(b"data: [DONE]\n\n")
        await self._conn.end_chunked()


class FakeUpstreamServer(LoopbackFake):
    """The fake server on the running event loop (``await listen()``, ``await aclose()``, or
    ``async with``), or in a background thread (``with``)."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        chunks: int = DEFAULT_CHUNKS,
        gap_ms: float = 0.0,
    ) -> None:
        super().__init__(host=host, port=port)
        self.chunks = chunks
        self.gap_ms = gap_ms
        #: Chat request bodies received, oldest first.
        self.requests: list[dict[str, Any]] = []
        #: Their headers (names in lower case), in the same order.
        self.request_headers: list[dict[str, str]] = []
        #: Streams being sent right now (a test can wait for 0 after closing a client).
        self.active_streams = 0
        #: Requests seen per ``flaky:...`` model string.
        self.flaky_calls: dict[str, int] = {}
        #: Context windows the model lists give, by model id (each is listed).
        self.windows: dict[str, int] = {}
        #: How every model list fails: ``"error"`` (HTTP 500), ``"hang"``, or not (None).
        self.listing_fault: str | None = None
        #: Model-list requests received (method and target), oldest first.
        self.listings: list[str] = []
        #: Embedding requests received (path and JSON body), oldest first.
        self.embedding_requests: list[tuple[str, Any]] = []

    @property
    def base_url(self) -> str:
        """The base URL an OpenAI client is given: ``http://127.0.0.1:PORT/v1``."""
        return f"{self.url}/v1"

    def reset(self) -> None:
        """Forget the requests received so far, and the model lists' windows and fault."""
        self.requests.clear()
        self.request_headers.clear()
        self.flaky_calls.clear()
        self.windows.clear()
        self.listing_fault = None
        self.listings.clear()
        self.embedding_requests.clear()

    async def _respond(self, request: Request, conn: Connection) -> bool:
        """Answer one request; ``False`` when the connection must close."""
        path, method = request.path.removeprefix("/v1"), request.method
        keep = request.headers.get("connection", "").lower() != "close"
        if method == "POST" and path == "/chat/completions":
            try:
                body = orjson.loads(request.body)
            except orjson.JSONDecodeError:
                body = None
            if not isinstance(body, dict):
                return await _send_json(conn, 400, _error_body("body is not a JSON object"), keep)
            self.requests.append(body)
            self.request_headers.append(request.headers)
            problem = content_parts_problem(body)
            if problem:
                return await _send_json(
                    conn, 400, _error_body(problem, "invalid_request_error"), keep
                )
            return await self._chat(body, conn, request.headers) and keep
        if _is_model_list(method, request.path):
            return await self._model_list(request, conn, keep)
        if (kind := embeddings_kind(method, request.path)) is not None:
            try:
                payload = orjson.loads(request.body)
            except orjson.JSONDecodeError:
                payload = None
            self.embedding_requests.append((request.path, payload))
            if delay := embedding_delay(payload):
                await asyncio.sleep(delay)
            status, answer = embeddings_answer(kind, request.path, payload)
            return await _send_json(conn, status, answer, keep)
        if method == "GET" and request.path == "/_requests":
            return await _send_json(conn, 200, self.requests, keep)
        if method == "POST" and request.path == "/_reset":
            self.reset()
            return await _send_json(conn, 200, {"ok": True}, keep)
        return await _send_json(conn, 404, _error_body(f"no route {method} {request.path}"), keep)

    async def _model_list(self, request: Request, conn: Connection, keep: bool) -> bool:
        """Answer one model-list request in its API's shape (``_is_model_list``)."""
        self.listings.append(f"{request.method} {request.target}")
        if self.listing_fault == "hang":
            await conn.wait_for_close()
            return False
        if self.listing_fault is not None:
            return await _send_json(conn, 500, _error_body("fake upstream model list error"), keep)
        windows = {m: self.windows.get(m) for m in sorted({*_LISTED, *self.windows})}
        status, body = _listing_answer(request, windows)
        return await _send_json(conn, status, body, keep)

    async def _chat(self, body: dict[str, Any], conn: Connection, headers: dict[str, str]) -> bool:
        model = str(body.get("model", ""))
        if model.startswith("flaky:"):
            failures, _, answer = model[len("flaky:") :].partition(":")
            seen = self.flaky_calls[model] = self.flaky_calls.get(model, 0) + 1
            if seen <= int(failures or 1):
                code = int(answer or 503)
                return await _send_json(
                    conn,
                    code,
                    _error_body(f"fake upstream flaky {code}"),
                    True,
                    headers={"retry-after": "0"},
                )
            model = "text"
        spec = parse_model(model, self.chunks, self.gap_ms)
        if spec.mode == "error":
            status = spec.count if 400 <= spec.count <= 599 else 500
            wait = {"retry-after": spec.argument} if spec.argument else None
            return await _send_json(
                conn, status, _error_body(f"fake upstream error {status}"), True, headers=wait
            )
        if spec.mode == "badkey":
            key = headers.get("authorization", "").removeprefix("Bearer ")
            refusal = _error_body(f"Incorrect API key provided: {key}.", "invalid_request_error")
            return await _send_json(conn, 401, refusal, True)
        if not body.get("stream"):
            if spec.mode in ("hang", "stall"):
                await conn.wait_for_close()
                return False
            return await _send_json(conn, 200, _completion(spec, body, model), True)
        stream = _Stream(conn, model)
        self.active_streams += 1
        try:
            if spec.mode == "replay":
                try:
                    recorded = await asyncio.to_thread(Path(spec.argument).read_bytes)
                except OSError:
                    error = _error_body(f"cannot read {spec.argument!r}")
                    return await _send_json(conn, 400, error, True)
                return await _replay(stream, recorded, spec.gap)
            return await _stream_answer(stream, spec, body, conn)
        finally:
            self.active_streams -= 1


async def _stream_answer(
    stream: _Stream, spec: Spec, body: dict[str, Any], conn: Connection
) -> bool:
    answer = plan_answer(spec, body)
    deltas = answer.deltas()
    if spec.mode in ("stall", "truncate", "cut", "malformed"):
        del deltas[spec.count if spec.mode != "malformed" else 1 :]
    await stream.start()
    if spec.mode == "hang":
        await conn.wait_for_close()
        return False
    await stream.chunk({"role": "assistant", "content": ""})
    for number, delta in enumerate(deltas):
        if spec.gap and number:
            await asyncio.sleep(spec.gap)
        await stream.chunk(delta)
    if spec.mode == "stall":
        await conn.wait_for_close()
        return False
    if spec.mode == "truncate":
        return False  # closing now leaves the chunked body incomplete
    if spec.mode == "malformed":
        await stream.raw(b'data: {"choices": [{"delta": {"content": "unterminated\n\n')
    if spec.mode == "cut":
        await stream.raw(b"")  # the zero-length chunk: a clean end of the body
        return True
    await stream.chunk({}, finish=answer.finish_reason)
    options = body.get("stream_options")
    if isinstance(options, dict) and options.get("include_usage"):
        await stream.chunk(None, usage=_usage(body, deltas))
    await stream.end()
    return True


async def _replay(stream: _Stream, data: bytes, gap: float) -> bool:
    """Send a recorded SSE stream verbatim, one event per chunk."""
    events = re.findall(rb".*?(?:\r?\n\r?\n|\Z)", data, flags=re.DOTALL)
    await stream.start()
    for number, event in enumerate(e for e in events if e):
        if gap and number:
            await asyncio.sleep(gap)
        await stream.raw(event)
    await stream.raw(b"")
    return True


def _completion(spec: Spec, body: dict[str, Any], model: str) -> dict[str, Any]:
    """A whole ``chat.completion``, for requests without ``stream: true``."""
    answer = plan_answer(spec, body)
    message: dict[str, Any] = {"role": "assistant", "content": "".join(answer.content) or None}
    if answer.reasoning:
        message["reasoning_content"] = "".join(answer.reasoning)
    if answer.calls:
        message["tool_calls"] = answer.calls
    return {
        "id": f"chatcmpl-{secrets.token_hex(6)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": answer.finish_reason}],
        "usage": _usage(body, answer.deltas()),
    }


def _is_model_list(method: str, path: str) -> bool:
    """Whether a request asks for a model list, of any API (the module's docstring)."""
    if method == "POST":
        return path == "/api/show"
    lists = ("/v1/models", "/models", "/v1beta/models", "/api/tags")
    return method == "GET" and (path in lists or path.startswith("/v1beta/models/"))


def _listing_answer(request: Request, windows: dict[str, int | None]) -> tuple[int, Any]:
    """The status and body that answer a model-list request (``_is_model_list``) in its
    API's shape, for the models of ``windows`` (sorted) with their windows."""
    path, models = request.path, list(windows)
    if path.startswith("/v1beta/models/"):  # Gemini: one model
        name = path.removeprefix("/v1beta/models/")
        if name not in windows:
            return 404, gemini_error(404, f"models/{name} is not found.", "NOT_FOUND")
        return 200, _gemini_model(name, windows[name])
    if path == "/v1beta/models":
        return 200, {"models": [_gemini_model(m, w) for m, w in windows.items()]}
    if path == "/api/tags":
        tags = [{"name": m, "model": m, "size": 0, "details": {"family": "llama"}} for m in models]
        return 200, {"models": tags}
    if path == "/api/show":
        try:
            asked = request.json().get("model")
        except (ValueError, AttributeError):
            asked = None
        if not isinstance(asked, str) or asked not in windows:
            return 404, {"error": f"model '{asked}' not found"}
        return 200, _ollama_show(windows[asked])
    if "anthropic-version" in request.headers:
        page = [_anthropic_model(m, w) for m, w in windows.items()]
        return 200, {"data": page, "has_more": False, "first_id": models[0], "last_id": models[-1]}
    return 200, {"object": "list", "data": [_openai_model(m, w) for m, w in windows.items()]}


def _openai_model(model: str, window: int | None) -> dict[str, Any]:
    entry: dict[str, Any] = {"id": model, "object": "model", "created": 0, "owned_by": "fake"}
    if window is not None:
        entry["max_model_len"] = window  # as vLLM lists it
    return entry


def _anthropic_model(model: str, window: int | None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "type": "model",
        "id": model,
        "display_name": model,
        "created_at": "2025-01-01T00:00:00Z",
    }
    if window is not None:
        entry.update(max_input_tokens=window, max_tokens=min(window, 8192))
    return entry


def _gemini_model(model: str, window: int | None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": f"models/{model}",
        "version": "001",
        "displayName": model,
        "supportedGenerationMethods": ["generateContent", "countTokens"],
    }
    if window is not None:
        entry.update(inputTokenLimit=window, outputTokenLimit=min(window, 8192))
    return entry


def _ollama_show(window: int | None) -> dict[str, Any]:
    """An ``/api/show`` answer: the model takes ``_OLLAMA_TRAINED`` tokens; ``window``, when
    given, is its ``num_ctx``."""
    parameters = 'stop "<|eot_id|>"'
    if window is not None:
        parameters = f"num_ctx {window:>30}\n{parameters}"
    return {
        "parameters": parameters,
        "details": {"format": "gguf", "family": "llama"},
        "model_info": {"general.architecture": "llama", "llama.context_length": _OLLAMA_TRAINED},
        "capabilities": ["completion", "tools"],
    }


def _error_body(message: str, kind: str = "server_error") -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


def content_parts_problem(body: dict[str, Any]) -> str | None:
    """What is wrong with the content parts of a request's messages, as OpenAI would say it;
    ``None`` when nothing is (plain string contents are not looked at)."""
    for i, message in enumerate(body.get("messages") or ()):
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            continue
        if not content:
            return f"messages[{i}].content: an array of content parts must not be empty"
        for j, part in enumerate(content):
            where = f"messages[{i}].content[{j}]"
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text":
                if not isinstance(part.get("text"), str):
                    return f"{where}.text: expected a string"
            elif kind == "image_url":
                image = part.get("image_url")
                url = image.get("url") if isinstance(image, dict) else None
                if not isinstance(url, str) or not url.startswith(("data:image/", "http")):
                    return f"{where}.image_url.url: expected an http(s) or data:image URL"
            elif kind == "file":
                file = part.get("file")
                if not isinstance(file, dict) or not (file.get("file_data") or file.get("file_id")):
                    return f"{where}.file: expected file_data or file_id"
            else:
                return f"{where}.type: expected 'text', 'image_url' or 'file', got {kind!r}"
    return None


async def _send_json(
    conn: Connection,
    status: int,
    payload: Any,
    keep: bool,
    headers: dict[str, str] | None = None,
) -> bool:
    await conn.send_json(status, payload, headers=headers, keep=keep)
    return keep


# ------------------------------------------------------------------ threads and processes


class FakeUpstream(FakeUpstreamServer):
    """The fake server on its own event loop in a background thread.

    ``with FakeUpstream() as fake: ... fake.base_url ... fake.requests ...`` (or
    ``start()`` / ``stop()``). Its state is read from the test's thread.
    """

    def start(self) -> FakeUpstream:
        """Start the loop thread and listen; answers once connections are accepted."""
        self.serve_in_thread()
        return self

    def stop(self) -> None:
        """Close every connection, stop the loop and join the thread."""
        self.stop_thread()


async def _serve(host: str, port: int, chunks: int, gap_ms: float) -> None:
    server = FakeUpstreamServer(host=host, port=port, chunks=chunks, gap_ms=gap_ms)
    bound = await server.listen()
    print(f"listening on http://{host}:{bound}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await server.aclose()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m parley.testing.fake_upstream",
        description="Fake OpenAI-compatible Chat Completions server.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument(
        "--chunks", type=int, default=DEFAULT_CHUNKS, help="default content chunks per answer"
    )
    parser.add_argument("--gap-ms", type=float, default=0.0, help="default pause between chunks")
    parser.add_argument("--no-uvloop", action="store_true", help="use the standard asyncio loop")
    args = parser.parse_args(argv)
    loop_factory = None
    if not args.no_uvloop:
        try:
            import uvloop

            loop_factory = uvloop.new_event_loop
        except ImportError:
            pass
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(_serve(args.host, args.port, args.chunks, args.gap_ms))


if __name__ == "__main__":
    main()
