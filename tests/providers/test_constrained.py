"""Tool calls through constrained output (``parley.providers.constrained``): the request a
model without tool calling is sent, its history in plain text, and its JSON answer read
back as it streams; then the wrapper around the Chat Completions adapter against the fake
upstream's ``constrained`` model, over loopback, and in the registry."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncGenerator, Sequence
from pathlib import Path
from typing import Any

import pytest

from parley.config import Settings
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
from parley.providers.base import ChatMessage, ModelOptions, ModelRequest
from parley.providers.constrained import (
    FORMAT_NAME,
    ConstrainedTools,
    Plan,
    constrained_request,
    plain_history,
    read_answer,
)
from parley.providers.openai_chat import OpenAIChatProvider
from parley.providers.registry import ProviderRegistry
from parley.testing.fake_constrained import CONSTRAINED_TEXT, results_reply
from parley.testing.fake_upstream import FakeUpstream
from parley.types import FunctionSpec, Role, ToolCall, ToolSpec
from tests.providers.helpers import ALLOWED_AUTO, ALLOWED_BOTH, ONE_FUNCTION

WEATHER = ToolSpec(
    function=FunctionSpec(
        name="get_weather",
        description="Weather for a city",
        parameters={
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city"],
        },
    )
)
TIME = ToolSpec(
    function=FunctionSpec(
        name="get_time",
        parameters={
            "type": "object",
            "properties": {"zone": {"type": "string", "enum": ["UTC", "CET"]}},
        },
    )
)
TOOLS = [WEATHER, TIME]
ALL = Plan(tools=("get_weather", "get_time"), answer=True, several=True, json_answer=False)


def asked(
    tools: Sequence[ToolSpec] = TOOLS, instructions: str | None = None, **options: Any
) -> ModelRequest:
    return ModelRequest(
        model="m",
        messages=[ChatMessage(role=Role.USER, content="What is the weather in Paris?")],
        instructions=instructions,
        tools=list(tools),
        options=ModelOptions(**options),
    )


def branches(request: ModelRequest) -> list[dict[str, Any]]:
    """The forms the request's schema allows, each as its properties."""
    fmt = request.options.response_format
    assert fmt is not None and fmt["type"] == "json_schema" and fmt["strict"] is True
    assert fmt["name"] == FORMAT_NAME
    schema = fmt["schema"]
    return [b["properties"] for b in schema.get("anyOf", [schema])]


def forms(request: ModelRequest) -> list[str]:
    """Each branch named: ``answer``, ``tool:NAME`` or ``calls:NAME,NAME``."""
    named = []
    for properties in branches(request):
        if "answer" in properties:
            named.append("answer")
        elif "tool" in properties:
            named.append(f"tool:{properties['tool']['const']}")
        else:
            items = properties["calls"]["items"]
            names = [b["properties"]["tool"]["const"] for b in items.get("anyOf", [items])]
            named.append("calls:" + ",".join(names))
    return named


# ----------------------------------------------------------------------------- request


def test_the_request_offers_a_reply_or_a_call_of_each_tool_with_its_own_schema() -> None:
    sent, plan = constrained_request(asked())
    assert sent.tools == [] and sent.options.tool_choice is None
    assert sent.options.parallel_tool_calls is None
    assert forms(sent) == [
        "answer",
        "tool:get_weather",
        "tool:get_time",
        "calls:get_weather,get_time",
    ]
    answer, weather, _, _ = branches(sent)
    assert answer == {"answer": {"type": "string"}}
    assert list(weather) == ["tool", "arguments"]  # the name is written first
    assert weather["arguments"] == WEATHER.function.parameters
    assert plan == ALL


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (
            {"tool_choice": "auto", "parallel_tool_calls": False},
            ["answer", "tool:get_weather", "tool:get_time"],
        ),
        (
            {"tool_choice": "required"},
            ["tool:get_weather", "tool:get_time", "calls:get_weather,get_time"],
        ),
        ({"tool_choice": ONE_FUNCTION}, ["tool:get_time", "calls:get_time"]),
        ({"tool_choice": ALLOWED_AUTO, "parallel_tool_calls": False}, ["answer", "tool:get_time"]),
        (
            {"tool_choice": ALLOWED_BOTH, "parallel_tool_calls": False},
            ["tool:get_weather", "tool:get_time"],
        ),
    ],
)
def test_the_tool_choice_picks_the_forms(options: dict[str, Any], expected: list[str]) -> None:
    sent, plan = constrained_request(asked(**options))
    assert forms(sent) == expected
    assert plan is not None and plan.answer == ("answer" in expected)


