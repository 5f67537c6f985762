"""Adapter paths the fake upstream does not produce, driven by a canned loopback upstream."""

from __future__ import annotations

import asyncio
import gzip
from typing import Any

import orjson
import pytest

from parley.errors import UpstreamError
from parley.events import ReasoningPart
from parley.providers import http_response
from parley.providers.accumulator import AnswerAccumulator
from parley.providers.base import ChatMessage, ModelRequest
from parley.providers.embeddings import EmbedRequest
from parley.providers.openai_chat import OpenAIChatProvider
from parley.providers.sse import MAX_LINE
from parley.types import Role, ToolCall
from tests.providers.helpers import CannedUpstream, http_answer

REQUEST = ModelRequest(model="m", messages=[ChatMessage(role=Role.USER, content="hi")])
STOP = b'data: {"choices":[{"delta":{"content":"ok"},"finish_reason":"stop"}]}\n\n'


async def run_against(
    canned: CannedUpstream, answer: bytes, request: ModelRequest = REQUEST
) -> AnswerAccumulator:
    canned.answer = answer
    provider = OpenAIChatProvider(canned.base_url)
    try:
        acc = AnswerAccumulator()
        async for event in provider.stream(request):
            acc.add(event)
        return acc
    finally:
        await provider.aclose()


async def error_for(
    canned: CannedUpstream, answer: bytes, request: ModelRequest = REQUEST
) -> UpstreamError:
    with pytest.raises(UpstreamError) as info:
        await run_against(canned, answer, request)
    return info.value


# ----------------------------------------------------------------------- error answers


def where(canned: CannedUpstream) -> str:
    """Who failed, as the adapter's errors name it: the provider and the URL it called."""
    return f"The upstream provider at {canned.base_url}/chat/completions"


async def test_html_error_body_gives_status_only(canned: CannedUpstream) -> None:
    answer = http_answer(502, b"<html><body>Bad gateway</body></html>", "text/html")
    error = await error_for(canned, answer)
    assert error.message == f"{where(canned)} answered with an error (HTTP 502)."
    assert error.code == "upstream_http_error"


async def test_long_upstream_message_is_shortened(canned: CannedUpstream) -> None:
    body = {"error": {"message": "x" * 5000, "type": "invalid_request_error"}}
    error = await error_for(canned, http_answer(400, orjson.dumps(body), "application/json"))
    assert error.message.startswith(f"{where(canned)} refused the request (HTTP 400): xxx")
    assert len(error.message.partition("): ")[2]) == 300
    assert error.message.endswith("…")


async def test_plain_string_error_field(canned: CannedUpstream) -> None:
    body = orjson.dumps({"error": "bad key\nreally"})
    error = await error_for(canned, http_answer(401, body, "application/json"))
    assert error.code == "upstream_auth"
    assert error.message.endswith("(HTTP 401): bad key really")


async def test_error_body_cut_short_still_gives_the_status(canned: CannedUpstream) -> None:
    error = await error_for(canned, http_answer(429, b'{"error": {"mess', length=500))
    assert error.code == "upstream_rate_limited"
    assert error.message == f"{where(canned)} is rate limiting requests (HTTP 429)."


async def test_a_redirect_is_not_followed(canned: CannedUpstream) -> None:
    answer = http_answer(301, headers={"location": "https://elsewhere.test/v1/chat/completions"})
    error = await error_for(canned, answer)
    assert error.code == "upstream_http_error"
    assert "redirect (HTTP 301)" in error.message
    assert len(canned.heads) == 1


async def test_a_server_that_takes_no_content_parts_says_so(canned: CannedUpstream) -> None:
    """Many OpenAI-compatible servers only take string content: a message with an image gets
    their 400, and its message reaches the user."""
    answer = http_answer(
        400,
        orjson.dumps({"error": {"message": "messages[0].content: expected a string"}}),
        "application/json",
    )
    with_image = ModelRequest(
        model="m",
        messages=[ChatMessage(role=Role.USER, content="hi", images=["https://x.test/a.png"])],
    )
    error = await error_for(canned, answer, with_image)
    assert (error.code, error.status_code) == ("upstream_invalid_request", 400)
    assert error.message.endswith("(HTTP 400): messages[0].content: expected a string")


