"""The Anthropic Messages adapter against a scripted fake of the API, over real loopback sockets.

The streams served here are constructed examples written in the documented wire format
(``parley.testing.fake_anthropic``); they are not recordings of the API.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

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
from parley.providers.accumulator import AnswerAccumulator
from parley.providers.anthropic import FORMAT_TOOL, AnthropicProvider
from parley.providers.base import ChatMessage, ModelOptions, ModelRequest
from parley.testing.fake_anthropic import (
    Answer,
    Block,
    FakeAnthropic,
    error_body,
    message_events,
    redacted_thinking,
    text,
    thinking,
    tool_use,
)
from parley.types import FunctionSpec, Role, ToolCall, ToolSpec
from tests.providers.helpers import collect, failure, stored_answer, wait_until

WEATHER = ToolSpec(
    function=FunctionSpec(
        name="get_weather",
        description="Weather for a city",
        parameters={"type": "object", "properties": {"city": {"type": "string"}}},
    )
)
TIME = ToolSpec(function=FunctionSpec(name="get_time"))
#: A signature with the characters base64 adds (``+``, ``/``, ``=``): sent back byte for byte.
SIGNATURE = "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGg+xBdjrkzLoky3dl1pk/iMOYds4fQ=="
#: A JSON answer asked for (sent as a forced ``FORMAT_TOOL``).
JSON_MODE = ModelOptions(response_format={"type": "json_object"})
#: A 1x1 PNG.
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="


@pytest.fixture
async def fake() -> AsyncIterator[FakeAnthropic]:
    async with FakeAnthropic() as server:
        yield server


@pytest.fixture
async def provider(fake: FakeAnthropic) -> AsyncIterator[AnthropicProvider]:
    adapter = AnthropicProvider(fake.base_url, api_key="sk-ant-test", read_timeout=10)
    yield adapter
    await adapter.aclose()


def request(text: str = "Hello", **kwargs: Any) -> ModelRequest:
    messages = [ChatMessage(role=Role.USER, content=text)]
    return ModelRequest(model="claude-test", messages=messages, **kwargs)


# ----------------------------------------------------------------------------- streams


async def test_text(provider: AnthropicProvider, fake: FakeAnthropic) -> None:
    fake.answer(Answer(message_events([text("Hello", ", ", "world.")])))
    events, acc = await collect(provider, request())
    assert [e.text for e in events if isinstance(e, TextPart)] == ["Hello", ", ", "world."]
    assert (acc.text, acc.finish_reason, acc.has_tool_calls) == ("Hello, world.", "stop", False)


async def test_thinking_then_text(provider: AnthropicProvider, fake: FakeAnthropic) -> None:
    fake.answer(Answer(message_events([thinking("Let me ", "think."), text("Four.")])))
    events, acc = await collect(provider, request())
    kinds = [type(e) for e in events if isinstance(e, TextPart | ReasoningPart)]
    assert kinds == [ReasoningPart, ReasoningPart, TextPart]
    assert (acc.reasoning, acc.text) == ("Let me think.", "Four.")


async def test_tool_use_with_input_fragments(
    provider: AnthropicProvider, fake: FakeAnthropic
) -> None:
    blocks = [text("Checking."), tool_use("toolu_01", "get_weather", '{"ci', 'ty": "Os', 'lo"}')]
    fake.answer(Answer(message_events(blocks, stop_reason="tool_use")))
    events, acc = await collect(provider, request(tools=[WEATHER]))
    parts = [e for e in events if isinstance(e, ToolCallPart)]
    assert parts[0] == ToolCallPart(index=1, id="toolu_01", name="get_weather")
    assert [p.arguments for p in parts[1:]] == ['{"ci', 'ty": "Os', 'lo"}']  # "" is skipped
    assert all(p.index == 1 for p in parts)
    assert acc.finish_reason == "tool_calls"
    assert acc.finish_tool_calls() == [
        ToolCall(id="toolu_01", name="get_weather", arguments={"city": "Oslo"})
    ]


async def test_two_parallel_tool_uses_stay_apart(
    provider: AnthropicProvider, fake: FakeAnthropic
) -> None:
    blocks = [
        tool_use("toolu_a", "get_weather", '{"city":', ' "Rome"}'),
        tool_use("toolu_b", "get_time"),  # no input at all
        tool_use("toolu_c", "get_weather", '{"city": "Lima"}'),
    ]
    fake.answer(Answer(message_events(blocks, stop_reason="tool_use")))
    _, acc = await collect(provider, request(tools=[WEATHER, TIME]))
    assert [(c.id, c.name, c.arguments) for c in acc.finish_tool_calls()] == [
        ("toolu_a", "get_weather", {"city": "Rome"}),
        ("toolu_b", "get_time", {}),
        ("toolu_c", "get_weather", {"city": "Lima"}),
    ]


async def test_usage_totals(provider: AnthropicProvider, fake: FakeAnthropic) -> None:
    events = message_events(
        [text("ok")], input_tokens=25, output_tokens=9, cache_read_input_tokens=1000
    )
    events[0][1]["message"]["usage"]["cache_creation_input_tokens"] = 100
    fake.answer(Answer(events))
    got, acc = await collect(provider, request())
    usage = [e for e in got if isinstance(e, UsagePart)]
    # running totals; the input is all the call read, the cache reads among it
    assert usage == [UsagePart(1125, 1, cached_tokens=1000), UsagePart(1125, 9, cached_tokens=1000)]
    assert (acc.input_tokens, acc.output_tokens, acc.cached_tokens) == (1125, 9, 1000)
    assert acc.reasoning_tokens == 0  # the API said nothing of its thinking


async def test_thinking_tokens_among_the_output(
    provider: AnthropicProvider, fake: FakeAnthropic
) -> None:
    # Models with adaptive thinking say, in message_delta, how many of the output tokens
    # were thinking.
    events = message_events(
        [thinking("Let me see.", signature="c2ln"), text("ok")],
        input_tokens=25,
        output_tokens=90,
        thinking_tokens=70,
    )
    assert events[-2][1]["usage"]["output_tokens_details"] == {"thinking_tokens": 70}
    fake.answer(Answer(events))
    got, acc = await collect(provider, request())
    assert [e for e in got if isinstance(e, UsagePart)][-1] == UsagePart(25, 90, 70, 0)
    assert (acc.output_tokens, acc.reasoning_tokens) == (90, 70)


async def test_cache_reads_sent_again_in_message_delta_are_not_added_twice(
    provider: AnthropicProvider, fake: FakeAnthropic
) -> None:
    # Newer answers repeat the input and cache counts in message_delta: the same totals.
    events = message_events(
        [text("ok")], input_tokens=5, output_tokens=9, cache_read_input_tokens=40
    )
    events[-2][1]["usage"].update(input_tokens=5, cache_read_input_tokens=40)
    fake.answer(Answer(events))
    _, acc = await collect(provider, request())
    assert (acc.input_tokens, acc.output_tokens, acc.cached_tokens) == (45, 9, 40)


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("tool_use", "tool_calls"),
        ("max_tokens", "length"),
        ("refusal", "refusal"),  # unknown to Parley: passed on as is
    ],
)
async def test_stop_reasons(
    provider: AnthropicProvider, fake: FakeAnthropic, stop_reason: str, finish: str
) -> None:
    fake.answer(Answer(message_events([text("x")], stop_reason=stop_reason)))
    events, _ = await collect(provider, request())
    assert [e for e in events if isinstance(e, FinishPart)] == [FinishPart(finish)]


async def test_unknown_events_and_blocks_are_skipped(
    provider: AnthropicProvider, fake: FakeAnthropic
) -> None:
    events = message_events([text("a")])
    events.insert(2, ("brand_new_event", {"type": "brand_new_event", "x": 1}))
    events.insert(3, ("content_block_start", {"type": "content_block_start", "index": 9,
                                              "content_block": {"type": "brand_new_block", "x": "y"}}))  # fmt: skip
    events.insert(4, ("content_block_delta", {"type": "content_block_delta", "index": 9,
                                              "delta": {"type": "brand_new_delta", "x": "y"}}))  # fmt: skip
    fake.answer(Answer(events))
    _, acc = await collect(provider, request())
    assert (acc.text, acc.reasoning, acc.state) == ("a", "", None)


async def test_connection_is_reused(provider: AnthropicProvider, fake: FakeAnthropic) -> None:
    fake.answer(
        Answer(message_events([text("one")])),
        Answer(status=429, body=error_body("rate_limit_error", "slow down")),
        Answer(message_events([text("two")])),
    )
    assert (await collect(provider, request()))[1].text == "one"
    assert (await failure(provider, request())).code == "upstream_rate_limited"
    assert (await collect(provider, request()))[1].text == "two"
    assert fake.connections == 1  # one keep-alive connection served all three


# ------------------------------------------------------------------------------ errors


async def test_error_event_mid_stream(provider: AnthropicProvider, fake: FakeAnthropic) -> None:
    events = message_events([text("Partial ", "answer")], end=False)[:-2]  # no block stop
    events.append(("error", error_body("overloaded_error", "Overloaded")))
    fake.answer(Answer(events))
    acc = AnswerAccumulator()
    with pytest.raises(UpstreamError) as info:
        async for event in provider.stream(request()):
            acc.add(event)
    assert acc.text == "Partial answer"
    assert info.value.code == "upstream_stream_error"
    assert "Overloaded" in info.value.message


@pytest.mark.parametrize(
    ("status", "kind", "code"),
    [
        (401, "authentication_error", "upstream_auth"),
        (403, "permission_error", "upstream_auth"),
        (429, "rate_limit_error", "upstream_rate_limited"),
        (529, "overloaded_error", "upstream_http_error"),
    ],
)
async def test_http_errors(
    provider: AnthropicProvider, fake: FakeAnthropic, status: int, kind: str, code: str
) -> None:
    fake.answer(Answer(status=status, body=error_body(kind, f"the {kind} message")))
    error = await failure(provider, request())
    assert type(error) is UpstreamError
    assert error.code == code
    assert f"HTTP {status}" in error.message
    assert f"the {kind} message ({kind})" in error.message


async def test_stream_without_message_stop_is_truncated(
    provider: AnthropicProvider, fake: FakeAnthropic
) -> None:
    fake.answer(Answer(message_events([text("half")], end=False)))
    assert (await failure(provider, request())).code == "upstream_truncated"


async def test_connection_cut_mid_body(provider: AnthropicProvider, fake: FakeAnthropic) -> None:
    fake.answer(Answer(message_events([text("half")])[:4], after="cut"))
    assert (await failure(provider, request())).code == "upstream_truncated"


@pytest.mark.parametrize(
    "event",
    [
        ("content_block_delta", {"type": "content_block_delta", "delta": {"type": "text_delta", "text": "x"}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": 5}}),
        ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use"}}),
        ("message_delta", {"type": "message_delta", "delta": {}, "usage": {"output_tokens": "many"}}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": 3}}),
        ("message_start", {"type": "message_start"}),
        ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "redacted_thinking"}}),
        ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": "", "signature": 7}}),
    ],
)  # fmt: skip
async def test_events_of_the_wrong_shape(
    provider: AnthropicProvider, fake: FakeAnthropic, event: tuple[str, Any]
) -> None:
    fake.answer(Answer([event, ("message_stop", {"type": "message_stop"})]))
    assert (await failure(provider, request())).code == "upstream_malformed"


# ----------------------------------------------------------------------------- request


async def test_request_body_and_headers(provider: AnthropicProvider, fake: FakeAnthropic) -> None:
    messages = [
        ChatMessage(role=Role.USER, content="Weather in Oslo, and the time?"),
        ChatMessage(role=Role.USER, content="Quickly."),
        ChatMessage(
            role=Role.ASSISTANT,
            content="Looking.",
            reasoning="not sent back",
            tool_calls=[
                ToolCall(id="toolu_1", name="get_weather", arguments={"city": "Oslo"}),
                ToolCall(id="toolu_2", name="get_time", arguments={}),
            ],
        ),
        ChatMessage(role=Role.TOOL, content="sunny", tool_call_id="toolu_1"),
        ChatMessage(role=Role.TOOL, content="noon", tool_call_id="toolu_2"),
        ChatMessage(role=Role.USER, content="And tomorrow?"),
        ChatMessage(role=Role.ASSISTANT, content=""),  # empty: left out
        ChatMessage(role=Role.ASSISTANT, content="Rain."),
        ChatMessage(role=Role.ASSISTANT, content="Probably."),
        ChatMessage(role=Role.USER, content="thanks"),
    ]
    params = {"temperature": 0.2, "stop_sequences": ["END"], "thinking": {"type": "enabled", "budget_tokens": 1024}}  # fmt: skip
    req = ModelRequest(
        model="claude-test",
        messages=messages,
        instructions="Be brief.",
        tools=[WEATHER, TIME],
        parameters={**params, "stream": False},
    )
    await collect(provider, req)
    sent = fake.requests[-1]
    assert (sent.method, sent.target) == ("POST", "/v1/messages")
    assert sent.headers["x-api-key"] == "sk-ant-test"
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert sent.headers["content-type"] == "application/json"
    assert sent.headers["accept"] == "text/event-stream"
    assert "authorization" not in sent.headers
    body = sent.body
    assert {k: body[k] for k in params} == params
    assert (body["model"], body["max_tokens"], body["stream"]) == ("claude-test", 4096, True)
    assert body["system"] == "Be brief."
    assert body["tools"] == [
        {
            "name": "get_weather",
            "description": "Weather for a city",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
        {"name": "get_time", "input_schema": {"type": "object", "properties": {}}},
    ]
    assert body["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Weather in Oslo, and the time?"},
                {"type": "text", "text": "Quickly."},
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Looking."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}},
                {"type": "tool_use", "id": "toolu_2", "name": "get_time", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"},
                {"type": "tool_result", "tool_use_id": "toolu_2", "content": "noon"},
                {"type": "text", "text": "And tomorrow?"},
            ],
        },
        {
            "role": "assistant",
            "content": [{"type": "text", "text": "Rain."}, {"type": "text", "text": "Probably."}],
        },
        {"role": "user", "content": [{"type": "text", "text": "thanks"}]},
    ]  # fmt: skip


async def test_request_defaults_and_extra_headers(fake: FakeAnthropic) -> None:
    provider = AnthropicProvider(fake.base_url + "/v1/", headers={"anthropic-beta": "b1"})
    try:
        req = request(parameters={"max_tokens": 10})
        req.messages.insert(0, ChatMessage(role=Role.SYSTEM, content="From a system message."))
        await collect(provider, req)
    finally:
        await provider.aclose()
    sent = fake.requests[-1]
    assert sent.target == "/v1/messages"  # a base URL ending in /v1 is taken as well
    assert sent.headers["anthropic-beta"] == "b1"
    assert "x-api-key" not in sent.headers
    assert sent.body["max_tokens"] == 10
    assert sent.body["system"] == "From a system message."
    assert "tools" not in sent.body
    assert sent.body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Hello"}]}
    ]


async def test_tool_round_trip(provider: AnthropicProvider, fake: FakeAnthropic) -> None:
    """The calls of one answer, sent back with their results, as the next call's context."""
    fake.answer(
        Answer(message_events([tool_use("toolu_9", "get_weather", '{"city": "Oslo"}')], stop_reason="tool_use")),
        Answer(message_events([text("Sunny in Oslo.")])),
    )  # fmt: skip
    messages = [ChatMessage(role=Role.USER, content="Weather in Oslo?")]
    _, first = await collect(provider, ModelRequest("claude-test", messages, tools=[WEATHER]))
    calls = first.finish_tool_calls()
    messages.append(ChatMessage(role=Role.ASSISTANT, content=first.text, tool_calls=calls))
    messages.append(ChatMessage(role=Role.TOOL, content="sunny", tool_call_id=calls[0].id))
    _, second = await collect(provider, ModelRequest("claude-test", messages, tools=[WEATHER]))
    assert second.text == "Sunny in Oslo."
    assert fake.requests[-1].body["messages"][1:] == [
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_9", "name": "get_weather", "input": {"city": "Oslo"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_9", "content": "sunny"}]},
    ]  # fmt: skip