def test_one_form_is_the_schema_itself() -> None:
    sent, _ = constrained_request(asked([TIME], tool_choice="required", parallel_tool_calls=False))
    fmt = sent.options.response_format
    assert fmt is not None and "anyOf" not in fmt["schema"]
    assert fmt["schema"]["properties"]["tool"] == {"const": "get_time"}


@pytest.mark.parametrize("tools", [TOOLS, []])
def test_no_tool_to_call_is_a_plain_request(tools: list[ToolSpec]) -> None:
    fmt = {"type": "json_schema", "name": "x", "schema": {"type": "object"}}
    request = asked(tools, "Be brief.", tool_choice="none", response_format=fmt)
    sent, plan = constrained_request(request)
    assert plan is None and sent.tools == [] and sent.options.tool_choice is None
    assert sent.options.response_format == fmt  # the caller's own, as it is
    assert sent.instructions == "Be brief."


def test_the_instructions_name_the_tools_after_the_callers() -> None:
    sent, _ = constrained_request(asked(instructions="You are terse."))
    assert sent.instructions is not None
    first, rest = sent.instructions.split("\n\n", 1)
    assert first == "You are terse."
    assert '{"answer": "..."}' in rest and '"calls"' in rest
    assert "- get_weather: Weather for a city" in rest
    assert json.dumps(WEATHER.function.parameters, separators=(",", ":")) in rest
    assert "- get_time\n" in rest
    required, _ = constrained_request(asked(tool_choice="required"))
    assert required.instructions is not None and "You must call a tool" in required.instructions
    assert '{"answer"' not in required.instructions


@pytest.mark.parametrize(
    ("fmt", "answer"),
    [
        ({"type": "json_object"}, {"type": "object"}),
        (
            {
                "type": "json_schema",
                "name": "city",
                "schema": {"type": "object", "properties": {"name": {"type": "string"}}},
            },
            {"type": "object", "properties": {"name": {"type": "string"}}},
        ),
        ({"type": "text"}, {"type": "string"}),
    ],
)
def test_a_reply_in_the_callers_format(fmt: dict[str, Any], answer: dict[str, Any]) -> None:
    sent, plan = constrained_request(asked(response_format=fmt))
    assert branches(sent)[0] == {"answer": answer}
    assert plan is not None and plan.json_answer == (fmt["type"] != "text")


def resolve(schema: dict[str, Any], node: Any) -> Any:
    """Every local ``$ref`` of ``node`` resolved against the root ``schema``, deeply (a
    reference followed once: enough for these schemas)."""
    if isinstance(node, dict):
        if "$ref" in node:
            target: Any = schema
            for step in node["$ref"].removeprefix("#/").split("/"):
                target = target[step] if step else target
            return {k: v for k, v in target.items() if k != "$defs"}
        return {k: resolve(schema, v) for k, v in node.items()}
    if isinstance(node, list):
        return [resolve(schema, v) for v in node]
    return node


def test_definitions_of_tools_move_to_the_root_where_references_are_read() -> None:
    place = {"type": "object", "properties": {"city": {"type": "string"}}}
    parameters: dict[str, Any] = {
        "type": "object",
        "properties": {"to": {"$ref": "#/$defs/Place"}, "via": {"$ref": "#/definitions/Place"}},
        "$defs": {"Place": place},
        "definitions": {"Place": place},
    }
    other = {
        "type": "object",
        "properties": {"at": {"$ref": "#/$defs/Place"}},
        "$defs": {"Place": {"type": "string"}},
    }
    tools = [
        ToolSpec(function=FunctionSpec(name="go", parameters=parameters)),
        ToolSpec(function=FunctionSpec(name="stay", parameters=other)),
    ]
    sent, _ = constrained_request(asked(tools, parallel_tool_calls=False))
    fmt = sent.options.response_format
    assert fmt is not None
    schema = fmt["schema"]
    assert sorted(schema["$defs"]) == ["tool0_Place", "tool1_Place"]  # one name, two tools
    go, stay = (b["properties"]["arguments"] for b in schema["anyOf"][1:])
    assert "$defs" not in go and "definitions" not in go
    assert resolve(schema, go)["properties"] == {"to": place, "via": place}
    assert resolve(schema, stay)["properties"] == {"at": {"type": "string"}}
    assert parameters["properties"]["to"] == {"$ref": "#/$defs/Place"}  # the tool's own: as it was


