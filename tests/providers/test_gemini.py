"""The Gemini adapter against a fake Gemini server (``parley.testing.fake_gemini``), over
real loopback sockets, on both HTTP clients.

The streams below are constructed by hand from the documented ``GenerateContentResponse``
wire format; they are examples, not recordings of the real API.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
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
from parley.providers.base import ChatMessage, ModelRequest
from parley.providers.gemini import GeminiProvider
from parley.testing.fake_gemini import FakeGemini, Script, gemini_error, usage_metadata
from parley.types import FunctionSpec, Role, ToolCall, ToolSpec
from tests.providers.helpers import (
    collect,
    failure,
    no_resource_warnings,
    stored_answer,
    wait_until,
)

KEY = "AIza-test-key"
MODEL = "gemini-2.0-flash"
RECORDINGS = Path(__file__).resolve().parent.parent / "recordings" / "gemini"
TOOLS = [
    ToolSpec(
        function=FunctionSpec(
            name="get_weather",
            description="Weather for a city",
            parameters={
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        )
    ),
    ToolSpec(function=FunctionSpec(name="get_time")),
]


@pytest.fixture
async def fake() -> AsyncIterator[FakeGemini]:
    async with FakeGemini() as server:
        yield server


@pytest.fixture
async def provider(fake: FakeGemini) -> AsyncIterator[GeminiProvider]:
    adapter = GeminiProvider(fake.base_url, api_key=KEY, read_timeout=10)
    yield adapter
    await adapter.aclose()


def text(value: str, **extra: Any) -> dict[str, Any]:
    """A response whose candidate holds one text part."""
    part = {"text": value, **extra}
    return {"candidates": [{"content": {"role": "model", "parts": [part]}, "index": 0}]}


def call(name: str, args: dict[str, Any]) -> dict[str, Any]:
    return {"functionCall": {"name": name, "args": args}}


def finish(reason: str = "STOP", parts: list[Any] | None = None, **usage: int) -> dict[str, Any]:
    """The last response of a stream: its finish reason, usage and maybe some parts."""
    candidate: dict[str, Any] = {"finishReason": reason, "index": 0}
    if parts:
        candidate["content"] = {"role": "model", "parts": parts}
    response: dict[str, Any] = {"candidates": [candidate], "modelVersion": MODEL}
    if usage:
        response["usageMetadata"] = usage
    return response


def request(prompt: str = "Hello", **kwargs: Any) -> ModelRequest:
    return ModelRequest(
        model=MODEL, messages=[ChatMessage(role=Role.USER, content=prompt)], **kwargs
    )


def next_request(acc: AnswerAccumulator, prompt: str, first: str = "Hello") -> ModelRequest:
    """The request after a text answer: first prompt, the answer, a new prompt."""
    messages = [
        ChatMessage(role=Role.USER, content=first),
        stored_answer(acc, "gemini"),
        ChatMessage(role=Role.USER, content=prompt),
    ]
    return ModelRequest(model=MODEL, messages=messages)


def signed(part: dict[str, Any], signature: str) -> dict[str, Any]:
    return {**part, "thoughtSignature": signature}


# ----------------------------------------------------------------------------- streams


async def test_text_over_several_chunks(provider: GeminiProvider, fake: FakeGemini) -> None:
    fake.scripts[MODEL] = Script(
        [
            text("The sky "),
            text("is "),
            finish(
                parts=[{"text": "blue."}],
                promptTokenCount=4,
                candidatesTokenCount=3,
                totalTokenCount=7,
            ),
        ]
    )
    events, acc = await collect(provider, request())
    assert [e.text for e in events if isinstance(e, TextPart)] == ["The sky ", "is ", "blue."]
    assert (acc.text, acc.finish_reason) == ("The sky is blue.", "stop")
    assert (acc.input_tokens, acc.output_tokens) == (4, 3)
    assert events[-2:] == [FinishPart("stop"), UsagePart(4, 3)]
    assert acc.state is None  # no signature: no state to keep


async def test_thought_parts_are_reasoning(provider: GeminiProvider, fake: FakeGemini) -> None:
    fake.scripts[MODEL] = Script(
        [
            text("Let me think. ", thought=True),
            text("Two and two.", thought=True, thoughtSignature="c2ln"),
            {"candidates": [{"content": {"parts": [{"thoughtSignature": "c2ln"}]}}]},
            text("Four."),
            finish(promptTokenCount=5, candidatesTokenCount=2, thoughtsTokenCount=9),
        ]
    )
    events, acc = await collect(provider, request("2+2?"))
    assert [type(e) for e in events if isinstance(e, ReasoningPart | TextPart)] == [
        ReasoningPart,
        ReasoningPart,
        TextPart,
    ]
    assert (acc.reasoning, acc.text) == ("Let me think. Two and two.", "Four.")
    # Gemini's thoughts are summaries of its thinking.
    assert all(e.summary for e in events if isinstance(e, ReasoningPart))
    assert (acc.input_tokens, acc.output_tokens) == (5, 11)  # thoughts count as output
    assert acc.reasoning_tokens == 9  # and are its reasoning tokens
    # The signature on the thought part is not kept (thoughts are not sent back); the one
    # alone before the text is, at offset 0 of the text.
    assert events[-1] == StatePart({"thought_signatures": {"text": [[0, 0, "c2ln"]]}})
    await collect(provider, next_request(acc, "and 3+3?", first="2+2?"))
    assert fake.requests[-1].body["contents"][1:] == [
        {"role": "model", "parts": [{"text": "", "thoughtSignature": "c2ln"}, {"text": "Four."}]},
        {"role": "user", "parts": [{"text": "and 3+3?"}]},
    ]


async def test_usage_is_a_running_total(provider: GeminiProvider, fake: FakeGemini) -> None:
    fake.scripts[MODEL] = Script(
        [
            {**text("a"), "usageMetadata": {"promptTokenCount": 6, "candidatesTokenCount": 1}},
            {**text("b"), "usageMetadata": {"promptTokenCount": 6, "candidatesTokenCount": 2}},
            finish(promptTokenCount=6, candidatesTokenCount=3),
        ]
    )
    events, acc = await collect(provider, request())
    assert [e for e in events if isinstance(e, UsagePart)] == [
        UsagePart(6, 1),
        UsagePart(6, 2),
        UsagePart(6, 3),
    ]
    assert (acc.input_tokens, acc.output_tokens) == (6, 3)


async def test_usage_of_the_last_event_wins_even_when_lower(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    # As the API sends it: an early event may count more prompt tokens than the last, and
    # thoughts are counted apart from the answer's tokens; the last event is the count.
    fake.scripts[MODEL] = Script(
        [
            {**text("a"), "usageMetadata": {"promptTokenCount": 169, "thoughtsTokenCount": 40}},
            finish(promptTokenCount=79, candidatesTokenCount=12, thoughtsTokenCount=30),
        ]
    )
    _, acc = await collect(provider, request())
    assert (acc.input_tokens, acc.output_tokens, acc.reasoning_tokens) == (79, 42, 30)


async def test_cached_content_among_the_prompt(provider: GeminiProvider, fake: FakeGemini) -> None:
    # promptTokenCount includes the cached content's tokens, cachedContentTokenCount says
    # how many they are.
    usage = usage_metadata(2100, 12, thoughts=40, cached=2048)
    assert (usage["cachedContentTokenCount"], usage["totalTokenCount"]) == (2048, 2152)
    fake.scripts[MODEL] = Script([text("ok"), {**finish(), "usageMetadata": usage}])
    events, acc = await collect(provider, request())
    assert [e for e in events if isinstance(e, UsagePart)] == [UsagePart(2100, 52, 40, 2048)]
    assert (acc.input_tokens, acc.cached_tokens) == (2100, 2048)


async def test_one_function_call(provider: GeminiProvider, fake: FakeGemini) -> None:
    fake.scripts[MODEL] = Script([finish(parts=[call("get_weather", {"city": "Oslo"})])])
    events, acc = await collect(provider, request("weather?", tools=TOOLS))
    part = events[0]
    assert isinstance(part, ToolCallPart)
    assert (part.index, part.name, part.arguments) == (0, "get_weather", '{"city":"Oslo"}')
    assert acc.finish_reason == "tool_calls"
    [tool_call] = acc.finish_tool_calls()
    assert (tool_call.name, tool_call.arguments) == ("get_weather", {"city": "Oslo"})
    assert tool_call.id == part.id and tool_call.id.startswith("call_")


async def test_two_function_calls_in_one_response(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    fake.scripts[MODEL] = Script(
        [
            text("Checking both. "),
            {
                "candidates": [
                    {"content": {"role": "model", "parts": [call("get_weather", {"city": "Oslo"})]}}
                ]
            },
            finish(parts=[call("get_time", {}), call("get_weather", {"city": "Rome"})]),
        ]
    )
    _, acc = await collect(provider, request("weather and time?", tools=TOOLS))
    calls = acc.finish_tool_calls()
    assert [(c.name, c.arguments) for c in calls] == [
        ("get_weather", {"city": "Oslo"}),
        ("get_time", {}),
        ("get_weather", {"city": "Rome"}),
    ]
    assert len({c.id for c in calls}) == 3
    assert (acc.text, acc.finish_reason) == ("Checking both. ", "tool_calls")


async def test_a_call_id_from_the_api_is_kept(provider: GeminiProvider, fake: FakeGemini) -> None:
    part = {"functionCall": {"id": "fc-7", "name": "get_time", "args": {}}}
    fake.scripts[MODEL] = Script([finish(parts=[part])])
    _, acc = await collect(provider, request(tools=TOOLS))
    assert [c.id for c in acc.finish_tool_calls()] == ["fc-7"]


@pytest.mark.parametrize(
    ("wire", "reason"),
    [
        ("STOP", "stop"),
        ("MAX_TOKENS", "length"),
        ("SAFETY", "safety"),
        ("RECITATION", "recitation"),
        ("MALFORMED_FUNCTION_CALL", "malformed_function_call"),
    ],
)
async def test_finish_reasons(
    provider: GeminiProvider, fake: FakeGemini, wire: str, reason: str
) -> None:
    fake.scripts[MODEL] = Script([text("Partial"), finish(wire)])
    _, acc = await collect(provider, request())
    assert (acc.text, acc.finish_reason) == ("Partial", reason)


async def test_several_requests_share_a_connection(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    fake.scripts[MODEL] = Script([text("one"), finish()])
    fake.scripts["gemini-2.5-pro"] = Script([text("two"), finish()])
    for model in (MODEL, MODEL, "gemini-2.5-pro", MODEL):
        _, acc = await collect(provider, ModelRequest(model=model, messages=[]))
        assert acc.text == ("two" if model == "gemini-2.5-pro" else "one")
    assert fake.connections == 2  # one per model id: one transport for each URL
    assert [r.target.split(":")[0] for r in fake.requests] == [
        f"/v1beta/models/{m}" for m in (MODEL, MODEL, "gemini-2.5-pro", MODEL)
    ]


# ------------------------------------------------------------------------------ errors


async def test_blocked_prompt(provider: GeminiProvider, fake: FakeGemini) -> None:
    fake.scripts[MODEL] = Script(
        [{"promptFeedback": {"blockReason": "SAFETY", "safetyRatings": []}}]
    )
    error = await failure(provider, request("something bad"))
    assert error.code == "upstream_blocked"
    assert error.message == "The Gemini API blocked the prompt (reason: SAFETY)."


async def test_block_reason_text_is_not_echoed(provider: GeminiProvider, fake: FakeGemini) -> None:
    fake.scripts[MODEL] = Script([{"promptFeedback": {"blockReason": "<b>odd</b> reason"}}])
    error = await failure(provider, request())
    assert (error.code, error.message) == ("upstream_blocked", "The Gemini API blocked the prompt.")


async def test_error_in_the_stream_after_some_text(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    fake.scripts[MODEL] = Script(
        [text("Once upon "), gemini_error(503, "The model is overloaded.", "UNAVAILABLE")]
    )
    events: list[ModelEvent] = []
    with pytest.raises(UpstreamError) as info:
        async for event in provider.stream(request()):
            events.append(event)
    assert events == [TextPart("Once upon ")]
    assert info.value.code == "upstream_stream_error"
    assert "UNAVAILABLE: The model is overloaded." in info.value.message


@pytest.mark.parametrize(
    ("status", "wire_status", "code"),
    [
        (400, "INVALID_ARGUMENT", "upstream_invalid_request"),
        (403, "PERMISSION_DENIED", "upstream_auth"),
        (429, "RESOURCE_EXHAUSTED", "upstream_rate_limited"),
    ],
)
async def test_http_errors(
    provider: GeminiProvider, fake: FakeGemini, status: int, wire_status: str, code: str
) -> None:
    fake.scripts[MODEL] = Script(
        status=status, error=gemini_error(status, f"gemini says no ({status})", wire_status)
    )
    error = await failure(provider, request())
    assert error.code == code
    assert error.message.startswith("The Gemini API ")
    assert f"(HTTP {status}): {wire_status}: gemini says no ({status})" in error.message
    fake.scripts[MODEL] = Script([text("fine"), finish()])
    _, acc = await collect(provider, request())  # the error answer was read to its end
    assert acc.text == "fine"
    assert fake.connections == 1


async def test_unknown_model_is_an_http_error(provider: GeminiProvider) -> None:
    error = await failure(provider, ModelRequest(model="no-such-model", messages=[]))
    assert error.code == "upstream_not_found"
    assert "NOT_FOUND: models/no-such-model is not found." in error.message


@pytest.mark.parametrize("end", ["close", "cut"])
async def test_truncated_stream(provider: GeminiProvider, fake: FakeGemini, end: Any) -> None:
    fake.scripts[MODEL] = Script([text("Half an ans")], end=end)
    error = await failure(provider, request())
    assert error.code == "upstream_truncated"


@pytest.mark.parametrize(
    "data",
    [
        b"data: not json\r\n\r\n",
        b'data: ["a list"]\r\n\r\n',
        b'data: {"candidates": {"content": {}}}\r\n\r\n',
        b'data: {"candidates": [{"content": {"parts": [{"text": 5}]}}]}\r\n\r\n',
        b'data: {"candidates": [{"content": {"parts": [{"functionCall": {"args": {}}}]}}]}\r\n\r\n',
        b'data: {"usageMetadata": {"promptTokenCount": "many"}}\r\n\r\n',
    ],
)
async def test_chunks_of_the_wrong_shape(
    provider: GeminiProvider, fake: FakeGemini, data: bytes
) -> None:
    fake.scripts[MODEL] = Script([data, finish()])
    error = await failure(provider, request())
    assert error.code == "upstream_malformed"
    assert error.message.startswith("The Gemini API sent ")


# --------------------------------------------------------------------------- requests


async def test_request_body_shape(provider: GeminiProvider, fake: FakeGemini) -> None:
    fake.scripts[MODEL] = Script([text("ok"), finish()])
    messages = [
        ChatMessage(role=Role.USER, content="Weather in Oslo, and the time?"),
        ChatMessage(
            role=Role.ASSISTANT,
            content="Let me look.",
            reasoning="not sent back",
            tool_calls=[
                ToolCall(id="call_a", name="get_weather", arguments={"city": "Oslo"}),
                ToolCall(id="call_b", name="get_time", arguments={}),
            ],
        ),
        ChatMessage(role=Role.TOOL, content="sunny", tool_call_id="call_a"),
        ChatMessage(role=Role.TOOL, content="noon", tool_call_id="call_b"),
        ChatMessage(role=Role.ASSISTANT, content="Sunny, and noon."),
        ChatMessage(role=Role.USER, content="thanks"),
    ]
    req = ModelRequest(
        model=MODEL,
        messages=messages,
        instructions="Be brief.",
        tools=TOOLS,
        parameters={
            "temperature": 0.2,
            "max_tokens": 50,
            "top_p": 0.9,
            "stop": "END",
            "thinkingConfig": {"thinkingBudget": 1024, "includeThoughts": True},
            "stream": True,  # not Gemini's: not sent
        },
    )
    await collect(provider, req)
    body = fake.requests[-1].body
    assert body == {
        "contents": [
            {"role": "user", "parts": [{"text": "Weather in Oslo, and the time?"}]},
            {
                "role": "model",
                "parts": [
                    {"text": "Let me look."},
                    {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}},
                    {"functionCall": {"name": "get_time", "args": {}}},
                ],
            },
            {
                "role": "user",
                "parts": [
                    {"functionResponse": {"name": "get_weather", "response": {"content": "sunny"}}},
                    {"functionResponse": {"name": "get_time", "response": {"content": "noon"}}},
                ],
            },
            {"role": "model", "parts": [{"text": "Sunny, and noon."}]},
            {"role": "user", "parts": [{"text": "thanks"}]},
        ],
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "tools": [
            {
                "functionDeclarations": [
                    {
                        "name": "get_weather",
                        "description": "Weather for a city",
                        "parameters": TOOLS[0].function.parameters,
                    },
                    {"name": "get_time"},  # no properties: no parameters schema
                ]
            }
        ],
        "generationConfig": {
            "temperature": 0.2,
            "maxOutputTokens": 50,
            "topP": 0.9,
            "stopSequences": ["END"],
            "thinkingConfig": {"thinkingBudget": 1024, "includeThoughts": True},
        },
    }


async def test_minimal_body_and_headers(provider: GeminiProvider, fake: FakeGemini) -> None:
    fake.scripts[MODEL] = Script([text("ok"), finish()])
    await collect(provider, request())
    received = fake.requests[-1]
    assert received.body == {"contents": [{"role": "user", "parts": [{"text": "Hello"}]}]}
    assert received.method == "POST"
    assert received.target == f"/v1beta/models/{MODEL}:streamGenerateContent?alt=sse"
    assert KEY not in received.target
    assert received.headers["x-goog-api-key"] == KEY
    assert received.headers["content-type"] == "application/json"
    assert "authorization" not in received.headers


async def test_system_messages_join_the_instructions(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    fake.scripts[MODEL] = Script([finish()])
    messages = [
        ChatMessage(role=Role.SYSTEM, content="Speak French."),
        ChatMessage(role=Role.USER, content="Hi"),
    ]
    await collect(provider, ModelRequest(model=MODEL, messages=messages, instructions="Be brief."))
    body = fake.requests[-1].body
    assert body["systemInstruction"] == {
        "parts": [{"text": "Be brief."}, {"text": "Speak French."}]
    }
    assert body["contents"] == [{"role": "user", "parts": [{"text": "Hi"}]}]


async def test_round_trip_of_the_calls_it_streamed(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    """The calls of one turn come back as functionCall / functionResponse with their names."""
    fake.scripts[MODEL] = Script([finish(parts=[call("get_weather", {"city": "Oslo"})])])
    _, acc = await collect(provider, request("weather?", tools=TOOLS))
    calls = acc.finish_tool_calls()
    fake.scripts[MODEL] = Script([text("Sunny in Oslo."), finish()])
    messages = [
        ChatMessage(role=Role.USER, content="weather?"),
        ChatMessage(role=Role.ASSISTANT, tool_calls=calls),
        ChatMessage(role=Role.TOOL, content="sunny", tool_call_id=calls[0].id),
    ]
    _, acc = await collect(provider, ModelRequest(model=MODEL, messages=messages, tools=TOOLS))
    assert acc.text == "Sunny in Oslo."
    assert fake.requests[-1].body["contents"][1:] == [
        {"role": "model", "parts": [call("get_weather", {"city": "Oslo"})]},
        {
            "role": "user",
            "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"content": "sunny"}}}
            ],
        },
    ]


async def test_model_prefix_and_odd_characters_in_the_url(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    fake.scripts["tuned model?x"] = Script([text("ok"), finish()])
    _, acc = await collect(provider, ModelRequest(model="models/tuned model?x", messages=[]))
    assert acc.text == "ok"
    assert fake.requests[-1].target.startswith("/v1beta/models/tuned%20model%3Fx:stream")


# ------------------------------------------------------------ thought signatures, images


def recorded_signatures(name: str) -> list[str]:
    """The thought signatures of a recorded answer, in order, read with plain ``json``."""
    raw = (RECORDINGS / name).read_text()
    if name.endswith(".sse"):
        chunks = [json.loads(line[5:]) for line in raw.splitlines() if line.startswith("data:")]
    else:
        chunks = json.loads(raw)
    return [
        part["thoughtSignature"]
        for chunk in chunks
        for candidate in chunk.get("candidates", [])
        for part in candidate.get("content", {}).get("parts", [])
        if "thoughtSignature" in part
    ]


async def test_a_recorded_signed_call_goes_back_signed(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    """A real Gemini 3 answer: one function call with its signature. The signature comes
    out as a ``StatePart`` and goes back on the same call in the next request."""
    body = (RECORDINGS / "pydantic_ai_function_call_thought_signature.sse").read_bytes()
    [signature] = recorded_signatures("pydantic_ai_function_call_thought_signature.sse")
    fake.scripts[MODEL] = Script([body])
    events, acc = await collect(provider, request("Capital of my country?", tools=TOOLS))
    state = {"thought_signatures": {"calls": {"0": signature}}}
    assert events[-1] == StatePart(state)
    assert acc.state == state
    [tool_call] = acc.finish_tool_calls()

    fake.require_signatures = True  # as Gemini 3: an unsigned call step is refused
    fake.scripts[MODEL] = Script([text("Mexico City."), finish()])
    messages = [
        ChatMessage(role=Role.USER, content="Capital of my country?"),
        stored_answer(acc, "gemini"),
        ChatMessage(role=Role.TOOL, content="Mexico", tool_call_id=tool_call.id),
    ]
    _, acc = await collect(provider, ModelRequest(model=MODEL, messages=messages, tools=TOOLS))
    assert acc.text == "Mexico City."
    assert fake.requests[-1].body["contents"] == [
        {"role": "user", "parts": [{"text": "Capital of my country?"}]},
        {
            "role": "model",
            "parts": [
                {
                    "functionCall": {"name": "get_country", "args": {}},
                    "thoughtSignature": signature,
                }
            ],
        },
        {
            "role": "user",
            "parts": [
                {"functionResponse": {"name": "get_country", "response": {"content": "Mexico"}}}
            ],
        },
    ]

    messages[1].provider_state = None  # the same history without the signature
    error = await failure(provider, ModelRequest(model=MODEL, messages=messages, tools=TOOLS))
    assert error.code == "upstream_invalid_request"
    assert "(HTTP 400): INVALID_ARGUMENT" in error.message


async def test_parallel_calls_signed_on_the_first_only(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    fake.scripts[MODEL] = Script(
        [
            text("Checking both. "),
            finish(
                parts=[
                    signed(call("get_weather", {"city": "Oslo"}), "sig-parallel"),
                    call("get_time", {}),
                ]
            ),
        ]
    )
    events, acc = await collect(provider, request("weather and time?", tools=TOOLS))
    assert [e for e in events if isinstance(e, StatePart)] == [
        StatePart({"thought_signatures": {"calls": {"0": "sig-parallel"}}})
    ]
    weather, time = acc.finish_tool_calls()

    fake.require_signatures = True
    fake.scripts[MODEL] = Script([text("Sunny, noon."), finish()])
    messages = [
        ChatMessage(role=Role.USER, content="weather and time?"),
        stored_answer(acc, "gemini"),
        ChatMessage(role=Role.TOOL, content="sunny", tool_call_id=weather.id),
        ChatMessage(role=Role.TOOL, content="noon", tool_call_id=time.id),
    ]
    await collect(provider, ModelRequest(model=MODEL, messages=messages, tools=TOOLS))
    assert fake.requests[-1].body["contents"][1:] == [
        {
            "role": "model",
            "parts": [
                {"text": "Checking both. "},
                {
                    "functionCall": {"name": "get_weather", "args": {"city": "Oslo"}},
                    "thoughtSignature": "sig-parallel",
                },
                {"functionCall": {"name": "get_time", "args": {}}},
            ],
        },
        {
            "role": "user",
            "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"content": "sunny"}}},
                {"functionResponse": {"name": "get_time", "response": {"content": "noon"}}},
            ],
        },
    ]


async def test_each_step_of_a_turn_keeps_its_own_signature(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    """Sequential calls: each answer is signed; all go back, each on its own call."""
    messages = [ChatMessage(role=Role.USER, content="weather where it is noon?")]
    for name, args, signature, result in [
        ("get_time", {}, "sig-step-1", "noon in Oslo"),
        ("get_weather", {"city": "Oslo"}, "sig-step-2", "sunny"),
    ]:
        fake.scripts[MODEL] = Script([finish(parts=[signed(call(name, args), signature)])])
        _, acc = await collect(provider, ModelRequest(model=MODEL, messages=messages, tools=TOOLS))
        assert acc.state == {"thought_signatures": {"calls": {"0": signature}}}
        [tool_call] = acc.finish_tool_calls()
        messages += [
            stored_answer(acc, "gemini"),
            ChatMessage(Role.TOOL, result, tool_call_id=tool_call.id),
        ]
        fake.require_signatures = True

    fake.scripts[MODEL] = Script([text("Sunny."), finish()])
    await collect(provider, ModelRequest(model=MODEL, messages=messages, tools=TOOLS))
    model_parts = [c["parts"] for c in fake.requests[-1].body["contents"] if c["role"] == "model"]
    assert model_parts == [
        [{"functionCall": {"name": "get_time", "args": {}}, "thoughtSignature": "sig-step-1"}],
        [
            {
                "functionCall": {"name": "get_weather", "args": {"city": "Oslo"}},
                "thoughtSignature": "sig-step-2",
            }
        ],
    ]


async def test_a_recorded_text_answer_signed_on_an_empty_last_part(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    """A real Gemini 3 answer (one JSON array): the text, then an empty text part that
    carries the signature. It goes back as an empty text part after the text."""
    chunks = json.loads((RECORDINGS / "llm_gemini_text_json_array.json").read_text())
    [signature] = recorded_signatures("llm_gemini_text_json_array.json")
    fake.scripts[MODEL] = Script(chunks, whole=True)
    events, acc = await collect(provider, request("Hi"))
    assert acc.text == "Hello"
    assert events[-1] == StatePart({"thought_signatures": {"end": signature}})

    fake.scripts[MODEL] = Script([text("Fine."), finish()])
    await collect(provider, next_request(acc, "How are you?", first="Hi"))
    assert fake.requests[-1].body["contents"] == [
        {"role": "user", "parts": [{"text": "Hi"}]},
        {
            "role": "model",
            "parts": [{"text": "Hello"}, {"text": "", "thoughtSignature": signature}],
        },
        {"role": "user", "parts": [{"text": "How are you?"}]},
    ]


async def test_a_signed_text_part_goes_back_as_a_part_of_its_own(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    """The signature was on the second of three text chunks: those characters of the
    answer (counted in characters, not bytes) go back as one part with it."""
    fake.scripts[MODEL] = Script(
        [
            text("Le café ☕ est "),
            text("ouvert.", thoughtSignature="sig-text"),
            finish(parts=[{"text": " Venez."}]),
        ]
    )
    events, acc = await collect(provider, request("Café?"))
    assert acc.text == "Le café ☕ est ouvert. Venez."
    assert events[-1] == StatePart({"thought_signatures": {"text": [[14, 21, "sig-text"]]}})

    fake.scripts[MODEL] = Script([text("Merci."), finish()])
    await collect(provider, next_request(acc, "Merci", first="Café?"))
    assert fake.requests[-1].body["contents"][1] == {
        "role": "model",
        "parts": [
            {"text": "Le café ☕ est "},
            {"text": "ouvert.", "thoughtSignature": "sig-text"},
            {"text": " Venez."},
        ],
    }


async def test_signatures_that_do_not_fit_are_left_out(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    """Stored state that does not match the message (or is not the expected shape) puts
    no signature anywhere; the rest of the message goes as usual."""
    fake.scripts[MODEL] = Script([text("ok"), finish()])
    weird: list[Any] = [
        {"provider": "gemini"},
        {"provider": "gemini", "thought_signatures": "nonsense"},
        {
            "provider": "gemini",
            "thought_signatures": {
                "calls": {"0": 7, "1": "sig-no-such-call"},
                "text": [[0, 99, "sig-too-far"], [0, "2", "sig"], "junk", [True, 2, "sig"]],
                "end": "",
            },
        },
    ]
    for state in weird:
        tool_call = ToolCall(id="call_a", name="get_time", arguments={})
        messages = [
            ChatMessage(role=Role.USER, content="time?"),
            ChatMessage(role=Role.ASSISTANT, content="Looking.", tool_calls=[tool_call]),
            ChatMessage(role=Role.TOOL, content="noon", tool_call_id="call_a"),
        ]
        messages[1].provider_state = state
        await collect(provider, ModelRequest(model=MODEL, messages=messages, tools=TOOLS))
        assert fake.requests[-1].body["contents"][1] == {
            "role": "model",
            "parts": [{"text": "Looking."}, {"functionCall": {"name": "get_time", "args": {}}}],
        }


async def test_images_go_before_the_text(provider: GeminiProvider, fake: FakeGemini) -> None:
    fake.scripts[MODEL] = Script([text("Two cats."), finish()])
    png = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUg=="
    messages = [
        ChatMessage(
            role=Role.USER,
            content="What are these?",
            images=[
                png,
                "https://example.com/pets/cat.JPG?size=large",
                "http://example.com/b.webp",
                "https://example.com/render?id=7",  # no extension: no mimeType guessed
            ],
        ),
        ChatMessage(role=Role.ASSISTANT, content="Cats."),
        ChatMessage(role=Role.USER, images=["data:image/webp;base64,UklGRg=="]),  # no text
    ]
    await collect(provider, ModelRequest(model=MODEL, messages=messages))
    assert fake.requests[-1].body["contents"] == [
        {
            "role": "user",
            "parts": [
                {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgoAAAANSUhEUg=="}},
                {
                    "fileData": {
                        "fileUri": "https://example.com/pets/cat.JPG?size=large",
                        "mimeType": "image/jpeg",
                    }
                },
                {"fileData": {"fileUri": "http://example.com/b.webp", "mimeType": "image/webp"}},
                {"fileData": {"fileUri": "https://example.com/render?id=7"}},
                {"text": "What are these?"},
            ],
        },
        {"role": "model", "parts": [{"text": "Cats."}]},
        {
            "role": "user",
            "parts": [{"inlineData": {"mimeType": "image/webp", "data": "UklGRg=="}}],
        },
    ]


# ------------------------------------------------------------------------ cancellation


async def test_aclose_mid_stream_closes_the_connection(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    fake.scripts[MODEL] = Script([text("one "), text("two ")], end="hold")
    stream = provider.stream(request())
    assert [await anext(stream), await anext(stream)] == [TextPart("one "), TextPart("two ")]
    assert fake.active_streams == 1
    await stream.aclose()
    assert await wait_until(lambda: fake.active_streams == 0, within=1.0)
    fake.scripts[MODEL] = Script([text("again"), finish()])
    _, acc = await collect(provider, request())  # the adapter still works afterwards
    assert acc.text == "again"


async def test_provider_aclose_leaves_nothing_open(fake: FakeGemini) -> None:
    fake.scripts[MODEL] = Script([text("a"), finish()])
    fake.scripts["other"] = Script([text("b"), finish()])
    with no_resource_warnings():
        provider = GeminiProvider(fake.base_url)
        await provider.aclose()  # never used: nothing to close
        await collect(provider, request())
        await collect(provider, ModelRequest(model="other", messages=[]))
        await provider.aclose()
        _, acc = await collect(provider, request())  # opens a new client
        assert acc.text == "a"
        await provider.aclose()
        del provider
    assert "x-goog-api-key" not in fake.requests[-1].headers  # no key: no header


# ------------------------------------------------------------------------------ models


async def test_list_models(provider: GeminiProvider, fake: FakeGemini) -> None:
    generate = ["generateContent", "countTokens"]
    fake.models = [
        {"name": "models/gemini-2.0-flash", "supportedGenerationMethods": generate},
        {"name": "models/text-embedding-004", "supportedGenerationMethods": ["embedContent"]},
        {"name": "models/gemini-1.5-pro", "supportedGenerationMethods": generate},
        {"name": "models/aqa"},
        {"name": "models/gemini-2.5-pro", "supportedGenerationMethods": generate},
    ]
    assert await provider.list_models() == [
        "gemini-1.5-pro",
        "gemini-2.0-flash",
        "gemini-2.5-pro",
    ]
    pages = [r for r in fake.requests if r.method == "GET"]
    assert len(pages) == 3  # followed nextPageToken
    assert all(r.headers["x-goog-api-key"] == KEY and KEY not in r.target for r in pages)


async def test_list_models_errors(fake: FakeGemini) -> None:
    provider = GeminiProvider(fake.base_url.replace("/v1beta", "/v0"), api_key=KEY)
    with pytest.raises(UpstreamError) as info:
        await provider.list_models()
    assert info.value.code == "upstream_not_found"
    assert "HTTP 404" in info.value.message and "NOT_FOUND" in info.value.message


async def test_calls_cut_short_keep_their_finish_reason(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    fake.scripts[MODEL] = Script([finish("MAX_TOKENS", parts=[call("get_time", {})])])
    _, acc = await collect(provider, request(tools=TOOLS))
    assert acc.finish_reason == "length"
    assert [c.name for c in acc.finish_tool_calls()] == ["get_time"]


async def test_a_whole_json_answer(provider: GeminiProvider, fake: FakeGemini) -> None:
    """A server that ignores ``alt=sse`` answers one JSON array of responses."""
    fake.scripts[MODEL] = Script([text("Hello "), finish(parts=[{"text": "there"}])], whole=True)
    _, acc = await collect(provider, request())
    assert (acc.text, acc.finish_reason) == ("Hello there", "stop")
