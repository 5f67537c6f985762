"""``Item``: one stored message of a thread with what its model calls need of it, derived
once. A thread's history is a list of them (``engine.history`` makes, keeps and reads
them); a turn's request (``engine.streaming``), compaction (``engine.compaction``) and the
checks of tool results (``engine.tool_results``) read them."""

from __future__ import annotations

from dataclasses import dataclass

from parley.providers.base import ChatMessage
from parley.store.records import Message


@dataclass(frozen=True, slots=True)
class Item:
    """One stored message of a thread, with what is derived from it once."""

    message: Message
    #: What the model sees of it.
    chat: ChatMessage
    #: Its estimated tokens (``context.estimate``).
    cost: int
    #: The provider's count of everything its model call read and wrote, up to and
    #: including this answer, when the call stored its usage (``context.fit_start``).
    counted: int | None
    #: For a compaction marker (``engine.compaction``), the sequence number of the last
    #: message its summary stands for; None for any other message.
    compacts: int | None = None