def test_a_schema_that_refers_to_itself_is_a_definition_too() -> None:
    tree = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "children": {"type": "array", "items": {"$ref": "#"}},
        },
    }
    sent, _ = constrained_request(
        asked([ToolSpec(function=FunctionSpec(name="plant", parameters=tree))])
    )
    fmt = sent.options.response_format
    assert fmt is not None
    root = fmt["schema"]["$defs"]["tool0_root"]
    assert root["properties"]["children"]["items"] == {"$ref": "#/$defs/tool0_root"}


# ----------------------------------------------------------------------------- history


def test_calls_and_results_become_plain_text() -> None:
    weather = ToolCall(id="c1", name="get_weather", arguments={"city": "Paris"})
    time = ToolCall(id="c2", name="get_time", arguments={})
    history = [
        ChatMessage(role=Role.SYSTEM, content="Be brief."),
        ChatMessage(role=Role.USER, content="Weather?"),
        ChatMessage(role=Role.ASSISTANT, tool_calls=[weather], reasoning="thinking"),
        ChatMessage(role=Role.TOOL, tool_call_id="c1", content="sunny"),
        ChatMessage(role=Role.ASSISTANT, content="Let me see.", tool_calls=[weather, time]),
        ChatMessage(role=Role.TOOL, tool_call_id="c2", content="noon"),
        ChatMessage(role=Role.TOOL, tool_call_id="c1", content="rain"),
        ChatMessage(role=Role.TOOL, tool_call_id="gone", content="?"),
        ChatMessage(role=Role.USER, content="Thanks"),
    ]
    plain = plain_history(history)
    assert [(m.role, m.content) for m in plain] == [
        (Role.SYSTEM, "Be brief."),
        (Role.USER, "Weather?"),
        (Role.ASSISTANT, '{"tool":"get_weather","arguments":{"city":"Paris"}}'),
        (Role.USER, "Result of get_weather:\nsunny"),
        (
            Role.ASSISTANT,
            'Let me see.\n\n{"calls":[{"tool":"get_weather","arguments":{"city":"Paris"}},'
            '{"tool":"get_time","arguments":{}}]}',
        ),
        (
            Role.USER,
            "Result of call 2 (get_time):\nnoon\n\nResult of call 1 (get_weather):\nrain\n\n"
            "Result of a tool call:\n?",
        ),
        (Role.USER, "Thanks"),
    ]
    assert all(not m.tool_calls and m.tool_call_id is None for m in plain)
    assert plain[2].reasoning == "thinking"
    assert history[2].tool_calls == [weather]  # the caller's messages: as they were


def test_a_history_ending_with_results_ends_with_them() -> None:
    call = ToolCall(id="c1", name="get_time", arguments={})
    plain = plain_history(
        [
            ChatMessage(role=Role.ASSISTANT, tool_calls=[call]),
            ChatMessage(role=Role.TOOL, tool_call_id="c1", content="noon"),
        ]
    )
    assert plain[-1] == ChatMessage(role=Role.USER, content="Result of get_time:\nnoon")


# ---------------------------------------------------------------------------- response


async def events_of(*events: ModelEvent) -> AsyncGenerator[ModelEvent, None]:
    for event in events:
        yield event


async def read(plan: Plan, *events: ModelEvent) -> list[ModelEvent]:
    return [event async for event in read_answer(events_of(*events), plan)]


def chunked(text: str, *cuts: int) -> list[TextPart]:
    bounds = [0, *cuts, len(text)]
    return [TextPart(text[a:b]) for a, b in itertools.pairwise(bounds) if b > a]


def text_of(events: list[ModelEvent]) -> str:
    return "".join(e.text for e in events if type(e) is TextPart)


SAID = 'Say "hi"\\ to\n\tcafé 😀 \u2028 and \U0001f680.'
#: ``{"answer": SAID}`` with every escape JSON has: ``\\uXXXX`` for all non-ASCII (surrogate
#: pairs for the emoji), ``\\/`` for a slash.
ESCAPED = (
    '{"answer": "Say \\"hi\\"\\\\ to\\n\\tcaf\\u00e9 \\ud83d\\ude00 \\u2028 and '
    '\\uD83D\\uDE80\\/."}'
)