#: An API key, as some OpenAI-compatible servers echo it whole in their error messages.
KEY = "sk-live-0123456789abcdef"


async def failures_of(provider: OpenAIChatProvider) -> list[UpstreamError]:
    """The error of each call the adapter makes: a stream, embeddings, the model list."""
    failures = []
    with pytest.raises(UpstreamError) as streamed:
        async for _event in provider.stream(REQUEST):
            pass
    failures.append(streamed.value)
    with pytest.raises(UpstreamError) as embedded:
        await provider.embed(EmbedRequest(model="m", inputs=["hi"]))
    failures.append(embedded.value)
    with pytest.raises(UpstreamError) as listed:
        await provider.list_models()
    failures.append(listed.value)
    return failures


async def test_the_key_a_provider_echoes_is_masked(canned: CannedUpstream) -> None:
    """In an error answer and in an error sent in the stream, on every call."""
    said = f"Incorrect API key provided: {KEY}; sent as Authorization: Bearer {KEY}."
    masked = "Incorrect API key provided: ***; sent as Authorization: ***."
    provider = OpenAIChatProvider(canned.base_url, api_key=KEY)
    try:
        canned.answer = http_answer(
            401, orjson.dumps({"error": {"message": said}}), "application/json"
        )
        answered = await failures_of(provider)
        canned.answer = http_answer(200, sse({"error": {"message": said}}))
        with pytest.raises(UpstreamError) as streamed:
            async for _event in provider.stream(REQUEST):
                pass
    finally:
        await provider.aclose()
    assert [error.code for error in answered] == ["upstream_auth"] * 3
    for error in answered:
        assert error.message.endswith(f"(HTTP 401): {masked}"), error.message
    assert streamed.value.code == "upstream_stream_error"
    assert streamed.value.message.endswith(f"during the stream: {masked}")
    for error in (*answered, streamed.value):
        assert KEY not in str(error) and KEY not in error.message


async def test_a_base_url_with_credentials_beside_an_api_key_is_refused(
    canned: CannedUpstream,
) -> None:
    """aiohttp cannot send both: a failure of the provider's set-up, not an internal error;
    without a key the URL's credentials are sent (basic authentication)."""
    url = canned.base_url.replace("http://", "http://parley:hunter2hunter2@")
    provider = OpenAIChatProvider(url, api_key=KEY)
    try:
        failures = await failures_of(provider)
    finally:
        await provider.aclose()
    assert canned.heads == []  # nothing sent
    shown = canned.base_url
    for error, path in zip(failures, ("chat/completions", "embeddings", "models"), strict=True):
        assert (error.code, error.status_code, error.retryable) == ("upstream_auth", 502, False)
        assert error.message == (
            f"The base URL of the upstream provider at {shown}/{path} has a user name or "
            "password in it as well as an API key: give the provider only one of them."
        )
    canned.answer = http_answer(200, STOP)
    provider = OpenAIChatProvider(url)
    try:
        [event async for event in provider.stream(REQUEST)]
    finally:
        await provider.aclose()
    assert "\r\nauthorization: basic " in canned.heads[-1].lower()


# ------------------------------------------------------------------------- JSON answers


