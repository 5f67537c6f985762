"""Helpers of ``test_responses_providers``: every provider kind's fake upstream, the turns it
is told to answer in its own wire format, and the checks of what ``/v1/responses`` makes of
them.

Each kind (``Upstream`` and its subclasses) runs one fake per *slot* in the test's event
loop, and each test takes slots of its own, so the answers a test queues and the requests
its upstream receives are its alone. A slot is a provider table of the server's config
(``chat3``, ``claude1``, ...). The fakes are the project's: ``FakeUpstreamServer`` (Chat
Completions, ``replay:PATH`` models), ``FakeResponses``, ``FakeAnthropic``, ``FakeGemini``
(checking thought signatures as Gemini 3 does) and ``FakeOllama``. A turn is constructed
here in the documented wire format (``CallsTurn``: reasoning then two parallel calls;
``TextTurn``: an answer) or is a recording of ``tests/recordings`` (``Recorded``).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import re
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson

from parley.testing.fake_anthropic import FakeAnthropic, message_events, thinking, tool_use
from parley.testing.fake_anthropic import text as text_block
from parley.testing.fake_gemini import FakeGemini, Script, usage_metadata
from parley.testing.fake_ollama import NDJSON, FakeOllama, chat_line, done_line, text_line
from parley.testing.fake_ollama import Answer as OllamaAnswer
from parley.testing.fake_responses import (
    FakeResponses,
    function_call,
    message,
    reasoning,
    response_events,
)
from parley.testing.fake_upstream import FakeUpstreamServer
from parley.testing.scripted import Answer
from tests.e2e.helpers import assert_no_leak
from tests.e2e.responses_helpers import CLOCK_TOOL, WEATHER_TOOL
from tests.e2e.sse import iter_events
from tests.harness import FreshDatabase, ParleyServer

RECORDINGS = Path(__file__).resolve().parent.parent / "recordings"

#: The tools of every test, in the Responses API's flat shape.
TOOLS = [WEATHER_TOOL, CLOCK_TOOL]
#: What the user asks (the demo model calls both tools for it, with these arguments).
QUESTION = "get_weather Oslo get_time Europe/Oslo"
#: The reasoning of the constructed turns, as streamed.
THINKING = ("The user wants the weather ", "and the time in Oslo; ", "both tools, at once.")
#: What the client's tools answer.
RESULTS = ("sunny, 21C", "12:00")
#: The answer after the tool results, as streamed.
ANSWER = ("It is sunny ", "and 21C in Oslo, ", "at noon.")
#: The token counts of the constructed turn 1 (its reasoning among its output tokens, the
#: tokens read from the provider's prompt cache among its input tokens).
INPUT_TOKENS, OUTPUT_TOKENS, REASONING_TOKENS, CACHED_TOKENS = 31, 57, 19, 24
#: Opaque reasoning state that must go back byte for byte (base64's ``+/=`` included).
SIGNATURE = "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGg+xBdjrkzLoky3dl1pk/iMOYds4fQ=="
ENCRYPTED = "gAAAAABpQ_enc+rypted/reasoning=="


@dataclass(frozen=True)
class Call:
    """A function call as the provider streams it: its id, name and arguments."""

    call_id: str
    name: str
    arguments: dict[str, Any]

    @property
    def raw(self) -> str:
        return json.dumps(self.arguments)

    def fragments(self) -> tuple[str, ...]:
        """The arguments in three pieces, cut anywhere."""
        raw = self.raw
        third = -(-len(raw) // 3)
        return tuple(raw[i : i + third] for i in range(0, len(raw), third))


def calls(first_id: str, second_id: str) -> tuple[Call, Call]:
    """The two parallel calls of the scenario, with the provider's ids."""
    return (
        Call(first_id, "get_weather", {"city": "Oslo"}),
        Call(second_id, "get_time", {"zone": "Europe/Oslo"}),
    )


@dataclass(frozen=True)
class CallsTurn:
    """Reasoning, then two parallel calls."""

    calls: tuple[Call, ...]
    reasoning: tuple[str, ...] = THINKING


@dataclass(frozen=True)
class TextTurn:
    """An answer without reasoning."""

    text: tuple[str, ...] = ANSWER


