"""The engine's errors named in a face's words. Below the faces, an error about the
messages a face gave the engine names no field: it carries the message's index
(``ParleyError.message_index``), or, for the tool outputs a run still waits for, no index at
all. Each face says which of its fields those messages came from (``input`` for a response,
``items`` for a conversation's new items)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from parley.errors import ParleyError

#: Engine errors about the messages as a whole, with no one message at fault.
ABOUT_THE_MESSAGES = frozenset({"tool_output_missing", "approval_response_missing"})


def about_messages(exc: ParleyError) -> bool:
    """Whether ``exc`` is the engine's word on the messages a face gave it."""
    return exc.param is None and (exc.message_index is not None or exc.code in ABOUT_THE_MESSAGES)


@contextmanager
def messages_from(field: str) -> Iterator[None]:
    """Around an engine call given a face's messages: an error about them names ``field``."""
    try:
        yield
    except ParleyError as exc:
        if about_messages(exc):
            exc.param = field
        raise
