"""How much of a thread a turn sends its model: the run's ``truncation`` option, and the
model's context window.

The option: ``{"type": "last_messages", "last_messages": N}`` keeps the newest N messages;
``"max_prompt_tokens": T`` (with any type) keeps the newest messages that fit in an
estimate of T tokens, instructions and tools counted. Neither ever splits a tool call from
its result: a result whose call is cut goes with it.

The window (when the model's is known, ``ProviderRegistry.context_window``): what is left
is then fitted to it, less room for the answer (``answer_room``). The instructions and
tools, the newest user message and everything after it (the turn's own tool calls and
results) are always sent; a turn whose such part alone is larger than the window fails
with ``context_length_exceeded`` before any model call. The rest is dropped by whole turns,
oldest first (a turn starts at a user message, so a tool call and its result stay
together); with ``"type": "disabled"`` nothing is dropped, and a thread larger than the
window itself fails the same way instead (one that fits sends all, whatever room is left
for the answer).

Tokens are estimated as the text's characters over four, as no tokenizer is at hand; where
an earlier answer stored its model call's usage, the provider's own count of everything up
to it corrects the estimate of that part (``_scaled``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from parley.errors import InvalidRequest
from parley.providers.base import ChatMessage
from parley.types import Role

#: Characters per token of the estimate.
CHARS_PER_TOKEN = 4
#: The most a turn leaves for the answer when its request names no ``max_tokens`` (and at
#: most a quarter of the window).
DEFAULT_ANSWER_ROOM = 4096
#: The error code of a turn whose input does not fit the model's context window.
CONTEXT_LENGTH_EXCEEDED = "context_length_exceeded"


@dataclass(frozen=True, slots=True)
class Window:
    """A model's context window, in tokens, and the part of it kept for the answer."""

    tokens: int
    reserve: int = 0


