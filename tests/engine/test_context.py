"""``engine.context``: what a run's ``truncation`` option keeps of a thread."""

from __future__ import annotations

from parley.engine.context import estimate, fit_tokens, last_messages, truncate
from parley.providers.base import ChatMessage
from parley.types import Role, ToolCall


def thread() -> list[ChatMessage]:
    call = ToolCall(id="c1", name="get_weather", arguments={"city": "Paris"})
    return [
        ChatMessage(Role.USER, "one " * 20),
        ChatMessage(Role.ASSISTANT, "", tool_calls=[call]),
        ChatMessage(Role.TOOL, "sunny", tool_call_id="c1"),
        ChatMessage(Role.ASSISTANT, "It is sunny."),
        ChatMessage(Role.USER, "two " * 20),
    ]


def test_last_messages_never_sends_a_result_without_its_call() -> None:
    messages = thread()
    assert last_messages(messages, 2) == messages[3:]
    assert last_messages(messages, 3) == messages[3:]  # the result's call is cut: so is it
    assert last_messages(messages, 4) == messages[1:]
    assert last_messages(messages, 50) == messages


def test_fit_tokens_keeps_the_newest_messages_within_the_budget() -> None:
    messages = thread()
    newest = estimate(messages[-1])
    assert fit_tokens(messages, newest) == messages[-1:]
    assert fit_tokens(messages, 0) == messages[-1:]  # the newest always goes
    both = newest + estimate(messages[-2])
    assert fit_tokens(messages, both) == messages[-2:]
    everything = sum(estimate(m) for m in messages)
    assert fit_tokens(messages, everything) == messages
    assert fit_tokens(messages, everything - 1) == messages[1:]
    cut = everything - estimate(messages[0]) - 1  # the call goes: its result with it
    assert fit_tokens(messages, cut) == messages[3:]


def test_truncate_reads_the_option_and_counts_what_is_always_sent() -> None:
    messages = thread()
    assert truncate(messages, {"type": "last_messages", "last_messages": 1}) == messages[-1:]
    budget = estimate(messages[-1]) + estimate(messages[-2])
    option = {"type": "auto", "max_prompt_tokens": budget}
    assert truncate(messages, option) == messages[-2:]
    assert truncate(messages, option, fixed="x" * 8) == messages[-1:]
    assert truncate(messages, {"type": "auto"}) == messages
