"""``engine.context``: what a run's ``truncation`` option and the model's context window
keep of a thread."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from parley.engine.context import (
    CHARS_PER_TOKEN,
    Window,
    _scaled,
    _tokens_start,
    answer_room,
    estimate,
    fit_start,
)
from parley.engine.history import items_of
from parley.engine.streaming import build_request
from parley.errors import InvalidRequest
from parley.providers.base import ChatMessage
from parley.store.records import Message, Run
from parley.store.threads import new_message
from parley.types import Role, ToolCall


@dataclass
class Kept:
    """What ``fit_start`` keeps of a thread, and how many of its messages go."""

    messages: list[ChatMessage]
    dropped: int


def truncate(
    messages: list[ChatMessage],
    truncation: dict[str, object],
    fixed: str = "",
    *,
    window: Window | None = None,
    known: dict[int, int] | None = None,
) -> Kept:
    start = fit_start(messages, truncation, fixed, window=window, known=known)
    return Kept(messages[start:], start)


def last_messages(messages: list[ChatMessage], count: int) -> list[ChatMessage]:
    return truncate(messages, {"type": "last_messages", "last_messages": count}).messages


def fit_tokens(messages: list[ChatMessage], budget: int) -> list[ChatMessage]:
    """The newest messages within ``budget`` estimated tokens (``max_prompt_tokens``)."""
    return messages[_tokens_start(messages, budget, lambda i: estimate(messages[i])) :]


def token_costs(
    messages: list[ChatMessage], fixed: str, known: dict[int, int]
) -> tuple[int, list[int]]:
    """The tokens ``fit_start`` counts for ``fixed`` and for each message."""
    fixed_cost, cost = _scaled(
        lambda i: estimate(messages[i]), len(fixed) // CHARS_PER_TOKEN, known
    )
    return fixed_cost, [cost(i) for i in range(len(messages))]


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
    last = truncate(messages, {"type": "last_messages", "last_messages": 1})
    assert (last.messages, last.dropped) == (messages[-1:], 4)
    budget = estimate(messages[-1]) + estimate(messages[-2])
    option = {"type": "auto", "max_prompt_tokens": budget}
    assert truncate(messages, option).messages == messages[-2:]
    assert truncate(messages, option, fixed="x" * 8).messages == messages[-1:]
    assert truncate(messages, {"type": "auto"}).messages == messages
    assert truncate(messages, {"type": "auto"}).dropped == 0


# --------------------------------------------------------------------------- the window


def turns(count: int) -> list[ChatMessage]:
    """``count`` turns of a user question and a 40-character answer; every third turn
    the answer comes through a tool call and its result."""
    messages = []
    for i in range(count):
        messages.append(ChatMessage(Role.USER, f"question {i:04d} " + "q" * 26))
        if i % 3 == 1:
            call = ToolCall(id=f"c{i}", name="lookup", arguments={"n": i})
            messages.append(ChatMessage(Role.ASSISTANT, "", tool_calls=[call]))
            messages.append(ChatMessage(Role.TOOL, "r" * 40, tool_call_id=f"c{i}"))
        messages.append(ChatMessage(Role.ASSISTANT, "a" * 40))
    return messages


def cost(messages: list[ChatMessage], fixed: str = "") -> int:
    return len(fixed) // CHARS_PER_TOKEN + sum(estimate(m) for m in messages)


def test_a_thread_that_fits_is_sent_whole() -> None:
    messages = turns(5)
    fitted = truncate(messages, {}, window=Window(cost(messages)))
    assert (fitted.messages, fitted.dropped) == (messages, 0)


def test_the_oldest_whole_turns_go_first_and_never_a_call_without_its_result() -> None:
    messages = turns(30)
    fixed = "Be brief. " * 20
    window = Window(cost(messages, fixed) // 2, reserve=10)
    fitted = truncate(messages, {"type": "auto"}, fixed, window=window)
    kept = fitted.messages
    assert 0 < fitted.dropped < len(messages)
    assert kept == messages[fitted.dropped :]  # the newest ones, in order
    assert kept[0].role == Role.USER  # cut at the start of a turn
    assert cost(kept, fixed) <= window.tokens - window.reserve
    # One more turn would not have fitted.
    previous = max(i for i in range(fitted.dropped) if messages[i].role == Role.USER)
    assert cost(messages[previous:], fixed) > window.tokens - window.reserve
    calls = {c.id for m in kept for c in m.tool_calls}
    results = {m.tool_call_id for m in kept if m.role == Role.TOOL}
    assert calls == results and calls


def test_the_newest_user_message_and_its_tool_round_are_always_sent() -> None:
    messages = turns(5)[:-1]  # the last turn waits on its tool result: user, call, result
    assert messages[-1].role == Role.TOOL
    own = messages[-3:]
    window = Window(cost(own) + 1, reserve=10_000)  # no room left for anything else
    fitted = truncate(messages, {"type": "auto"}, window=window)
    assert fitted.messages == own and fitted.dropped == len(messages) - 3


def test_a_new_input_larger_than_the_window_fails_with_context_length_exceeded() -> None:
    messages = [*turns(3), ChatMessage(Role.USER, "x" * 4000)]
    with pytest.raises(InvalidRequest) as caught:
        truncate(messages, {"type": "auto"}, window=Window(900))
    assert caught.value.code == "context_length_exceeded"
    assert "1,00" in caught.value.message and "900" in caught.value.message
    # The instructions count: a message that fits alone may not fit with them.
    small = [ChatMessage(Role.USER, "x" * 400)]
    assert truncate(small, {}, window=Window(110)).messages == small
    with pytest.raises(InvalidRequest):
        truncate(small, {}, "i" * 400, window=Window(110))


def test_disabled_truncation_sends_all_or_fails() -> None:
    messages = turns(10)
    whole = cost(messages)
    fitted = truncate(messages, {"type": "disabled"}, window=Window(whole, reserve=100))
    assert fitted.messages == messages  # fits the window, if not with all the room wanted
    with pytest.raises(InvalidRequest) as caught:
        truncate(messages, {"type": "disabled"}, window=Window(whole - 1))
    assert caught.value.code == "context_length_exceeded"
    assert "disabled" in caught.value.message


def test_last_messages_and_the_window_together() -> None:
    messages = turns(30)
    option = {"type": "last_messages", "last_messages": 10}
    roomy = truncate(messages, option, window=Window(100_000))
    assert roomy.messages == last_messages(messages, 10)
    assert roomy.dropped == len(messages) - len(roomy.messages)
    # The last two turns: a tool round (four messages), then a question and its answer.
    tight = truncate(messages, option, window=Window(cost(messages[-6:]) + 2))
    assert tight.messages == messages[-6:] and tight.dropped == len(messages) - 6


def test_a_stored_usage_corrects_the_estimate_of_what_it_counted() -> None:
    messages = turns(20)
    fixed = "f" * 40
    guessed_fixed, guessed = token_costs(messages, fixed, {})
    assert guessed == [estimate(m) for m in messages] and guessed_fixed == 10
    # The provider counted everything up to the answer at index 9 as three times the
    # estimate (a language whose words the estimate undercounts, say).
    counted = 3 * (guessed_fixed + sum(guessed[:10]))
    fixed_cost, costs = token_costs(messages, fixed, {9: counted})
    assert fixed_cost + sum(costs[:10]) >= counted
    assert costs[10:] == guessed[10:]  # what came after is estimated
    # A count below the estimate (older messages were left out of that call) is not used.
    assert token_costs(messages, fixed, {9: 5}) == (guessed_fixed, guessed)
    # So the window keeps fewer messages than the estimate alone would.
    window = Window(cost(messages, fixed) - 10)
    by_estimate = truncate(messages, {}, fixed, window=window)
    by_usage = truncate(messages, {}, fixed, window=window, known={9: counted})
    assert by_estimate.dropped < by_usage.dropped


def test_the_answer_room() -> None:
    assert answer_room(128_000) == 4096
    assert answer_room(1000) == 250  # a quarter of a small window
    assert answer_room(128_000, 1000) == 1000  # the request's max_tokens
    assert answer_room(1000, 5000) == 500  # at most half the window


# --------------------------------------------------------------------------- a turn's request


def a_run(**fields: object) -> Run:
    values: dict[str, object] = {
        "id": "run_1",
        "user_id": "user_1",
        "thread_id": "thread_1",
        "assistant_id": None,
        "model": "p/m",
        "instructions": "Be brief.",
        "tools": [],
        "parameters": {},
        "status": "in_progress",
        "input_tokens": 0,
        "output_tokens": 0,
        "reasoning_tokens": 0,
        "cached_tokens": 0,
        "error_code": None,
        "error_message": None,
        "last_seq": 0,
        "created_at": 0.0,
        "started_at": None,
        "completed_at": None,
        "expires_at": None,
        **fields,
    }
    return Run(**values)  # type: ignore[arg-type]


def stored_thread(count: int) -> list[Message]:
    """``count`` questions and answers, each about 25 tokens by the estimate, with an empty
    answer (a turn that failed before its first token, never sent) after the first."""
    rows = [new_message(thread_id="thread_1", seq=0, role=Role.USER, content="first")]
    rows.append(new_message(thread_id="thread_1", seq=1, role=Role.ASSISTANT, content=""))
    for i in range(count):
        role = Role.USER if i % 2 == 0 else Role.ASSISTANT
        text = f"message {i:03d} " + "lorem ipsum " * 7
        rows.append(new_message(thread_id="thread_1", seq=i + 2, role=role, content=text))
    return rows


def test_a_turns_request_is_fitted_to_the_window_with_room_for_the_answer() -> None:
    context = stored_thread(60)
    whole, dropped = build_request(a_run(), items_of(context), "m", "p")
    assert dropped == 0 and len(whole.messages) == 61  # no window: all but the empty one
    fitted, dropped = build_request(a_run(), items_of(context), "m", "p", window=800)
    assert 0 < dropped < 61 and fitted.messages == whole.messages[dropped:]
    assert fitted.messages[0].role == Role.USER
    assert cost(fitted.messages, "Be brief.") <= 800 - answer_room(800)
    # A larger max_tokens leaves less room for the history.
    wants_more = a_run(parameters={"max_tokens": 390})
    fewer, more_dropped = build_request(wants_more, items_of(context), "m", "p", window=800)
    assert more_dropped > dropped and fewer.parameters["max_tokens"] == 390


def test_a_turns_request_counts_the_usage_stored_with_an_answer() -> None:
    context = stored_thread(60)
    _, by_estimate = build_request(a_run(), items_of(context), "m", "p", window=800)
    # A late answer says its call read and wrote three times the estimate.
    answer = context[59]
    assert answer.role == Role.ASSISTANT
    counted = 3 * cost([ChatMessage(Role(m.role), m.content) for m in context[:60]])
    answer.usage = {"input_tokens": counted, "output_tokens": 20, "reasoning_tokens": 0}
    _, by_usage = build_request(a_run(), items_of(context), "m", "p", window=800)
    assert by_usage > by_estimate


def test_a_turns_request_fails_when_its_new_message_cannot_fit() -> None:
    context = [
        *stored_thread(4),
        new_message(thread_id="thread_1", seq=9, role=Role.USER, content="x" * 4000),
    ]
    with pytest.raises(InvalidRequest) as caught:
        build_request(a_run(), items_of(context), "m", "p", window=800)
    assert caught.value.code == "context_length_exceeded"
    strict = a_run(options={"truncation": {"type": "disabled"}})
    with pytest.raises(InvalidRequest):
        build_request(strict, items_of(stored_thread(60)), "m", "p", window=800)
    _, dropped = build_request(strict, items_of(stored_thread(60)), "m", "p", window=100_000)
    assert dropped == 0
