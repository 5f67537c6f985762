"""Conversations seen through the Conversations API: a conversation is a thread (the same
id), its items are the thread's messages as items (``items.message_items``). These are the
data functions of the routes, each run in one transaction."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Connection

from parley.errors import Conflict, InvalidRequest, NotFound
from parley.server.faces.responses.items import message_id_of, message_items, without_segment
from parley.store import threads as thread_store
from parley.store.records import Message, Thread
from parley.types import ACTIVE_STATUSES, Role


def conversation_not_found(conversation_id: str, param: str = "conversation_id") -> NotFound:
    """``param``: where the request named it (the path's ``conversation_id``, or a
    response's ``conversation``)."""
    return NotFound(
        f"Conversation with id '{conversation_id}' not found.", code="not_found", param=param
    )


def item_not_found(item_id: str) -> NotFound:
    return NotFound(f"Item with id '{item_id}' not found.", code="not_found", param="item_id")


def conversation_object(thread: Thread) -> dict[str, Any]:
    return {
        "id": thread.id,
        "object": "conversation",
        "created_at": int(thread.created_at),
        "metadata": thread.metadata,
    }


def get_conversation(conn: Connection, *, user_id: str, conversation_id: str) -> Thread:
    try:
        return thread_store.get_thread(conn, user_id=user_id, thread_id=conversation_id)
    except NotFound:
        raise conversation_not_found(conversation_id) from None


def all_items(conn: Connection, *, user_id: str, conversation_id: str) -> list[dict[str, Any]]:
    """Every item of the conversation, oldest first."""
    thread = get_conversation(conn, user_id=user_id, conversation_id=conversation_id)
    return [
        item
        for message in thread_store.thread_context(conn, thread_id=thread.id)
        for item in message_items(message)
    ]


def item_of(
    conn: Connection, *, user_id: str, item_id: str, thread_id: str | None = None
) -> tuple[Message, dict[str, Any]] | None:
    """The user's message holding the item (in thread ``thread_id``, when given), and the
    item; None when there is none."""
    message_id = message_id_of(item_id)
    if message_id is None:
        return None
    try:
        message = thread_store.get_message(conn, user_id=user_id, message_id=message_id)
    except NotFound:
        return None
    if thread_id is not None and message.thread_id != thread_id:
        return None
    item = next((i for i in message_items(message) if i["id"] == item_id), None)
    return None if item is None else (message, item)


def find_item(
    conn: Connection, *, user_id: str, conversation_id: str, item_id: str
) -> tuple[Message, dict[str, Any]]:
    """The message holding the item, and the item."""
    thread = get_conversation(conn, user_id=user_id, conversation_id=conversation_id)
    found = item_of(conn, user_id=user_id, item_id=item_id, thread_id=thread.id)
    if found is None:
        raise item_not_found(item_id)
    return found


def delete_item(conn: Connection, *, user_id: str, conversation_id: str, item_id: str) -> Thread:
    """Remove one item: a user or tool message goes; an assistant message loses its text,
    reasoning or one call (and goes once it holds nothing). A function call whose output
    is still in the conversation stays: delete the output first."""
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
    if message.role != Role.ASSISTANT or kind == "function_call_output":
        thread_store.delete_message(conn, message_id=message.id)
        return get_conversation(conn, user_id=user_id, conversation_id=conversation_id)
    content, reasoning, layout = message.content, message.reasoning, message.layout
    calls = list(message.tool_calls or ())
    if kind in ("message", "reasoning"):
        content, reasoning, layout = without_segment(message, item_id)
    else:
        call_id = item["call_id"]
        answered = any(
            m.role == Role.TOOL and m.tool_call_id == call_id
            for m in thread_store.thread_context(conn, thread_id=message.thread_id)
        )
        if answered:
            raise InvalidRequest(
                f"The function call {call_id} has an output in the conversation: "
                "delete its function_call_output item first.",
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