@dataclass(frozen=True)
class Recorded:
    """A recorded real answer (``tests/recordings/<kind>/<name>``)."""

    name: str

    @property
    def path(self) -> Path:
        return RECORDINGS / self.name


Turn = CallsTurn | TextTurn | Recorded


def sse_blocks(body: bytes) -> Iterator[bytes]:
    """The events of an SSE body, each with its own line breaks (``\\r\\n`` kept)."""
    for block in re.findall(rb".*?(?:\r?\n\r?\n|\Z)", body, flags=re.DOTALL):
        if block.strip():
            yield block


def named_events(body: bytes) -> list[tuple[str, Any]]:
    """``(event name, data)`` of each event of a recorded SSE body (the data parsed)."""
    lines = [line for line in body.decode().splitlines() if line != "data: [DONE]"]
    return [(event.event, event.data) for event in iter_events(lines)]


# ----------------------------------------------------------------------------- kinds


class Upstream:
    """A provider kind: its fakes (one a slot), its config tables, its wire format."""

    #: The test id, the config's ``kind``, and the model id sent to the provider.
    label = ""
    kind = ""
    model = ""
    #: The provider's ids of the scenario's calls.
    call_ids = ("", "")
    #: Whether its API reports reasoning tokens apart, and cached tokens (in usage).
    reports_reasoning_tokens = False
    reports_cached_tokens = False
    #: Extra lines of every config table.
    extra = ""

    def __init__(self, tmp: Path, slots: int) -> None:
        self.tmp = tmp
        self.fakes: list[Any] = [self.new_fake() for _ in range(slots)]
        self._free = iter(range(slots))

    def new_fake(self) -> Any:
        raise NotImplementedError

    async def start(self) -> None:
        for fake in self.fakes:
            await fake.start()

    async def aclose(self) -> None:
        for fake in self.fakes:
            await fake.aclose()

    def config(self) -> str:
        return "".join(
            f'\n[providers.{self.label}{n}]\nkind = "{self.kind}"\n'
            f'base_url = "{fake.base_url}"\napi_key = "sk-test"\n'
            f"max_retries = 0\nread_timeout = 10.0\n{self.extra}"
            for n, fake in enumerate(self.fakes)
        )

    def take(self) -> int:
        """A slot nobody used yet."""
        return next(self._free)

    def scenario(self) -> CallsTurn:
        return CallsTurn(calls(*self.call_ids))

    def script(self, slot: int, *turns: Turn) -> list[str]:
        """Queue ``turns`` as the answers to the slot's next model calls; the Parley model
        name to send with each."""
        raise NotImplementedError

    def requests(self, slot: int) -> list[dict[str, Any]]:
        """The bodies of the model calls the slot received, oldest first."""
        calls = self.fakes[slot].requests  # less Ollama's model lookups (POST /api/show)
        return [r.body for r in calls if r.method == "POST" and r.target != "/api/show"]

    def model_name(self, slot: int, model: str | None = None) -> str:
        return f"{self.label}{slot}/{model or self.model}"

    def check_context(self, body: dict[str, Any], turn: CallsTurn) -> None:
        """``body``, the model call after the client sent the calls' results, carries the
        question, the reasoning (where this API needs it back), both calls and both results
        in this API's format."""
        raise NotImplementedError