def answer_room(window: int, max_tokens: Any = None) -> int:
    """The tokens left for the answer in a window of ``window``: the request's
    ``max_tokens``, else a quarter of the window up to ``DEFAULT_ANSWER_ROOM``; at most
    half the window either way."""
    room = max_tokens if isinstance(max_tokens, int) and max_tokens > 0 else None
    if room is None:
        room = min(window // 4, DEFAULT_ANSWER_ROOM)
    return min(room, window // 2)


def always_sent(instructions: str | None, tools: list[dict[str, Any]]) -> str:
    """The text of a call sent whatever is cut (``fixed``): its instructions and tools."""
    return (instructions or "") + (json.dumps(tools) if tools else "")


def fit_start(
    messages: Sequence[ChatMessage],
    truncation: dict[str, Any],
    fixed: str = "",
    *,
    window: Window | None = None,
    known: dict[int, int] | None = None,
    costs: Callable[[int], int] | None = None,
) -> int:
    """Where what is sent of ``messages`` begins (what comes before is dropped), as the
    run's ``truncation`` option and the model's ``window`` cut them; ``fixed`` is the text
    sent whatever is cut (instructions, tools), counted against ``max_prompt_tokens`` and
    the window. ``known``: the provider's token count of everything up to and including a
    message, by its index (only the newest is used, ``_scaled``). ``costs``: each
    message's estimate by index, when known already.

    Looks at the messages from the newest backwards, only as far as it keeps them (and at
    the count of the newest counted one), so its cost does not grow with a thread's length.

    Raises ``InvalidRequest`` (code ``context_length_exceeded``) when what must be sent,
    or with ``"type": "disabled"`` the whole thread, is larger than the window."""
    total = len(messages)
    if costs is None:
        costs = _Estimates(messages).__getitem__
    fixed_cost, cost = _scaled(costs, len(fixed) // CHARS_PER_TOKEN, known or {})
    start = 0
    if truncation.get("type") == "last_messages" and truncation.get("last_messages"):
        start = _whole_calls_from(messages, max(0, total - int(truncation["last_messages"])))
    budget = truncation.get("max_prompt_tokens")
    if budget:
        allowed = int(budget) - len(fixed) // CHARS_PER_TOKEN
        start = max(start, _tokens_start(messages, allowed, costs))
    if window is not None:
        strict = truncation.get("type") == "disabled"
        start = _window_start(messages, start, cost, fixed_cost, window, strict=strict)
    return start


class _Estimates:
    """Messages' estimates, each worked out when first asked for."""

    def __init__(self, messages: Sequence[ChatMessage]) -> None:
        self.messages = messages
        self.known: dict[int, int] = {}

    def __getitem__(self, index: int) -> int:
        cost = self.known.get(index)
        if cost is None:
            cost = self.known[index] = estimate(self.messages[index])
        return cost


def _scaled(
    costs: Callable[[int], int], fixed_cost: int, known: dict[int, int]
) -> tuple[int, Callable[[int], int]]:
    """``fixed_cost`` and ``costs``, scaled up for the part up to the newest message with
    a ``known`` count when the provider counted that part as more than the estimate. (A
    count may also cover less than the estimate, when older messages were left out of its
    call: then the estimate stands; the sum stops as soon as it passes the count.)"""
    if not known:
        return fixed_cost, costs
    end = max(known)
    counted = known[end]
    guessed, index = fixed_cost, end
    while index >= 0 and guessed <= counted:
        guessed += costs(index)
        index -= 1
    if index >= 0 or not counted > guessed > 0:
        return fixed_cost, costs
    scale = counted / guessed

    def cost(i: int) -> int:
        return math.ceil(costs(i) * scale) if i <= end else costs(i)

    return math.ceil(fixed_cost * scale), cost


def _window_start(
    messages: Sequence[ChatMessage],
    start: int,
    cost: Callable[[int], int],
    fixed_cost: int,
    window: Window,
    *,
    strict: bool = False,
) -> int:
    """Where the newest whole turns of ``messages[start:]`` that fit in the window with
    ``fixed_cost`` and the room for the answer begin; the newest user message and what
    follows it always (see the module's docstring)."""
    newest = len(messages) - 1
    while newest > start and messages[newest].role != Role.USER:
        newest -= 1
    need = fixed_cost + sum(cost(i) for i in range(newest, len(messages)))
    if need > window.tokens:
        raise InvalidRequest(
            f"The new input is about {need:,} tokens, more than the model's context window "
            f"of {window.tokens:,} tokens: shorten the newest message (or the instructions "
            "and tools, which are always sent).",
            code=CONTEXT_LENGTH_EXCEEDED,
        )
    room = max(window.tokens - window.reserve, need)
    used, keep, pending = need, newest, 0
    for i in range(newest - 1, start - 1, -1):
        pending += cost(i)
        if i == start or messages[i].role == Role.USER:
            if used + pending > room:
                break
            used, keep, pending = used + pending, i, 0
    else:
        return start  # everything fits
    if not strict:
        return keep
    whole = used + sum(cost(i) for i in range(start, keep))
    if whole <= window.tokens:
        return start
    raise InvalidRequest(
        f"The input is about {whole:,} tokens, more than the model's context window of "
        f"{window.tokens:,} tokens, and truncation is disabled: shorten it, or allow "
        "older turns to be dropped.",
        code=CONTEXT_LENGTH_EXCEEDED,
    )


def _tokens_start(messages: Sequence[ChatMessage], budget: int, cost: Callable[[int], int]) -> int:
    used, start = 0, len(messages)
    while start > 0:
        spent = cost(start - 1)
        if used + spent > budget and start < len(messages):
            break
        used += spent
        start -= 1
    return _whole_calls_from(messages, start)


def estimate(message: ChatMessage) -> int:
    """The tokens a message is taken to cost."""
    chars = len(message.content) + len(message.reasoning or "")
    chars += sum(len(c.name) + len(json.dumps(c.arguments)) for c in message.tool_calls)
    return 4 + chars // CHARS_PER_TOKEN


def _whole_calls_from(messages: Sequence[ChatMessage], start: int) -> int:
    """``start``, moved past any tool results there, whose calls were cut off."""
    while start < len(messages) and messages[start].role == Role.TOOL:
        start += 1
    return start
