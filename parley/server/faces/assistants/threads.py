"""Threads and their messages, in the Assistants API's shapes (and the native flat
``/v1/messages``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from parley.server.deps import (
    METADATA_FILTER_PARAMETER,
    CurrentUser,
    DescList,
    MetadataFilter,
    Svc,
)
from parley.server.faces.assistants import reads
from parley.server.faces.assistants.requests import added_messages
from parley.server.faces.assistants.schemas import MessageCreateFlat, MessageUpdate, ThreadUpdate
from parley.server.faces.kit.bodies import Deleted, MessageCreate, ThreadCreate
from parley.server.faces.kit.pages import Page
from parley.server.faces.kit.resources import MessagePublic, ThreadPublic
from parley.server.idempotency import Idempotency, Idempotent, answer
from parley.server.openapi import errors
from parley.store import threads as store
from parley.types import Role

router = APIRouter(tags=["threads"])


@router.post("/threads", response_model=ThreadPublic)
async def create_thread(
    user: CurrentUser, svc: Svc, idem: Idempotent, body: ThreadCreate | None = None
) -> Response:
    async def make() -> Response:
        given = body or ThreadCreate()
        attachments = [a for m in given.messages for a in m.attachments or ()]
        # Checked first: a store or a file that is not the caller's makes nothing.
        await svc.db.write(
            reads.check_given,
            user_id=user.id,
            resources=given.tool_resources,
            attachments=attachments,
        )
        messages = await added_messages(svc.engine.files, given.messages, user_id=user.id)
        thread, _ = await svc.engine.append_messages(
            user_id=user.id,
            thread_id=None,
            messages=messages,
            metadata=given.metadata,
        )
        resources = await svc.db.write(
            reads.thread_resources,
            user_id=user.id,
            thread_id=thread.id,
            resources=given.tool_resources,
            attachments=attachments,
            embedding_model=svc.settings.embedding_model,
        )
        return answer(ThreadPublic.of(thread).model_copy(update={"tool_resources": resources}))

    return await idem.once(svc.db, user.id, make)


@router.get(
    "/threads",
    responses=errors(400, 422),
    openapi_extra={"parameters": [METADATA_FILTER_PARAMETER]},
)
async def list_threads(
    user: CurrentUser, svc: Svc, q: DescList, metadata: MetadataFilter
) -> Page[ThreadPublic]:
    """Parley: the user's threads (the Assistants API has no such list)."""
    items, more = await svc.db.read(store.list_threads, user_id=user.id, page=q, metadata=metadata)
    return Page.of([ThreadPublic.of(t) for t in items], more)


@router.get("/threads/{thread_id}")
async def get_thread(thread_id: str, user: CurrentUser, svc: Svc) -> ThreadPublic:
    thread = await svc.db.read(store.get_thread, user_id=user.id, thread_id=thread_id)
    return await _with_resources(svc, user.id, ThreadPublic.of(thread))


async def _with_resources(svc: Svc, user_id: str, thread: ThreadPublic) -> ThreadPublic:
    """The thread, with its own store and its code interpreter files as its
    ``tool_resources``."""
    resources = await svc.db.read(reads.thread_tool_resources, user_id=user_id, thread_id=thread.id)
    return thread.model_copy(update={"tool_resources": resources})


@router.post("/threads/{thread_id}")
async def update_thread(
    thread_id: str, body: ThreadUpdate, user: CurrentUser, svc: Svc
) -> ThreadPublic:
    if body.tool_resources:
        await svc.db.write(reads.check_given, user_id=user.id, resources=body.tool_resources)
    thread = await svc.db.write(
        reads.update_thread, user_id=user.id, thread_id=thread_id, metadata=body.metadata
    )
    if body.tool_resources:
        await svc.db.write(
            reads.thread_resources,
            user_id=user.id,
            thread_id=thread.id,
            resources=body.tool_resources,
            embedding_model=svc.settings.embedding_model,
        )
    return await _with_resources(svc, user.id, ThreadPublic.of(thread))


@router.delete("/threads/{thread_id}", responses=errors(409))
async def delete_thread(thread_id: str, user: CurrentUser, svc: Svc) -> Deleted:
    await svc.db.write(store.delete_thread, user_id=user.id, thread_id=thread_id)
    return Deleted(id=thread_id, object="thread.deleted")


# ---------------------------------------------------------------------------- messages


async def _add_message(
    svc: Svc, user_id: str, thread_id: str, body: MessageCreate, idem: Idempotency, status: int
) -> Response:
    async def make() -> Response:
        if body.attachments:  # into the thread's store (the thread and files the user's)
            await svc.db.write(
                reads.attach,
                user_id=user_id,
                thread_id=thread_id,
                attachments=body.attachments,
                embedding_model=svc.settings.embedding_model,
            )
        (added,) = await added_messages(svc.engine.files, [body], user_id=user_id)
        message = await svc.engine.add_message(
            user_id=user_id,
            thread_id=thread_id,
            content=body.text(),
            images=added.images or [],
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
) -> Page[MessagePublic]:
    """The thread's messages, newest first unless ``order=asc``: those of one run with
    ``run_id``. As in the Assistants API, only user messages and assistant messages with
    text or images; with ``all_messages`` (Parley) every message, tool results, assistant
    messages that hold only tool calls and system messages too."""
    items, more = await svc.db.read(
        reads.list_messages,
        user_id=user.id,
        thread_id=thread_id,
        page=q,
        run_id=run_id,
        with_tools=all_messages,
    )
    return Page.of(items, more)


@router.get("/threads/{thread_id}/messages/{message_id}")
async def get_thread_message(
    thread_id: str, message_id: str, user: CurrentUser, svc: Svc
) -> MessagePublic:
    return await svc.db.read(
        reads.thread_message, user_id=user.id, thread_id=thread_id, message_id=message_id
    )


@router.post("/threads/{thread_id}/messages/{message_id}")
async def update_message(
    thread_id: str, message_id: str, body: MessageUpdate, user: CurrentUser, svc: Svc
) -> MessagePublic:
    return await svc.db.write(
        reads.update_message,
        user_id=user.id,
        thread_id=thread_id,
        message_id=message_id,
        metadata=body.metadata,
    )


@router.delete("/threads/{thread_id}/messages/{message_id}", responses=errors(409))
async def delete_message(thread_id: str, message_id: str, user: CurrentUser, svc: Svc) -> Deleted:
    """Delete a message. An assistant message that holds tool calls keeps them (their
    results answer them) and loses its text; a tool result cannot be deleted alone."""
    await svc.db.write(
        reads.delete_message, user_id=user.id, thread_id=thread_id, message_id=message_id
    )
    return Deleted(id=message_id, object="thread.message.deleted")


@router.get("/messages/{message_id}")
async def get_message(message_id: str, user: CurrentUser, svc: Svc) -> MessagePublic:
    """Parley: a message by its id alone."""
    return await svc.db.read(reads.message, user_id=user.id, message_id=message_id)
