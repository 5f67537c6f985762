"""The checks of the tool results a turn's messages bring: each answers a call of the
thread or of the messages themselves, once."""

from __future__ import annotations

from parley.engine.inputs import NewMessage
from parley.engine.thread_item import Item
from parley.errors import InvalidRequest
from parley.types import Role


def check_tool_results(context: list[Item], messages: list[NewMessage]) -> dict[str, str]:
    """Refuse a tool result for a call that is in neither the thread nor ``messages``, or
    that is answered already (the error's ``message_index`` is the result's index in
    ``messages``); returns the run of each call of the thread (by call id)."""
    caller_of: dict[str, str] = {}
    known: set[str] = set()
    answered: set[str] = set()
    if not any(new.tool_call_id is not None for new in messages):
        return caller_of
    for item in context:
        m = item.message
        for call in m.tool_calls or ():
            known.add(call["id"])
            if m.run_id:
                caller_of[call["id"]] = m.run_id
        if m.role == Role.TOOL and m.tool_call_id:
            answered.add(m.tool_call_id)
    for index, new in enumerate(messages):
        for call in new.tool_calls or ():
            known.add(call["id"])
        call_id = new.tool_call_id
        if new.role != Role.TOOL or call_id is None:
            continue
        if call_id not in known:
            raise InvalidRequest(
                f"No tool call found for function call output with call_id {call_id}.",
                code="tool_call_not_found",
                message_index=index,
            )
        if call_id in answered:
            raise InvalidRequest(
                f"The function call {call_id} has an output already.",
                code="duplicate_tool_output",
                message_index=index,
            )
        answered.add(call_id)
    return caller_of
