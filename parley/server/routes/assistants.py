"""Assistants."""

from __future__ import annotations

import functools
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from parley.server.deps import CurrentUser, DescList, Svc
from parley.server.idempotency import Idempotent, answer
from parley.server.openapi import errors
from parley.server.schemas import (
    AssistantCreate,
    AssistantPublic,
    AssistantUpdate,
    Deleted,
    ListPublic,
)
from parley.store import assistants as store

router = APIRouter(tags=["assistants"])


@router.post("/assistants", status_code=201, response_model=AssistantPublic)
async def create_assistant(
    body: AssistantCreate, user: CurrentUser, svc: Svc, idem: Idempotent
) -> Response:
    async def make() -> Response:
        svc.providers.check_model(body.model)
        assistant = await svc.db.write(
            functools.partial(
                store.create_assistant,
                user_id=user.id,
                name=body.name,
                model=body.model,
                instructions=body.instructions,
                tools=[t.model_dump() for t in body.tools or ()],
                parameters=body.parameters,
                metadata=body.metadata,
            )
        )
        return answer(AssistantPublic.of(assistant), 201)

    return await idem.once(svc.db, user.id, make)


@router.get("/assistants", responses=errors(400))
async def list_assistants(user: CurrentUser, svc: Svc, q: DescList) -> ListPublic[AssistantPublic]:
    items, more = await svc.db.read(
        functools.partial(
            store.list_assistants, user_id=user.id, limit=q.limit, after=q.after, order=q.order
        )
    )
    return ListPublic.of([AssistantPublic.of(a) for a in items], more)  # type: ignore[return-value]


@router.get("/assistants/{assistant_id}")
async def get_assistant(assistant_id: str, user: CurrentUser, svc: Svc) -> AssistantPublic:
    return AssistantPublic.of(
        await svc.db.read(
            functools.partial(store.get_assistant, user_id=user.id, assistant_id=assistant_id)
        )
    )


@router.post("/assistants/{assistant_id}")
async def update_assistant(
    assistant_id: str, body: AssistantUpdate, user: CurrentUser, svc: Svc
) -> AssistantPublic:
    fields: dict[str, Any] = body.model_dump(exclude_unset=True, exclude={"tools"})
    if body.tools is not None:
        fields["tools"] = [t.model_dump() for t in body.tools]
    for required in ("name", "model", "parameters", "metadata"):
        if required in fields and fields[required] is None:
            del fields[required]
    if "model" in fields:
        svc.providers.check_model(fields["model"])
    assistant = await svc.db.write(
        functools.partial(
            store.update_assistant, user_id=user.id, assistant_id=assistant_id, fields=fields
        )
    )
    return AssistantPublic.of(assistant)


@router.delete("/assistants/{assistant_id}")
async def delete_assistant(assistant_id: str, user: CurrentUser, svc: Svc) -> Deleted:
    await svc.db.write(
        functools.partial(store.delete_assistant, user_id=user.id, assistant_id=assistant_id)
    )
    return Deleted(id=assistant_id, object="assistant.deleted")
