"""Threads and their messages, in the Assistants API's shapes (and the native flat
``/v1/messages``)."""

from __future__ import annotations

import functools
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response
from sqlalchemy.engine import Connection

from parley.errors import Conflict, InvalidRequest
from parley.server.deps import (
    METADATA_FILTER_PARAMETER,
    CurrentUser,
    DescList,
    MetadataFilter,
    Svc,
)
from parley.server.faces.assistants.requests import new_messages
from parley.server.faces.assistants.schemas import MessageCreateFlat, MessageUpdate, ThreadUpdate
from parley.server.faces.kit.bodies import Deleted, ListPublic, MessageCreate, ThreadCreate
from parley.server.faces.kit.reads import of_thread
from parley.server.faces.kit.resources import MessagePublic, ThreadPublic
from parley.server.idempotency import Idempotency, Idempotent, answer
from parley.server.openapi import errors
from parley.store import threads as store
from parley.store.records import Message
from parley.types import ACTIVE_STATUSES, Role

router = APIRouter(tags=["threads"])


@router.post("/threads", response_model=ThreadPublic)
async def create_thread(
    user: CurrentUser, svc: Svc, idem: Idempotent, body: ThreadCreate | None = None
) -> Response:
    async def make() -> Response:
        given = body or ThreadCreate()
        thread, _ = await svc.engine.append_messages(
            user_id=user.id,
            thread_id=None,
            messages=new_messages(given.messages),
            metadata=given.metadata,
        )
        return answer(ThreadPublic.of(thread))

    return await idem.once(svc.db, user.id, make)


@router.get(
    "/threads",
    responses=errors(400, 422),
    openapi_extra={"parameters": [METADATA_FILTER_PARAMETER]},
)
async def list_threads(
    user: CurrentUser, svc: Svc, q: DescList, metadata: MetadataFilter
) -> ListPublic[ThreadPublic]:
    """Parley: the user's threads (the Assistants API has no such list)."""
    items, more = await svc.db.read(
        functools.partial(
            store.list_threads,
            user_id=user.id,
            page=q,
            metadata=metadata,
        )
    )
    return ListPublic.of([ThreadPublic.of(t) for t in items], more)  # type: ignore[return-value]


@router.get("/threads/{thread_id}")
async def get_thread(thread_id: str, user: CurrentUser, svc: Svc) -> ThreadPublic:
    thread = await svc.db.read(
        functools.partial(store.get_thread, user_id=user.id, thread_id=thread_id)
    )
    return ThreadPublic.of(thread)


@router.post("/threads/{thread_id}")
async def update_thread(
    thread_id: str, body: ThreadUpdate, user: CurrentUser, svc: Svc
) -> ThreadPublic:
    def update(conn: Connection) -> ThreadPublic:
        if body.metadata is None:
            return ThreadPublic.of(store.get_thread(conn, user_id=user.id, thread_id=thread_id))
        thread = store.update_metadata(
            conn, user_id=user.id, thread_id=thread_id, metadata=body.metadata
        )
        return ThreadPublic.of(thread)

    return await svc.db.write(update)


@router.delete("/threads/{thread_id}", responses=errors(409))
async def delete_thread(thread_id: str, user: CurrentUser, svc: Svc) -> Deleted:
    await svc.db.write(functools.partial(store.delete_thread, user_id=user.id, thread_id=thread_id))
    return Deleted(id=thread_id, object="thread.deleted")


# ---------------------------------------------------------------------------- messages


def messages_public(conn: Connection, items: list[Message]) -> list[MessagePublic]:
    """Messages as the API answers them: each with what the run that wrote it says of it."""
    runs = store.runs_of_messages(conn, run_ids={m.run_id for m in items if m.run_id})
    return [MessagePublic.of(m, runs.get(m.run_id) if m.run_id else None) for m in items]


async def _add_message(
    svc: Svc, user_id: str, thread_id: str, body: MessageCreate, idem: Idempotency, status: int
) -> Response:
    async def make() -> Response:
        message = await svc.engine.add_message(
            user_id=user_id,
            thread_id=thread_id,
            content=body.text(),
            images=body.image_urls(),
            role=Role(body.role),
            metadata=body.metadata,
        )
        return answer(MessagePublic.of(message), status)

    return await idem.once(svc.db, user_id, make)