class ChatUpstream(Upstream):
    """OpenAI Chat Completions: answers are SSE files the fake replays (``replay:PATH``)."""

    label, kind, model = "chat", "openai-chat", ""
    call_ids = ("call_oStfjbrEyya6I2px3EzDuGVB", "call_X2e3bGHCvCqUAkx6l1Xm8cTd")
    reports_reasoning_tokens = reports_cached_tokens = True
    _files = itertools.count()

    def new_fake(self) -> Any:
        return FakeUpstreamServer()

    async def start(self) -> None:
        for fake in self.fakes:
            await fake.listen()

    def requests(self, slot: int) -> list[dict[str, Any]]:
        return list(self.fakes[slot].requests)

    def script(self, slot: int, *turns: Turn) -> list[str]:
        models = []
        for turn in turns:
            if isinstance(turn, Recorded):
                path = turn.path
            else:
                path = self.tmp / f"chat-{next(self._files)}.sse"
                path.write_bytes(chat_stream(turn))
            models.append(self.model_name(slot, f"replay:{path}"))
        return models

    def check_context(self, body: dict[str, Any], turn: CallsTurn) -> None:
        assert body["messages"] == [
            {"role": "user", "content": QUESTION},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": c.call_id,
                        "type": "function",
                        "function": {"name": c.name, "arguments": _compact(c.arguments)},
                    }
                    for c in turn.calls
                ],
                **self.reasoning_back(turn),
            },
            *(
                {"role": "tool", "tool_call_id": c.call_id, "content": result}
                for c, result in zip(turn.calls, RESULTS, strict=True)
            ),
        ]

    def reasoning_back(self, turn: CallsTurn) -> dict[str, Any]:
        """OpenAI's Chat Completions takes no reasoning back."""
        return {}


class DeepSeekUpstream(ChatUpstream):
    """A Chat Completions server that wants the reasoning of a tool-call turn back
    (``reasoning_back``, as DeepSeek's thinking mode does)."""

    label = "deepseek"
    extra = "reasoning_back = true\n"

    def reasoning_back(self, turn: CallsTurn) -> dict[str, Any]:
        return {"reasoning_content": "".join(turn.reasoning)}


def chat_stream(turn: CallsTurn | TextTurn) -> bytes:
    """A streamed Chat Completions answer: reasoning as ``reasoning_content``, parallel
    calls one after the other (a first fragment with id and name, then the arguments), the
    finish chunk, the usage chunk and ``[DONE]``."""
    deltas: list[dict[str, Any]] = [{"role": "assistant", "content": None}]
    finish = "stop"
    if isinstance(turn, TextTurn):
        deltas += [{"content": piece} for piece in turn.text]
        usage = _chat_usage(12, len(turn.text))
    else:
        finish = "tool_calls"
        deltas += [{"reasoning_content": piece} for piece in turn.reasoning]
        for index, call in enumerate(turn.calls):
            first = {"index": index, "id": call.call_id, "type": "function"}
            first["function"] = {"name": call.name, "arguments": ""}
            deltas.append({"tool_calls": [first]})
            deltas += [
                {"tool_calls": [{"index": index, "function": {"arguments": piece}}]}
                for piece in call.fragments()
            ]
        usage = _chat_usage(INPUT_TOKENS, OUTPUT_TOKENS, REASONING_TOKENS, CACHED_TOKENS)
    head = {"id": "chatcmpl-e2e", "object": "chat.completion.chunk", "created": 1769111919}
    choices = [{"index": 0, "delta": delta, "finish_reason": None} for delta in deltas]
    choices.append({"index": 0, "delta": {}, "finish_reason": finish})
    chunks: list[dict[str, Any]] = [{**head, "choices": [choice]} for choice in choices]
    chunks.append({**head, "choices": [], "usage": usage})
    return b"".join(b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"


def _chat_usage(prompt: int, completion: int, reasoning: int = 0, cached: int = 0) -> dict[str, Any]:  # fmt: skip
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": reasoning, "audio_tokens": 0},
    }


class QueuedUpstream(Upstream):
    """A kind whose fake (``parley.testing.scripted``) streams queued answers in order."""

    def script(self, slot: int, *turns: Turn) -> list[str]:
        self.fakes[slot].answer(*(Answer(self.events(turn)) for turn in turns))
        return [self.model_name(slot) for _ in turns]

    def events(self, turn: Turn) -> list[tuple[str, Any]]:
        """The SSE events of ``turn``: ``(name, data)``."""
        raise NotImplementedError