#: A web search the API runs itself, in the documented shapes: the call, its input as
#: fragments, then its result block (which has no deltas).
SERVER_SEARCH = [
    Block(
        {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}},
        tuple({"type": "input_json_delta", "partial_json": p} for p in ("", '{"query": ', '"Oslo"}')),
    ),
    Block(
        {
            "type": "web_search_tool_result",
            "tool_use_id": "srvtoolu_1",
            "content": [{"type": "web_search_result", "title": "Oslo", "url": "https://example.com/oslo", "encrypted_content": "RW5j"}],
        }
    ),
]  # fmt: skip


async def test_server_tool_blocks_are_skipped_and_not_sent_back(
    provider: AnthropicProvider, fake: FakeAnthropic
) -> None:
    """A server tool's blocks before a client call: the text and the call are kept, the
    server tool's input is no call's, and nothing of it goes back on the next turn."""
    blocks = [
        text("Searching."),
        *SERVER_SEARCH,
        text(" Found it."),
        tool_use("toolu_2", "get_weather", '{"city": ', '"Oslo"}'),
    ]
    fake.answer(
        Answer(message_events(blocks, stop_reason="tool_use")),
        Answer(message_events([text("Sunny.")])),
    )
    messages = [ChatMessage(role=Role.USER, content="Weather in Oslo?")]
    _, first = await collect(provider, ModelRequest("claude-test", messages, tools=[WEATHER]))
    assert (first.text, first.finish_reason) == ("Searching. Found it.", "tool_calls")
    assert first.state is None
    calls = first.finish_tool_calls()
    assert calls == [ToolCall(id="toolu_2", name="get_weather", arguments={"city": "Oslo"})]
    messages += [
        stored_answer(first, "claude"),
        ChatMessage(role=Role.TOOL, content="sunny", tool_call_id="toolu_2"),
    ]
    _, second = await collect(provider, ModelRequest("claude-test", messages, tools=[WEATHER]))
    assert second.text == "Sunny."
    assert fake.requests[-1].body["messages"][1:] == [
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Searching. Found it."},
                {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {"city": "Oslo"}},
            ],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_2", "content": "sunny"}]},
    ]  # fmt: skip


