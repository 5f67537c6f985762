from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from parley.events import FinishPart, ModelEvent, ReasoningPart, TextPart, ToolCallPart, UsagePart
from parley.providers.accumulator import AnswerAccumulator
from parley.providers.base import ChatMessage, ModelOptions, ModelRequest
from parley.providers.demo import DemoProvider, fill_arguments
from parley.types import FunctionSpec, Role, ToolCall, ToolSpec
from tests.providers.helpers import ALLOWED_AUTO, ALLOWED_BOTH, ONE_FUNCTION

WEATHER = ToolSpec(
    function=FunctionSpec(
        name="get_weather",
        parameters={
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "days": {"type": "integer"},
                "metric": {"type": "boolean"},
                "tags": {"type": "array"},
            },
        },
    )
)
TIME = ToolSpec(
    function=FunctionSpec(
        name="get_time",
        parameters={
            "type": "object",
            "properties": {"zone": {"type": "string"}, "offset": {"type": "number"}},
        },
    )
)


def user(text: str) -> ChatMessage:
    return ChatMessage(role=Role.USER, content=text)


async def run(request: ModelRequest) -> tuple[list[ModelEvent], AnswerAccumulator]:
    events = [event async for event in DemoProvider(delay=0).stream(request)]
    acc = AnswerAccumulator()
    for event in events:
        acc.add(event)
    return events, acc


async def demo_calls(text: str, tools: list[ToolSpec], **options: Any) -> list[ToolCall]:
    """The calls the demo makes for ``text`` with these options; [] for a text answer."""
    request = ModelRequest(
        model="demo", messages=[user(text)], tools=tools, options=ModelOptions(**options)
    )
    events, acc = await run(request)
    assert acc.finish_reason == ("tool_calls" if acc.has_tool_calls else "stop")
    assert isinstance(events[0], ReasoningPart)
    return acc.finish_tool_calls() if acc.has_tool_calls else []


async def test_plain_reply_is_labelled_and_echoes_the_user() -> None:
    events, acc = await run(ModelRequest(model="x", messages=[user("What is   Parley?")]))
    assert acc.text.startswith("Demo model:")
    assert "What is Parley?" in acc.text
    assert "demo model" in acc.text
    assert "provider" in acc.text
    assert acc.finish_reason == "stop"
    assert not acc.has_tool_calls
    # a reasoning preamble first, the text in several chunks, usage then finish last
    assert isinstance(events[0], ReasoningPart) and isinstance(events[1], ReasoningPart)
    assert acc.reasoning
    assert sum(isinstance(e, TextPart) for e in events) > 5
    assert isinstance(events[-2], UsagePart) and isinstance(events[-1], FinishPart)
    assert acc.usage.input_tokens == 3
    assert acc.usage.output_tokens > 10
    # a word is a token: the preamble's words are the reasoning tokens, among the output
    reasoning_words = len(acc.reasoning.split())
    assert acc.usage.reasoning_tokens == reasoning_words > 0
    assert acc.usage.output_tokens == reasoning_words + len(acc.text.split())


async def test_reply_is_deterministic() -> None:
    request = ModelRequest(model="x", messages=[user("same question")], tools=[WEATHER])
    first, _ = await run(request)
    second, _ = await run(request)
    assert first == second


async def test_no_tool_named_gives_text_even_with_tools() -> None:
    _, acc = await run(ModelRequest(model="x", messages=[user("weather please")], tools=[WEATHER]))
    assert not acc.has_tool_calls and acc.text.startswith("Demo model:")


async def test_tool_name_inside_a_longer_word_does_not_count() -> None:
    _, acc = await run(
        ModelRequest(model="x", messages=[user("use get_weathers")], tools=[WEATHER])
    )
    assert not acc.has_tool_calls


async def test_empty_context_still_answers() -> None:
    _, acc = await run(ModelRequest(model="x", messages=[]))
    assert acc.text.startswith("Demo model:") and acc.finish_reason == "stop"


async def test_single_tool_call_fills_arguments_from_the_schema() -> None:
    (call,) = await demo_calls("Please get_weather Paris for 3 days", [WEATHER, TIME])
    assert call.name == "get_weather"
    assert call.id.startswith("call_")
    assert call.arguments == {"city": "Paris for 3 days", "days": 3, "metric": False}