async def test_a_server_that_ignores_stream_answers_json(canned: CannedUpstream) -> None:
    completion = {
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "reasoning_content": "think",
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "a", "arguments": '{"x": 1}'},
                        },
                        {
                            "id": "c2",
                            "type": "function",
                            "function": {"name": "b", "arguments": {"y": 2}},
                        },
                    ],
                },
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {"prompt_tokens": 4, "completion_tokens": 9},
    }
    body = orjson.dumps(completion)
    acc = await run_against(canned, http_answer(200, body, "application/json; charset=utf-8"))
    assert acc.reasoning == "think"
    assert acc.finish_reason == "tool_calls"
    assert acc.finish_tool_calls() == [
        ToolCall(id="c1", name="a", arguments={"x": 1}),
        ToolCall(id="c2", name="b", arguments={"y": 2}),
    ]
    assert (acc.input_tokens, acc.output_tokens) == (4, 9)


async def test_json_answer_without_choices_is_malformed(canned: CannedUpstream) -> None:
    answer = http_answer(200, b'{"object": "chat.completion"}', "application/json")
    error = await error_for(canned, answer)
    assert error.code == "upstream_malformed"


# ---------------------------------------------------------------------------- streams


async def test_only_the_first_choice_is_used(canned: CannedUpstream) -> None:
    chunks = [
        {
            "choices": [
                {"index": 1, "delta": {"content": "other"}},
                {"index": 0, "delta": {"content": "mine"}},
            ]
        },
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
    ]
    body = b"".join(b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"
    acc = await run_against(canned, http_answer(200, body))
    assert acc.text == "mine"


def sse(*chunks: dict[str, Any]) -> bytes:
    """A stream of ``chunks``, ended by ``[DONE]``."""
    return b"".join(b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"


ROLE = {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}
USAGE = {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 0}}


async def test_a_stream_with_nothing_in_it_is_an_upstream_failure(canned: CannedUpstream) -> None:
    """A role chunk, a usage chunk and [DONE]: no text, no tool call, no finish reason. With
    a finish of ``stop`` the same stream is an empty answer."""
    error = await error_for(canned, http_answer(200, sse(ROLE, USAGE)))
    assert (error.code, error.status_code) == ("upstream_empty", 502)
    assert error.message == (
        f"{where(canned)} ended its answer without any text, tool call or finish reason."
    )
    finish = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    acc = await run_against(canned, http_answer(200, sse(ROLE, finish, USAGE)))
    assert (acc.text, acc.finish_reason, acc.input_tokens) == ("", "stop", 3)


def details(*items: dict[str, Any]) -> dict[str, Any]:
    """An OpenRouter chunk whose reasoning comes only as ``reasoning_details``."""
    return {"choices": [{"index": 0, "delta": {"reasoning_details": list(items)}}]}


async def test_reasoning_sent_only_as_reasoning_details(canned: CannedUpstream) -> None:
    canned.answer = http_answer(
        200,
        sse(
            ROLE,
            details(
                {"type": "reasoning.text", "text": "First I", "signature": None, "format": "x"}
            ),
            details(
                {
                    "type": "reasoning.text",
                    "text": " think.",
                    "signature": "EqQBCkgIsigned",
                    "format": "anthropic-claude-v1",
                }
            ),
            details({"type": "reasoning.encrypted", "data": "gAAAAopaque", "format": "x"}),
            details({"type": "reasoning.summary", "summary": "Thought it over.", "format": "x"}),
            {"choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": "stop"}]},
        ),
    )
    provider = OpenAIChatProvider(canned.base_url)
    try:
        events = [event async for event in provider.stream(REQUEST)]
    finally:
        await provider.aclose()
    assert [e for e in events if isinstance(e, ReasoningPart)] == [
        ReasoningPart("First I"),
        ReasoningPart(" think."),
        ReasoningPart("Thought it over.", summary=True),
    ]
    shown = repr(events)
    assert "opaque" not in shown and "signed" not in shown  # kept opaque: never shown

    # beside the reasoning as a string (as OpenRouter sends both), they are not read twice
    both = details({"type": "reasoning.text", "text": "hmm", "format": "x"})
    both["choices"][0]["delta"]["reasoning"] = "hmm"
    finish = {"choices": [{"index": 0, "delta": {"content": "ok"}, "finish_reason": "stop"}]}
    acc = await run_against(canned, http_answer(200, sse(both, finish)))
    assert (acc.reasoning, acc.text) == ("hmm", "ok")