async def test_fragments_of_a_block_that_is_no_client_call_are_skipped(
    provider: AnthropicProvider, fake: FakeAnthropic
) -> None:
    # An MCP call the API makes itself, and a block type added later, both with input
    # fragments: neither is a call for the client, nor breaks the stream.
    blocks = [
        Block(
            {"type": "mcp_tool_use", "id": "mcptoolu_1", "name": "ask", "server_name": "wiki", "input": {}},
            ({"type": "input_json_delta", "partial_json": '{"q": "x"}'},),
        ),
        Block({"type": "mcp_tool_result", "tool_use_id": "mcptoolu_1", "is_error": False, "content": []}),
        Block({"type": "brand_new_tool_use", "id": "x_1"}, ({"type": "input_json_delta", "partial_json": "{"},)),
        text("Done."),
    ]  # fmt: skip
    fake.answer(Answer(message_events(blocks)))
    _, acc = await collect(provider, request())
    assert (acc.text, acc.finish_reason, acc.has_tool_calls) == ("Done.", "stop", False)


# ----------------------------------------------------------------- thinking goes back


def state_parts(events: list[ModelEvent]) -> list[StatePart]:
    return [e for e in events if isinstance(e, StatePart)]


async def test_thinking_with_its_signature_is_kept(
    provider: AnthropicProvider, fake: FakeAnthropic
) -> None:
    blocks = [
        thinking("The user wants ", "the weather in Oslo.", signature=SIGNATURE),
        text("Checking."),
        tool_use("toolu_1", "get_weather", '{"city": "Oslo"}'),
    ]
    fake.answer(Answer(message_events(blocks, stop_reason="tool_use")))
    events, acc = await collect(provider, request(tools=[WEATHER]))
    kept = {
        "type": "thinking",
        "thinking": "The user wants the weather in Oslo.",
        "signature": SIGNATURE,
    }
    assert state_parts(events) == [StatePart({"thinking_blocks": [kept]})]
    assert events[-1] == StatePart({"thinking_blocks": [kept]})  # once, when the message ends
    assert acc.state == {"thinking_blocks": [kept]}
    assert (acc.reasoning, acc.text) == ("The user wants the weather in Oslo.", "Checking.")
    assert acc.finish_tool_calls() == [
        ToolCall(id="toolu_1", name="get_weather", arguments={"city": "Oslo"})
    ]