async def test_whole_message_when_nothing_follows_the_name() -> None:
    (call,) = await demo_calls("  what does get_weather   ", [WEATHER])
    assert call.arguments == {"city": "what does get_weather", "metric": False}


async def test_number_property_takes_the_first_number() -> None:
    (call,) = await demo_calls("get_time Tokyo +9.5 or 10", [TIME])
    assert call.arguments == {"zone": "Tokyo +9.5 or 10", "offset": 9.5}


def test_an_enum_property_takes_a_value_the_message_names() -> None:
    schema = {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "unit": {"type": "string", "enum": ["C", "F"], "default": "C"},
            "level": {"type": "integer", "enum": [1, 2, 3]},
            "mode": {"enum": ["fast", "slow"]},
        },
    }
    assert fill_arguments(schema, "Lisbon in f, slow please, 2") == {
        "city": "Lisbon in f, slow please, 2",
        "unit": "F",
        "level": 2,
        "mode": "slow",
    }
    assert fill_arguments(schema, "Oslo") == {
        "city": "Oslo",
        "unit": "C",
        "level": 1,
        "mode": "fast",
    }


async def test_two_tool_names_give_two_parallel_calls() -> None:
    events, acc = await run(
        ModelRequest(
            model="x",
            messages=[user("get_weather Oslo 2 then get_time UTC")],
            tools=[TIME, WEATHER],
        )
    )
    fragments = [e for e in events if isinstance(e, ToolCallPart)]
    assert {f.index for f in fragments} == {0, 1}
    assert len(fragments) > 2  # arguments come in several fragments
    assert isinstance(events[-1], FinishPart) and events[-1].reason == "tool_calls"
    first, second = acc.finish_tool_calls()
    assert (first.name, first.arguments) == (
        "get_weather",
        {"city": "Oslo 2 then", "days": 2, "metric": False},
    )
    assert (second.name, second.arguments) == ("get_time", {"zone": "UTC"})
    assert first.id != second.id


async def test_tool_name_in_an_older_message_is_ignored() -> None:
    messages = [
        user("get_weather Rome"),
        ChatMessage(role=Role.ASSISTANT, content="ok"),
        user("thanks"),
    ]
    _, acc = await run(ModelRequest(model="x", messages=messages, tools=[WEATHER]))
    assert not acc.has_tool_calls


def tool_turn(results: dict[str, tuple[str, str]]) -> list[ChatMessage]:
    calls = [
        ToolCall(id=call_id, name=name, arguments={}) for call_id, (name, _) in results.items()
    ]
    messages = [user("weather and time"), ChatMessage(role=Role.ASSISTANT, tool_calls=calls)]
    messages += [
        ChatMessage(role=Role.TOOL, content=output, tool_call_id=call_id)
        for call_id, (_, output) in results.items()
    ]
    return messages


async def test_tool_results_are_quoted_verbatim() -> None:
    messages = tool_turn({"c1": ("get_weather", "sunny, 21C"), "c2": ("get_time", "12:00")})
    _, acc = await run(ModelRequest(model="x", messages=messages, tools=[WEATHER, TIME]))
    assert acc.text == (
        'Demo model: the tool get_weather returned "sunny, 21C". '
        'Demo model: the tool get_time returned "12:00".'
    )
    assert acc.finish_reason == "stop" and not acc.has_tool_calls


@pytest.mark.parametrize("delay", [0.0, 0.002])
async def test_delay_is_configurable(delay: float) -> None:
    provider = DemoProvider(delay=delay)
    assert provider.delay == delay
    events = [e async for e in provider.stream(ModelRequest(model="x", messages=[user("hi")]))]
    assert isinstance(events[-1], FinishPart)


async def test_closing_the_stream_early_stops_it() -> None:
    stream = DemoProvider(delay=0).stream(ModelRequest(model="x", messages=[user("hi")]))
    first: Any = await anext(stream)
    await stream.aclose()
    assert isinstance(first, ReasoningPart)
    with pytest.raises(StopAsyncIteration):
        await anext(stream)