class ResponsesUpstream(QueuedUpstream):
    """The OpenAI Responses API, called statelessly: encrypted reasoning goes back."""

    label, kind, model = "resp", "openai-responses", "gpt-5-mini"
    call_ids = ("call_sVidsfFJ6zlzRpelrPkTPlpd", "call_aW73gpD5NLJgVw2Xc1k0b9Qe")
    reports_reasoning_tokens = reports_cached_tokens = True

    def new_fake(self) -> Any:
        return FakeResponses(api_key="sk-test")

    def events(self, turn: Turn) -> list[tuple[str, Any]]:
        if isinstance(turn, Recorded):
            return named_events(turn.path.read_bytes())
        if isinstance(turn, TextTurn):
            return response_events([message(*turn.text, item_id="msg_up2")], model=self.model)
        items = [reasoning(turn.reasoning, item_id="rs_up1", encrypted_content=ENCRYPTED)]
        items += [
            function_call(c.call_id, c.name, *c.fragments(), item_id=f"fc_up{n}")
            for n, c in enumerate(turn.calls)
        ]
        return response_events(
            items,
            input_tokens=INPUT_TOKENS,
            output_tokens=OUTPUT_TOKENS,
            reasoning_tokens=REASONING_TOKENS,
            cached_tokens=CACHED_TOKENS,
            model=self.model,
        )

    def check_context(self, body: dict[str, Any], turn: CallsTurn) -> None:
        assert body["store"] is False
        assert "reasoning.encrypted_content" in body["include"]
        summary = [{"type": "summary_text", "text": "".join(turn.reasoning)}]
        assert body["input"] == [
            {"role": "user", "content": QUESTION},
            {
                "id": "rs_up1",
                "type": "reasoning",
                "summary": summary,
                "encrypted_content": ENCRYPTED,
            },
            *(
                {
                    "type": "function_call",
                    "call_id": c.call_id,
                    "name": c.name,
                    "arguments": _compact(c.arguments),
                    "id": f"fc_up{n}",
                }
                for n, c in enumerate(turn.calls)
            ),
            *(
                {"type": "function_call_output", "call_id": c.call_id, "output": result}
                for c, result in zip(turn.calls, RESULTS, strict=True)
            ),
        ]


class AnthropicUpstream(QueuedUpstream):
    """The Anthropic Messages API: signed thinking goes back before the calls. Its input
    tokens are those read from the prompt cache and the others, given apart; it says its
    thinking tokens as models with adaptive thinking do."""

    label, kind, model = "claude", "anthropic", "claude-test-1"
    call_ids = ("toolu_01A09q90qw90lq917835lq9", "toolu_01PwTzBMsHUfRqTS2ak7n5vt")
    reports_reasoning_tokens = reports_cached_tokens = True

    def new_fake(self) -> Any:
        return FakeAnthropic(api_key="sk-test")

    def events(self, turn: Turn) -> list[tuple[str, Any]]:
        if isinstance(turn, Recorded):
            return named_events(turn.path.read_bytes())
        if isinstance(turn, TextTurn):
            return message_events([text_block(*turn.text)], model=self.model)
        blocks = [thinking(*turn.reasoning, signature=SIGNATURE)]
        blocks += [tool_use(c.call_id, c.name, *c.fragments()) for c in turn.calls]
        return message_events(
            blocks,
            stop_reason="tool_use",
            input_tokens=INPUT_TOKENS - CACHED_TOKENS,
            cache_read_input_tokens=CACHED_TOKENS,
            output_tokens=OUTPUT_TOKENS,
            thinking_tokens=REASONING_TOKENS,
            model=self.model,
        )

    def check_context(self, body: dict[str, Any], turn: CallsTurn) -> None:
        signed = {"type": "thinking", "thinking": "".join(turn.reasoning), "signature": SIGNATURE}
        assert body["messages"] == [
            {"role": "user", "content": [{"type": "text", "text": QUESTION}]},
            {
                "role": "assistant",
                "content": [
                    signed,
                    *(
                        {"type": "tool_use", "id": c.call_id, "name": c.name, "input": c.arguments}
                        for c in turn.calls
                    ),
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": c.call_id, "content": result}
                    for c, result in zip(turn.calls, RESULTS, strict=True)
                ],
            },
        ]