async def test_no_state_without_thinking(provider: AnthropicProvider, fake: FakeAnthropic) -> None:
    fake.answer(Answer(message_events([text("Hi.")])))
    events, acc = await collect(provider, request())
    assert (state_parts(events), acc.state) == ([], None)


async def test_thinking_goes_back_before_the_tool_use(
    provider: AnthropicProvider, fake: FakeAnthropic
) -> None:
    """What was streamed is what is sent back: the same text, the same signature, first."""
    blocks = [
        thinking("Oslo, ", "so: the weather tool.", signature=SIGNATURE),
        text("Checking."),
        tool_use("toolu_1", "get_weather", '{"city": ', '"Oslo"}'),
    ]
    fake.answer(
        Answer(message_events(blocks, stop_reason="tool_use")),
        Answer(message_events([text("Sunny.")])),
    )
    thinking_params = {"thinking": {"type": "enabled", "budget_tokens": 1024}}
    messages = [ChatMessage(role=Role.USER, content="Weather in Oslo?")]
    req = ModelRequest("claude-test", messages, tools=[WEATHER], parameters=thinking_params)
    _, first = await collect(provider, req)
    messages += [
        stored_answer(first, "claude"),
        ChatMessage(role=Role.TOOL, content="sunny", tool_call_id="toolu_1"),
    ]
    req = ModelRequest("claude-test", messages, tools=[WEATHER], parameters=thinking_params)
    _, second = await collect(provider, req)
    assert second.text == "Sunny."
    sent = fake.requests[-1].body
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    assert sent["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Weather in Oslo?"}]},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "Oslo, so: the weather tool.", "signature": SIGNATURE},
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}},
            ],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}]},
    ]  # fmt: skip


