"""The OpenAI Responses adapter against a scripted fake of the API, over real loopback sockets.

The streams served here are constructed examples written in the documented wire format
(``parley.testing.fake_responses``); they are not recordings of the API.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from parley.errors import UpstreamError
from parley.events import (
    FinishPart,
    ReasoningPart,
    StatePart,
    TextPart,
    ToolCallPart,
    UsagePart,
)
from parley.providers.accumulator import AnswerAccumulator
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
from tests.providers.helpers import collect, failure, stored_answer, wait_until

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


async def partial_then_failure(provider: OpenAIResponsesProvider) -> tuple[str, UpstreamError]:
    acc = AnswerAccumulator()
    with pytest.raises(UpstreamError) as info:
        async for event in provider.stream(request()):
            acc.add(event)
    return acc.text, info.value


# ----------------------------------------------------------------------------- streams


async def test_text(provider: OpenAIResponsesProvider, fake: FakeResponses) -> None:
    fake.answer(Answer(response_events([message("Hello", ", ", "world.")])))
    events, acc = await collect(provider, request())
    assert [e.text for e in events if isinstance(e, TextPart)] == ["Hello", ", ", "world."]
    assert (acc.text, acc.finish_reason, acc.has_tool_calls) == ("Hello, world.", "stop", False)


async def test_reasoning_summary_then_text(
    provider: OpenAIResponsesProvider, fake: FakeResponses
) -> None:
    items = [reasoning(["Let me ", "think."], ["Then check."]), message("Four.")]
    fake.answer(Answer(response_events(items)))
    events, acc = await collect(provider, request())
    kinds = [type(e) for e in events if isinstance(e, TextPart | ReasoningPart)]
    assert kinds == [ReasoningPart] * 4 + [TextPart]
    assert all(e.summary for e in events if isinstance(e, ReasoningPart))
    assert acc.reasoning == "Let me think.\n\nThen check."  # summary parts are paragraphs
    assert acc.text == "Four."
    assert acc.layout == [["summary", len(acc.reasoning)], ["text", 5]]


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
    events, acc = await collect(provider, request())
    assert (acc.reasoning, acc.text) == ("raw thoughts", "ok")
    assert [e.summary for e in events if isinstance(e, ReasoningPart)] == [False, False]
    assert acc.layout is None  # reasoning, then text: the plain order


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
    events, acc = await collect(provider, request())
    assert [e for e in events if isinstance(e, UsagePart | FinishPart)] == [
        FinishPart("stop"),
        UsagePart(25, 9),
    ]
    assert (acc.input_tokens, acc.output_tokens) == (25, 9)
    assert (acc.reasoning_tokens, acc.cached_tokens) == (0, 0)


async def test_usage_details(provider: OpenAIResponsesProvider, fake: FakeResponses) -> None:
    # output_tokens_details.reasoning_tokens among the output, input_tokens_details.
    # cached_tokens among the input
    events = response_events(
        [message("ok")],
        input_tokens=2006,
        output_tokens=300,
        reasoning_tokens=256,
        cached_tokens=1920,
    )
    usage = events[-1][1]["response"]["usage"]
    assert usage["input_tokens_details"] == {"cached_tokens": 1920}
    assert usage["output_tokens_details"] == {"reasoning_tokens": 256}
    fake.answer(Answer(events))
    got, acc = await collect(provider, request())
    assert [e for e in got if isinstance(e, UsagePart)] == [UsagePart(2006, 300, 256, 1920)]
    assert (acc.reasoning_tokens, acc.cached_tokens) == (256, 1920)


@pytest.mark.parametrize(
    ("reason", "finish"), [("max_output_tokens", "length"), ("content_filter", "content_filter")]
)
async def test_incomplete(
    provider: OpenAIResponsesProvider, fake: FakeResponses, reason: str, finish: str
) -> None:
    items = [message("Cut sh")]
    fake.answer(Answer(response_events(items, status="incomplete", incomplete_reason=reason)))
    _, acc = await collect(provider, request())
    assert (acc.text, acc.finish_reason, acc.output_tokens) == ("Cut sh", finish, 7)


async def test_unknown_events_are_skipped(
    provider: OpenAIResponsesProvider, fake: FakeResponses
) -> None:
    events = response_events([message("a")])
    events.insert(2, ("response.brand_new", {"type": "response.brand_new", "x": 1}))
    events.insert(3, ("response.output_item.added", {"type": "response.output_item.added", "output_index": 5,
                                                     "item": {"type": "web_search_call", "id": "ws_1"}}))  # fmt: skip
    fake.answer(Answer(events))
    _, acc = await collect(provider, request())
    assert (acc.text, acc.reasoning, acc.has_tool_calls) == ("a", "", False)


async def test_connection_is_reused(provider: OpenAIResponsesProvider, fake: FakeResponses) -> None:
    fake.answer(
        Answer(response_events([message("one")])),
        Answer(status=429, body=error_body("Rate limit reached.", "requests", "rate_limit_exceeded")),
        Answer(response_events([message("two")])),
    )  # fmt: skip
    assert (await collect(provider, request()))[1].text == "one"
    assert (await failure(provider, request())).code == "upstream_rate_limited"
    assert (await collect(provider, request()))[1].text == "two"
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
    error = await failure(provider, request())
    assert type(error) is UpstreamError
    assert error.code == code
    assert f"HTTP {status}" in error.message
    assert error.message.endswith(f": the {status} message")


async def test_rejected_key(fake: FakeResponses) -> None:
    fake.api_key = "sk-right"
    provider = OpenAIResponsesProvider(fake.base_url, api_key="sk-wrong")
    try:
        error = await failure(provider, request())
    finally:
        await provider.aclose()
    assert error.code == "upstream_auth"
    assert "Incorrect API key provided." in error.message


async def test_stream_without_an_end_is_truncated(
    provider: OpenAIResponsesProvider, fake: FakeResponses
) -> None:
    fake.answer(Answer(response_events([message("half")], end=False)))
    assert (await failure(provider, request())).code == "upstream_truncated"


async def test_connection_cut_mid_body(
    provider: OpenAIResponsesProvider, fake: FakeResponses
) -> None:
    fake.answer(Answer(response_events([message("half")])[:5], after="cut"))
    assert (await failure(provider, request())).code == "upstream_truncated"


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
    assert (await failure(provider, request())).code == "upstream_malformed"


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
    assert (await collect(provider, request()))[1].text == "again"  # still works afterwards


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
    _, acc = await collect(provider, request())
    assert (acc.reasoning, acc.text, acc.finish_reason) == ("hmm", "Calling.", "tool_calls")
    assert acc.finish_tool_calls() == [
        ToolCall(id="call_j", name="get_weather", arguments={"city": "Bern"})
    ]
    assert (acc.input_tokens, acc.output_tokens) == (12, 7)


# ------------------------------------------------------------ reasoning items go back

SECRET = "gAAAAB-encrypted-reasoning=="


def weather_question() -> list[ChatMessage]:
    return [ChatMessage(role=Role.USER, content="Weather in Oslo and Lima?")]


def answered(acc: AnswerAccumulator, *results: tuple[str, str]) -> list[ChatMessage]:
    """The assistant message as the engine stores it (its state marked with the provider's
    name, which the adapter ignores), then the tool results."""
    messages = [stored_answer(acc, "openai")]
    messages.extend(ChatMessage(role=Role.TOOL, content=out, tool_call_id=cid) for cid, out in results)  # fmt: skip
    return messages


async def test_reasoning_item_and_function_call_yield_the_state(
    provider: OpenAIResponsesProvider, fake: FakeResponses
) -> None:
    items = [
        reasoning(["Look it ", "up."], item_id="rs_1", encrypted_content=SECRET),
        function_call("call_1", "get_weather", '{"city": "Oslo"}', item_id="fc_1"),
    ]
    fake.answer(Answer(response_events(items)))
    events, acc = await collect(provider, ModelRequest("o4-mini", weather_question(), tools=[WEATHER]))  # fmt: skip
    states = [e for e in events if isinstance(e, StatePart)]
    assert states == [
        StatePart(
            {
                "model": "o4-mini",
                "output": [
                    {
                        "id": "rs_1",
                        "type": "reasoning",
                        "summary": [{"type": "summary_text", "text": "Look it up."}],
                        "encrypted_content": SECRET,  # whole: from output_item.done
                    },
                    {"type": "function_call", "call_id": "call_1", "id": "fc_1"},
                ],
            }
        )
    ]
    assert events.index(states[0]) < events.index(FinishPart("tool_calls"))  # before the end
    assert (acc.reasoning, acc.finish_reason) == ("Look it up.", "tool_calls")
    sent = fake.requests[-1].body
    assert (sent["store"], sent["include"]) == (False, ["reasoning.encrypted_content"])


async def test_reasoning_items_go_back_before_their_function_calls(
    provider: OpenAIResponsesProvider, fake: FakeResponses
) -> None:
    """Two rounds over the fake: the second call's input carries the first answer's items
    in their order (each reasoning item before the call it led to), then the results."""
    first = [
        reasoning(["Oslo first."], item_id="rs_1", encrypted_content=SECRET),
        message("Checking both.", item_id="msg_1", phase="commentary"),
        function_call("call_1", "get_weather", '{"city": "Oslo"}', item_id="fc_1"),
        reasoning(item_id="rs_2", encrypted_content=SECRET + "2"),  # no summary
        function_call("call_2", "get_weather", '{"city": "Lima"}', item_id="fc_2"),
    ]
    fake.answer(
        Answer(response_events(first)), Answer(response_events([message("Sunny and rainy.")]))
    )
    messages = weather_question()
    _, acc = await collect(provider, ModelRequest("gpt-5", messages, tools=[WEATHER]))
    messages += answered(acc, ("call_1", "sunny"), ("call_2", "rain"))
    _, second = await collect(provider, ModelRequest("gpt-5", messages, tools=[WEATHER]))
    assert second.text == "Sunny and rainy."
    sent = fake.requests[-1].body
    assert sent["include"] == ["reasoning.encrypted_content"]
    assert sent["input"] == [
        {"role": "user", "content": "Weather in Oslo and Lima?"},
        {"id": "rs_1", "type": "reasoning", "encrypted_content": SECRET,
         "summary": [{"type": "summary_text", "text": "Oslo first."}]},
        {"type": "message", "role": "assistant", "id": "msg_1", "status": "completed",
         "phase": "commentary",
         "content": [{"type": "output_text", "text": "Checking both.", "annotations": []}]},
        {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "get_weather",
         "arguments": '{"city":"Oslo"}'},
        {"id": "rs_2", "type": "reasoning", "summary": [], "encrypted_content": SECRET + "2"},
        {"type": "function_call", "id": "fc_2", "call_id": "call_2", "name": "get_weather",
         "arguments": '{"city":"Lima"}'},
        {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
        {"type": "function_call_output", "call_id": "call_2", "output": "rain"},
    ]  # fmt: skip
    # Key order as well: each reasoning item is sent exactly as it came.
    assert list(sent["input"][1]) == ["id", "type", "summary", "encrypted_content"]


async def test_the_text_of_several_message_items_is_cut_back_apart(
    provider: OpenAIResponsesProvider, fake: FakeResponses
) -> None:
    items = [
        message("Let me ", "think.", item_id="msg_a", phase="commentary"),
        reasoning(["Easy."], item_id="rs_1", encrypted_content=SECRET),
        message("Four.", item_id="msg_b", phase="final_answer"),
    ]
    fake.answer(Answer(response_events(items)), Answer(response_events([message("ok")])))
    messages = [ChatMessage(role=Role.USER, content="2+2?")]
    _, acc = await collect(provider, ModelRequest("o3", messages))
    assert acc.text == "Let me think.Four."
    messages += [*answered(acc), ChatMessage(role=Role.USER, content="thanks")]
    await collect(provider, ModelRequest("o3", messages))
    sent = fake.requests[-1].body["input"]
    assert [(i.get("type"), i.get("id"), i.get("phase")) for i in sent[1:4]] == [
        ("message", "msg_a", "commentary"),
        ("reasoning", "rs_1", None),
        ("message", "msg_b", "final_answer"),
    ]
    assert [sent[1]["content"][0]["text"], sent[3]["content"][0]["text"]] == ["Let me think.", "Four."]  # fmt: skip
    assert sent[4] == {"role": "user", "content": "thanks"}


def kept_answer(**state_changes: Any) -> ChatMessage:
    """An answer with one call whose kept state (model o4-mini, one encrypted reasoning
    item) is changed by ``state_changes``."""
    rs = {"id": "rs_1", "type": "reasoning", "summary": [], "encrypted_content": SECRET}
    fc = {"type": "function_call", "call_id": "call_1", "id": "fc_1"}
    state = {"model": "o4-mini", "output": [rs, fc], "provider": "openai", **state_changes}
    call = ToolCall(id="call_1", name="get_weather", arguments={"city": "Oslo"})
    return ChatMessage(role=Role.ASSISTANT, tool_calls=[call], provider_state=state)


PLAIN = [
    {"role": "user", "content": "Weather in Oslo and Lima?"},
    {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": '{"city":"Oslo"}'},
    {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
]  # fmt: skip


async def test_kept_items_go_back_to_the_same_model(
    provider: OpenAIResponsesProvider, fake: FakeResponses
) -> None:
    result = ChatMessage(role=Role.TOOL, content="sunny", tool_call_id="call_1")
    await collect(provider, ModelRequest("o4-mini", [*weather_question(), kept_answer(), result]))
    assert fake.requests[-1].body["input"] == [
        PLAIN[0],
        {"id": "rs_1", "type": "reasoning", "summary": [], "encrypted_content": SECRET},
        {**PLAIN[1], "id": "fc_1"},
        PLAIN[2],
    ]


@pytest.mark.parametrize(
    ("model", "answer"),
    [
        ("gpt-4.1", kept_answer()),  # another model: its reasoning would be refused
        ("o4-mini", kept_answer(output=[{"id": "rs_1", "type": "reasoning", "summary": []},
                                        {"type": "function_call", "call_id": "call_1"}])),
        ("o4-mini", kept_answer(output=[{"type": "function_call", "call_id": "call_9"}])),
        ("o4-mini", kept_answer(output=[{"type": "web_search_call", "id": "ws_1"}])),
        ("o4-mini", kept_answer(output="nonsense")),
        # A client's edit of the state it carries (``encrypted_content`` of a stateless
        # Responses client): entries of the wrong shape never fail the turn.
        ("o4-mini", kept_answer(output=[5, "x"])),
        ("o4-mini", kept_answer(output=[{"type": "message", "chars": "many"}])),
        ("o4-mini", kept_answer(output=[{"kind": "reasoning"}])),
    ],
    ids=["other-model", "not-encrypted-nor-stored", "other-calls", "unknown-item", "garbled",
         "not-objects", "bad-lengths", "no-type"],
)  # fmt: skip
async def test_kept_items_that_do_not_fit_go_as_plain_items(
    provider: OpenAIResponsesProvider, fake: FakeResponses, model: str, answer: ChatMessage
) -> None:
    """Today's items then: no reasoning, and no item ids that would ask for it."""
    result = ChatMessage(role=Role.TOOL, content="sunny", tool_call_id="call_1")
    await collect(provider, ModelRequest(model, [*weather_question(), answer, result]))
    assert fake.requests[-1].body["input"] == PLAIN