class GeminiUpstream(Upstream):
    """The Gemini API: thought signatures go back on their parts (Gemini 3 refuses a
    function call step without its signature: the fake checks it). The fake answers by
    model, so each turn is scripted under a model name of its own."""

    label, kind, model = "gemini", "gemini", "gemini-3-flash"
    call_ids = ("c9bjmkfz", "x4kq2m7d")
    reports_reasoning_tokens = reports_cached_tokens = True
    _names = itertools.count()

    def new_fake(self) -> Any:
        fake = FakeGemini()
        fake.require_signatures = True
        return fake

    async def start(self) -> None:
        for fake in self.fakes:
            await fake.__aenter__()  # FakeGemini has no start()

    async def aclose(self) -> None:
        for fake in self.fakes:
            await fake.__aexit__(None, None, None)

    def script(self, slot: int, *turns: Turn) -> list[str]:
        models = []
        for turn in turns:
            model = f"{self.model}-{next(self._names)}"
            self.fakes[slot].scripts[model] = self.answer(turn)
            models.append(self.model_name(slot, model))
        return models

    def answer(self, turn: Turn) -> Script:
        if isinstance(turn, Recorded):
            body = turn.path.read_bytes()
            if turn.path.suffix == ".json":  # one JSON array: the API without alt=sse
                return Script(events=json.loads(body), whole=True)
            return Script(events=list(sse_blocks(body)))
        if isinstance(turn, TextTurn):
            parts = [{"text": piece} for piece in turn.text]
            events = [_candidate([part]) for part in parts]
            events.append(
                {**_candidate([{"text": ""}], "STOP"), "usageMetadata": usage_metadata(12, 9)}
            )
            return Script(events=events)
        events = [_candidate([{"text": piece, "thought": True}]) for piece in turn.reasoning]
        parts: list[dict[str, Any]] = [
            {"functionCall": {"name": c.name, "args": c.arguments, "id": c.call_id}}
            for c in turn.calls
        ]
        parts[0]["thoughtSignature"] = SIGNATURE  # of parallel calls, Gemini signs the first
        events.append(_candidate(parts))
        usage = usage_metadata(
            INPUT_TOKENS,
            OUTPUT_TOKENS - REASONING_TOKENS,
            thoughts=REASONING_TOKENS,
            cached=CACHED_TOKENS,
        )
        events.append({**_candidate([{"text": ""}], "STOP"), "usageMetadata": usage})
        return Script(events=events)

    def check_context(self, body: dict[str, Any], turn: CallsTurn) -> None:
        question, answer, results = body["contents"]
        assert question == {"role": "user", "parts": [{"text": QUESTION}]}
        assert answer["role"] == "model"
        assert [_without_id(p, "functionCall") for p in answer["parts"]] == [
            {"functionCall": {"name": c.name, "args": c.arguments}} for c in turn.calls
        ]
        assert [p.get("thoughtSignature") for p in answer["parts"]] == [SIGNATURE, None]
        assert results["role"] == "user"
        assert [_without_id(p, "functionResponse") for p in results["parts"]] == [
            {"functionResponse": {"name": c.name, "response": {"content": result}}}
            for c, result in zip(turn.calls, RESULTS, strict=True)
        ]
        # Gemini's ids are optional; one that is sent must be the call's own.
        for part, call in zip(answer["parts"], turn.calls, strict=True):
            assert part["functionCall"].get("id", call.call_id) == call.call_id
        for part, call in zip(results["parts"], turn.calls, strict=True):
            assert part["functionResponse"].get("id", call.call_id) == call.call_id


def _candidate(parts: list[dict[str, Any]], finish: str | None = None) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    return {"candidates": [candidate], "modelVersion": "gemini-3-flash-preview"}


def _without_id(part: dict[str, Any], key: str) -> dict[str, Any]:
    inner = {k: v for k, v in part[key].items() if k != "id"}
    return {key: inner}