async def test_redacted_thinking_is_kept_in_order_and_not_shown(
    provider: AnthropicProvider, fake: FakeAnthropic
) -> None:
    blocks = [
        redacted_thinking("RU5DUllQVEVEIE9ORQ=="),
        thinking("Visible ", "part.", signature="c2lnLTE="),
        redacted_thinking("RU5DUllQVEVEIFRXTw=="),
        tool_use("toolu_r", "get_time"),
    ]
    fake.answer(
        Answer(message_events(blocks, stop_reason="tool_use")),
        Answer(message_events([text("Noon.")])),
    )
    messages = [ChatMessage(role=Role.USER, content="Time?")]
    events, first = await collect(provider, ModelRequest("claude-test", messages, tools=[TIME]))
    assert [e.text for e in events if isinstance(e, ReasoningPart)] == ["Visible ", "part."]
    assert first.reasoning == "Visible part."
    kept = [
        {"type": "redacted_thinking", "data": "RU5DUllQVEVEIE9ORQ=="},
        {"type": "thinking", "thinking": "Visible part.", "signature": "c2lnLTE="},
        {"type": "redacted_thinking", "data": "RU5DUllQVEVEIFRXTw=="},
    ]
    assert state_parts(events) == [StatePart({"thinking_blocks": kept})]
    messages += [
        stored_answer(first, "claude"),
        ChatMessage(role=Role.TOOL, content="12:00", tool_call_id="toolu_r"),
    ]
    await collect(provider, ModelRequest("claude-test", messages, tools=[TIME]))
    assert fake.requests[-1].body["messages"][1] == {
        "role": "assistant",
        "content": [*kept, {"type": "tool_use", "id": "toolu_r", "name": "get_time", "input": {}}],
    }