async def test_stored_calls_send_reasoning_back_by_id(
    provider: OpenAIResponsesProvider, fake: FakeResponses
) -> None:
    """With ``store: true`` the API keeps reasoning items: one kept without its encrypted
    content goes back (by id), and no encrypted content is asked for."""
    bare = [{"id": "rs_1", "type": "reasoning", "summary": []}, {"type": "function_call", "call_id": "call_1"}]  # fmt: skip
    result = ChatMessage(role=Role.TOOL, content="sunny", tool_call_id="call_1")
    messages = [*weather_question(), kept_answer(output=bare), result]
    await collect(provider, ModelRequest("o4-mini", messages, parameters={"store": True}))
    sent = fake.requests[-1].body
    assert "include" not in sent
    assert sent["input"][1:3] == [bare[0], PLAIN[1]]


@pytest.mark.parametrize(
    ("model", "parameters", "include"),
    [
        ("o3", {}, ["reasoning.encrypted_content"]),
        ("gpt-5-mini", {"include": ["message.output_text.logprobs"]},
         ["message.output_text.logprobs", "reasoning.encrypted_content"]),
        ("openai/o4-mini", {}, ["reasoning.encrypted_content"]),
        ("codex-mini-latest", {}, ["reasoning.encrypted_content"]),
        ("my-deployment", {"reasoning": {"effort": "low"}}, ["reasoning.encrypted_content"]),
        ("gpt-4o", {}, None),  # OpenAI answers 400 to a model that does not reason
        ("gpt-4.1-mini", {}, None),
        ("gpt-5-chat-latest", {}, None),
        ("o3", {"store": True}, None),  # the API keeps the reasoning itself
        ("o3", {"include": ["reasoning.encrypted_content"]}, ["reasoning.encrypted_content"]),
    ],
)  # fmt: skip
async def test_encrypted_reasoning_is_asked_of_reasoning_models(
    provider: OpenAIResponsesProvider,
    fake: FakeResponses,
    model: str,
    parameters: dict[str, Any],
    include: list[str] | None,
) -> None:
    await collect(provider, ModelRequest(model, weather_question(), parameters=parameters))
    assert fake.requests[-1].body.get("include") == include