class OllamaUpstream(Upstream):
    """Ollama's native chat API: thinking goes back with the calls, results by tool name."""

    label, kind, model = "ollama", "ollama", "gpt-oss:20b"
    call_ids = ("call_mo1wm122", "call_k3x8v0qa")

    def new_fake(self) -> Any:
        return FakeOllama()

    def config(self) -> str:
        return super().config().replace('api_key = "sk-test"\n', "")

    def script(self, slot: int, *turns: Turn) -> list[str]:
        self.fakes[slot].answer(*(self.answer(turn) for turn in turns))
        return [self.model_name(slot) for _ in turns]

    def answer(self, turn: Turn) -> OllamaAnswer:
        """``turn``, written one line at a time."""
        if isinstance(turn, Recorded):
            body = turn.path.read_bytes()
            json_body = turn.path.suffix == ".json"
            content_type = "application/json" if json_body else NDJSON
            return OllamaAnswer(body.splitlines(keepends=True), content_type=content_type)
        if isinstance(turn, TextTurn):
            lines = [text_line(piece, model=self.model) for piece in turn.text]
            lines.append(done_line(prompt=12, output=9, model=self.model))
        else:
            lines = [chat_line({"thinking": piece}, model=self.model) for piece in turn.reasoning]
            tool_calls = [
                {
                    "id": c.call_id,
                    "function": {"index": n, "name": c.name, "arguments": c.arguments},
                }
                for n, c in enumerate(turn.calls)
            ]
            lines.append(chat_line({"tool_calls": tool_calls}, model=self.model))
            lines.append(done_line(prompt=INPUT_TOKENS, output=OUTPUT_TOKENS, model=self.model))
        return OllamaAnswer(lines)

    def check_context(self, body: dict[str, Any], turn: CallsTurn) -> None:
        assert body["messages"] == [
            {"role": "user", "content": QUESTION},
            {
                "role": "assistant",
                "content": "",
                "thinking": "".join(turn.reasoning),
                "tool_calls": [
                    {"function": {"name": c.name, "arguments": c.arguments}} for c in turn.calls
                ],
            },
            *(
                {"role": "tool", "content": result, "tool_name": c.name}
                for c, result in zip(turn.calls, RESULTS, strict=True)
            ),
        ]


class DemoModel(Upstream):
    """The demo model: no upstream; it calls both tools named in the question (with ids of
    its own) and quotes the results."""

    label, kind, model = "demo", "demo", "parley"

    def __init__(self, tmp: Path, slots: int) -> None:
        super().__init__(tmp, 0)

    def config(self) -> str:
        return ""

    def take(self) -> int:
        return 0

    def model_name(self, slot: int, model: str | None = None) -> str:
        return "demo/parley"

    def scenario(self) -> CallsTurn:
        said = "The demo model calls get_weather and get_time."
        return CallsTurn(calls("", ""), ("The message names a tool. ", said))

    def script(self, slot: int, *turns: Turn) -> list[str]:
        return [self.model_name(slot) for _ in turns]

    def answer_text(self) -> str:
        return " ".join(
            f'Demo model: the tool {name} returned "{result}".'
            for name, result in zip(("get_weather", "get_time"), RESULTS, strict=True)
        )


def _compact(arguments: dict[str, Any]) -> str:
    return orjson.dumps(arguments).decode()


# ------------------------------------------------------------------------- a server


@asynccontextmanager
async def serving(
    tmp: Path, upstreams: dict[str, Upstream]
) -> AsyncIterator[tuple[ParleyServer, httpx.AsyncClient]]:
    """A ``parley serve`` with every kind's fakes as its providers (started here and closed
    after), and a client of a new user of it on ``/v1`` whose JSON answers are checked for
    leaked internals."""
    for upstream in upstreams.values():
        await upstream.start()
    db = FreshDatabase(tmp)
    config = "".join(upstream.config() for upstream in upstreams.values())
    server = ParleyServer(database_url=db.url, workdir=tmp, config=config)
    try:
        server.start()
        async with httpx.AsyncClient(
            base_url=f"{server.base_url}/v1",
            headers={"Authorization": f"Bearer {server.new_user()}"},
            timeout=30,
            event_hooks={"response": [check_json]},
        ) as http:
            yield server, http
    finally:
        server.stop()
        server.assert_clean_log()
        db.drop()
        for upstream in upstreams.values():
            await upstream.aclose()


async def check_json(response: httpx.Response) -> None:
    """Response hook: a JSON body is read at once (and checked for leaked internals)."""
    if response.headers.get("content-type", "").startswith("application/json"):
        await response.aread()
        assert_no_leak(response.text)


# ------------------------------------------------------------------- MCP servers