@router.post(
    "/threads/{thread_id}/messages",
    response_model=MessagePublic,
    responses=errors(409),
)
async def create_message(
    thread_id: str, body: MessageCreate, user: CurrentUser, svc: Svc, idem: Idempotent
) -> Response:
    return await _add_message(svc, user.id, thread_id, body, idem, 200)


@router.post("/messages", status_code=201, response_model=MessagePublic, responses=errors(404, 409))
async def create_message_flat(
    body: MessageCreateFlat, user: CurrentUser, svc: Svc, idem: Idempotent
) -> Response:
    """Parley (flow A): a message, its thread named in the body."""
    return await _add_message(svc, user.id, body.thread_id, body, idem, 201)


@router.get("/threads/{thread_id}/messages", responses=errors(400))
async def list_messages(
    thread_id: str,
    user: CurrentUser,
    svc: Svc,
    q: DescList,
    run_id: Annotated[str | None, Query(max_length=64)] = None,
    all_messages: bool = False,
) -> ListPublic[MessagePublic]:
    """The thread's messages, newest first unless ``order=asc``: those of one run with
    ``run_id``. As in the Assistants API, only user messages and assistant messages with
    text or images; with ``all_messages`` (Parley) every message, tool results, assistant
    messages that hold only tool calls and system messages too."""

    def read(conn: Connection) -> tuple[list[MessagePublic], bool]:
        items, more = store.list_messages(
            conn,
            user_id=user.id,
            thread_id=thread_id,
            page=q,
            run_id=run_id,
            with_tools=all_messages,
        )
        return messages_public(conn, items), more

    items, more = await svc.db.read(read)
    return ListPublic.of(items, more)  # type: ignore[return-value]


def _thread_message(conn: Connection, user_id: str, thread_id: str, message_id: str) -> Message:
    return of_thread(store.get_message(conn, user_id=user_id, message_id=message_id), thread_id)


@router.get("/threads/{thread_id}/messages/{message_id}")
async def get_thread_message(
    thread_id: str, message_id: str, user: CurrentUser, svc: Svc
) -> MessagePublic:
    def read(conn: Connection) -> MessagePublic:
        return messages_public(conn, [_thread_message(conn, user.id, thread_id, message_id)])[0]

    return await svc.db.read(read)


@router.post("/threads/{thread_id}/messages/{message_id}")
async def update_message(
    thread_id: str, message_id: str, body: MessageUpdate, user: CurrentUser, svc: Svc
) -> MessagePublic:
    def update(conn: Connection) -> MessagePublic:
        message = _thread_message(conn, user.id, thread_id, message_id)
        if body.metadata is not None:
            store.update_message(conn, message_id=message.id, metadata=body.metadata or None)
            message.metadata = body.metadata
        return messages_public(conn, [message])[0]

    return await svc.db.write(update)


@router.delete("/threads/{thread_id}/messages/{message_id}", responses=errors(409))
async def delete_message(thread_id: str, message_id: str, user: CurrentUser, svc: Svc) -> Deleted:
    """Delete a message. An assistant message that holds tool calls keeps them (their
    results answer them) and loses its text; a tool result cannot be deleted alone."""

    def delete(conn: Connection) -> None:
        message = _thread_message(conn, user.id, thread_id, message_id)
        busy = {str(s) for s in ACTIVE_STATUSES}
        if store.thread_has_run_in(conn, thread_id=thread_id, statuses=busy):
            raise Conflict(
                "The thread has an active run; wait for it, or cancel it, before deleting "
                "its messages.",
                code="thread_busy",
            )
        if message.role == Role.TOOL:
            raise InvalidRequest(
                "A tool result answers a tool call: it cannot be deleted alone.",
                code="tool_result_not_deletable",
            )
        if message.tool_calls:
            store.update_message(conn, message_id=message.id, content="", layout=None)
        else:
            store.delete_message(conn, message_id=message.id)

    await svc.db.write(delete)
    return Deleted(id=message_id, object="thread.message.deleted")


@router.get("/messages/{message_id}")
async def get_message(message_id: str, user: CurrentUser, svc: Svc) -> MessagePublic:
    """Parley: a message by its id alone."""

    def read(conn: Connection) -> MessagePublic:
        return messages_public(
            conn, [store.get_message(conn, user_id=user.id, message_id=message_id)]
        )[0]

    return await svc.db.read(read)
