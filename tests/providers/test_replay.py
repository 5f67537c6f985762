"""Replay of real recorded stream bodies, served over loopback HTTP to each adapter.

Every file under ``tests/recordings/<kind>/`` is a response body that another project
recorded from the real API (see ``tests/recordings/README.md`` for sources and licences).
Each is served byte for byte, with its content type, to the adapter of its kind; what the
adapter yields, gathered by a ``AnswerAccumulator``, is compared with what the recording
itself says. The expected values are read from the recording by the small parsers below,
written apart from the adapters (plain ``json`` over the events, no adapter code). A
recording whose stream reports an error part way must end the turn in an ``UpstreamError``
that carries the provider's message, after what was streamed before it, with the usage
counted up to it (the failing event's own included).

A file named ``NAME__<status>.<suffix>`` (``…__401.json``) is an error answer: it is served
with that recorded HTTP status, and the adapter must raise an ``UpstreamError`` whose message
carries the provider's own error message (read from the body here), not the raw JSON.

An error answer that is not JSON (``NAME__503.txt``, served as ``text/plain``: a proxy's own
text) has no provider message to pass on; the adapter, which passes on only messages it reads
from JSON, must then say the status and nothing of the body.

A file named ``NAME.chunks.txt`` holds recorded event data, not a body: one event's JSON a
line, as vercel/ai's recorder writes them (``JSON.stringify`` of each parsed event, lines
joined by ``\n``). The test frames each line as ``data: <line>\n\n`` and serves that as
``text/event-stream``; the stored file stays as recorded, the framing is the test's.

A recording listed in ``PROVIDER_OPTIONS`` is replayed to an adapter made with those options
(``think_tags`` for a server that puts the reasoning inside ``<think>…</think>`` in the
answer text); the expected turn is then read the same way (``split_think_tags``), and a
second test checks that without the option the tags stay in the text as sent.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from parley.errors import UpstreamError
from parley.events import ModelEvent
from parley.providers.accumulator import AnswerAccumulator
from parley.providers.anthropic import AnthropicProvider
from parley.providers.base import ChatMessage, ModelRequest
from parley.providers.gemini import GeminiProvider
from parley.providers.ollama import OllamaProvider
from parley.providers.openai_chat import OpenAIChatProvider
from parley.providers.openai_responses import OpenAIResponsesProvider
from parley.providers.transport import NO_RETRIES
from parley.types import Role
from tests.providers.helpers import CannedUpstream, http_answer

RECORDINGS = Path(__file__).resolve().parent.parent / "recordings"
CONTENT_TYPES = {
    ".sse": "text/event-stream",
    ".ndjson": "application/x-ndjson",
    ".json": "application/json",
    # NAME__<status>.txt: a plain-text error answer (NAME.chunks.txt is framed as .sse by served())
    ".txt": "text/plain",
}
#: ``NAME__<status>.<suffix>``: an error answer, served with the HTTP status it was recorded with.
ERROR_STATUS = re.compile(r"__(\d{3})$")
#: The ``UpstreamError`` code an error answer's status must give.
ERROR_CODES = {
    400: "upstream_invalid_request",
    401: "upstream_auth",
    403: "upstream_auth",
    404: "upstream_not_found",
    429: "upstream_rate_limited",
}


@dataclass
class Expected:
    """What a recording says the turn was."""

    text: str = ""
    reasoning: str = ""
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    #: The provider's id of each call, ``None`` where it gave none (the adapter makes one).
    call_ids: list[str | None] = field(default_factory=list)
    finish: str | None = None
    usage: tuple[int, int] | None = None
    #: Of the output tokens, those spent reasoning; of the input, those read from a cache.
    reasoning_tokens: int = 0
    cached_tokens: int = 0
    #: The message of an error the stream reports part way (the turn then fails).
    error: str | None = None


# ------------------------------------------------------------------ independent parsers


def sse_data(body: bytes) -> Iterator[str]:
    """The ``data`` of each SSE event (lines joined by newlines), in order."""
    text = body.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
    for block in text.split("\n\n"):
        lines = [
            line[5:].removeprefix(" ") for line in block.split("\n") if line.startswith("data:")
        ]
        if lines:
            yield "\n".join(lines)


def expect_openai_chat(body: bytes, _suffix: str) -> Expected:
    out = Expected()
    calls: dict[int, dict[str, Any]] = {}
    for data in sse_data(body):
        if data == "[DONE]":
            break
        chunk = json.loads(data)
        if chunk.get("error"):  # an error reported in the stream ends the turn
            error = chunk["error"]
            out.error = error.get("message") if isinstance(error, dict) else str(error)
            if chunk.get("usage"):  # counted all the same (OpenRouter)
                read_chat_usage(chunk["usage"], out)
            break
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            if isinstance(reasoning, str):
                out.reasoning += reasoning
            content = delta.get("content")
            if isinstance(content, list):  # Mistral: typed chunks, the reasoning in "thinking"
                for piece in content:
                    if piece.get("type") == "text":
                        out.text += piece.get("text") or ""
                    elif piece.get("type") == "thinking":
                        out.reasoning += "".join(t.get("text", "") for t in piece["thinking"])
            else:
                out.text += content or ""
            for fragment in delta.get("tool_calls") or []:
                call = calls.setdefault(fragment["index"], {"id": None, "name": None, "args": ""})
                function = fragment.get("function") or {}
                call["id"] = call["id"] or fragment.get("id")
                call["name"] = call["name"] or function.get("name")
                call["args"] += function.get("arguments") or ""
            if choice.get("finish_reason"):
                out.finish = choice["finish_reason"]
        if chunk.get("usage"):
            read_chat_usage(chunk["usage"], out)
    out.calls = [(c["name"], json.loads(c["args"] or "{}")) for _, c in sorted(calls.items())]
    out.call_ids = [c["id"] for _, c in sorted(calls.items())]
    return out


def read_chat_usage(usage: dict[str, Any], out: Expected) -> None:
    prompt = usage.get("prompt_tokens") or 0
    # output: all generated tokens (xAI counts reasoning only in total_tokens)
    generated = max(usage.get("completion_tokens") or 0, (usage.get("total_tokens") or 0) - prompt)
    out.usage = (prompt, generated)
    # reasoning within the output (MiniMax says more than all of it: capped)
    thought = (usage.get("completion_tokens_details") or {}).get("reasoning_tokens")
    out.reasoning_tokens = min(thought or 0, generated)
    cached = (
        (usage.get("prompt_tokens_details") or {}).get("cached_tokens")
        or usage.get("prompt_cache_hit_tokens")  # DeepSeek
        or usage.get("cached_tokens")  # Together
        or 0
    )
    out.cached_tokens = min(cached, prompt)


def split_think_tags(expected: Expected) -> Expected:
    """The turn as a ``think_tags`` provider must give it: what is inside ``<think>…</think>``
    in the joined answer text is reasoning, the rest is text, the whitespace before the answer
    (between ``</think>`` and its first word) dropped."""
    text, reasoning = "", ""
    rest = expected.text
    while rest:
        start = rest.find("<think>")
        if start < 0:
            text += rest
            break
        text += rest[:start]
        end = rest.find("</think>", start)
        if end < 0:  # never closed: all of it was reasoning
            reasoning += rest[start + len("<think>") :]
            break
        reasoning += rest[start + len("<think>") : end]
        rest = rest[end + len("</think>") :]
    expected.text = text.lstrip()
    expected.reasoning += reasoning
    return expected


ANTHROPIC_STOP = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "tool_use": "tool_calls",
    "max_tokens": "length",
}


def expect_anthropic(body: bytes, _suffix: str) -> Expected:
    out = Expected()
    calls: dict[int, dict[str, Any]] = {}
    prompt = output = 0
    for data in sse_data(body):
        event = json.loads(data)
        kind = event.get("type")
        usage = None
        if kind == "message_start":
            usage = event["message"].get("usage")
        elif kind == "content_block_start":
            block = event["content_block"]
            if block["type"] == "tool_use":  # a client tool: server tools' blocks are not ours
                given = block.get("input") or {}  # whole here (a call made from code execution)
                args = json.dumps(given) if given else ""
                calls[event["index"]] = {"id": block["id"], "name": block["name"], "args": args}
        elif kind == "content_block_delta":
            delta = event["delta"]
            if delta["type"] == "text_delta":
                out.text += delta["text"]
            elif delta["type"] == "thinking_delta":
                out.reasoning += delta["thinking"]
            elif delta["type"] == "input_json_delta" and event["index"] in calls:
                calls[event["index"]]["args"] += delta["partial_json"]
        elif kind == "message_delta":
            reason = event["delta"].get("stop_reason")
            if reason:
                out.finish = ANTHROPIC_STOP.get(reason, reason)
            usage = event.get("usage")
        if usage:
            keys = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
            if any(usage.get(k) is not None for k in keys):
                prompt = sum(usage.get(k) or 0 for k in keys)
                out.cached_tokens = usage.get("cache_read_input_tokens") or 0
            if usage.get("output_tokens") is not None:
                output = usage["output_tokens"]
            thinking = (usage.get("output_tokens_details") or {}).get("thinking_tokens")
            out.reasoning_tokens = thinking or out.reasoning_tokens
            out.usage = (prompt, output)
    out.calls = [(c["name"], json.loads(c["args"] or "{}")) for _, c in sorted(calls.items())]
    out.call_ids = [c["id"] for _, c in sorted(calls.items())]
    return out


def expect_gemini(body: bytes, suffix: str) -> Expected:
    out = Expected()
    if suffix == ".json":  # the whole answer as one JSON array (no alt=sse)
        chunks = json.loads(body)
    else:
        chunks = [json.loads(data) for data in sse_data(body)]
    raw_finish = None
    for chunk in chunks:
        candidates = chunk.get("candidates") or []
        if candidates:
            candidate = candidates[0]
            for part in (candidate.get("content") or {}).get("parts") or []:
                if "functionCall" in part:
                    call = part["functionCall"]
                    out.calls.append((call["name"], call.get("args") or {}))
                    out.call_ids.append(call.get("id"))
                elif part.get("text"):
                    if part.get("thought") is True:
                        out.reasoning += part["text"]
                    else:
                        out.text += part["text"]
            raw_finish = candidate.get("finishReason") or raw_finish
        usage = chunk.get("usageMetadata")
        if usage:
            thoughts = usage.get("thoughtsTokenCount") or 0
            output = (usage.get("candidatesTokenCount") or 0) + thoughts
            out.usage = (usage.get("promptTokenCount") or 0, output)
            out.reasoning_tokens = thoughts
            out.cached_tokens = usage.get("cachedContentTokenCount") or 0
    if raw_finish is not None:
        # Parley's vocabulary: STOP after a function call means the model wants the tools run.
        reason = {"STOP": "stop", "MAX_TOKENS": "length"}.get(raw_finish, raw_finish.lower())
        out.finish = "tool_calls" if reason == "stop" and out.calls else reason
    return out


def expect_ollama(body: bytes, _suffix: str) -> Expected:
    out = Expected()
    for line in body.decode("utf-8").splitlines():
        if not line.strip():
            continue
        data = json.loads(line)
        message = data.get("message") or {}
        out.text += message.get("content") or ""
        out.reasoning += message.get("thinking") or ""
        for call in message.get("tool_calls") or []:
            function = call["function"]
            args = function.get("arguments") or {}
            out.calls.append(
                (function["name"], json.loads(args) if isinstance(args, str) else args)
            )
            out.call_ids.append(call.get("id"))
        if data.get("done"):
            reason = data.get("done_reason") or "stop"
            out.finish = "tool_calls" if reason == "stop" and out.calls else reason
            out.usage = (data.get("prompt_eval_count") or 0, data.get("eval_count") or 0)
    return out


def expect_openai_responses(body: bytes, _suffix: str) -> Expected:
    out = Expected()
    calls: dict[int, dict[str, Any]] = {}
    reasoning: dict[tuple[Any, ...], str] = {}
    for data in sse_data(body):
        event = json.loads(data)
        kind = event.get("type")
        if kind == "response.output_text.delta":
            out.text += event["delta"]
        elif kind in ("response.reasoning_summary_text.delta", "response.reasoning_text.delta"):
            key = (event.get("item_id"), event.get("summary_index"), event.get("content_index"))
            reasoning[key] = reasoning.get(key, "") + event["delta"]
        elif kind == "response.output_item.added" and event["item"]["type"] == "function_call":
            item = event["item"]
            calls[event["output_index"]] = {
                "id": item.get("call_id"),
                "name": item["name"],
                "args": item.get("arguments"),
            }
        elif kind == "response.function_call_arguments.delta":
            call = calls[event["output_index"]]
            call["args"] = (call["args"] or "") + event["delta"]
        elif kind == "response.output_item.done" and event["item"]["type"] == "function_call":
            call = calls[event["output_index"]]
            call["args"] = call["args"] or event["item"].get("arguments")
        elif kind in ("error", "response.failed"):  # the stream reports a failure: it ends
            error = event["error"] if kind == "error" else event["response"].get("error")
            out.error = (error or {}).get("message") or (error or {}).get("code") or kind
            break
        elif kind in ("response.completed", "response.incomplete"):
            response = event["response"]
            if kind == "response.completed":
                out.finish = "tool_calls" if calls else "stop"
            else:
                reason = (response.get("incomplete_details") or {}).get("reason") or "incomplete"
                out.finish = "length" if reason == "max_output_tokens" else reason
            usage = response.get("usage")
            if usage:
                out.usage = (usage.get("input_tokens", 0), usage.get("output_tokens", 0))
                details = usage.get("output_tokens_details") or {}
                out.reasoning_tokens = details.get("reasoning_tokens") or 0
                out.cached_tokens = (usage.get("input_tokens_details") or {}).get(
                    "cached_tokens"
                ) or 0
            break
    out.reasoning = "\n\n".join(text for text in reasoning.values() if text)
    out.calls = [(c["name"], json.loads(c["args"] or "{}")) for _, c in sorted(calls.items())]
    out.call_ids = [c["id"] for _, c in sorted(calls.items())]
    return out


def make_openai_chat(base_url: str, **options: Any) -> OpenAIChatProvider:
    return OpenAIChatProvider(
        base_url, api_key="sk-replay", read_timeout=10, retry=NO_RETRIES, **options
    )


def make_openai_responses(base_url: str) -> OpenAIResponsesProvider:
    return OpenAIResponsesProvider(base_url, api_key="sk-replay", read_timeout=10, retry=NO_RETRIES)


def make_anthropic(base_url: str) -> AnthropicProvider:
    return AnthropicProvider(base_url, api_key="sk-ant-replay", read_timeout=10, retry=NO_RETRIES)


def make_gemini(base_url: str) -> GeminiProvider:
    return GeminiProvider(base_url, api_key="replay-key", read_timeout=10, retry=NO_RETRIES)


def make_ollama(base_url: str) -> OllamaProvider:
    return OllamaProvider(base_url, read_timeout=10, retry=NO_RETRIES)


KINDS: dict[str, tuple[Callable[..., Any], Callable[[bytes, str], Expected]]] = {
    "openai_chat": (make_openai_chat, expect_openai_chat),
    "anthropic": (make_anthropic, expect_anthropic),
    "gemini": (make_gemini, expect_gemini),
    "ollama": (make_ollama, expect_ollama),
    "openai_responses": (make_openai_responses, expect_openai_responses),
}

#: Recordings an adapter is known to mishandle: ``relative path → reason``.
KNOWN_BUGS: dict[str, str] = {}

#: Provider settings a recording is replayed with: ``relative path → keyword arguments``.
PROVIDER_OPTIONS: dict[str, dict[str, Any]] = {
    # DeepSeek-R1 behind Hugging Face's router (Together), reasoning as <think> in content
    "openai_chat/pydantic_ai_hf_together_deepseek_r1_think_tags_in_content.sse": {
        "think_tags": True
    },
}


#: The recordings whose usage reports reasoning or cached tokens, and the numbers it says:
#: ``relative path → (reasoning tokens, cached tokens)``; every other recording says none.
USAGE_DETAILS: dict[str, tuple[int, int]] = {
    # Gemini counts thoughts apart from the candidates; the output is both
    "gemini/llm_gemini_function_call_json_array.json": (248, 0),
    "gemini/llm_gemini_text_json_array.json": (27, 0),
    "gemini/pydantic_ai_function_call_thought_signature.sse": (110, 0),
    "gemini/pydantic_ai_single_event_text.sse": (16, 0),
    "gemini/pydantic_ai_thought_parts_then_text.sse": (759, 0),
    # DeepSeek: prompt_tokens_details.cached_tokens and prompt_cache_hit_tokens, both 320
    "openai_chat/langchaingo_deepseek_text_then_tool_call.sse": (0, 320),
    # xAI: 25 reasoning tokens left out of completion_tokens (14), 128 cached
    "openai_chat/langchaingo_grok_reasoning_content_then_whole_tool_call.sse": (25, 128),
    "openai_chat/pydantic_ai_deepseek_reasoner_reasoning_content_then_text.sse": (198, 0),
    "openai_chat/pydantic_ai_groq_gpt_oss_reasoning_then_whole_tool_call.sse": (23, 0),
    "openai_chat/pydantic_ai_openrouter_claude_reasoning_then_text.sse": (13, 0),
    # MiniMax says 11 reasoning tokens of 10 completion tokens: no more than the output
    "openai_chat/pydantic_ai_openrouter_minimax_error_chunk_after_length.sse": (10, 0),
    "openai_responses/pydantic_ai_o3_mini_reasoning_summary_then_text.sse": (1408, 0),
    "openai_responses/pydantic_ai_openrouter_gpt_oss_raw_reasoning_text.sse": (22, 0),
}


def recorded_status(path: Path) -> int:
    """The HTTP status a recording is served with: the ``__<status>`` in its name, else 200."""
    match = ERROR_STATUS.search(path.stem)
    return int(match.group(1)) if match else 200


def expect_error_message(body: bytes) -> str | None:
    """The provider's own message in an error body: ``error.message`` (OpenAI, OpenRouter,
    Anthropic, Gemini) or ``error`` when it is a string (Ollama); ``None`` when the body is
    not JSON (a proxy's plain-text answer)."""
    try:
        document = json.loads(body)
    except ValueError:
        return None
    error = document["error"]
    return error if isinstance(error, str) else error["message"]


def served(path: Path) -> tuple[bytes, str]:
    """The body a recording is served as, and the suffix whose content type it has: the file
    itself, or for ``NAME.chunks.txt`` its lines each framed as one SSE ``data:`` event."""
    body = path.read_bytes()
    if path.name.endswith(".chunks.txt"):
        framed = b"".join(b"data: " + line + b"\n\n" for line in body.split(b"\n") if line)
        return framed, ".sse"
    return body, path.suffix


def recordings(*, errors: bool = False) -> list[Any]:
    """The recordings served with 200, or with ``errors`` those served with their error status."""
    params = []
    for path in sorted(RECORDINGS.glob("*/*")):
        if path.suffix not in CONTENT_TYPES or path.parent.name not in KINDS:
            continue
        if (recorded_status(path) != 200) is not errors:
            continue
        name = f"{path.parent.name}/{path.name}"
        marks = []
        if name in KNOWN_BUGS:
            marks.append(pytest.mark.xfail(strict=True, reason=KNOWN_BUGS[name]))
        params.append(pytest.param(path, *served(path), id=name, marks=marks))
    return params


async def stream_hi(provider: Any, add: Callable[[ModelEvent], object]) -> None:
    """Ask ``provider`` "hi", hand each event of the answer to ``add``, then close it."""
    request = ModelRequest(
        model="replay-model", messages=[ChatMessage(role=Role.USER, content="hi")]
    )
    try:
        async for event in provider.stream(request):
            add(event)
    finally:
        await provider.aclose()


# ----------------------------------------------------------------------------- tests


def test_there_are_recordings_of_every_kind() -> None:
    kinds = {path.parent.name for path in RECORDINGS.glob("*/*") if path.suffix in CONTENT_TYPES}
    assert kinds >= {"openai_chat", "anthropic", "gemini", "ollama", "openai_responses"}
    readme = (RECORDINGS / "README.md").read_text()
    for path in RECORDINGS.glob("*/*"):
        if path.suffix in CONTENT_TYPES:
            assert f"{path.parent.name}/{path.name}" in readme, f"{path} is not in the README"


@pytest.mark.parametrize(("path", "body", "suffix"), recordings())
async def test_replay_matches_the_recording(
    path: Path, body: bytes, suffix: str, canned: CannedUpstream
) -> None:
    make, expect = KINDS[path.parent.name]
    options = PROVIDER_OPTIONS.get(f"{path.parent.name}/{path.name}", {})
    expected = expect(body, suffix)
    if options.get("think_tags"):
        expected = split_think_tags(expected)
    canned.answer = http_answer(200, body, CONTENT_TYPES[suffix])
    provider = make(canned.base_url, **options)
    turn = AnswerAccumulator()
    if expected.error is not None:
        with pytest.raises(UpstreamError) as raised:
            await stream_hi(provider, turn.add)
        assert expected.error in raised.value.message
    else:
        await stream_hi(provider, turn.add)

    assert turn.text == expected.text
    assert turn.reasoning == expected.reasoning
    details = (turn.reasoning_tokens, turn.cached_tokens)
    assert details == (expected.reasoning_tokens, expected.cached_tokens)
    if expected.error is not None:
        # what the stream counted before it failed, the failing event's own count included
        assert (turn.input_tokens, turn.output_tokens) == (expected.usage or (0, 0))
        return
    calls = turn.finish_tool_calls()
    assert [(call.name, call.arguments) for call in calls] == expected.calls
    for call, call_id in zip(calls, expected.call_ids, strict=True):
        assert call.id == call_id or (call_id is None and call.id)
    assert turn.finish_reason == expected.finish
    if expected.usage is not None:
        assert (turn.input_tokens, turn.output_tokens) == expected.usage


@pytest.mark.parametrize(("path", "body", "suffix"), recordings())
def test_the_usage_details_read_from_each_recording(path: Path, body: bytes, suffix: str) -> None:
    # The parsers above read the numbers the table says (which the replay test holds the
    # adapters to), and none from a recording whose usage gives none.
    _make, expect = KINDS[path.parent.name]
    expected = expect(body, suffix)
    details = (expected.reasoning_tokens, expected.cached_tokens)
    assert details == USAGE_DETAILS.get(f"{path.parent.name}/{path.name}", (0, 0))


@pytest.mark.parametrize(("path", "body", "suffix"), recordings(errors=True))
async def test_recorded_error_answer_raises_the_providers_message(
    path: Path, body: bytes, suffix: str, canned: CannedUpstream
) -> None:
    make, _expect = KINDS[path.parent.name]
    status = recorded_status(path)
    message = expect_error_message(body)
    # as the adapter passes it on: on one line
    expected = " ".join(message.split()) if message is not None else None
    canned.answer = http_answer(status, body, CONTENT_TYPES[suffix])
    events: list[ModelEvent] = []
    with pytest.raises(UpstreamError) as raised:
        await stream_hi(make(canned.base_url), events.append)

    error = raised.value
    assert events == []
    if expected is None:  # not JSON: nothing of the body is passed on
        assert " ".join(body.decode("utf-8").split()[:3]) not in error.message
        expected = ""
    assert expected in error.message
    assert f"HTTP {status}" in error.message
    if b"API_KEY_INVALID" in body:  # Gemini: a bad key is a 400 with this reason
        status = 401
    elif b'"model_not_found"' in body:  # OpenAI's Responses API: an unknown model, a 400
        status = 404
    assert error.code == ERROR_CODES.get(status, "upstream_http_error")
    # the provider's message, not the body: nothing of the JSON around it
    rest = error.message.replace(expected, "")
    assert not any(mark in rest for mark in ("{", "}", '"error"', '"type"', '"code"'))
    assert len(canned.heads) == 1  # asked once: no retry


async def test_reasoning_tokens_left_out_of_completion_tokens_are_counted(
    canned: CannedUpstream,
) -> None:
    # The recorded xAI stream says prompt 335, completion 14, total 374: 25 reasoning
    # tokens appear only in the total.
    path = (
        RECORDINGS / "openai_chat" / "langchaingo_grok_reasoning_content_then_whole_tool_call.sse"
    )
    body = path.read_bytes()
    assert b'"prompt_tokens":335,"completion_tokens":14,"total_tokens":374' in body
    canned.answer = http_answer(200, body, CONTENT_TYPES[".sse"])
    turn = AnswerAccumulator()
    await stream_hi(make_openai_chat(canned.base_url), turn.add)
    assert (turn.input_tokens, turn.output_tokens) == (335, 39)
    # its completion_tokens_details counts those 25, its prompt_tokens_details 128 cached
    assert b'"cached_tokens":128},"completion_tokens_details":{"reasoning_tokens":25,' in body
    assert (turn.reasoning_tokens, turn.cached_tokens) == (25, 128)


async def test_usage_in_the_chunk_that_reports_an_error_is_counted(
    canned: CannedUpstream,
) -> None:
    # OpenRouter ends this recorded stream (HTTP 200) with one chunk holding both an error
    # and the usage of the call: the turn fails, and the tokens are counted all the same.
    name = "pydantic_ai_openrouter_minimax_error_chunk_after_length.sse"
    path = RECORDINGS / "openai_chat" / name
    body = path.read_bytes()
    assert b'"error":{"code":400,"message":"Token limit reached"}' in body
    assert b'"usage":{"prompt_tokens":43,"completion_tokens":10,"total_tokens":53' in body
    canned.answer = http_answer(200, body, CONTENT_TYPES[".sse"])
    turn = AnswerAccumulator()
    with pytest.raises(UpstreamError) as raised:
        await stream_hi(make_openai_chat(canned.base_url), turn.add)
    assert raised.value.code == "upstream_stream_error"
    assert "Token limit reached" in raised.value.message
    assert (turn.input_tokens, turn.output_tokens) == (43, 10)
    # It says 11 reasoning tokens: more than the output, which holds them; 10 are counted.
    assert b'"completion_tokens_details":{"reasoning_tokens":11,' in body
    assert turn.reasoning_tokens == 10


@pytest.mark.parametrize(
    "name", [name for name, options in PROVIDER_OPTIONS.items() if options.get("think_tags")]
)
async def test_think_tags_off_leaves_the_tags_in_the_text(
    name: str, canned: CannedUpstream
) -> None:
    # The same recording replayed with the default (think_tags off): the answer text is the
    # content as sent, tags and all, and there is no reasoning.
    path = RECORDINGS / name
    body = path.read_bytes()
    expected = expect_openai_chat(body, path.suffix)
    assert "<think>" in expected.text and "</think>" in expected.text
    canned.answer = http_answer(200, body, CONTENT_TYPES[path.suffix])
    turn = AnswerAccumulator()
    await stream_hi(make_openai_chat(canned.base_url), turn.add)
    assert turn.text == expected.text
    assert turn.reasoning == expected.reasoning == ""
    assert turn.finish_reason == expected.finish