async def test_no_state_without_reasoning(
    provider: OpenAIResponsesProvider, fake: FakeResponses
) -> None:
    items = [message("Checking."), function_call("call_1", "get_weather", '{"city": "Oslo"}')]
    fake.answer(Answer(response_events(items)))
    events, acc = await collect(provider, ModelRequest("o3", weather_question()))
    assert not any(isinstance(e, StatePart) for e in events)
    assert acc.state is None


async def test_reasoning_with_nothing_after_it_is_not_kept(
    provider: OpenAIResponsesProvider, fake: FakeResponses
) -> None:
    """Cut short while reasoning: a reasoning item alone would be refused as input."""
    items = [reasoning(["Hmm"], encrypted_content=SECRET)]
    fake.answer(Answer(response_events(items, status="incomplete")))
    events, acc = await collect(provider, ModelRequest("o3", weather_question()))
    assert (acc.finish_reason, acc.state) == ("length", None)
    assert not any(isinstance(e, StatePart) for e in events)


async def test_whole_response_keeps_the_reasoning_items(
    provider: OpenAIResponsesProvider, fake: FakeResponses
) -> None:
    items = [
        reasoning(["hmm"], item_id="rs_j", encrypted_content=SECRET),
        function_call("call_j", "get_weather", '{"city": "Bern"}', item_id="fc_j"),
    ]
    fake.answer(Answer(body=response_events(items)[-1][1]["response"]))
    _, acc = await collect(provider, ModelRequest("o3", weather_question()))
    assert acc.state == {
        "model": "o3",
        "output": [
            {"id": "rs_j", "type": "reasoning", "encrypted_content": SECRET,
             "summary": [{"type": "summary_text", "text": "hmm"}]},
            {"type": "function_call", "call_id": "call_j", "id": "fc_j"},
        ],
    }  # fmt: skip


# ------------------------------------------------------------------------------ images

PNG = "data:image/png;base64,iVBORw0KGgo="


async def test_images_go_as_input_image_parts(
    provider: OpenAIResponsesProvider, fake: FakeResponses
) -> None:
    messages = [
        ChatMessage(role=Role.USER, content="What is this?", images=[PNG, "https://example.com/cat.jpg"]),
        ChatMessage(role=Role.ASSISTANT, content="A cat."),
        ChatMessage(role=Role.USER, images=[PNG]),
        ChatMessage(role=Role.USER, content="And now?"),
    ]  # fmt: skip
    await collect(provider, ModelRequest("gpt-4o", messages))
    assert fake.requests[-1].body["input"] == [
        {"role": "user", "content": [
            {"type": "input_text", "text": "What is this?"},
            {"type": "input_image", "image_url": PNG, "detail": "auto"},
            {"type": "input_image", "image_url": "https://example.com/cat.jpg", "detail": "auto"},
        ]},
        {"role": "assistant", "content": "A cat."},
        {"role": "user", "content": [{"type": "input_image", "image_url": PNG, "detail": "auto"}]},
        {"role": "user", "content": "And now?"},
    ]  # fmt: skip