async def test_a_reply_is_given_out_as_it_comes_whatever_the_cuts() -> None:
    expected = SAID[:-1] + "/."
    assert json.loads(ESCAPED) == {"answer": expected}
    for cut in range(1, len(ESCAPED)):
        for second in (cut + 1, cut + 3):
            events = await read(ALL, *chunked(ESCAPED, cut, second), FinishPart("stop"))
            assert text_of(events) == expected, (cut, second)
            assert events[-1] == FinishPart("stop")


async def test_a_reply_streams_before_the_answer_ends() -> None:
    parts = chunked('{"answer": "Hello there, friend"}', 15, 22)
    stream = read_answer(events_of(*parts), ALL)
    first = await anext(stream)
    assert first == TextPart("Hel")  # given out before the rest had come
    rest = [event async for event in stream]
    assert text_of([first, *rest]) == "Hello there, friend"


async def test_a_json_reply_is_its_raw_text() -> None:
    plan = Plan(tools=("get_time",), answer=True, several=False, json_answer=True)
    raw = '{ "answer" : {"a": [1, {"b": "x}\\""}], "c": null} }'
    events = await read(plan, *chunked(raw, 5, 20, 30), FinishPart("stop"))
    assert text_of(events) == '{"a": [1, {"b": "x}\\""}], "c": null}'
    number = await read(plan, *chunked('{"answer": 42 }', 12), FinishPart("stop"))
    assert text_of(number) == "42"


async def test_a_call_comes_whole_once_the_object_is_whole() -> None:
    raw = '{"tool": "get_weather", "arguments": {"city": "Paris", "days": 2}}'
    events = await read(
        ALL,
        ReasoningPart("hmm"),
        *chunked(raw, 10, 40),
        FinishPart("stop"),
        UsagePart(input_tokens=5, output_tokens=9),
        StatePart({"k": 1}),
    )
    assert len(events) == 5
    reasoning, call, finish, usage, state = events
    assert reasoning == ReasoningPart("hmm")
    assert type(call) is ToolCallPart and call.index == 0
    assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "Paris", "days": 2}
    assert call.id is not None and call.id.startswith("call_") and len(call.id) == 29
    assert finish == FinishPart("tool_calls")
    assert usage == UsagePart(input_tokens=5, output_tokens=9) and state == StatePart({"k": 1})


async def test_several_calls_are_several_tool_calls() -> None:
    raw = (
        '{"calls": [{"tool": "get_time", "arguments": {"zone": "UTC"}},'
        ' {"tool": "get_time", "arguments": {}}, {"tool": "get_weather", "arguments": {"city": "Oslo"}}]}'
    )
    events = await read(ALL, *chunked(raw, 30), FinishPart("stop"))
    acc = AnswerAccumulator()
    for event in events:
        acc.add(event)
    calls = acc.finish_tool_calls()
    assert [(c.name, c.arguments) for c in calls] == [
        ("get_time", {"zone": "UTC"}),
        ("get_time", {}),
        ("get_weather", {"city": "Oslo"}),
    ]
    assert len({c.id for c in calls}) == 3 and acc.invalid == {}
    assert acc.finish_reason == "tool_calls" and acc.text == ""


async def test_a_call_without_a_finish_still_comes() -> None:
    events = await read(ALL, TextPart('{"tool": "get_time", "arguments": {}}'))
    assert [type(e) for e in events] == [ToolCallPart]


async def test_a_call_cut_at_the_token_limit_is_no_call() -> None:
    events = await read(ALL, TextPart('{"tool": "get_weather", "argum'), FinishPart("length"))
    assert events == [FinishPart("length")]
    cut = await read(ALL, TextPart('{"answer": "Hello the'), FinishPart("length"))
    assert cut == [TextPart("Hello the"), FinishPart("length")]


async def test_a_reply_written_oddly_still_comes_whole() -> None:
    # A first key spelled with an escape is not seen as it streams: the reply comes at the end.
    events = await read(ALL, TextPart('{"\\u0061nswer": "late"}'), FinishPart("stop"))
    assert events == [TextPart("late"), FinishPart("stop")]


async def test_nothing_said_is_passed_on_as_nothing() -> None:
    assert await read(ALL, FinishPart("stop")) == [FinishPart("stop")]


REQUIRED = Plan(tools=("get_time",), answer=False, several=False, json_answer=False)


