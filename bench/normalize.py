"""What normalising one upstream chunk costs: raw bytes in, accumulator state out.

    .venv/bin/python bench/normalize.py [--rounds 7] [--round-ms 30] [--strict]

For each adapter kind (openai-chat, openai-responses, anthropic, gemini, ollama) and three
streams in that API's wire format (text deltas of a few words, a reasoning stream, a
tool-call stream), it times, per chunk (one SSE event's data / one NDJSON line):

* **parse**: the adapter's own per-event parsing into model events (``chunk_events``,
  ``_StreamState.read`` for Responses and Anthropic, ``StreamState.chunk_events``,
  ``_LineReader.events``);
* **+ accumulate**: the same, plus ``AnswerAccumulator.add`` for every event;
* **+ framing**: raw bytes in: ``iter_sse`` (or ``ndjson_lines`` for Ollama) over the
  body, one piece per event as a gapped stream delivers it, the same loop as the adapter's
  ``stream`` (``[DONE]`` / ``ended`` / ``message_stop`` / ``done`` checks included), parse
  and accumulate. No HTTP and no event loop scheduling: nothing suspends, so the coroutine is
  driven to its end directly and the async generators run straight through.

Each number is the median over ``--rounds`` rounds (after a warm-up round) of the time of
many whole streams (``time.perf_counter_ns``) ÷ their chunks. "Chunks" are the payloads the
parser sees (for Anthropic and Responses every event, ``ping``, ``content_block_stop``,
``response.created``, ``*.done`` and the like included); in the framing column OpenAI's
``[DONE]`` is processed too but not counted. The target (≤ 20 µs per chunk, the whole path)
is reported, not enforced: the exit status is 0 unless ``--strict`` and a stream misses it.
Every stream is checked once (text, reasoning, tool calls, finish reason, usage) before it
is timed; a wrong one stops the run (exit 1).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import json
import platform
import statistics
import sys
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import orjson

from parley.events import FinishPart, ModelEvent
from parley.providers.accumulator import AnswerAccumulator
from parley.providers.anthropic import _StreamState as AnthropicState
from parley.providers.gemini import StreamState as GeminiState
from parley.providers.ollama import _LineReader as OllamaReader
from parley.providers.ollama import ndjson_lines
from parley.providers.openai_chat import chunk_events as openai_chunk_events
from parley.providers.openai_responses import _StreamState as ResponsesState
from parley.providers.sse import iter_sse

TARGET_US = 20.0

# ----------------------------------------------------------------------------- streams
#
# The payloads below are constructed for timing: they follow each API's documented wire
# format (field names, nesting, the extra fields real servers send) but are not captured
# from a real server.

ANSWER = (
    "The quick brown fox jumps over the lazy dog while the rain keeps falling on the old "
    "stone bridge, and nobody in the village seems to notice that the river is rising fast "
    "tonight. Tomorrow the mayor will call a meeting about the sandbags and the road."
)
THOUGHT = (
    "The user asks about the weather in Paris, so I should check which unit they prefer "
    "and whether the forecast tool needs a country code. Paris is in France, the code is FR, "
    "and Celsius is the usual unit there, so I will ask for that and then summarise."
)
TOOL_ARGS = '{"location": "Paris, FR", "unit": "celsius", "days": 3, "include_hourly": false}'


def pieces(text: str, size: int = 3) -> list[str]:
    """Deltas of a few words each, with the spaces a tokenizer would put in front."""
    words = text.split(" ")
    out = [" ".join(words[i : i + size]) for i in range(0, len(words), size)]
    return [out[0], *(" " + p for p in out[1:])]


def arg_fragments(args: str, size: int = 6) -> list[str]:
    return [args[i : i + size] for i in range(0, len(args), size)]


@dataclass
class Stream:
    kind: str
    name: str
    payloads: list[bytes]  # what the per-event parser gets: one SSE data / NDJSON line each
    names: list[str]  # the SSE event name of each payload ("message" when unset)
    body: list[bytes]  # the raw body, one piece per network read (one per event)
    text: str
    reasoning: str
    tool: tuple[str, dict[str, Any]] | None
    finish: str
    usage: tuple[int, int]


def sse_body(events: list[tuple[str | None, bytes]]) -> list[bytes]:
    return [
        (b"event: " + name.encode() + b"\n" if name else b"") + b"data: " + data + b"\n\n"
        for name, data in events
    ]


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj)


# --- OpenAI Chat Completions: data-only SSE, `[DONE]` at the end


def openai_stream(name: str) -> Stream:
    head = {
        "id": "chatcmpl-AbC123xyz",
        "object": "chat.completion.chunk",
        "created": 1732000000,
        "model": "gpt-4o-mini-2024-07-18",
        "system_fingerprint": "fp_0ba0d124f1",
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return dumps({**head, "choices": [choice], "usage": None})

    text = reasoning = ""
    tool = None
    payloads = [chunk({"role": "assistant", "content": "", "refusal": None})]
    if name == "reasoning":
        for p in pieces(THOUGHT):
            payloads.append(chunk({"content": None, "reasoning_content": p}))
        reasoning = THOUGHT
    if name in ("text", "reasoning"):
        for p in pieces(ANSWER):
            payloads.append(chunk({"content": p}))
        text = ANSWER
        finish = "stop"
    else:
        call = {
            "index": 0,
            "id": "call_9xYzAbCdEf",
            "type": "function",
            "function": {"name": "get_forecast", "arguments": ""},
        }
        payloads.append(chunk({"tool_calls": [call]}))
        for frag in arg_fragments(TOOL_ARGS):
            payloads.append(chunk({"tool_calls": [{"index": 0, "function": {"arguments": frag}}]}))
        tool = ("get_forecast", json.loads(TOOL_ARGS))
        finish = "tool_calls"
    payloads.append(chunk({}, finish))
    usage = {
        "prompt_tokens": 123,
        "completion_tokens": 77,
        "total_tokens": 200,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
    }
    payloads.append(dumps({**head, "choices": [], "usage": usage}))
    body = sse_body([(None, p) for p in payloads] + [(None, b"[DONE]")])
    names = ["message"] * len(payloads)
    return Stream(
        "openai-chat", name, payloads, names, body, text, reasoning, tool, finish, (123, 77)
    )


# --- OpenAI Responses: named SSE events (each also carries its `type`), `response.completed`
# at the end. Shapes as in tests/recordings/openai_responses/ (gpt-5.5): the delta events'
# `obfuscation` padding, `phase` on messages, the whole response echoed at start and end;
# the reasoning summary events (no recording has them) as parley/testing/fake_responses.py.

RESPONSES_MODEL = "gpt-5.5"  # what the request asked for (the adapter's `_StreamState(model)`)
# What `include: ["reasoning.encrypted_content"]` brings back: an opaque base64 blob.
ENCRYPTED = "gAAAAAB" + base64.b64encode(bytes(i * 7 % 251 for i in range(900))).decode()


def responses_stream(name: str) -> Stream:
    events: list[tuple[str, dict[str, Any]]] = []

    def add(kind: str, **fields: Any) -> None:
        events.append((kind, {"type": kind, **fields, "sequence_number": len(events)}))

    def pad(delta: str) -> str:
        """The padding (random there) the API adds to delta events against size leaks."""
        return "ReLAoBL6oNRsXAoZA1PK3x65"[: max(2, 16 - len(delta))]

    response: dict[str, Any] = {
        "id": "resp_00d64fa806f333310169fab1be69d081a08f8285661855594c",
        "object": "response",
        "created_at": 1778037182,
        "status": "in_progress",
        "background": False,
        "completed_at": None,
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "max_output_tokens": None,
        "max_tool_calls": None,
        "model": "gpt-5.5-2026-04-23",
        "output": [],
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "prompt_cache_key": None,
        "reasoning": {"effort": "medium", "summary": "auto" if name == "reasoning" else None},
        "safety_identifier": None,
        "service_tier": "default",
        "store": False,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": "auto",
        "tools": [],
        "top_logprobs": 0,
        "top_p": 0.98,
        "truncation": "disabled",
        "usage": None,
        "user": None,
        "metadata": {},
    }
    if name == "tool call":  # the request's tools, echoed in every response object
        function = {"type": "function", "name": "get_forecast", "strict": False}
        function |= {"description": "The weather forecast for a place, by day."}
        function["parameters"] = {
            "type": "object",
            "properties": {
                "location": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer"},
                "include_hourly": {"type": "boolean"},
            },
            "required": ["location"],
        }
        response["tools"] = [function]
    add("response.created", response=response)
    add("response.in_progress", response=response)
    output: list[dict[str, Any]] = []
    text = reasoning = ""
    tool = None

    def message(values: list[str]) -> None:
        index, item_id = len(output), "msg_00d64fa806f333310169fab1c2e40081a3857ad788023cb7ea"
        item = {"id": item_id, "type": "message", "status": "in_progress", "content": []}
        item |= {"phase": "final_answer", "role": "assistant"}
        add("response.output_item.added", item=item, output_index=index)
        part = {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}
        at = {"content_index": 0, "item_id": item_id, "output_index": index}
        add("response.content_part.added", **at, part=part)
        for v in values:
            add("response.output_text.delta", **at, delta=v, logprobs=[], obfuscation=pad(v))
        whole = "".join(values)
        add("response.output_text.done", **at, logprobs=[], text=whole)
        part = {**part, "text": whole}
        add("response.content_part.done", **at, part=part)
        done = {**item, "status": "completed", "content": [part]}
        add("response.output_item.done", item=done, output_index=index)
        output.append(done)

    if name == "reasoning":
        index, item_id = 0, "rs_00d64fa806f333310169fab1bf0a1c81a0b25e7d4c3f9a8e61"
        item = {"id": item_id, "type": "reasoning", "encrypted_content": ENCRYPTED[:600]}
        add("response.output_item.added", item={**item, "summary": []}, output_index=index)
        part = {"type": "summary_text", "text": ""}
        at = {"item_id": item_id, "output_index": index, "summary_index": 0}
        add("response.reasoning_summary_part.added", **at, part=part)
        for p in pieces(THOUGHT):
            add("response.reasoning_summary_text.delta", **at, delta=p, obfuscation=pad(p))
        add("response.reasoning_summary_text.done", **at, text=THOUGHT)
        part = {**part, "text": THOUGHT}
        add("response.reasoning_summary_part.done", **at, part=part)
        done = {**item, "encrypted_content": ENCRYPTED, "summary": [part]}
        add("response.output_item.done", item=done, output_index=index)
        output.append(done)
        reasoning = THOUGHT
    if name in ("text", "reasoning"):
        message(pieces(ANSWER))
        text = ANSWER
        finish = "stop"
    else:
        index, item_id = 0, "fc_00d64fa806f333310169fab1bf324481a0852cda3180856290"
        item = {"id": item_id, "type": "function_call", "status": "in_progress", "arguments": ""}
        item |= {"call_id": "call_sVidsfFJ6zlzRpelrPkTPlpd", "name": "get_forecast"}
        add("response.output_item.added", item=item, output_index=index)
        at = {"item_id": item_id, "output_index": index}
        for frag in arg_fragments(TOOL_ARGS):
            add("response.function_call_arguments.delta", **at, delta=frag, obfuscation=pad(frag))
        add("response.function_call_arguments.done", **at, arguments=TOOL_ARGS)
        done = {**item, "status": "completed", "arguments": TOOL_ARGS}
        add("response.output_item.done", item=done, output_index=index)
        output.append(done)
        tool = ("get_forecast", json.loads(TOOL_ARGS))
        finish = "tool_calls"
    usage = {
        "input_tokens": 123,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 77,
        "output_tokens_details": {"reasoning_tokens": 42 if name == "reasoning" else 0},
        "total_tokens": 200,
    }
    final = {**response, "status": "completed", "completed_at": 1778037184, "output": output}
    add("response.completed", response={**final, "usage": usage})
    payloads = [dumps(e) for _, e in events]
    names = [kind for kind, _ in events]
    body = sse_body(list(zip(names, payloads, strict=True)))
    return Stream(
        "openai-responses", name, payloads, names, body, text, reasoning, tool, finish, (123, 77)
    )


# --- Anthropic Messages: named SSE events, `message_stop` at the end


def anthropic_stream(name: str) -> Stream:
    events: list[tuple[str, dict[str, Any]]] = []

    def add(kind: str, **fields: Any) -> None:
        events.append((kind, {"type": kind, **fields}))

    message = {
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
        "type": "message",
        "role": "assistant",
        "content": [],
        "model": "claude-sonnet-4-20250514",
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {
            "input_tokens": 123,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": 1,
            "service_tier": "standard",
        },
    }
    add("message_start", message=message)
    index = 0
    text = reasoning = ""
    tool = None

    def block(start: dict[str, Any], kind: str, field: str, values: list[str]) -> None:
        nonlocal index
        add("content_block_start", index=index, content_block=start)
        if index == 0:
            add("ping")
        for v in values:
            add("content_block_delta", index=index, delta={"type": kind, field: v})
        if kind == "thinking_delta":
            sig = {"type": "signature_delta", "signature": "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrk"}
            add("content_block_delta", index=index, delta=sig)
        add("content_block_stop", index=index)
        index += 1

    if name == "reasoning":
        start = {"type": "thinking", "thinking": "", "signature": ""}
        block(start, "thinking_delta", "thinking", pieces(THOUGHT))
        reasoning = THOUGHT
    if name in ("text", "reasoning"):
        block({"type": "text", "text": ""}, "text_delta", "text", pieces(ANSWER))
        text = ANSWER
        finish, wire_finish = "stop", "end_turn"
    else:
        start = {"type": "tool_use", "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6"}
        start |= {"name": "get_forecast", "input": {}}
        block(start, "input_json_delta", "partial_json", arg_fragments(TOOL_ARGS))
        tool = ("get_forecast", json.loads(TOOL_ARGS))
        finish, wire_finish = "tool_calls", "tool_use"
    delta = {"stop_reason": wire_finish, "stop_sequence": None}
    add("message_delta", delta=delta, usage={"output_tokens": 77})
    add("message_stop")
    payloads = [dumps(e) for _, e in events]
    names = [kind for kind, _ in events]
    body = sse_body(list(zip(names, payloads, strict=True)))
    return Stream(
        "anthropic", name, payloads, names, body, text, reasoning, tool, finish, (123, 77)
    )


# --- Gemini streamGenerateContent?alt=sse: data-only SSE, usage on every chunk


def gemini_stream(name: str) -> Stream:
    payloads: list[bytes] = []
    out = 0

    def chunk(parts: list[dict[str, Any]], finish: str | None = None) -> None:
        nonlocal out
        out += 3
        candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
        if finish:
            candidate["finishReason"] = finish
        usage = {"promptTokenCount": 123, "candidatesTokenCount": out, "totalTokenCount": 123 + out}
        payloads.append(
            dumps(
                {
                    "candidates": [candidate],
                    "usageMetadata": usage,
                    "modelVersion": "gemini-2.5-flash",
                    "responseId": "mJoyaPyXGtWvnvgPx5SRuQk",
                }
            )
        )

    text = reasoning = ""
    tool = None
    if name == "reasoning":
        for p in pieces(THOUGHT):
            chunk([{"text": p, "thought": True}])
        reasoning = THOUGHT
    if name in ("text", "reasoning"):
        parts = pieces(ANSWER)
        for p in parts[:-1]:
            chunk([{"text": p}])
        chunk([{"text": parts[-1]}], "STOP")
        text = ANSWER
        finish = "stop"
    else:
        # Gemini sends a function call whole, in one part: no argument fragments.
        chunk([{"text": "Let me check"}])
        chunk([{"text": " the forecast."}])
        call = {"name": "get_forecast", "args": json.loads(TOOL_ARGS), "id": "fc_8x1qwe"}
        chunk([{"functionCall": call}], "STOP")
        text = "Let me check the forecast."
        tool = ("get_forecast", json.loads(TOOL_ARGS))
        finish = "tool_calls"
    body = sse_body([(None, p) for p in payloads])
    names = ["message"] * len(payloads)
    return Stream("gemini", name, payloads, names, body, text, reasoning, tool, finish, (123, out))


# --- Ollama /api/chat: NDJSON, `"done": true` on the last line


def ollama_stream(name: str) -> Stream:
    payloads: list[bytes] = []

    def line(message: dict[str, Any]) -> None:
        payloads.append(
            dumps(
                {
                    "model": "qwen3:8b",
                    "created_at": "2025-06-01T12:00:00.123456789Z",
                    "message": {"role": "assistant", "content": "", **message},
                    "done": False,
                }
            )
        )

    text = reasoning = ""
    tool = None
    if name == "reasoning":
        for p in pieces(THOUGHT):
            line({"thinking": p})
        reasoning = THOUGHT
    if name in ("text", "reasoning"):
        for p in pieces(ANSWER):
            line({"content": p})
        text = ANSWER
        finish = "stop"
    else:
        # Ollama sends a tool call whole, in one line: no argument fragments.
        line({"content": "Let me check"})
        line({"content": " the forecast."})
        call = {"function": {"name": "get_forecast", "arguments": json.loads(TOOL_ARGS)}}
        line({"tool_calls": [call]})
        text = "Let me check the forecast."
        tool = ("get_forecast", json.loads(TOOL_ARGS))
        finish = "tool_calls"
    last = {
        "model": "qwen3:8b",
        "created_at": "2025-06-01T12:00:01.987654321Z",
        "message": {"role": "assistant", "content": ""},
        "done_reason": "stop",
        "done": True,
        "total_duration": 4883583458,
        "load_duration": 1334875,
        "prompt_eval_count": 123,
        "prompt_eval_duration": 342546000,
        "eval_count": 77,
        "eval_duration": 4535599000,
    }
    payloads.append(dumps(last))
    body = [p + b"\n" for p in payloads]
    names = ["message"] * len(payloads)
    return Stream("ollama", name, payloads, names, body, text, reasoning, tool, finish, (123, 77))


# ---------------------------------------------------------------------- one whole stream
#
# Three functions per kind, each doing `reps` whole streams and returning the last
# accumulator (or None): parse only; parse + accumulate; raw body + framing + both.


def parse_only(stream: Stream) -> Callable[[int], None]:
    payloads, names = stream.payloads, stream.names
    if stream.kind == "openai-chat":

        def run(reps: int) -> None:
            for _ in range(reps):
                for data in payloads:
                    openai_chunk_events(data)

    elif stream.kind == "openai-responses":
        pairs = list(zip(names, payloads, strict=True))

        def run(reps: int) -> None:
            for _ in range(reps):
                read = ResponsesState(RESPONSES_MODEL).read
                for name, data in pairs:
                    read(name, data)

    elif stream.kind == "anthropic":
        pairs = list(zip(names, payloads, strict=True))

        def run(reps: int) -> None:
            for _ in range(reps):
                read = AnthropicState().read
                for name, data in pairs:
                    read(name, data)

    elif stream.kind == "gemini":

        def run(reps: int) -> None:
            for _ in range(reps):
                parse = GeminiState().chunk_events
                for data in payloads:
                    parse(data)

    else:

        def run(reps: int) -> None:
            for _ in range(reps):
                parse = OllamaReader().events
                for data in payloads:
                    parse(data)

    return run


def parse_accumulate(stream: Stream) -> Callable[[int], AnswerAccumulator]:
    payloads, names = stream.payloads, stream.names
    if stream.kind in ("openai-responses", "anthropic"):
        pairs = list(zip(names, payloads, strict=True))

        def make_reader() -> Callable[[str, bytes], list[ModelEvent]]:
            if stream.kind == "openai-responses":
                return ResponsesState(RESPONSES_MODEL).read
            return AnthropicState().read

        def run(reps: int) -> AnswerAccumulator:
            for _ in range(reps):
                acc = AnswerAccumulator()
                add, read = acc.add, make_reader()
                for name, data in pairs:
                    for event in read(name, data):
                        add(event)
            return acc

        return run

    def make_parser() -> Callable[[bytes], list[ModelEvent]]:
        if stream.kind == "openai-chat":
            return openai_chunk_events
        if stream.kind == "gemini":
            return GeminiState().chunk_events
        return OllamaReader().events

    def run(reps: int) -> AnswerAccumulator:
        for _ in range(reps):
            acc = AnswerAccumulator()
            add, parse = acc.add, make_parser()
            for data in payloads:
                for event in parse(data):
                    add(event)
        return acc

    return run


async def source(body: list[bytes]) -> AsyncIterator[bytes]:
    """The body in its network pieces, as ``response.chunks()`` gives it."""
    for piece in body:
        yield piece


async def one_raw(stream: Stream) -> AnswerAccumulator:
    """Raw body → accumulator: the loop of the adapter's ``stream``, without HTTP."""
    acc = AnswerAccumulator()
    add = acc.add
    if stream.kind == "openai-chat":
        finished = False
        async for _name, data in iter_sse(source(stream.body)):
            if data == b"[DONE]":
                break
            for event in openai_chunk_events(data):
                if type(event) is FinishPart:
                    finished = True
                add(event)
        assert finished
    elif stream.kind == "openai-responses":
        rstate = ResponsesState(RESPONSES_MODEL)
        async for name, data in iter_sse(source(stream.body)):
            for event in rstate.read(name, data):
                add(event)
            if rstate.ended:
                break
        assert rstate.ended
    elif stream.kind == "anthropic":
        state = AnthropicState()
        async for name, data in iter_sse(source(stream.body)):
            for event in state.read(name, data):
                add(event)
            if state.stopped:
                break
    elif stream.kind == "gemini":
        gstate = GeminiState()
        async for _name, data in iter_sse(source(stream.body)):
            for event in gstate.chunk_events(data):
                add(event)
    else:
        reader = OllamaReader()
        async for line in ndjson_lines(source(stream.body)):
            for event in reader.events(line):
                add(event)
            if reader.done:
                break
    return acc