async def test_reasoning_details_of_another_shape_carry_nothing(canned: CannedUpstream) -> None:
    """Not a list, items that are not objects, with no type, an unhashable type or no
    text: nothing is read of them, and the answer goes on."""
    items = [
        "reasoning.text",
        {"text": "no type"},
        {"type": ["reasoning.text"], "text": "a list for a type"},
        {"type": {"reasoning": "text"}, "text": "an object for a type"},
        {"type": "reasoning.text", "text": ["not", "a", "string"]},
        {"type": "reasoning.summary", "text": "a summary's text is its summary"},
    ]
    shapes = ("reasoning.text", {"type": "reasoning.text", "text": "a dict"}, 7, items)
    odd = [{"choices": [{"index": 0, "delta": {"reasoning_details": s}}]} for s in shapes]
    finish = {"choices": [{"index": 0, "delta": {"content": "ok"}, "finish_reason": "stop"}]}
    acc = await run_against(canned, http_answer(200, sse(ROLE, *odd, finish)))
    assert (acc.reasoning, acc.text, acc.finish_reason) == ("", "ok", "stop")


async def test_empty_stream_is_truncated(canned: CannedUpstream) -> None:
    error = await error_for(canned, http_answer(200, b""))
    assert error.code == "upstream_truncated"


async def test_a_compressed_stream(canned: CannedUpstream) -> None:
    """The stream is asked for uncompressed, but a server that compresses anyway is decoded."""
    body = gzip.compress(STOP + b"data: [DONE]\n\n")
    acc = await run_against(canned, http_answer(200, body, headers={"content-encoding": "gzip"}))
    assert (acc.text, acc.finish_reason) == ("ok", "stop")
    assert "accept-encoding: identity" in canned.heads[-1].lower()


async def test_a_body_that_does_not_decompress(canned: CannedUpstream) -> None:
    answer = http_answer(200, b"not gzip at all", headers={"content-encoding": "gzip"})
    error = await error_for(canned, answer)
    assert error.code == "upstream_malformed"


async def test_a_line_without_end(canned: CannedUpstream) -> None:
    error = await error_for(canned, http_answer(200, b"data: " + b"x" * (MAX_LINE + 10)))
    assert error.code == "upstream_malformed"


async def test_what_follows_done_is_ignored(canned: CannedUpstream) -> None:
    body = STOP + b"data: [DONE]\n\n" + b'data: {"choices": "never read"}\n\n'
    acc = await run_against(canned, http_answer(200, body))
    assert acc.text == "ok"


async def test_a_body_that_does_not_end_after_done(
    canned: CannedUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The answer is complete at [DONE]; the adapter does not wait long for the rest."""
    monkeypatch.setattr(http_response, "DRAIN_TIMEOUT", 0.2)
    canned.hold = True
    body = STOP + b"data: [DONE]\n\n"
    loop = asyncio.get_running_loop()
    start = loop.time()
    acc = await run_against(canned, http_answer(200, body, length=len(body) + 100))
    assert acc.text == "ok"
    assert loop.time() - start < 5


# ------------------------------------------------------------------- broken connections


async def test_not_http_at_all(canned: CannedUpstream) -> None:
    error = await error_for(canned, b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
    assert error.code == "upstream_malformed"


async def test_closed_without_answering(canned: CannedUpstream) -> None:
    error = await error_for(canned, b"")
    assert error.code == "upstream_unreachable"
    assert error.message == f"{where(canned)} closed the connection without answering."


async def test_closed_mid_body(canned: CannedUpstream) -> None:
    error = await error_for(canned, http_answer(200, STOP[:20], length=len(STOP)))
    assert error.code == "upstream_truncated"
