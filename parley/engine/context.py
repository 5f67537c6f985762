"""How much of a thread a turn sends its model: the run's ``truncation`` option.

``{"type": "last_messages", "last_messages": N}`` keeps the newest N messages;
``"max_prompt_tokens": T`` (with either type) keeps the newest messages that fit in an
estimate of T tokens, instructions and tools counted. The estimate is the length of the
text in characters over four, as no tokenizer is at hand; the newest message is always
sent. Neither ever splits a tool call from its result: a result whose call is cut goes
with it.
"""

from __future__ import annotations

import json
from typing import Any

from parley.providers.base import ChatMessage
from parley.types import Role

#: Characters per token of the estimate.
CHARS_PER_TOKEN = 4


def truncate(
    messages: list[ChatMessage], truncation: dict[str, Any], fixed: str = ""
) -> list[ChatMessage]:
    """``messages`` as the run's ``truncation`` option cuts them; ``fixed`` is the text
    sent whatever is cut (instructions, tools), counted against ``max_prompt_tokens``."""
    if truncation.get("type") == "last_messages" and truncation.get("last_messages"):
        messages = last_messages(messages, int(truncation["last_messages"]))
    budget = truncation.get("max_prompt_tokens")
    if budget:
        messages = fit_tokens(messages, int(budget) - len(fixed) // CHARS_PER_TOKEN)
    return messages


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
