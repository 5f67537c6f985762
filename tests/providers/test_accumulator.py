from __future__ import annotations

import pytest

from parley.errors import UpstreamError
from parley.events import FinishPart, ReasoningPart, TextPart, ToolCallPart, UsagePart
from parley.providers.accumulator import AnswerAccumulator
from parley.types import ToolCall, Usage


def accumulate(*events: object) -> AnswerAccumulator:
    acc = AnswerAccumulator()
    for event in events:
        acc.add(event)  # type: ignore[arg-type]
    return acc


def test_text_reasoning_usage_and_finish() -> None:
    acc = accumulate(
        ReasoningPart("Let me "),
        ReasoningPart("think."),
        TextPart("Hel"),
        TextPart("lo"),
        TextPart("!"),
        UsagePart(input_tokens=12, output_tokens=3),
        FinishPart("stop"),
    )
    assert acc.text == "Hello!"
    assert acc.text == "Hello!"  # reading twice gives the same answer
    assert acc.reasoning == "Let me think."
    assert (acc.usage.input_tokens, acc.usage.output_tokens) == (12, 3)
    assert acc.finish_reason == "stop"
    assert not acc.has_tool_calls
    assert acc.finish_tool_calls() == []


def test_the_layout_keeps_the_order_of_reasoning_and_text() -> None:
    plain = accumulate(ReasoningPart("a"), ReasoningPart("b"), TextPart("cd"), TextPart(""))
    assert plain.layout is None and (plain.reasoning, plain.text) == ("ab", "cd")
    assert accumulate(TextPart("only")).layout is None
    acc = accumulate(
        ReasoningPart("think "),
        TextPart(""),  # nothing: no segment
        TextPart("Let me check."),
        ReasoningPart("again"),
        ReasoningPart(" and sum up", summary=True),
        TextPart("Done."),
    )
    assert acc.layout == [
        ["reasoning", 6],
        ["text", 13],
        ["reasoning", 5],
        ["summary", 11],
        ["text", 5],
    ]
    assert (acc.reasoning, acc.text) == ("think again and sum up", "Let me check.Done.")
    assert accumulate(ReasoningPart("s", summary=True), TextPart("t")).layout == [
        ["summary", 1],
        ["text", 1],
    ]


def test_text_keeps_growing_after_a_read() -> None:
    acc = accumulate(TextPart("a"), TextPart("b"))
    assert acc.text == "ab"
    acc.add(TextPart("c"))
    assert acc.text == "abc"


def test_empty_accumulator() -> None:
    acc = AnswerAccumulator()
    assert (acc.text, acc.reasoning, acc.finish_reason) == ("", "", None)


def test_split_usage_keeps_each_count() -> None:
    acc = accumulate(
        UsagePart(input_tokens=10, cached_tokens=8), UsagePart(output_tokens=7, reasoning_tokens=5)
    )
    assert (acc.input_tokens, acc.output_tokens) == (10, 7)
    assert (acc.reasoning_tokens, acc.cached_tokens) == (5, 8)
    assert acc.usage == Usage(input_tokens=10, output_tokens=7, reasoning_tokens=5, cached_tokens=8)


def test_the_latest_usage_wins_even_when_lower() -> None:
    # Running totals: the last part is the count (Gemini's first event may count more).
    acc = accumulate(
        UsagePart(input_tokens=169, reasoning_tokens=40),
        UsagePart(input_tokens=79, output_tokens=42, reasoning_tokens=30),
    )
    assert (acc.input_tokens, acc.output_tokens, acc.reasoning_tokens) == (79, 42, 30)


def test_an_all_zero_usage_erases_nothing() -> None:
    acc = accumulate(UsagePart(45, 2, reasoning_tokens=1, cached_tokens=40), UsagePart())
    assert (acc.input_tokens, acc.output_tokens) == (45, 2)
    assert (acc.reasoning_tokens, acc.cached_tokens) == (1, 40)


def test_parallel_calls_with_interleaved_fragments_stay_separate() -> None:
    acc = accumulate(
        ToolCallPart(index=0, id="call_a", name="get_weather"),
        ToolCallPart(index=1, id="call_b", name="get_time"),
        ToolCallPart(index=0, arguments='{"city": '),
        ToolCallPart(index=1, arguments='{"zone": "U'),
        ToolCallPart(index=0, arguments='"Paris"}'),
        ToolCallPart(index=1, arguments='TC"}'),
        FinishPart("tool_calls"),
    )
    assert acc.has_tool_calls
    assert acc.finish_tool_calls() == [
        ToolCall(id="call_a", name="get_weather", arguments={"city": "Paris"}),
        ToolCall(id="call_b", name="get_time", arguments={"zone": "UTC"}),
    ]