@pytest.mark.parametrize(
    ("plan", "raw", "said"),
    [
        (ALL, "The weather is fine.", "not a JSON object"),
        (ALL, '{"answer": "ok"', "not valid JSON"),
        (ALL, '["answer"]', "not a JSON object"),
        (ALL, '{"answer": 3}', "not a string"),
        (ALL, '{"answer": "a", "tool": "get_time"}', "neither a reply nor a tool call"),
        (ALL, '{"tool": "rm_rf", "arguments": {}}', "'rm_rf', which is not a tool"),
        (ALL, '{"tool": "get_time", "arguments": "now"}', "arguments are not an object"),
        (ALL, '{"tool": "get_time"}', "neither a reply nor a tool call"),
        (ALL, '{"calls": []}', "a list of calls"),
        (
            ALL,
            '{"calls": [{"tool": "get_time", "arguments": {}}, {"tool": "x", "arguments": {}}]}',
            "'x'",
        ),
        (ALL, '{"answer": "a\\qb"}', "the escape \\q"),
        (ALL, '{"answer": "\\u12G4"}', "four hexadecimal digits"),
        (REQUIRED, '{"answer": "no"}', "a reply where a tool call was required"),
        (REQUIRED, '{"calls": [{"tool": "get_time", "arguments": {}}]}', "a list of calls"),
    ],
)
async def test_an_answer_out_of_the_schema_is_a_typed_error_never_a_call(
    plan: Plan, raw: str, said: str
) -> None:
    seen: list[ModelEvent] = []
    with pytest.raises(UpstreamError) as info:
        async for event in read_answer(events_of(*chunked(raw, 7), FinishPart("stop")), plan):
            seen.append(event)
    assert info.value.code == "upstream_malformed"
    assert said in info.value.message and "could not be read" in info.value.message
    assert not any(type(e) is ToolCallPart for e in seen)


# ------------------------------------------------------------ over loopback, registry


def asked_model(model: str, *messages: ChatMessage | str, **options: Any) -> ModelRequest:
    """A request to ``model`` of the fake with both tools: ``messages``, a string being a
    user message (the fake calls the tools a user message names)."""
    said = [
        ChatMessage(role=Role.USER, content=m) if isinstance(m, str) else m
        for m in messages or ("What is the weather?",)
    ]
    return ModelRequest(
        model=model, messages=said, tools=list(TOOLS), options=ModelOptions(**options)
    )


async def collect(provider: ConstrainedTools, request: ModelRequest) -> AnswerAccumulator:
    acc = AnswerAccumulator()
    async for event in provider.stream(request):
        acc.add(event)
    return acc