async def test_thinking_without_its_signature_is_not_kept(
    provider: AnthropicProvider, fake: FakeAnthropic
) -> None:
    blocks = [
        thinking("cut short", signature=None),
        thinking("whole", signature="c2lnLTI="),
        text("ok"),
    ]
    fake.answer(Answer(message_events(blocks)), Answer(message_events([thinking("only", signature=None), text("x")])))  # fmt: skip
    events, acc = await collect(provider, request())
    assert acc.reasoning == "cut shortwhole"  # shown, but only the signed block goes back
    assert state_parts(events) == [
        StatePart({"thinking_blocks": [{"type": "thinking", "thinking": "whole", "signature": "c2lnLTI="}]})
    ]  # fmt: skip
    events, acc = await collect(provider, request())
    assert (state_parts(events), acc.state, acc.reasoning) == ([], None, "only")


async def test_a_cut_stream_keeps_no_thinking(
    provider: AnthropicProvider, fake: FakeAnthropic
) -> None:
    events = message_events([thinking("half a thought", signature=None)], end=False)[:4]
    fake.answer(Answer(events, after="cut"))
    acc = AnswerAccumulator()
    with pytest.raises(UpstreamError) as info:
        async for event in provider.stream(request()):
            acc.add(event)
    assert info.value.code == "upstream_truncated"
    assert (acc.reasoning, acc.state) == ("half a thought", None)


