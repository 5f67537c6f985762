"""The Responses face's queries: each runs in one transaction (``Database.read`` /
``write``) and answers what its route needs.

Conversations seen through the Conversations API: a conversation is a thread (the same
id), its items are the thread's messages as items (``items.message_items``). A response is
a run (``resource``). Where a new response goes (after its ``previous_response_id``, or on
in its ``conversation``) the engine decides (``Engine.place``)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy.engine import Connection

from parley.engine import NewMessage, marker_covers, summary_chat
from parley.errors import Conflict, InvalidRequest, NotFound
from parley.server.faces.responses.items import message_id_of, message_items, without_segment
from parley.server.faces.responses.protocol import record_of
from parley.server.faces.responses.resource import StoredResponse, not_found
from parley.store import runs as run_store
from parley.store import threads as thread_store
from parley.store.pagination import ListQuery
from parley.store.records import Message, Run, Thread
from parley.types import ACTIVE_STATUSES, Role, RunStatus


def conversation_not_found(conversation_id: str, param: str = "conversation_id") -> NotFound:
    """``param``: where the request named it (the path's ``conversation_id``, or a
    response's ``conversation``)."""
    return NotFound(
        f"Conversation with id '{conversation_id}' not found.", code="not_found", param=param
    )


def item_not_found(item_id: str) -> NotFound:
    return NotFound(f"Item with id '{item_id}' not found.", code="not_found", param="item_id")


def previous_not_found(response_id: str) -> InvalidRequest:
    """What a ``previous_response_id`` that names no response of the caller answers: a 400,
    as OpenAI and the Open Responses specification answer it (another user's response, or
    one kept with ``store: false``, answers the same)."""
    return InvalidRequest(
        f"Previous response with id '{response_id}' not found.",
        code="previous_response_not_found",
        param="previous_response_id",
    )


# ---------------------------------------------------------------------- conversations


def get_conversation(conn: Connection, *, user_id: str, conversation_id: str) -> Thread:
    try:
        return thread_store.get_thread(conn, user_id=user_id, thread_id=conversation_id)
    except NotFound:
        raise conversation_not_found(conversation_id) from None


def update_conversation(
    conn: Connection, *, user_id: str, conversation_id: str, metadata: dict[str, Any]
) -> Thread:
    """The conversation, its metadata replaced."""
    thread = get_conversation(conn, user_id=user_id, conversation_id=conversation_id)
    return thread_store.update_metadata(
        conn, user_id=user_id, thread_id=thread.id, metadata=metadata
    )


def delete_conversation(conn: Connection, *, user_id: str, conversation_id: str) -> None:
    """Delete the conversation (409 while a response of it is in progress)."""
    thread = get_conversation(conn, user_id=user_id, conversation_id=conversation_id)
    try:
        thread_store.delete_thread(conn, user_id=user_id, thread_id=thread.id)
    except Conflict:
        raise Conflict(
            "The conversation has a response in progress; cancel it first.",
            code="conversation_busy",
        ) from None


def all_items(conn: Connection, *, user_id: str, conversation_id: str) -> list[dict[str, Any]]:
    """Every item of the conversation, oldest first."""
    thread = get_conversation(conn, user_id=user_id, conversation_id=conversation_id)
    messages = thread_store.thread_context(conn, thread_id=thread.id)
    kinds = tool_kinds(conn, messages)
    outputs = output_types(conn, messages, context=messages)
    return [
        item
        for message in messages
        for item in message_items(message, kinds=kinds.get(message.run_id or ""), outputs=outputs)
    ]


def tool_kinds(conn: Connection, messages: list[Message]) -> dict[str, dict[str, dict[str, Any]]]:
    """What the functions of the runs that wrote ``messages`` stand for (custom,
    namespace and tool search tools, ``client_tools``), by run id; runs with none are left
    out."""
    run_ids = {m.run_id for m in messages if m.run_id and m.tool_calls}
    if not run_ids:
        return {}
    found = run_store.run_requests(conn, run_ids=sorted(run_ids))
    return {
        run_id: request["tool_kinds"]
        for run_id, request in found.items()
        if isinstance(request, dict) and request.get("tool_kinds")
    }


def output_types(
    conn: Connection, messages: list[Message], *, context: list[Message] | None = None
) -> dict[str, str]:
    """The item type of the client's tool results among ``messages`` that are not
    ``function_call_output``s, by call id: a custom tool's is a ``custom_tool_call_output``
    (what its call's function stands for, ``tool_kinds``). The calls are looked for in
    ``context`` (the messages of the results' threads, each read once when not given)."""
    results = [m for m in messages if m.role == Role.TOOL and m.item is None and m.tool_call_id]
    wanted = {m.tool_call_id for m in results}
    if not wanted:
        return {}
    if context is None:
        homes = sorted({m.thread_id for m in results})
        context = [m for t in homes for m in thread_store.thread_context(conn, thread_id=t)]
    callers = [
        m
        for m in context
        if m.role == Role.ASSISTANT and any(c["id"] in wanted for c in m.tool_calls or ())
    ]
    kinds = tool_kinds(conn, callers)
    return {
        call["id"]: "custom_tool_call_output"
        for m in callers
        for call in m.tool_calls or ()
        if call["id"] in wanted
        and kinds.get(m.run_id or "", {}).get(call["name"], {}).get("type") == "custom"
    }


#: An item, and the message that holds it.
Held = tuple[Message, dict[str, Any]]


def items_of(
    conn: Connection, *, user_id: str, item_ids: Collection[str], thread_id: str | None = None
) -> dict[str, Held]:
    """The user's items of ``item_ids`` (in thread ``thread_id``, when given), each with the
    message that holds it, by id; an id that names none is left out. Every kind of item is
    found: those whose id names their message (``items.message_id_of``: messages,
    reasoning, calls, outputs), a hosted tool's (a tool list, a call the server ran, an
    approval given, a compaction: by ``messages.item_id``), and an approval the server
    asked for (its id is its action's). The same few queries for one id or hundreds (a
    request's ``item_reference``s): each message that may hold one is read and shown once."""
    wanted = set(item_ids)
    named = {i: m for i in wanted if (m := message_id_of(i)) is not None}
    by_id = thread_store.messages_by_id(
        conn, user_id=user_id, message_ids=set(named.values()), thread_id=thread_id
    )
    by_item = thread_store.item_messages(
        conn, user_id=user_id, item_ids=wanted, thread_id=thread_id
    )
    holders = {
        i: [m for m in (by_id.get(named.get(i, "")), by_item.get(i)) if m is not None]
        for i in wanted
    }
    found = _shown_in(conn, holders)
    asked = wanted - found.keys()
    if asked:  # approval requests, shown by the answers of the run that asks
        holders = thread_store.approval_messages(
            conn, user_id=user_id, request_ids=asked, thread_id=thread_id
        )
        found |= _shown_in(conn, holders)
    return found


def _shown_in(conn: Connection, holders: dict[str, list[Message]]) -> dict[str, Held]:
    """Each item of ``holders`` (the messages that may hold it, by its id) that one of them
    shows, with the first that does."""
    messages = list({m.id: m for held in holders.values() for m in held}.values())
    kinds = tool_kinds(conn, messages)
    outputs = output_types(conn, messages)
    shown: dict[str, dict[str, dict[str, Any]]] = {}
    for m in messages:
        items = shown[m.id] = {}
        for item in message_items(m, kinds=kinds.get(m.run_id or ""), outputs=outputs):
            if isinstance(item.get("id"), str):  # a hosted item given back may lack one
                items.setdefault(item["id"], item)
    found: dict[str, Held] = {}
    for item_id, held in holders.items():
        match = next(((m, shown[m.id][item_id]) for m in held if item_id in shown[m.id]), None)
        if match is not None:
            found[item_id] = match
    return found


def find_item(
    conn: Connection, *, user_id: str, conversation_id: str, item_id: str
) -> tuple[Message, dict[str, Any]]:
    """The message holding the item, and the item."""
    thread = get_conversation(conn, user_id=user_id, conversation_id=conversation_id)
    found = items_of(conn, user_id=user_id, item_ids=[item_id], thread_id=thread.id)
    if item_id not in found:
        raise item_not_found(item_id)
    return found[item_id]


def delete_item(conn: Connection, *, user_id: str, conversation_id: str, item_id: str) -> Thread:
    """Remove one item: a user or tool message goes, as does a hosted tool's item (a tool
    list, a compaction: its message holds nothing else); an assistant message loses its
    text, reasoning or one call (and goes once it holds nothing). A call whose output is
    still in the conversation stays: delete the output first."""
    message, item = find_item(
        conn, user_id=user_id, conversation_id=conversation_id, item_id=item_id
    )
    if thread_store.thread_has_run_in(
        conn, thread_id=message.thread_id, statuses={str(s) for s in ACTIVE_STATUSES}
    ):
        raise Conflict(
            "The conversation has a response in progress or waiting for tool outputs.",
            code="conversation_busy",
        )
    kind = item["type"]
    if message.role != Role.ASSISTANT or message.item is not None:
        thread_store.delete_message(conn, message_id=message.id)
        return get_conversation(conn, user_id=user_id, conversation_id=conversation_id)
    content, reasoning, layout = message.content, message.reasoning, message.layout
    calls = list(message.tool_calls or ())
    if kind in ("message", "reasoning"):
        content, reasoning, layout = without_segment(message, item_id)
    else:
        call_id, output = _call_of(message, item)
        answered = any(
            m.role == Role.TOOL and m.tool_call_id == call_id
            for m in thread_store.thread_context(conn, thread_id=message.thread_id)
        )
        if answered:
            raise InvalidRequest(
                f"The call {call_id} has an output in the conversation: "
                f"delete its {output} item first.",
                code="item_has_output",
                param="item_id",
            )
        calls = [c for c in calls if c["id"] != call_id]
    if not content and not reasoning and not calls:
        thread_store.delete_message(conn, message_id=message.id)
    else:
        thread_store.update_message(
            conn,
            message_id=message.id,
            content=content,
            reasoning=reasoning,
            layout=layout,
            tool_calls=calls or None,
        )
    return get_conversation(conn, user_id=user_id, conversation_id=conversation_id)


def _call_of(message: Message, item: dict[str, Any]) -> tuple[str, str]:
    """The id of the call an assistant message's item shows, and the type of the item of
    its output: a client's call's own (``call_id``), or, for an approval request, the call
    it asks about (whose output is the ``mcp_call`` the server ran)."""
    if item["type"] != "mcp_approval_request":
        return str(item["call_id"]), "function_call_output"
    asking = (
        call["id"]
        for call in message.tool_calls or ()
        if (call.get("hosted") or {}).get("approval_request_id") == item["id"]
    )
    return next(asking), "mcp_call"


# -------------------------------------------------------------------------- responses


def read_response(
    conn: Connection, *, user_id: str, response_id: str, scratch: bool = False
) -> StoredResponse:
    """A response of the user's, with what it wrote (404 for another user's, and for a
    ``store: false`` one unless ``scratch``: its face's own read)."""
    try:
        run = run_store.get_run(conn, run_id=response_id, user_id=user_id, scratch=scratch)
    except NotFound:
        raise not_found(response_id) from None
    answers = thread_store.run_output(conn, run_id=run.id)
    calls = {a.tool_call_id for a in run_store.list_actions(conn, run_id=run.id)}
    return StoredResponse(run=run, answers=answers, calls=calls)


def answer_states(
    conn: Connection, *, user_id: str, response_id: str, scratch: bool = False
) -> dict[str, dict[str, Any]]:
    """What the provider kept with each answer of a response (``provider_state``), by
    message id (``scratch`` as for ``read_response``)."""
    stored = read_response(conn, user_id=user_id, response_id=response_id, scratch=scratch)
    return {m.id: m.provider_state for m in stored.answers if m.provider_state}


def kept_response(conn: Connection, *, user_id: str, response_id: str) -> StoredResponse:
    """A stored response (a ``store: false`` one is never read back over HTTP)."""
    stored = read_response(conn, user_id=user_id, response_id=response_id)
    if record_of(stored.run).get("store") is False:
        raise not_found(response_id)
    return stored


def delete_response(conn: Connection, *, user_id: str, response_id: str) -> None:
    """Delete a response that has ended: its thread too when nothing else is in it."""
    stored = read_response(conn, user_id=user_id, response_id=response_id)
    run = stored.run
    if run.status in (RunStatus.QUEUED, RunStatus.IN_PROGRESS):
        raise Conflict(
            "The response is in progress; cancel it before deleting it.",
            code="response_in_progress",
        )
    others = [
        r
        for r in run_store.list_runs(
            conn, user_id=user_id, thread_id=run.thread_id, page=ListQuery(limit=2, order="asc")
        )[0]
        if r.id != run.id
    ]
    if not others and record_of(run).get("conversation") is None:
        thread_store.delete_thread(conn, user_id=user_id, thread_id=run.thread_id)
    else:
        run_store.delete_run(conn, run_id=run.id)


def input_items(conn: Connection, *, user_id: str, response_id: str) -> list[dict[str, Any]]:
    """The items a stored response was given, oldest first."""
    stored = kept_response(conn, user_id=user_id, response_id=response_id)
    run = stored.run
    seqs = record_of(run).get("input_seqs")
    if seqs:
        first, last = seqs
    else:
        first, last = 1, (stored.answers[0].seq - 1 if stored.answers else 0)
    messages = thread_store.messages_between(conn, thread_id=run.thread_id, first=first, last=last)
    if not seqs:  # a native run: the messages since the thread's previous answer
        since = max((i + 1 for i, m in enumerate(messages) if m.role == Role.ASSISTANT), default=0)
        messages = messages[since:]
    kinds = record_of(run).get("tool_kinds")
    outputs = output_types(conn, messages)
    return [item for m in messages for item in message_items(m, kinds=kinds, outputs=outputs)]


def previous_in_progress(response_id: str) -> InvalidRequest:
    """What a ``previous_response_id`` naming a response still running answers."""
    return InvalidRequest(
        f"Previous response with id '{response_id}' is still in progress.",
        code="previous_response_in_progress",
        param="previous_response_id",
    )


def _stored_previous(conn: Connection, *, user_id: str, response_id: str) -> Run:
    """The caller's stored response ``response_id``, named as a ``previous_response_id``:
    one never stored (only its connection had it) is not found either."""
    try:
        run = run_store.get_run(conn, run_id=response_id, user_id=user_id)
    except NotFound:
        raise previous_not_found(response_id) from None
    if record_of(run).get("store") is False:
        raise previous_not_found(response_id)
    return run


def previous_context(conn: Connection, *, user_id: str, response_id: str) -> list[NewMessage]:
    """The context of a stored response, as messages a request could send again: its
    thread up to the response's answer (not the turns that came after it)."""
    run = _stored_previous(conn, user_id=user_id, response_id=response_id)
    context = thread_store.thread_context(conn, thread_id=run.thread_id)
    end = max((m.seq for m in context if m.run_id == run.id), default=None)
    if end is not None:
        context = [m for m in context if m.seq <= end]
    summary: list[NewMessage] = []
    for m in reversed(context):  # from the newest compaction, its summary (``history.view``)
        covers = marker_covers(m.item)
        if covers is not None and m.item is not None:
            chat = summary_chat(m.item)
            summary = [NewMessage(role=chat.role, content=chat.content)]
            context = [c for c in context if c.seq > covers and c is not m]
            break
    return summary + [
        NewMessage(
            role=Role(m.role),
            content=m.content,
            images=m.images,
            tool_calls=m.tool_calls,
            tool_call_id=m.tool_call_id,
        )
        for m in context
        if m.item is None or m.role == Role.TOOL
        if m.run_id != run.id or m.role != Role.ASSISTANT or m.content or m.tool_calls
    ]


def resolve_references(
    conn: Connection, *, user_id: str, items: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """``item_reference`` items replaced by the items they name (the user's own only)."""
    named = {
        index: item.get("id")
        for index, item in enumerate(items)
        if isinstance(item, dict) and item.get("type") == "item_reference"
    }
    wanted = {i for i in named.values() if isinstance(i, str)}
    found = items_of(conn, user_id=user_id, item_ids=wanted)
    resolved: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        if index not in named:
            resolved.append(item)
            continue
        item_id = named[index]
        held = found.get(item_id) if isinstance(item_id, str) else None
        if held is None:
            raise InvalidRequest(
                f"Invalid 'input[{index}].id': no item with id {item_id!r}.",
                code="item_not_found",
                param=f"input[{index}].id",
            )
        resolved.append(held[1])
    return resolved
