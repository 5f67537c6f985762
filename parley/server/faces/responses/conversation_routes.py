"""The Conversations API: a conversation is a thread, its items the thread's messages as
the Responses API's items. A response made with ``conversation`` adds to it; the native API
and ``parley chat --thread`` see the same thread."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response

from parley.engine import NewMessage
from parley.errors import InvalidRequest, NotFound
from parley.server.deps import CurrentUser, Services, Svc
from parley.server.faces.kit.file_inputs import settle
from parley.server.faces.kit.naming import messages_from
from parley.server.faces.kit.pages import Page, window
from parley.server.faces.responses import reads
from parley.server.faces.responses.items import message_items, parse_input
from parley.server.faces.responses.protocol import (
    ConversationCreate,
    ConversationUpdate,
    ItemsCreate,
)
from parley.server.idempotency import Idempotent
from parley.server.openapi import errors
from parley.store.pagination import ListQuery
from parley.store.records import Thread

router = APIRouter(tags=["conversations"])

Include = Annotated[list[str] | None, Query()]


@contextmanager
def _named_items() -> Iterator[None]:
    """A refused item named as this API's body names it: ``items[2]``, not ``input[2]``
    (the item parser speaks of a response's ``input``), and the engine's word on the new
    messages as ``items``."""
    try:
        with messages_from("items"):
            yield
    except (InvalidRequest, NotFound) as exc:
        if exc.param is None or not exc.param.startswith("input"):
            raise
        param = "items" + exc.param.removeprefix("input")
        message = exc.message.replace(f"'{exc.param}'", f"'{param}'")
        raise type(exc)(message, code=exc.code, param=param, details=exc.details) from None


async def _with_files(svc: Services, user_id: str, items: list[dict[str, Any]]) -> list[NewMessage]:
    """The messages of ``items``, their files checked (``kit.file_inputs.settle``: no model
    is chosen yet; each model call reads them)."""
    return await settle(
        svc.engine.files, parse_input(items, files=True), user_id=user_id, model=None
    )


def conversation_object(thread: Thread) -> dict[str, Any]:
    return {
        "id": thread.id,
        "object": "conversation",
        "created_at": int(thread.created_at),
        "metadata": thread.metadata,
    }


@router.post("/conversations", responses=errors(400, 404), response_model=dict[str, Any])
async def create_conversation(
    user: CurrentUser, svc: Svc, idem: Idempotent, body: ConversationCreate | None = None
) -> Response:
    async def make() -> Response:
        given = body or ConversationCreate()
        with _named_items():
            messages = await _with_files(svc, user.id, given.items or [])
            thread, _ = await svc.engine.append_messages(
                user_id=user.id, thread_id=None, messages=messages, metadata=given.metadata or {}
            )
        return JSONResponse(conversation_object(thread))

    return await idem.once(svc.db, user.id, make)


@router.get("/conversations/{conversation_id}", responses=errors())
async def retrieve_conversation(
    conversation_id: str, user: CurrentUser, svc: Svc
) -> dict[str, Any]:
    thread = await svc.db.read(
        reads.get_conversation, user_id=user.id, conversation_id=conversation_id
    )
    return conversation_object(thread)


@router.post("/conversations/{conversation_id}", responses=errors())
async def update_conversation(
    conversation_id: str, body: ConversationUpdate, user: CurrentUser, svc: Svc
) -> dict[str, Any]:
    thread = await svc.db.write(
        reads.update_conversation,
        user_id=user.id,
        conversation_id=conversation_id,
        metadata=body.metadata or {},
    )
    return conversation_object(thread)


@router.delete("/conversations/{conversation_id}", responses=errors(409))
async def delete_conversation(conversation_id: str, user: CurrentUser, svc: Svc) -> dict[str, Any]:
    await svc.db.write(reads.delete_conversation, user_id=user.id, conversation_id=conversation_id)
    return {"id": conversation_id, "object": "conversation.deleted", "deleted": True}


@router.get("/conversations/{conversation_id}/items", responses=errors(400))
async def list_items(
    conversation_id: str,
    user: CurrentUser,
    svc: Svc,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    order: Literal["asc", "desc"] = "desc",
    after: Annotated[str | None, Query(max_length=128)] = None,
    include: Include = None,
) -> Page[dict[str, Any]]:
    items = await svc.db.read(reads.all_items, user_id=user.id, conversation_id=conversation_id)
    return window(items, ListQuery(limit=limit, order=order, after=after))


@router.post(
    "/conversations/{conversation_id}/items",
    responses=errors(400, 409),
    response_model=dict[str, Any],
)
async def create_items(
    conversation_id: str,
    body: ItemsCreate,
    user: CurrentUser,
    svc: Svc,
    idem: Idempotent,
    include: Include = None,
) -> Response:
    async def make() -> Response:
        await svc.db.read(reads.get_conversation, user_id=user.id, conversation_id=conversation_id)
        with _named_items():
            messages = await _with_files(svc, user.id, body.items)
            _, rows = await svc.engine.append_messages(
                user_id=user.id, thread_id=conversation_id, messages=messages
            )
        outputs = await svc.db.read(reads.output_types, rows)
        added = Page.of([item for m in rows for item in message_items(m, outputs=outputs)])
        return JSONResponse(added.model_dump(mode="json"))

    return await idem.once(svc.db, user.id, make)


@router.get("/conversations/{conversation_id}/items/{item_id}", responses=errors())
async def retrieve_item(
    conversation_id: str, item_id: str, user: CurrentUser, svc: Svc, include: Include = None
) -> dict[str, Any]:
    _, item = await svc.db.read(
        reads.find_item, user_id=user.id, conversation_id=conversation_id, item_id=item_id
    )
    return item


@router.delete("/conversations/{conversation_id}/items/{item_id}", responses=errors(400, 409))
async def delete_item(
    conversation_id: str, item_id: str, user: CurrentUser, svc: Svc
) -> dict[str, Any]:
    thread = await svc.db.write(
        reads.delete_item, user_id=user.id, conversation_id=conversation_id, item_id=item_id
    )
    return conversation_object(thread)