@asynccontextmanager
async def serving_with(
    tmp: Path, upstreams: dict[str, Upstream], env: dict[str, str]
) -> AsyncIterator[tuple[ParleyServer, httpx.AsyncClient]]:
    """``serving``, the server started with ``env`` added (e.g. ``PARLEY_MCP_ALLOW_URLS``)."""
    for upstream in upstreams.values():
        await upstream.start()
    db = FreshDatabase(tmp)
    config = "".join(upstream.config() for upstream in upstreams.values())
    server = ParleyServer(database_url=db.url, workdir=tmp, config=config, env=env)
    try:
        server.start()
        async with httpx.AsyncClient(
            base_url=f"{server.base_url}/v1",
            headers={"Authorization": f"Bearer {server.new_user()}"},
            timeout=30,
            event_hooks={"response": [check_json]},
        ) as http:
            yield server, http
    finally:
        server.stop()
        server.assert_clean_log()
        db.drop()
        for upstream in upstreams.values():
            await upstream.aclose()


@dataclass(frozen=True)
class Received:
    """One JSON-RPC request an MCP server received: its method, params and HTTP headers."""

    method: str
    params: dict[str, Any]
    headers: dict[str, str]


class RecordingMCP:
    """The test MCP server (``tests/terminal/mcp_server.py``) behind a wrapper that keeps
    every JSON-RPC request it receives (``received``), served on loopback in a thread by
    :meth:`serve` (``tests.mcp.conftest``'s uvicorn runner)."""

    def __init__(self, *, fail_list: bool = False) -> None:
        from tests.terminal.mcp_server import ODD_TOOLS, TOOLS, build_server, http_app

        tools = [*TOOLS.values(), ODD_TOOLS["big"]]
        self.app = http_app(build_server("test", tools, 1000, fail_list=fail_list))
        self.received: list[Received] = []
        #: Run with each ``tools/call`` as it arrives, before the tool runs.
        self.on_call: Callable[[Received], None] | None = None

    def calls(self, name: str | None = None) -> list[Received]:
        """The ``tools/call`` requests received (of the tool ``name``, when given)."""
        return [
            r
            for r in self.received
            if r.method == "tools/call" and (name is None or r.params.get("name") == name)
        ]

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        with contextlib.suppress(ValueError):
            request = json.loads(body or b"{}")
            for one in request if isinstance(request, list) else [request]:
                if isinstance(one, dict) and "method" in one:
                    received = Received(one["method"], one.get("params") or {}, headers)
                    self.received.append(received)
                    if received.method == "tools/call" and self.on_call is not None:
                        self.on_call(received)
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if replayed:
                return dict(await receive())
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    @contextlib.contextmanager
    def serve(self) -> Iterator[str]:
        """Served on a loopback port; its ``/mcp`` endpoint's URL."""
        from tests.mcp.conftest import _threaded

        with _threaded(self) as base:
            yield f"{base}/mcp"


def one_model_turns(
    upstream: Upstream, slot: int, first: CallsTurn, then: TextTurn
) -> tuple[str, Callable[[], None]]:
    """A model name whose first call answers ``first``, and a function that makes its next
    calls answer ``then``. A turn that runs a server-side tool calls the model again under
    the same name: the kinds whose fakes answer by model name (Chat Completions' replayed
    file, Gemini's script) get their next answer swapped in when the tool runs; the queued
    kinds have both answers queued at once."""
    if isinstance(upstream, ChatUpstream):
        path = upstream.tmp / f"chat-turns-{next(upstream._files)}.sse"
        path.write_bytes(chat_stream(first))

        def rewrite() -> None:
            path.write_bytes(chat_stream(then))

        return upstream.model_name(slot, f"replay:{path}"), rewrite
    if isinstance(upstream, GeminiUpstream):
        model = f"{upstream.model}-{next(upstream._names)}"
        scripts = upstream.fakes[slot].scripts
        scripts[model] = upstream.answer(first)
        return upstream.model_name(slot, model), lambda: scripts.update(
            {model: upstream.answer(then)}
        )
    model, _ = upstream.script(slot, first, then)
    return model, lambda: None