async def test_request_without_provider_state_sends_no_thinking(
    provider: AnthropicProvider, fake: FakeAnthropic
) -> None:
    """Reasoning text alone is never sent: only blocks this adapter kept, signed."""
    messages = [
        ChatMessage(role=Role.USER, content="Hi"),
        ChatMessage(role=Role.ASSISTANT, content="Hello.", reasoning="be nice"),
        ChatMessage(
            role=Role.ASSISTANT,
            reasoning="thought only",
            provider_state={"thinking_blocks": [{"type": "thinking", "thinking": "thought only", "signature": "c2ln"}]},
        ),  # nothing but thinking: the API keeps no thinking of earlier turns, so left out
        ChatMessage(role=Role.USER, content="Bye"),
    ]  # fmt: skip
    await collect(provider, ModelRequest("claude-test", messages))
    assert fake.requests[-1].body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "Hello."}]},
        {"role": "user", "content": [{"type": "text", "text": "Bye"}]},
    ]


@pytest.mark.parametrize(
    "state",
    [
        {"thinking_blocks": 5},
        {"thinking_blocks": ["x", 3, None]},
        {"thinking_blocks": [{"type": "text", "text": "not thinking"}]},
        {"thinking_blocks": [{"type": "thinking", "thinking": 1, "signature": []}]},
    ],
    ids=["not-a-list", "not-objects", "not-thinking", "wrong-types"],
)
async def test_a_state_of_the_wrong_shape_sends_no_thinking(
    provider: AnthropicProvider, fake: FakeAnthropic, state: dict[str, Any]
) -> None:
    """A state a client carried and changed (a stateless Responses client's
    ``encrypted_content``) never fails the turn: what does not fit is left out."""
    messages = [
        ChatMessage(role=Role.USER, content="Hi"),
        ChatMessage(role=Role.ASSISTANT, content="Hello.", provider_state=state),
        ChatMessage(role=Role.USER, content="Bye"),
    ]
    await collect(provider, ModelRequest("claude-test", messages))
    assert fake.requests[-1].body["messages"][1] == {
        "role": "assistant",
        "content": [{"type": "text", "text": "Hello."}],
    }


# ------------------------------------------------------------------------------ images


async def test_images_go_before_the_text(provider: AnthropicProvider, fake: FakeAnthropic) -> None:
    messages = [
        ChatMessage(
            role=Role.USER,
            content="What are these?",
            images=[f"data:image/png;base64,{PNG}", "https://example.com/cat.jpg"],
        ),
        ChatMessage(role=Role.ASSISTANT, content="A pixel and a cat."),
        ChatMessage(role=Role.USER, images=["http://example.com/dog.webp"]),  # no text
    ]
    await collect(provider, ModelRequest("claude-test", messages))
    assert fake.requests[-1].body["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
                {"type": "text", "text": "What are these?"},
            ],
        },
        {"role": "assistant", "content": [{"type": "text", "text": "A pixel and a cat."}]},
        {
            "role": "user",
            "content": [{"type": "image", "source": {"type": "url", "url": "http://example.com/dog.webp"}}],
        },
    ]  # fmt: skip


async def test_image_after_a_tool_result_joins_its_user_message(
    provider: AnthropicProvider, fake: FakeAnthropic
) -> None:
    messages = [
        ChatMessage(role=Role.USER, content="Look up the time."),
        ChatMessage(role=Role.ASSISTANT, tool_calls=[ToolCall(id="toolu_t", name="get_time")]),
        ChatMessage(role=Role.TOOL, content="noon", tool_call_id="toolu_t"),
        ChatMessage(
            role=Role.USER, content="And this?", images=["data:image/webp;base64,UklGRg=="]
        ),
    ]
    await collect(provider, ModelRequest("claude-test", messages, tools=[TIME]))
    assert fake.requests[-1].body["messages"][2] == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "toolu_t", "content": "noon"},
            {
                "type": "image",
                "source": {"type": "base64", "media_type": "image/webp", "data": "UklGRg=="},
            },
            {"type": "text", "text": "And this?"},
        ],
    }


# ------------------------------------------------------------------------ cancellation


async def test_aclose_mid_stream_closes_the_connection(
    provider: AnthropicProvider, fake: FakeAnthropic
) -> None:
    events = message_events([text("one ", "two ", "three")], end=False)[:5]
    fake.answer(Answer(events, after="hold"), Answer(message_events([text("again")])))
    stream = provider.stream(request())
    got = [await anext(stream) for _ in range(3)]
    assert [e for e in got if isinstance(e, TextPart)] == [TextPart("one "), TextPart("two ")]
    assert fake.active == 1
    await stream.aclose()
    assert await wait_until(lambda: fake.active == 0, within=1.0)
    assert (await collect(provider, request()))[1].text == "again"  # still works afterwards


