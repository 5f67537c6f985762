"""Approvals of hosted calls: the client's answers to the calls a run waits on.

A hosted call that needs approval pauses its run as ``action_required`` with an action of
kind ``approval`` (its id is the approval request's id). The next turn's messages carry
the answer (``NewMessage.approval``), or ``submit_tool_outputs`` does (a ``Decision``):
stored either way as an ``mcp_approval_response`` item, with its reason, it completes the
action; an approved call is run by that turn before its model call
(``Claim.approved``), a denied one is answered at once with a tool result that says so.
The pause is the run's own, in the database: it survives a restart and is answered on
any replica.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Connection

from parley.engine.hosted.records import McpApprovalResponse
from parley.engine.inputs import Approval, NewMessage
from parley.engine.thread_item import Item
from parley.engine.tool_results import Decision, SubmittedAnswer
from parley.errors import InvalidRequest
from parley.store import runs as run_store
from parley.store import threads as thread_store
from parley.store.db import new_id
from parley.store.records import Action, Run
from parley.types import Role


@dataclass(frozen=True, slots=True)
class Approved:
    """A hosted call the client approved, for the next turn to run."""

    call_id: str
    arguments: dict[str, Any]
    server_label: str
    tool: str
    request_id: str
    #: The kind of the tool (``hosted.kinds``): approvals are asked today for MCP tools.
    kind: str = "mcp"


@dataclass(slots=True)
class Answered:
    """What the messages of a turn answered of the run its thread waited on."""

    approved: list[Approved] = field(default_factory=list)
    #: Tool results saying a call was denied, to store with the turn's messages.
    denied: list[NewMessage] = field(default_factory=list)
    #: The approval requests answered.
    taken: set[str] = field(default_factory=set)


def approvals_of(messages: Sequence[NewMessage]) -> dict[str, tuple[int, Approval]]:
    """The approvals among ``messages``, by request id, with their index."""
    found: dict[str, tuple[int, Approval]] = {}
    for index, m in enumerate(messages):
        if m.approval is None:
            continue
        if m.approval.request_id in found:
            raise InvalidRequest(
                f"The approval request {m.approval.request_id} is answered twice.",
                code="duplicate_approval_response",
                message_index=index,
            )
        found[m.approval.request_id] = (index, m.approval)
    return found


def missing_approval(action: Action) -> InvalidRequest:
    return InvalidRequest(  # no message is at fault: one is missing
        f"No approval response found for approval request {action.id} (the call of {action.name}).",
        code="approval_response_missing",
    )


def given_back(messages: Sequence[NewMessage], answered: Answered) -> None:
    """The approvals of calls the messages themselves hold (a client that sends its whole
    history: the call as its approval request, then the approval): into ``answered``,
    as ``answer`` puts those of a waiting run."""
    given = approvals_of(messages)
    if not given:
        return
    asked = {
        call["hosted"]["approval_request_id"]: call
        for m in messages
        for call in m.tool_calls or ()
        if (call.get("hosted") or {}).get("approval_request_id")
    }
    ran = {m.tool_call_id for m in messages if m.role == Role.TOOL}
    for request_id, (_, approval) in given.items():
        call = asked.get(request_id)
        if call is None or request_id in answered.taken:
            continue
        answered.taken.add(request_id)
        if call["id"] in ran:
            continue  # the call it approved ran already: its result is given back too
        mark = call["hosted"]
        if not approval.approve:
            denied = NewMessage(
                role=Role.TOOL, content=denial(approval.reason), tool_call_id=call["id"]
            )
            answered.denied.append(denied)
            continue
        answered.approved.append(
            Approved(
                call_id=call["id"],
                arguments=call.get("arguments") or {},
                server_label=str(mark.get("server_label", "")),
                tool=str(mark.get("name", call["name"])),
                request_id=request_id,
            )
        )


def check_taken(messages: Sequence[NewMessage], answered: Answered) -> None:
    """Refuse an approval that answers no request the thread's run waits on."""
    for request_id, (index, _) in approvals_of(messages).items():
        if request_id not in answered.taken:
            raise InvalidRequest(
                f"No call waits for the approval request {request_id}: it was answered "
                "already, its run ended, or it is another conversation's.",
                code="approval_request_not_found",
                message_index=index,
            )


