"""The OpenAI Responses adapter against a scripted fake of the API, over real loopback sockets.

The streams served here are constructed examples written in the documented wire format
(``parley.testing.fake_responses``); they are not recordings of the API.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from parley.errors import UpstreamError
from parley.events import FinishPart, ModelEvent, ReasoningPart, TextPart, ToolCallPart, UsagePart
from parley.providers.accumulator import TurnAccumulator
from parley.providers.base import ChatMessage, ModelRequest
from parley.providers.openai_responses import OpenAIResponsesProvider
from parley.testing.fake_responses import (
    Answer,
    FakeResponses,
    error_body,
    error_event,
    function_call,
    message,
    reasoning,
    response_events,
)
from parley.types import FunctionSpec, Role, ToolCall, ToolSpec

pytestmark = pytest.mark.usefixtures("transport")

WEATHER = ToolSpec(
    function=FunctionSpec(
        name="get_weather",
        description="Weather for a city",
        parameters={"type": "object", "properties": {"city": {"type": "string"}}},
    )
)
TIME = ToolSpec(function=FunctionSpec(name="get_time"))


@pytest.fixture
async def fake() -> AsyncIterator[FakeResponses]:
    async with FakeResponses() as server:
        yield server


@pytest.fixture
async def provider(fake: FakeResponses) -> AsyncIterator[OpenAIResponsesProvider]:
    adapter = OpenAIResponsesProvider(fake.base_url, api_key="sk-test", read_timeout=10)
    yield adapter
    await adapter.aclose()


def request(text: str = "Hello", **kwargs: Any) -> ModelRequest:
    messages = [ChatMessage(role=Role.USER, content=text)]
    return ModelRequest(model="gpt-test", messages=messages, **kwargs)


async def collect(
    provider: OpenAIResponsesProvider, req: ModelRequest | None = None
) -> tuple[list[ModelEvent], TurnAccumulator]:
    events = [event async for event in provider.stream(req or request())]
    acc = TurnAccumulator()
    for event in events:
        acc.add(event)
    return events, acc


async def failure(provider: OpenAIResponsesProvider) -> UpstreamError:
    with pytest.raises(UpstreamError) as info:
        await collect(provider)
    return info.value


async def partial_then_failure(provider: OpenAIResponsesProvider) -> tuple[str, UpstreamError]:
    acc = TurnAccumulator()
    with pytest.raises(UpstreamError) as info:
        async for event in provider.stream(request()):
            acc.add(event)
    return acc.text, info.value


async def wait_until(condition: Any, within: float = 5.0) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition():
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


# ----------------------------------------------------------------------------- streams


async def test_text(provider: OpenAIResponsesProvider, fake: FakeResponses) -> None:
    fake.answer(Answer(response_events([message("Hello", ", ", "world.")])))
    events, acc = await collect(provider)
    assert [e.text for e in events if isinstance(e, TextPart)] == ["Hello", ", ", "world."]
    assert (acc.text, acc.finish_reason, acc.has_tool_calls) == ("Hello, world.", "stop", False)


async def test_reasoning_summary_then_text(
    provider: OpenAIResponsesProvider, fake: FakeResponses
) -> None:
    items = [reasoning(["Let me ", "think."], ["Then check."]), message("Four.")]
    fake.answer(Answer(response_events(items)))
    events, acc = await collect(provider)
    kinds = [type(e) for e in events if isinstance(e, TextPart | ReasoningPart)]
    assert kinds == [ReasoningPart] * 4 + [TextPart]
    assert acc.reasoning == "Let me think.\n\nThen check."  # summary parts are paragraphs
    assert acc.text == "Four."


async def test_reasoning_text_deltas(
    provider: OpenAIResponsesProvider, fake: FakeResponses
) -> None:
    at = {"item_id": "rs_1", "output_index": 0, "content_index": 0}
    events = response_events([message("ok")])
    events[2:2] = [
        ("response.reasoning_text.delta", {"type": "response.reasoning_text.delta", **at, "delta": d})
        for d in ("raw ", "thoughts")
    ]  # fmt: skip
    fake.answer(Answer(events))
    _, acc = await collect(provider)
    assert (acc.reasoning, acc.text) == ("raw thoughts", "ok")


async def test_function_call_with_argument_fragments(
    provider: OpenAIResponsesProvider, fake: FakeResponses
) -> None:
    items = [message("Checking."), function_call("call_1", "get_weather", '{"ci', 'ty": "Os', 'lo"}')]  # fmt: skip
    fake.answer(Answer(response_events(items)))
    events, acc = await collect(provider, request(tools=[WEATHER]))
    parts = [e for e in events if isinstance(e, ToolCallPart)]
    assert parts[0] == ToolCallPart(index=1, id="call_1", name="get_weather")
    assert [p.arguments for p in parts[1:]] == ['{"ci', 'ty": "Os', 'lo"}']
    assert all(p.index == 1 for p in parts)
    assert acc.finish_reason == "tool_calls"
    assert acc.finish_tool_calls() == [
        ToolCall(id="call_1", name="get_weather", arguments={"city": "Oslo"})
    ]


async def test_two_parallel_function_calls_stay_apart(
    provider: OpenAIResponsesProvider, fake: FakeResponses
) -> None:
    calls = [
        function_call("call_a", "get_weather", '{"city":', ' "Rome"}'),
        function_call("call_b", "get_weather", '{"ci', 'ty": "Lima"}'),
    ]
    events = response_events(calls)
    # Both calls open, then their argument deltas interleave (renumbered in this order).
    order = [0, 1, 2, 7, 3, 8, 4, 9, 5, 6, 10, 11, 12]
    events = [(events[i][0], {**events[i][1], "sequence_number": n}) for n, i in enumerate(order)]
    fake.answer(Answer(events))
    _, acc = await collect(provider, request(tools=[WEATHER]))
    assert [(c.id, c.name, c.arguments) for c in acc.finish_tool_calls()] == [
        ("call_a", "get_weather", {"city": "Rome"}),
        ("call_b", "get_weather", {"city": "Lima"}),
    ]
    assert acc.finish_reason == "tool_calls"


async def test_function_call_without_argument_deltas(
    provider: OpenAIResponsesProvider, fake: FakeResponses
) -> None:
    events = response_events([function_call("call_t", "get_time", "{}")])
    events = [e for e in events if e[0] != "response.function_call_arguments.delta"]
    fake.answer(Answer(events))
    _, acc = await collect(provider, request(tools=[TIME]))
    assert acc.finish_tool_calls() == [ToolCall(id="call_t", name="get_time", arguments={})]


async def test_usage(provider: OpenAIResponsesProvider, fake: FakeResponses) -> None:
    fake.answer(Answer(response_events([message("ok")], input_tokens=25, output_tokens=9)))
    events, acc = await collect(provider)
    assert [e for e in events if isinstance(e, UsagePart | FinishPart)] == [
        FinishPart("stop"),
        UsagePart(25, 9),
    ]
    assert (acc.input_tokens, acc.output_tokens) == (25, 9)


@pytest.mark.parametrize(
    ("reason", "finish"), [("max_output_tokens", "length"), ("content_filter", "content_filter")]
)
async def test_incomplete(
    provider: OpenAIResponsesProvider, fake: FakeResponses, reason: str, finish: str
) -> None:
    items = [message("Cut sh")]
    fake.answer(Answer(response_events(items, status="incomplete", incomplete_reason=reason)))
    _, acc = await collect(provider)
    assert (acc.text, acc.finish_reason, acc.output_tokens) == ("Cut sh", finish, 7)


async def test_unknown_events_are_skipped(
    provider: OpenAIResponsesProvider, fake: FakeResponses
) -> None:
    events = response_events([message("a")])
    events.insert(2, ("response.brand_new", {"type": "response.brand_new", "x": 1}))
    events.insert(3, ("response.output_item.added", {"type": "response.output_item.added", "output_index": 5,
                                                     "item": {"type": "web_search_call", "id": "ws_1"}}))  # fmt: skip
    fake.answer(Answer(events))
    _, acc = await collect(provider)
    assert (acc.text, acc.reasoning, acc.has_tool_calls) == ("a", "", False)


async def test_connection_is_reused(provider: OpenAIResponsesProvider, fake: FakeResponses) -> None:
    fake.answer(
        Answer(response_events([message("one")])),
        Answer(status=429, body=error_body("Rate limit reached.", "requests", "rate_limit_exceeded")),
        Answer(response_events([message("two")])),
    )  # fmt: skip
    assert (await collect(provider))[1].text == "one"
    assert (await failure(provider)).code == "upstream_rate_limited"
    assert (await collect(provider))[1].text == "two"
    assert fake.connections == 1  # one keep-alive connection served all three


# ------------------------------------------------------------------------------ errors


async def test_error_event_after_some_text(
    provider: OpenAIResponsesProvider, fake: FakeResponses
) -> None:
    events = response_events([message("Partial ", "answer")], end=False)[:6]
    fake.answer(Answer([*events, error_event("The server had an error.")]))
    text, error = await partial_then_failure(provider)
    assert text == "Partial answer"
    assert error.code == "upstream_stream_error"
    assert "The server had an error." in error.message


async def test_response_failed_after_some_text(
    provider: OpenAIResponsesProvider, fake: FakeResponses
) -> None:
    failed = {"code": "server_error", "message": "Something   went\nwrong."}
    fake.answer(Answer(response_events([message("Some ", "text")], status="failed", error=failed)))
    text, error = await partial_then_failure(provider)
    assert text == "Some text"
    assert error.code == "upstream_stream_error"
    assert error.message.endswith(": Something went wrong.")  # one line


@pytest.mark.parametrize(
    ("status", "code"),
    [(401, "upstream_auth"), (403, "upstream_auth"), (429, "upstream_rate_limited"), (500, "upstream_http_error")],
)  # fmt: skip
async def test_http_errors(
    provider: OpenAIResponsesProvider, fake: FakeResponses, status: int, code: str
) -> None:
    fake.answer(Answer(status=status, body=error_body(f"the {status} message")))
    error = await failure(provider)
    assert type(error) is UpstreamError
    assert error.code == code
    assert f"HTTP {status}" in error.message
    assert error.message.endswith(f": the {status} message")


async def test_rejected_key(fake: FakeResponses) -> None:
    fake.api_key = "sk-right"
    provider = OpenAIResponsesProvider(fake.base_url, api_key="sk-wrong")
    try:
        error = await failure(provider)
    finally:
        await provider.aclose()
    assert error.code == "upstream_auth"
    assert "Incorrect API key provided." in error.message


async def test_stream_without_an_end_is_truncated(
    provider: OpenAIResponsesProvider, fake: FakeResponses
) -> None:
    fake.answer(Answer(response_events([message("half")], end=False)))
    assert (await failure(provider)).code == "upstream_truncated"


async def test_connection_cut_mid_body(
    provider: OpenAIResponsesProvider, fake: FakeResponses
) -> None:
    fake.answer(Answer(response_events([message("half")])[:5], after="cut"))
    assert (await failure(provider)).code == "upstream_truncated"


@pytest.mark.parametrize(
    "event",
    [
        ("response.output_text.delta", {"type": "response.output_text.delta", "output_index": 0, "delta": 5}),
        ("response.function_call_arguments.delta", {"type": "response.function_call_arguments.delta", "delta": "{"}),
        ("response.output_item.added", {"type": "response.output_item.added", "output_index": 0, "item": {"type": "function_call"}}),
        ("response.completed", {"type": "response.completed", "response": {"usage": {"input_tokens": "many"}}}),
        ("response.completed", {"type": "response.completed"}),
        ("message", [1, 2]),
    ],
)  # fmt: skip
async def test_events_of_the_wrong_shape(
    provider: OpenAIResponsesProvider, fake: FakeResponses, event: tuple[str, Any]
) -> None:
    end = ("response.completed", {"type": "response.completed", "response": {"output": []}})
    fake.answer(Answer([event, end]))
    assert (await failure(provider)).code == "upstream_malformed"


# ----------------------------------------------------------------------------- request


async def test_request_body_and_headers(
    provider: OpenAIResponsesProvider, fake: FakeResponses
) -> None:
    messages = [
        ChatMessage(role=Role.USER, content="Weather in Oslo, and the time?"),
        ChatMessage(
            role=Role.ASSISTANT,
            content="Looking.",
            reasoning="not sent back",
            tool_calls=[
                ToolCall(id="call_1", name="get_weather", arguments={"city": "Oslo"}),
                ToolCall(id="call_2", name="get_time", arguments={}),
            ],
        ),
        ChatMessage(role=Role.TOOL, content="sunny", tool_call_id="call_1"),
        ChatMessage(role=Role.TOOL, content="noon", tool_call_id="call_2"),
        ChatMessage(role=Role.ASSISTANT, content="Sunny, at noon."),
        ChatMessage(role=Role.USER, content="thanks"),
    ]
    params = {"temperature": 0.2, "top_p": 0.9, "reasoning": {"effort": "low", "summary": "auto"}}
    req = ModelRequest(
        model="gpt-test",
        messages=messages,
        instructions="Be brief.",
        tools=[WEATHER, TIME],
        parameters={**params, "max_tokens": 300, "stream": False},
    )
    await collect(provider, req)
    sent = fake.requests[-1]
    assert (sent.method, sent.target) == ("POST", "/v1/responses")
    assert sent.headers["authorization"] == "Bearer sk-test"
    assert sent.headers["content-type"] == "application/json"
    assert sent.headers["accept"] == "text/event-stream"
    body = sent.body
    assert {k: body[k] for k in params} == params
    assert (body["model"], body["stream"], body["store"]) == ("gpt-test", True, False)
    assert body["max_output_tokens"] == 300
    assert "max_tokens" not in body
    assert body["instructions"] == "Be brief."
    assert body["tools"] == [
        {
            "type": "function",
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            "strict": False,
        },
        {"type": "function", "name": "get_time", "description": "",
         "parameters": {"type": "object", "properties": {}}, "strict": False},
    ]  # fmt: skip
    assert body["input"] == [
        {"role": "user", "content": "Weather in Oslo, and the time?"},
        {"role": "assistant", "content": "Looking."},
        {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": '{"city":"Oslo"}'},
        {"type": "function_call", "call_id": "call_2", "name": "get_time", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
        {"type": "function_call_output", "call_id": "call_2", "output": "noon"},
        {"role": "assistant", "content": "Sunny, at noon."},
        {"role": "user", "content": "thanks"},
    ]  # fmt: skip


async def test_request_defaults_and_extra_headers(fake: FakeResponses) -> None:
    provider = OpenAIResponsesProvider(
        fake.base_url + "/", headers={"OpenAI-Organization": "org-1"}
    )
    try:
        await collect(provider, request(parameters={"store": True}))
    finally:
        await provider.aclose()
    sent = fake.requests[-1]
    assert sent.target == "/v1/responses"
    assert sent.headers["openai-organization"] == "org-1"
    assert "authorization" not in sent.headers
    assert sent.body["store"] is True  # a parameter may opt in to storing
    assert "instructions" not in sent.body
    assert "tools" not in sent.body
    assert sent.body["input"] == [{"role": "user", "content": "Hello"}]


async def test_tool_round_trip(provider: OpenAIResponsesProvider, fake: FakeResponses) -> None:
    """The calls of one answer, sent back with their results, as the next call's input."""
    fake.answer(
        Answer(response_events([function_call("call_9", "get_weather", '{"city": "Oslo"}')])),
        Answer(response_events([message("Sunny in Oslo.")])),
    )
    messages = [ChatMessage(role=Role.USER, content="Weather in Oslo?")]
    _, first = await collect(provider, ModelRequest("gpt-test", messages, tools=[WEATHER]))
    calls = first.finish_tool_calls()
    messages.append(ChatMessage(role=Role.ASSISTANT, content=first.text, tool_calls=calls))
    messages.append(ChatMessage(role=Role.TOOL, content="sunny", tool_call_id=calls[0].id))
    _, second = await collect(provider, ModelRequest("gpt-test", messages, tools=[WEATHER]))
    assert second.text == "Sunny in Oslo."
    assert fake.requests[-1].body["input"][1:] == [
        {"type": "function_call", "call_id": "call_9", "name": "get_weather", "arguments": '{"city":"Oslo"}'},
        {"type": "function_call_output", "call_id": "call_9", "output": "sunny"},
    ]  # fmt: skip


