"""Compaction: the older part of a conversation replaced by a summary its model writes.

The Responses face compacts on request (``POST /v1/responses/compact``, and a
``compaction_trigger`` input item): the summary goes back to the client as a ``compaction``
item, whose ``encrypted_content`` is the summary, marked (``encode_summary``), and a later request
sends it as input. Here the server compacts on its own: a run whose options hold
``{"compaction": {"threshold": T}}`` (the Responses API's ``context_management``) is
compacted before a model call whose input is estimated above T tokens (``due``).

What is summarised: everything before the turn's newest user message; when the turn's own
part is over the threshold by itself (a long run of tool calls), everything before its
newest round (the last answer that called tools, and the results). The summary is stored
as a *marker*: an assistant message of the run with no text, whose item is the
``compaction`` item plus ``covers``, the sequence number of the last message it stands for.
A thread's model calls then see the newest marker's summary, as a system message, and the
messages after what it covers (``history.view``); the faces show the marker as the
``compaction`` output item it holds.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Iterable, Sequence
from typing import Any

from parley.engine.context import CHARS_PER_TOKEN
from parley.engine.inputs import NewMessage
from parley.engine.thread_item import Item
from parley.providers.base import ChatMessage
from parley.types import Role

#: The prefix of the opaque ``encrypted_content`` of a compaction item made here.
PREFIX = "parley.compaction.v1:"
#: What the model is told of the text a summary replaces.
SUMMARY_HEAD = "Summary of the conversation so far:\n"
#: The item type of a compaction, and of a marker.
COMPACTION_TYPE = "compaction"
#: The share of a model's context window a compaction with no threshold waits for.
COMPACTION_SHARE = 0.8
#: The least threshold a request may set (OpenAI's own).
LEAST_COMPACTION_THRESHOLD = 1000

COMPACTION_INSTRUCTIONS = (
    "You compact conversations. Write a summary of the conversation below that lets it "
    "go on without it: every fact, decision, name, number, open question and the user's "
    "latest request, in as few words as keep them. Write only the summary."
)


def encode_summary(summary: str) -> str:
    """The ``encrypted_content`` of a compaction that carries ``summary``: opaque to
    clients (base64 of a marked text), not encrypted: a client can only put its own words
    into its own context with it."""
    return base64.b64encode((PREFIX + summary).encode()).decode()


def decode_summary(blob: Any) -> str | None:
    """The summary an ``encrypted_content`` carries; None when it is not one made here."""
    if not isinstance(blob, str):
        return None
    try:
        text = base64.b64decode(blob, validate=True).decode()
    except (binascii.Error, ValueError):
        return None
    return text[len(PREFIX) :] if text.startswith(PREFIX) else None


def compaction_item(item_id: str, summary: str, covers: int | None = None) -> dict[str, Any]:
    """A compaction item; with ``covers``, a marker's (the sequence number of the last
    message it stands for), which the faces do not show."""
    made: dict[str, Any] = {
        "type": COMPACTION_TYPE,
        "id": item_id,
        "encrypted_content": encode_summary(summary),
    }
    if covers is not None:
        made["covers"] = covers
    return made


def marker_covers(stored: dict[str, Any] | None) -> int | None:
    """What a stored item covers when it is a marker; None for any other item."""
    if stored is None or stored.get("type") != COMPACTION_TYPE:
        return None
    covers = stored.get("covers")
    return covers if isinstance(covers, int) else None


def summary_chat(stored: dict[str, Any]) -> ChatMessage:
    """What the model sees of a marker: its summary, as a system message."""
    return ChatMessage(
        role=Role.SYSTEM, content=SUMMARY_HEAD + (decode_summary(stored["encrypted_content"]) or "")
    )


def transcript_line(
    role: str, content: str, calls: Iterable[tuple[str, Any]], result_of: str | None
) -> str:
    """One message of the transcript the model summarises."""
    parts = [content] if content else []
    parts += [f"[called {name} with {arguments}]" for name, arguments in calls]
    if not parts:
        return ""
    who = f"tool result ({result_of})" if role == Role.TOOL else str(role)
    return f"{who}: {' '.join(parts)}"


def transcript(chats: Iterable[ChatMessage]) -> str:
    """The text of ``chats`` the model summarises."""
    lines = (
        transcript_line(
            c.role, c.content, ((t.name, t.arguments) for t in c.tool_calls), c.tool_call_id
        )
        for c in chats
    )
    return "\n\n".join(text for text in lines if text)


def ask(text: str, window: int | None) -> list[NewMessage]:
    """The summary call's one message: ``text``, its start cut so that it fits half of a
    known context ``window``."""
    if window:
        most = window // 2 * CHARS_PER_TOKEN
        if len(text) > most:
            text = "[earlier part cut]\n" + text[len(text) - most :]
    return [NewMessage(role=Role.USER, content=text)]


def threshold(options: dict[str, Any] | None, window: int | None) -> int | None:
    """The tokens above which a run with these options is compacted; None: never. A
    compaction with no threshold waits for ``COMPACTION_SHARE`` of the model's known window."""
    wanted = (options or {}).get("compaction")
    if not isinstance(wanted, dict):
        return None
    given = wanted.get("threshold")
    if isinstance(given, int):
        return given
    return math.floor(window * COMPACTION_SHARE) if window else None


def due(context: Sequence[Item], fixed: int, limit: int) -> int | None:
    """Where what a compaction keeps of ``context`` begins, when its estimate (``fixed``
    tokens sent besides, and each message's; or the newest provider count, when more:
    ``_tokens``) is above ``limit``; None when it is not, or nothing before that point is left to
    compact (only an earlier summary)."""
    if _tokens(context, fixed) <= limit:
        return None
    user = len(context) - 1
    while user >= 0 and context[user].chat.role != Role.USER:
        user -= 1
    cut = user
    if user < 0 or fixed + sum(i.cost for i in context[user:]) > limit:
        # The turn's own part is over the limit by itself: keep its newest round alone.
        for index in range(len(context) - 1, max(user, 0), -1):
            chat = context[index].chat
            if chat.role == Role.ASSISTANT and chat.tool_calls:
                cut = index
                break
    if cut <= 0 or (cut == 1 and context[0].compacts is not None):
        return None
    return cut


def _tokens(context: Sequence[Item], fixed: int) -> int:
    """The estimate of a call's input: ``fixed`` and every message's estimate, or the
    newest provider count (everything up to that answer) and the messages after it, when
    that is more."""
    guessed = fixed + sum(i.cost for i in context)
    for index in range(len(context) - 1, -1, -1):
        counted = context[index].counted
        if counted is not None:
            return max(guessed, counted + sum(i.cost for i in context[index + 1 :]))
    return guessed