async def test_default_delay_makes_streaming_visible() -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    events = [
        e async for e in DemoProvider().stream(ModelRequest(model="x", messages=[user("hi")]))
    ]
    assert loop.time() - start >= 0.001 * len(events)


# ------------------------------------------------------------------------ tool choice

BOTH = [WEATHER, TIME]


def named(calls: list[ToolCall]) -> list[tuple[str, dict[str, Any]]]:
    return [(call.name, call.arguments) for call in calls]


@pytest.mark.parametrize("choice", [None, "auto"])
async def test_auto_calls_the_tools_named(choice: str | None) -> None:
    calls = await demo_calls("get_time UTC", BOTH, tool_choice=choice)
    assert named(calls) == [("get_time", {"zone": "UTC"})]
    assert await demo_calls("what time is it", BOTH, tool_choice=choice) == []


async def test_none_never_calls_a_tool() -> None:
    assert await demo_calls("get_weather Oslo and get_time UTC", BOTH, tool_choice="none") == []


async def test_required_calls_the_tools_named() -> None:
    calls = await demo_calls("get_time CET please", BOTH, tool_choice="required")
    assert named(calls) == [("get_time", {"zone": "CET please"})]


async def test_required_calls_the_first_tool_when_none_is_named() -> None:
    request = ModelRequest(
        model="demo",
        messages=[user("  Oslo for 2 days  ")],
        tools=BOTH,
        options=ModelOptions(tool_choice="required"),
    )
    events, acc = await run(request)
    assert named(acc.finish_tool_calls()) == [
        ("get_weather", {"city": "Oslo for 2 days", "days": 2, "metric": False})
    ]
    assert "required" in "".join(e.text for e in events if isinstance(e, ReasoningPart))


async def test_one_function_is_the_only_call() -> None:
    choice = ONE_FUNCTION
    # Named: its text; not named: the whole message; another tool named: not called.
    assert named(await demo_calls("get_time UTC", BOTH, tool_choice=choice)) == [
        ("get_time", {"zone": "UTC"})
    ]
    assert named(await demo_calls("what time in Oslo +1", BOTH, tool_choice=choice)) == [
        ("get_time", {"zone": "what time in Oslo +1", "offset": 1})
    ]
    assert named(await demo_calls("get_weather Oslo", BOTH, tool_choice=choice)) == [
        ("get_time", {"zone": "get_weather Oslo"})
    ]


async def test_one_function_not_offered_gives_text() -> None:
    choice = {"type": "function", "name": "get_stock"}
    assert await demo_calls("get_stock ACME", BOTH, tool_choice=choice) == []


@pytest.mark.parametrize("mode", ["auto", "required"])
async def test_allowed_tools_only_are_called(mode: str) -> None:
    choice = {**ALLOWED_AUTO, "mode": mode}
    calls = await demo_calls("get_weather Oslo then get_time UTC", BOTH, tool_choice=choice)
    assert named(calls) == [("get_time", {"zone": "UTC"})]
    calls = await demo_calls("get_weather Oslo", BOTH, tool_choice=choice)
    expected = [("get_time", {"zone": "get_weather Oslo"})] if mode == "required" else []
    assert named(calls) == expected


async def test_allowed_tools_required_takes_the_first_offered_of_the_list() -> None:
    calls = await demo_calls("Oslo", BOTH, tool_choice=ALLOWED_BOTH)
    assert named(calls) == [("get_weather", {"city": "Oslo", "metric": False})]


async def test_parallel_calls_off_makes_only_the_first_call() -> None:
    text = "get_weather Oslo then get_time UTC"
    assert len(await demo_calls(text, BOTH)) == 2
    calls = await demo_calls(text, BOTH, parallel_tool_calls=False)
    assert named(calls) == [("get_weather", {"city": "Oslo then", "metric": False})]


def test_a_string_property_with_a_pattern_takes_only_the_part_that_matches() -> None:
    schema = {
        "type": "object",
        "properties": {
            "zone": {"type": "string", "pattern": "^[A-Z][a-z]+/[A-Za-z_]+$"},
            "expression": {"type": "string", "pattern": r"^[-+*/().0-9\s]+$"},
        },
        "required": ["expression"],
    }
    assert fill_arguments(schema, "in Europe/Lisbon, what is (2 + 3) * 4?") == {
        "zone": "Europe/Lisbon",
        "expression": "(2 + 3) * 4",
    }
    # No match: the optional property is left out, the required one gets the whole text.
    assert fill_arguments(schema, "and") == {"expression": "and"}
    # A pattern Python cannot compile counts as no match.
    broken = {"type": "object", "properties": {"a": {"type": "string", "pattern": "(?<"}}}
    assert fill_arguments(broken, "text") == {}