# ------------------------------------------------------------------------ cancellation


async def test_aclose_mid_stream_closes_the_connection(
    provider: OpenAIResponsesProvider, fake: FakeResponses
) -> None:
    events = response_events([message("one ", "two ", "three")], end=False)[:6]
    fake.answer(Answer(events, after="hold"), Answer(response_events([message("again")])))
    stream = provider.stream(request())
    got = [await anext(stream) for _ in range(2)]
    assert got == [TextPart("one "), TextPart("two ")]
    assert fake.active == 1
    await stream.aclose()
    assert await wait_until(lambda: fake.active == 0, within=1.0)
    assert (await collect(provider))[1].text == "again"  # still works afterwards


# ------------------------------------------------------------------------------ models


async def test_list_models(fake: FakeResponses) -> None:
    fake.models = ["gpt-b", "gpt-a"]
    provider = OpenAIResponsesProvider(fake.base_url, api_key="sk-test")
    try:
        assert await provider.list_models() == ["gpt-a", "gpt-b"]
    finally:
        await provider.aclose()
    sent = fake.requests[-1]
    assert (sent.method, sent.target) == ("GET", "/v1/models")
    assert sent.headers["authorization"] == "Bearer sk-test"


async def test_list_models_rejected_key(fake: FakeResponses) -> None:
    fake.api_key = "sk-right"
    provider = OpenAIResponsesProvider(fake.base_url, api_key="sk-wrong")
    try:
        with pytest.raises(UpstreamError) as info:
            await provider.list_models()
    finally:
        await provider.aclose()
    assert info.value.code == "upstream_auth"
    assert "HTTP 401" in info.value.message


async def test_whole_response_when_the_server_ignores_stream(
    provider: OpenAIResponsesProvider, fake: FakeResponses
) -> None:
    final = response_events([reasoning(["hmm"]), message("Calling."), function_call("call_j", "get_weather", '{"city": "Bern"}')])  # fmt: skip
    fake.answer(Answer(body=final[-1][1]["response"]))
    _, acc = await collect(provider)
    assert (acc.reasoning, acc.text, acc.finish_reason) == ("hmm", "Calling.", "tool_calls")
    assert acc.finish_tool_calls() == [
        ToolCall(id="call_j", name="get_weather", arguments={"city": "Bern"})
    ]
    assert (acc.input_tokens, acc.output_tokens) == (12, 7)
