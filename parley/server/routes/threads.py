"""Threads and their messages."""

from __future__ import annotations

import functools

from fastapi import APIRouter
from fastapi.responses import Response

from parley.server.deps import (
    METADATA_FILTER_PARAMETER,
    AscList,
    CurrentUser,
    DescList,
    MetadataFilter,
    Svc,
)
from parley.server.idempotency import Idempotency, Idempotent, answer
from parley.server.openapi import errors
from parley.server.schemas import (
    Deleted,
    ListPublic,
    MessageCreate,
    MessageCreateFlat,
    MessagePublic,
    ThreadCreate,
    ThreadPublic,
)
from parley.store import threads as store

router = APIRouter(tags=["threads"])


@router.post("/threads", status_code=201, response_model=ThreadPublic)
async def create_thread(
    user: CurrentUser, svc: Svc, idem: Idempotent, body: ThreadCreate | None = None
) -> Response:
    async def make() -> Response:
        metadata = body.metadata if body else {}
        thread = await svc.db.write(
            functools.partial(store.create_thread, user_id=user.id, metadata=metadata)
        )
        return answer(ThreadPublic.of(thread), 201)

    return await idem.once(svc.db, user.id, make)


@router.get(
    "/threads",
    responses=errors(400, 422),
    openapi_extra={"parameters": [METADATA_FILTER_PARAMETER]},
)
async def list_threads(
    user: CurrentUser, svc: Svc, q: DescList, metadata: MetadataFilter
) -> ListPublic[ThreadPublic]:
    items, more = await svc.db.read(
        functools.partial(
            store.list_threads,
            user_id=user.id,
            limit=q.limit,
            after=q.after,
            order=q.order,
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


@router.delete("/threads/{thread_id}", responses=errors(409))
async def delete_thread(thread_id: str, user: CurrentUser, svc: Svc) -> Deleted:
    await svc.db.write(functools.partial(store.delete_thread, user_id=user.id, thread_id=thread_id))
    return Deleted(id=thread_id, object="thread.deleted")


async def _add_user_message(
    svc: Svc, user_id: str, thread_id: str, body: MessageCreate, idem: Idempotency
) -> Response:
    async def make() -> Response:
        message = await svc.engine.add_message(
            user_id=user_id,
            thread_id=thread_id,
            content=body.content,
            images=[i.model_dump() for i in body.images],
        )
        return answer(MessagePublic.of(message), 201)

    return await idem.once(svc.db, user_id, make)


@router.post(
    "/threads/{thread_id}/messages",
    status_code=201,
    response_model=MessagePublic,
    responses=errors(409),
)
async def create_message(
    thread_id: str, body: MessageCreate, user: CurrentUser, svc: Svc, idem: Idempotent
) -> Response:
    return await _add_user_message(svc, user.id, thread_id, body, idem)


@router.post("/messages", status_code=201, response_model=MessagePublic, responses=errors(404, 409))
async def create_message_flat(
    body: MessageCreateFlat, user: CurrentUser, svc: Svc, idem: Idempotent
) -> Response:
    return await _add_user_message(svc, user.id, body.thread_id, body, idem)


@router.get("/threads/{thread_id}/messages", responses=errors(400))
async def list_messages(
    thread_id: str, user: CurrentUser, svc: Svc, q: AscList
) -> ListPublic[MessagePublic]:
    items, more = await svc.db.read(
        functools.partial(
            store.list_messages,
            user_id=user.id,
            thread_id=thread_id,
            limit=q.limit,
            after=q.after,
            order=q.order,
        )
    )
    return ListPublic.of([MessagePublic.of(m) for m in items], more)  # type: ignore[return-value]


@router.get("/messages/{message_id}")
async def get_message(message_id: str, user: CurrentUser, svc: Svc) -> MessagePublic:
    message = await svc.db.read(
        functools.partial(store.get_message, user_id=user.id, message_id=message_id)
    )
    return MessagePublic.of(message)
