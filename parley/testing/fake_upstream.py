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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from parley.testing.fake_chat import (
    BAD_ARGUMENTS,
    DEFAULT_CHUNKS,
    Spec,
    expected_reasoning,
    expected_text,
    parse_model,
    plan_answer,
    text_chunks,
    tool_arguments,
    tool_results_text,
    usage,
)
from parley.testing.fake_embeddings import embedding_delay, embeddings_answer, embeddings_kind
from parley.testing.fake_model_lists import LISTED, is_model_list, listing_answer
from parley.testing.loopback import Connection, LoopbackFake, Request

__all__ = [
    "BAD_ARGUMENTS",
    "DEFAULT_CHUNKS",
    "FakeUpstream",
    "FakeUpstreamServer",
    "Spec",
    "content_parts_problem",
    "expected_reasoning",
    "expected_text",
    "main",
    "parse_model",
    "plan_answer",
    "text_chunks",
    "tool_arguments",
    "tool_results_text",
]

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
        if is_model_list(method, request.path):
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
        windows = {m: self.windows.get(m) for m in sorted({*LISTED, *self.windows})}
        status, body = listing_answer(request, windows)
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
        await stream.chunk(None, usage=usage(body, deltas))
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
        "usage": usage(body, answer.deltas()),
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
