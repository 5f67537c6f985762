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
to it corrects the estimate of that part (``token_costs``).
"""

from __future__ import annotations

import json
import math
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


@dataclass(frozen=True, slots=True)
class Fitted:
    """What is sent of a thread, and how many of its messages were left out."""

    messages: list[ChatMessage]
    dropped: int = 0


def answer_room(window: int, max_tokens: Any = None) -> int:
    """The tokens left for the answer in a window of ``window``: the request's
    ``max_tokens``, else a quarter of the window up to ``DEFAULT_ANSWER_ROOM``; at most
    half the window either way."""
    room = max_tokens if isinstance(max_tokens, int) and max_tokens > 0 else None
    if room is None:
        room = min(window // 4, DEFAULT_ANSWER_ROOM)
    return min(room, window // 2)


def truncate(
    messages: list[ChatMessage],
    truncation: dict[str, Any],
    fixed: str = "",
    *,
    window: Window | None = None,
    known: dict[int, int] | None = None,
) -> Fitted:
    """``messages`` as the run's ``truncation`` option and the model's ``window`` cut them;
    ``fixed`` is the text sent whatever is cut (instructions, tools), counted against
    ``max_prompt_tokens`` and the window. ``known``: the provider's token count of
    everything up to and including a message, by its index (``token_costs``).

    Raises ``InvalidRequest`` (code ``context_length_exceeded``) when what must be sent,
    or with ``"type": "disabled"`` the whole thread, is larger than the window."""
    total = len(messages)
    fixed_cost, costs = token_costs(messages, fixed, known or {})
    if truncation.get("type") == "last_messages" and truncation.get("last_messages"):
        messages = last_messages(messages, int(truncation["last_messages"]))
    budget = truncation.get("max_prompt_tokens")
    if budget:
        messages = fit_tokens(messages, int(budget) - len(fixed) // CHARS_PER_TOKEN)
    if window is not None:
        kept = costs[len(costs) - len(messages) :]
        strict = truncation.get("type") == "disabled"
        messages = fit_window(messages, kept, fixed_cost, window, strict=strict)
    return Fitted(messages, total - len(messages))


def token_costs(
    messages: list[ChatMessage], fixed: str, known: dict[int, int]
) -> tuple[int, list[int]]:
    """The tokens of ``fixed`` and of each message: the estimate, scaled up for the part
    up to the newest message with a ``known`` count, when the provider counted that part
    as more than the estimate (a count may also cover less than it, when older messages
    were left out of its call: then the estimate stands)."""
    costs = [estimate(m) for m in messages]
    fixed_cost = len(fixed) // CHARS_PER_TOKEN
    if known:
        end = max(known)
        guessed = fixed_cost + sum(costs[: end + 1])
        if known[end] > guessed > 0:
            scale = known[end] / guessed
            costs[: end + 1] = [math.ceil(c * scale) for c in costs[: end + 1]]
            fixed_cost = math.ceil(fixed_cost * scale)
    return fixed_cost, costs


def fit_window(
    messages: list[ChatMessage],
    costs: list[int],
    fixed_cost: int,
    window: Window,
    *,
    strict: bool = False,
) -> list[ChatMessage]:
    """The newest whole turns of ``messages`` (``costs`` their tokens) that fit in the
    window with ``fixed_cost`` and the room for the answer; the newest user message and
    what follows it always (see the module's docstring)."""
    newest = max((i for i, m in enumerate(messages) if m.role == Role.USER), default=0)
    need = fixed_cost + sum(costs[newest:])
    if need > window.tokens:
        raise InvalidRequest(
            f"The new input is about {need:,} tokens, more than the model's context window "
            f"of {window.tokens:,} tokens: shorten the newest message (or the instructions "
            "and tools, which are always sent).",
            code=CONTEXT_LENGTH_EXCEEDED,
        )
    room = max(window.tokens - window.reserve, need)
    used = fixed_cost + sum(costs)
    if used <= room or (strict and used <= window.tokens):
        return messages
    if strict:
        raise InvalidRequest(
            f"The input is about {used:,} tokens, more than the model's context window of "
            f"{window.tokens:,} tokens, and truncation is disabled: shorten it, or allow "
            "older turns to be dropped.",
            code=CONTEXT_LENGTH_EXCEEDED,
        )
    used, keep = need, newest
    for start in reversed([i for i in range(newest) if i == 0 or messages[i].role == Role.USER]):
        cost = sum(costs[start:keep])
        if used + cost > room:
            break
        used, keep = used + cost, start
    return messages[keep:]


def last_messages(messages: list[ChatMessage], count: int) -> list[ChatMessage]:
    """The newest ``count`` messages."""
    return _whole_calls(messages[max(0, len(messages) - count) :])


def fit_tokens(messages: list[ChatMessage], budget: int) -> list[ChatMessage]:
    """The newest messages whose estimated tokens add up to at most ``budget`` (the
    newest one always)."""
    used, start = 0, len(messages)
    while start > 0:
        cost = estimate(messages[start - 1])
        if used + cost > budget and start < len(messages):
            break
        used += cost
        start -= 1
    return _whole_calls(messages[start:])


def estimate(message: ChatMessage) -> int:
    """The tokens a message is taken to cost."""
    chars = len(message.content) + len(message.reasoning or "")
    chars += sum(len(c.name) + len(json.dumps(c.arguments)) for c in message.tool_calls)
    return 4 + chars // CHARS_PER_TOKEN


def _whole_calls(kept: list[ChatMessage]) -> list[ChatMessage]:
    """``kept`` less any tool results at its start, whose calls were cut off."""
    start = 0
    while start < len(kept) and kept[start].role == Role.TOOL:
        start += 1
    return kept[start:]