async def test_the_chat_adapter_sends_a_schema_and_reads_a_call(
    provider: OpenAIChatProvider, fake: FakeUpstream
) -> None:
    acc = await collect(
        ConstrainedTools(provider), asked_model("constrained", "get_weather in Paris 3 days")
    )
    body = fake.requests[-1]
    assert "tools" not in body and "tool_choice" not in body
    assert "parallel_tool_calls" not in body
    fmt = body["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["name"] == FORMAT_NAME
    assert fmt["json_schema"]["strict"] is True and "anyOf" in fmt["json_schema"]["schema"]
    system = body["messages"][0]
    assert system["role"] == "system" and "- get_weather: Weather for a city" in system["content"]
    calls = acc.finish_tool_calls()
    expected = {"city": "in Paris 3 days", "days": 3}  # what follows the name, its number
    assert [(c.name, c.arguments) for c in calls] == [("get_weather", expected)]
    assert acc.finish_reason == "tool_calls" and acc.input_tokens > 0 and acc.text == ""


async def test_the_chat_adapter_reads_several_calls_then_the_reply_to_their_results(
    provider: OpenAIChatProvider, fake: FakeUpstream
) -> None:
    wrapped = ConstrainedTools(provider)
    question = "get_time and get_weather, please"
    acc = await collect(wrapped, asked_model("constrained:3", question))
    calls = acc.finish_tool_calls()
    assert [c.name for c in calls] == ["get_weather", "get_time", "get_weather"]
    history = [
        ChatMessage(role=Role.USER, content=question),
        ChatMessage(role=Role.ASSISTANT, tool_calls=calls),
        *(
            ChatMessage(role=Role.TOOL, tool_call_id=c.id, content=f"out {i}")
            for i, c in enumerate(calls)
        ),
    ]
    answer = await collect(wrapped, asked_model("constrained:3", *history))
    results = fake.requests[-1]["messages"][-1]
    assert results["role"] == "user"
    assert results["content"] == (
        "Result of call 1 (get_weather):\nout 0\n\nResult of call 2 (get_time):\nout 1\n\n"
        "Result of call 3 (get_weather):\nout 2"
    )
    assert all(m["role"] != "tool" and "tool_calls" not in m for m in fake.requests[-1]["messages"])
    assert answer.text == results_reply(results["content"])
    assert answer.finish_reason == "stop" and not answer.has_tool_calls


async def test_the_chat_adapter_streams_a_reply_with_its_escapes(
    provider: OpenAIChatProvider, fake: FakeUpstream
) -> None:
    wrapped = ConstrainedTools(provider)
    pieces = []
    async for event in wrapped.stream(asked_model("constrained", tool_choice=ALLOWED_AUTO)):
        if type(event) is TextPart:
            pieces.append(event.text)
    assert "".join(pieces) == CONSTRAINED_TEXT and len(pieces) > 5
    schema = fake.requests[-1]["response_format"]["json_schema"]["schema"]
    assert [list(b["properties"]) for b in schema["anyOf"]] == [
        ["answer"],
        ["tool", "arguments"],
        ["calls"],
    ]


async def test_a_model_that_answers_plain_text_fails_the_call_typed(
    provider: OpenAIChatProvider,
) -> None:
    with pytest.raises(UpstreamError) as info:
        await collect(ConstrainedTools(provider), asked_model("text"))
    assert info.value.code == "upstream_malformed"


async def test_no_tool_to_call_passes_the_answer_through(
    provider: OpenAIChatProvider, fake: FakeUpstream
) -> None:
    acc = await collect(ConstrainedTools(provider), asked_model("constrained", tool_choice="none"))
    assert "response_format" not in fake.requests[-1] and "tools" not in fake.requests[-1]
    assert acc.text and not acc.has_tool_calls


def settings_with(tmp_path: Path, toml: str) -> Settings:
    path = tmp_path / "parley.toml"
    path.write_text(toml)
    return Settings(config=path)


async def test_the_registry_wraps_a_constrained_model_and_reads_the_adapter_through_it(
    tmp_path: Path, fake: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PARLEY_CONFIG", raising=False)
    registry = ProviderRegistry(
        settings_with(
            tmp_path,
            f"""
[providers.small]
kind = "openai-chat"
base_url = "{fake.base_url}"
api_key = "sk-test"
tool_calls = "constrained"

[providers.small.models.native]
tool_calls = "native"
""",
        )
    )
    try:
        provider, model_id = registry.resolve("small/constrained")
        assert isinstance(provider, ConstrainedTools) and model_id == "constrained"
        assert isinstance(provider.inner, OpenAIChatProvider)
        assert provider.model_listing == provider.inner.model_listing  # read through it
        assert "text" in (await registry.models("small") or [])
        assert registry.traits("small/constrained") == (frozenset(), False)
        native, _ = registry.resolve("small/native")
        assert native is provider.inner
        acc = await collect(provider, asked_model(model_id, "get_weather"))
        assert [c.name for c in acc.finish_tool_calls()] == ["get_weather"]
    finally:
        await registry.aclose()


async def test_closing_the_stream_stops_the_upstream_call(
    provider: OpenAIChatProvider, fake: FakeUpstream
) -> None:
    stream = ConstrainedTools(provider).stream(asked_model("constrained:1:50"))
    first = await anext(stream)  # the reply has begun: the model is still writing
    assert type(first) is TextPart and fake.active_streams == 1
    await stream.aclose()
    for _ in range(100):  # the fake sees the connection go within a few of its 50 ms gaps
        if fake.active_streams == 0:
            break
        await asyncio.sleep(0.05)
    assert fake.active_streams == 0


class Writing:
    """A model that writes a reply in two pieces, and says when its stream was closed."""

    def __init__(self) -> None:
        self.closed = False

    async def stream(self, request: ModelRequest) -> AsyncGenerator[ModelEvent, None]:
        try:
            yield TextPart('{"answer": "a')
            yield TextPart('b"}')
        finally:
            self.closed = True


async def test_closing_the_stream_closes_the_inner_one_at_once() -> None:
    inner = Writing()
    stream = ConstrainedTools(inner).stream(asked())
    assert await anext(stream) == TextPart("a")
    await stream.aclose()
    assert inner.closed  # by then, not later when it is collected