async def test_the_web_pages_tools_get_sensible_arguments_from_a_natural_message() -> None:
    from parley.web.tools import default_tools

    tools = [
        ToolSpec(function=FunctionSpec(name=d["name"], parameters=d["parameters"]))
        for d in default_tools().definitions()
    ]
    time_call, sum_call = await demo_calls("what is the current_time and calculator 2+3", tools)
    assert (time_call.name, time_call.arguments) == ("current_time", {})
    assert (sum_call.name, sum_call.arguments) == ("calculator", {"expression": "2+3"})
    (call,) = await demo_calls("current_time in Europe/Lisbon please", tools)
    assert call.arguments == {"timezone": "Europe/Lisbon"}
    (call,) = await demo_calls("Use the calculator: what is (2 + 3) * 4?", tools)
    assert call.arguments == {"expression": "(2 + 3) * 4"}
    assert default_tools().execute("calculator", {"expression": "(2 + 3) * 4"}) == ("20", False)
    output, is_error = default_tools().execute("current_time", {})
    assert not is_error and "UTC" in output


async def demo_text(text: str, **options: Any) -> str:
    request = ModelRequest(model="demo", messages=[user(text)], options=ModelOptions(**options))
    _, acc = await run(request)
    assert acc.finish_reason == "stop"
    return acc.text


async def test_json_mode_answers_one_json_object() -> None:
    answer = json.loads(await demo_text("hello there", response_format={"type": "json_object"}))
    assert isinstance(answer, dict)
    assert "hello there" in answer["answer"]


async def test_a_json_schema_format_is_filled_from_the_message() -> None:
    schema = {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "days": {"type": "integer"},
            "unit": {"enum": ["c", "f"]},
            "tags": {"type": "array", "items": {"type": "string"}},
            "score": {"type": "number"},
        },
        "required": ["city", "days", "unit", "tags", "score"],
        "additionalProperties": False,
    }
    fmt = {"type": "json_schema", "name": "weather", "schema": schema, "strict": True}
    answer = json.loads(await demo_text("Paris for 3 days in f", response_format=fmt))
    # Every required property is there, of its type: a schema-checking client accepts it.
    assert answer == {
        "city": "Paris for 3 days in f",
        "days": 3,
        "unit": "f",
        "tags": [],
        "score": 3,
    }


async def test_a_text_format_is_a_plain_answer() -> None:
    text = await demo_text("hi", response_format={"type": "text"})
    assert text.startswith("Demo model:")


def test_a_number_property_the_text_leaves_out_takes_its_default() -> None:
    schema = {
        "type": "object",
        "properties": {
            "sides": {"type": "integer", "default": 6},
            "count": {"type": "number", "default": 2},
            "limit": {"type": "integer"},
            "odd": {"type": "integer", "default": "six"},  # not a number: left out
        },
    }
    assert fill_arguments(schema, "please") == {"sides": 6, "count": 2}
    assert fill_arguments(schema, "twenty 20") == {"sides": 20, "count": 20, "limit": 20, "odd": 20}


async def test_it_calls_the_example_mcp_servers_tool_the_message_names() -> None:
    from parley.mcp.example import TOOLS as EXAMPLE

    tools = [
        ToolSpec(function=FunctionSpec(name=t.name, parameters=dict(t.input_schema)))
        for t in EXAMPLE
    ]
    (dice,) = await demo_calls("roll_dice please", tools)
    assert (dice.name, dice.arguments) == ("roll_dice", {"sides": 6, "count": 2})
    (count,) = await demo_calls("use word_count on: the quick brown fox", tools)
    assert count.arguments == {"text": "on: the quick brown fox"}
    (clock,) = await demo_calls("what does the clock say?", tools)
    assert (clock.name, clock.arguments) == ("clock", {})