def test_same_id_on_different_indexes_is_not_merged() -> None:
    # "same id OR same index" merging would collapse these into one call.
    acc = accumulate(
        ToolCallPart(index=0, id="dup", name="a", arguments="{}"),
        ToolCallPart(index=1, id="dup", name="b", arguments="{}"),
    )
    assert [call.name for call in acc.finish_tool_calls()] == ["a", "b"]


def test_calls_keyed_by_id_when_there_is_no_index() -> None:
    acc = accumulate(
        ToolCallPart(id="x", name="first", arguments='{"n": '),
        ToolCallPart(id="y", name="second", arguments='{"m": 2}'),
        ToolCallPart(id="x", arguments="1}"),
    )
    assert acc.finish_tool_calls() == [
        ToolCall(id="x", name="first", arguments={"n": 1}),
        ToolCall(id="y", name="second", arguments={"m": 2}),
    ]


def test_fragment_without_index_or_id_continues_the_last_call() -> None:
    acc = accumulate(
        ToolCallPart(id="x", name="f", arguments='{"a"'), ToolCallPart(arguments=": 1}")
    )
    assert acc.finish_tool_calls() == [ToolCall(id="x", name="f", arguments={"a": 1})]


def test_order_is_first_appearance_not_index() -> None:
    acc = accumulate(
        ToolCallPart(index=3, id="c3", name="late"), ToolCallPart(index=1, id="c1", name="early")
    )
    assert [call.id for call in acc.finish_tool_calls()] == ["c3", "c1"]


@pytest.mark.parametrize("raw", ["", "  ", "\n"])
def test_empty_arguments_become_an_empty_object(raw: str) -> None:
    acc = accumulate(ToolCallPart(index=0, id="c", name="ping", arguments=raw))
    assert acc.finish_tool_calls() == [ToolCall(id="c", name="ping", arguments={})]


@pytest.mark.parametrize("raw", ['{"city": "Par', "{'a': 1}", "[1, 2]", '"text"', "3", "null"])
def test_bad_arguments_are_kept_as_an_invalid_call(raw: str) -> None:
    acc = accumulate(
        ToolCallPart(index=0, id="c", name="get_weather", arguments=raw),
        ToolCallPart(index=1, id="d", name="get_time", arguments='{"tz": "UTC"}'),
    )
    calls = acc.finish_tool_calls()
    assert calls == [
        ToolCall(id="c", name="get_weather", arguments={}),
        ToolCall(id="d", name="get_time", arguments={"tz": "UTC"}),
    ]
    assert list(acc.invalid) == ["c"]
    error = acc.invalid["c"]
    assert error.startswith("Error: the tool get_weather was not run")
    assert raw in error  # the model sees what it sent


def test_huge_bad_arguments_are_quoted_cut_short() -> None:
    raw = "{" + "x" * 10_000
    acc = accumulate(ToolCallPart(index=0, id="c", name="f", arguments=raw))
    acc.finish_tool_calls()
    assert len(acc.invalid["c"]) < 2300
    assert raw[:2000] + "..." in acc.invalid["c"]


def test_call_without_name_raises() -> None:
    acc = accumulate(ToolCallPart(index=0, id="c", arguments="{}"))
    with pytest.raises(UpstreamError) as info:
        acc.finish_tool_calls()
    assert info.value.code == "malformed_tool_call"


def test_call_without_id_gets_a_generated_one() -> None:
    acc = accumulate(
        ToolCallPart(index=0, name="a", arguments="{}"),
        ToolCallPart(index=1, name="b", arguments="{}"),
    )
    first, second = acc.finish_tool_calls()
    assert first.id.startswith("call_") and second.id.startswith("call_")
    assert first.id != second.id


def test_a_repeated_id_within_one_answer_is_replaced() -> None:
    acc = accumulate(
        ToolCallPart(index=0, id="call_0", name="a", arguments="{}"),
        ToolCallPart(index=1, id="call_0", name="b", arguments="[]"),
    )
    first, second = acc.finish_tool_calls()
    assert first.id == "call_0" and second.id != "call_0"
    assert list(acc.invalid) == [second.id]


def test_an_id_taken_earlier_in_the_thread_is_replaced() -> None:
    acc = accumulate(
        ToolCallPart(index=0, id="call_0", name="a", arguments="[]"),
        ToolCallPart(index=1, id="call_1", name="b", arguments="{}"),
    )
    first, second = acc.finish_tool_calls(taken=["call_0"])
    assert first.id != "call_0" and second.id == "call_1"
    assert list(acc.invalid) == [first.id]  # the tool error follows the new id