# ------------------------------------------------------------------------------ models


async def test_list_models(fake: FakeAnthropic) -> None:
    fake.models = ["claude-b", "claude-a"]
    provider = AnthropicProvider(fake.base_url, api_key="sk-ant-test")
    try:
        assert await provider.list_models() == ["claude-a", "claude-b"]
    finally:
        await provider.aclose()
    sent = fake.requests[-1]
    assert (sent.method, sent.target.partition("?")[0]) == ("GET", "/v1/models")
    assert sent.headers["x-api-key"] == "sk-ant-test"
    assert sent.headers["anthropic-version"] == "2023-06-01"


async def test_list_models_rejected_key(fake: FakeAnthropic) -> None:
    fake.api_key = "sk-ant-right"
    provider = AnthropicProvider(fake.base_url, api_key="sk-ant-wrong")
    try:
        with pytest.raises(UpstreamError) as info:
            await provider.list_models()
    finally:
        await provider.aclose()
    assert info.value.code == "upstream_auth"
    assert "HTTP 401" in info.value.message


async def test_whole_message_when_the_server_ignores_stream(
    provider: AnthropicProvider, fake: FakeAnthropic
) -> None:
    message = {
        "type": "message",
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": "hmm", "signature": "c2ln"},
            {"type": "text", "text": "Calling."},
            {"type": "tool_use", "id": "toolu_j", "name": "get_weather", "input": {"city": "Bern"}},
        ],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 4, "output_tokens": 6},
    }
    fake.answer(Answer(body=message))
    _, acc = await collect(provider, request())
    assert (acc.reasoning, acc.text, acc.finish_reason) == ("hmm", "Calling.", "tool_calls")
    assert acc.state == {
        "thinking_blocks": [{"type": "thinking", "thinking": "hmm", "signature": "c2ln"}]
    }
    assert acc.finish_tool_calls() == [
        ToolCall(id="toolu_j", name="get_weather", arguments={"city": "Bern"})
    ]
    assert (acc.input_tokens, acc.output_tokens) == (4, 6)


# ---------------------------------------------------------------------- output formats


async def test_the_format_tools_input_is_the_answers_text(
    provider: AnthropicProvider, fake: FakeAnthropic
) -> None:
    """The forced call of a JSON format streams as text, and ends the answer as a stop."""
    block = tool_use("toolu_f", FORMAT_TOOL, '{"city": ', '"Oslo"}')
    fake.answer(Answer(message_events([block], stop_reason="tool_use")))
    events, acc = await collect(provider, request(options=JSON_MODE))
    assert [e.text for e in events if isinstance(e, TextPart)] == ['{"city": ', '"Oslo"}']
    assert not any(isinstance(e, ToolCallPart) for e in events)
    assert (acc.text, acc.finish_reason, acc.has_tool_calls) == ('{"city": "Oslo"}', "stop", False)


async def test_a_client_call_beside_the_format_tool_stays_a_call(
    provider: AnthropicProvider, fake: FakeAnthropic
) -> None:
    fake.answer(
        Answer(
            message_events(
                [tool_use("toolu_w", "get_weather", '{"city": "Oslo"}')], stop_reason="tool_use"
            )
        )
    )
    req = request(tools=[WEATHER], options=JSON_MODE)
    _, acc = await collect(provider, req)
    assert (acc.text, acc.finish_reason) == ("", "tool_calls")
    assert acc.finish_tool_calls() == [
        ToolCall(id="toolu_w", name="get_weather", arguments={"city": "Oslo"})
    ]


async def test_a_whole_message_with_the_format_tool(
    provider: AnthropicProvider, fake: FakeAnthropic
) -> None:
    message = {
        "type": "message",
        "role": "assistant",
        "content": [{"type": "tool_use", "id": "toolu_f", "name": FORMAT_TOOL, "input": {"a": 1}}],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 4, "output_tokens": 6},
    }
    fake.answer(Answer(body=message))
    _, acc = await collect(provider, request(options=JSON_MODE))
    assert (acc.text, acc.finish_reason, acc.has_tool_calls) == ('{"a":1}', "stop", False)
