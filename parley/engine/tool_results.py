"""The answers a client gives to a run's tool calls, through either door: the tool results
a turn's messages bring (each answers a call of the thread or of the messages themselves,
once), and the outputs given on ``submit_tool_outputs``. Both doors refuse with one
vocabulary: ``tool_call_not_found`` for a call no one waits on (400) and
``duplicate_tool_output`` for a call answered already or twice in one request (400)."""

from __future__ import annotations

from dataclasses import dataclass

from parley.engine.inputs import NewMessage
from parley.engine.thread_item import Item
from parley.errors import InvalidRequest
from parley.types import Role


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer given on ``submit_tool_outputs`` to a hosted call that waits for approval,
    in place of an output: approved or not, with the client's reason (told to the model
    of a denied call, as an ``mcp_approval_response`` item's is)."""

    approve: bool
    reason: str | None = None


#: What ``submit_tool_outputs`` is given for one call: its output, or a ``Decision``.
SubmittedAnswer = str | Decision


def not_found(call_id: str, message_index: int | None = None) -> InvalidRequest:
    """The error for an answer to a call that no one waits on."""
    return InvalidRequest(
        f"No tool call found for function call output with call_id {call_id}.",
        code="tool_call_not_found",
        message_index=message_index,
    )


def answered_already(call_id: str, message_index: int | None = None) -> InvalidRequest:
    """The error for a second answer to a call: answered already, or twice in one request."""
    return InvalidRequest(
        f"The function call {call_id} has an output already.",
        code="duplicate_tool_output",
        message_index=message_index,
    )


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
            raise not_found(call_id, index)
        if call_id in answered:
            raise answered_already(call_id, index)
        answered.add(call_id)
    return caller_of