def answer(
    conn: Connection, run: Run, pending: list[Action], messages: Sequence[NewMessage]
) -> tuple[Answered, dict[str, str]]:
    """The approvals among ``messages`` of the approval actions ``pending`` of ``run``:
    what they answer, and the output each of those actions completes with."""
    given = approvals_of(messages)
    answered, outputs = Answered(), dict[str, str]()
    asked = [a for a in pending if a.kind == "approval"]
    if not asked:
        return answered, outputs
    marks = thread_store.call_marks(conn, run_id=run.id)
    for action in asked:
        if action.id not in given:
            raise missing_approval(action)
        _, approval = given[action.id]
        answered.taken.add(action.id)
        outputs[action.id] = APPROVED if approval.approve else DENIED
        if approval.approve:
            answered.approved.append(_approved(action, marks))
            continue
        answered.denied.append(
            NewMessage(
                role=Role.TOOL,
                content=denial(approval.reason),
                tool_call_id=action.tool_call_id,
            )
        )
    return answered, outputs


def response_item(approval: Approval) -> dict[str, Any]:
    """The ``mcp_approval_response`` record an approval is stored as (its ``reason`` only
    when one was given, as OpenAI leaves it out)."""
    return McpApprovalResponse(
        id=new_id("mcpa"),
        approval_request_id=approval.request_id,
        approve=approval.approve,
        reason=approval.reason,
    ).to_stored()


#: The outputs an approval action completes with.
APPROVED, DENIED = "approved", "denied"


def check_output(action: Action, answer: SubmittedAnswer) -> str:
    """The output ``action`` completes with, given ``answer`` on ``submit_tool_outputs``: a
    client tool's output; for a hosted call that waits for approval, ``approved`` or
    ``denied`` (a ``Decision``, or that word as its output). Refuses any other output for
    such a call."""
    output = _output_of(answer)
    if action.kind == "approval" and output not in (APPROVED, DENIED):
        raise InvalidRequest(
            f"The call {action.tool_call_id} is run by the server once approved: answer its "
            "approval request (approve true or false), not with an output.",
            code="approval_expected",
        )
    return output


def denial(reason: str | None = None) -> str:
    """What the model is told of a call the client did not approve."""
    why = f" The reason given: {reason}" if reason else ""
    return f"Not run: the user did not approve this call.{why}"


def results(answered: Sequence[tuple[Action, SubmittedAnswer]]) -> list[tuple[str, str]]:
    """The tool results to store for answers just given on ``submit_tool_outputs``: a client
    tool's output; a denied call's denial, with its reason, as ``answer`` stores one given
    in an ``mcp_approval_response``; nothing yet for an approved call, which the run's next
    turn runs."""
    stored = []
    for action, given in answered:
        output = _output_of(given)
        if action.kind != "approval":
            stored.append((action.tool_call_id, output))
        elif output == DENIED:
            reason = given.reason if isinstance(given, Decision) else None
            stored.append((action.tool_call_id, denial(reason)))
    return stored


def response_records(answered: Sequence[tuple[Action, SubmittedAnswer]]) -> list[dict[str, Any]]:
    """The ``mcp_approval_response`` records of the approvals just given on
    ``submit_tool_outputs``, each with its ``approve`` and ``reason`` (``response_item``):
    kept in the thread as the Responses door keeps those its items give, so the thread
    reads the same whichever door answered."""
    return [
        response_item(_approval_of(action, given))
        for action, given in answered
        if action.kind == "approval"
    ]


def _approval_of(action: Action, answer: SubmittedAnswer) -> Approval:
    """The approval ``answer`` gives the approval action ``action`` (a ``Decision``, or the
    word ``approved`` or ``denied`` as its output)."""
    if isinstance(answer, Decision):
        return Approval(request_id=action.id, approve=answer.approve, reason=answer.reason)
    return Approval(request_id=action.id, approve=answer == APPROVED)


def _output_of(answer: SubmittedAnswer) -> str:
    if isinstance(answer, Decision):
        return APPROVED if answer.approve else DENIED
    return answer


def waiting(conn: Connection, run: Run, context: Sequence[Item]) -> list[Approved]:
    """The run's approved calls that no result answers yet: those its next turn runs."""
    answered = {i.message.tool_call_id for i in context if i.message.role == Role.TOOL}
    done = run_store.list_actions(conn, run_id=run.id, status="completed")
    approved = [a for a in done if a.kind == "approval" and a.output == APPROVED]
    approved = [a for a in approved if a.tool_call_id not in answered]
    if not approved:
        return []
    marks = thread_store.call_marks(conn, run_id=run.id)
    return [_approved(action, marks) for action in approved]


def _approved(action: Action, marks: dict[str, dict[str, Any]]) -> Approved:
    mark = marks.get(action.tool_call_id, {})
    return Approved(
        call_id=action.tool_call_id,
        arguments=action.arguments,
        server_label=str(mark.get("server_label", "")),
        tool=str(mark.get("name", action.name)),
        request_id=action.id,
    )