def with_framing(stream: Stream) -> Callable[[int], AnswerAccumulator]:
    async def many(reps: int) -> AnswerAccumulator:
        for _ in range(reps):
            acc = await one_raw(stream)
        return acc

    def run(reps: int) -> AnswerAccumulator:
        return drive(many(reps))

    return run


def drive(coro: Coroutine[Any, Any, AnswerAccumulator]) -> AnswerAccumulator:
    """Run a coroutine that never suspends (nothing here waits for I/O) to its end."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    coro.close()
    raise RuntimeError("the coroutine suspended")


# ------------------------------------------------------------------------------ checking


def check(stream: Stream, acc: AnswerAccumulator) -> None:
    calls = acc.finish_tool_calls()
    got = (
        acc.text,
        acc.reasoning,
        [(c.name, c.arguments) for c in calls],
        acc.finish_reason,
        (acc.input_tokens, acc.output_tokens),
    )
    want = (
        stream.text,
        stream.reasoning,
        [stream.tool] if stream.tool else [],
        stream.finish,
        stream.usage,
    )
    if got != want:
        raise SystemExit(f"{stream.kind} {stream.name}: wrong answer\n got {got}\nwant {want}")


# ------------------------------------------------------------------------------- timing


def time_per_chunk(run: Callable[[int], Any], chunks: int, rounds: int, round_ms: float) -> float:
    """Median over rounds of µs per chunk; the repetitions fill about ``round_ms``."""
    start = time.perf_counter_ns()
    run(20)  # warm-up, and a first estimate of the cost of one stream
    per_stream = (time.perf_counter_ns() - start) / 20
    reps = max(20, int(round_ms * 1e6 / per_stream))
    samples = []
    for _ in range(rounds):
        gc.collect()
        start = time.perf_counter_ns()
        run(reps)
        samples.append((time.perf_counter_ns() - start) / reps / chunks / 1000)
    return statistics.median(samples)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/normalize.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=7, help="timed rounds (the median is shown)")
    p.add_argument("--round-ms", type=float, default=30.0, help="length of one round (ms)")
    p.add_argument("--strict", action="store_true", help="exit 1 when a stream misses 20 µs")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    builders = [openai_stream, responses_stream, anthropic_stream, gemini_stream, ollama_stream]
    streams = [build(name) for build in builders for name in ("text", "reasoning", "tool call")]
    for stream in streams:  # every path must give the right answer before it is timed
        check(stream, parse_accumulate(stream)(1))
        check(stream, with_framing(stream)(1))
        check(stream, asyncio.run(one_raw(stream)))

    print(
        "| kind | stream | chunks | parse | + accumulate | + SSE/NDJSON framing | target | result |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    missed = 0
    for stream in streams:
        n = len(stream.payloads)
        parse = time_per_chunk(parse_only(stream), n, args.rounds, args.round_ms)
        acc = time_per_chunk(parse_accumulate(stream), n, args.rounds, args.round_ms)
        full = time_per_chunk(with_framing(stream), n, args.rounds, args.round_ms)
        ok = full <= TARGET_US
        missed += not ok
        print(
            f"| {stream.kind} | {stream.name} | {n} | {parse:.2f} µs | {acc:.2f} µs "
            f"| {full:.2f} µs | ≤ {TARGET_US:g} µs | {'pass' if ok else 'fail'} |"
        )
    print(
        f"\nµs per chunk, median of {args.rounds} rounds; {platform.processor() or platform.machine()}; "
        f"Python {platform.python_version()}; orjson {orjson.__version__}."
    )
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
