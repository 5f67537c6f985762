"""Assistants: create, list, retrieve, update and delete, in the Assistants API's shapes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from parley.server.deps import AuthenticatedCaller, CurrentUser, DescList, Svc
from parley.server.faces.assistants import files, reads
from parley.server.faces.assistants.requests import assistant_options, sampling
from parley.server.faces.assistants.schemas import AssistantCreate, AssistantUpdate
from parley.server.faces.kit.bodies import Deleted
from parley.server.faces.kit.hosted import check_owned, kept
from parley.server.faces.kit.pages import Page
from parley.server.faces.kit.resources import AssistantPublic
from parley.server.idempotency import Idempotent, answer
from parley.server.openapi import errors
from parley.store import assistants as store
from parley.store.records import Assistant

router = APIRouter(tags=["assistants"])


def _public(assistant: Assistant) -> AssistantPublic:
    """The assistant as the API answers it, with its ``tool_resources`` (its options keep
    them: ``files``) and its ``file_search`` tool in the Assistants API's shape."""
    shown = AssistantPublic.of(assistant)
    update: dict[str, Any] = {"tools": [files.tool_shown(t) for t in shown.tools]}
    resources = (assistant.options or {}).get("tool_resources")
    if resources:
        update["tool_resources"] = resources
    return shown.model_copy(update=update)


@router.post("/assistants", response_model=AssistantPublic)
async def create_assistant(
    body: AssistantCreate, caller: AuthenticatedCaller, svc: Svc, idem: Idempotent
) -> Response:
    user = caller.user

    async def make() -> Response:
        profile = svc.engine.profile(body.model)  # an unknown model is a 400
        tools = kept(body.tools or [], svc, user, caller.key_id, assistants=True)
        await check_owned(svc.db, user_id=user.id, tools=tools)
        options = assistant_options(body, None, profile)
        if body.tool_resources:
            options["tool_resources"] = await svc.db.write(
                reads.kept_resources,
                user_id=user.id,
                resources=body.tool_resources,
                embedding_model=svc.settings.embedding_model,
            )
        assistant = await svc.db.write(
            store.create_assistant,
            user_id=user.id,
            name=body.name or "",
            description=body.description,
            model=body.model,
            instructions=body.instructions,
            tools=tools,
            parameters=sampling(body, body.parameters),
            options=options or None,
            metadata=body.metadata,
        )
        return answer(_public(assistant))

    return await idem.once(svc.db, user.id, make)


@router.get("/assistants", responses=errors(400))
async def list_assistants(user: CurrentUser, svc: Svc, q: DescList) -> Page[AssistantPublic]:
    items, more = await svc.db.read(store.list_assistants, user_id=user.id, page=q)
    return Page.of([_public(a) for a in items], more)


@router.get("/assistants/{assistant_id}")
async def get_assistant(assistant_id: str, user: CurrentUser, svc: Svc) -> AssistantPublic:
    return _public(
        await svc.db.read(store.get_assistant, user_id=user.id, assistant_id=assistant_id)
    )


@router.post("/assistants/{assistant_id}")
async def update_assistant(
    assistant_id: str, body: AssistantUpdate, caller: AuthenticatedCaller, svc: Svc
) -> AssistantPublic:
    user = caller.user
    given = body.model_fields_set
    if "model" in given and body.model is not None:
        svc.engine.profile(body.model)  # a model that does not exist is refused

    tools = (
        None if body.tools is None else kept(body.tools, svc, user, caller.key_id, assistants=True)
    )
    await check_owned(svc.db, user_id=user.id, tools=tools or [])
    resources = None
    if body.tool_resources is not None:
        resources = await svc.db.write(
            reads.kept_resources,
            user_id=user.id,
            resources=body.tool_resources,
            embedding_model=svc.settings.embedding_model,
        )

    def change(current: Assistant) -> dict[str, Any]:
        """The fields the update sets, of the assistant as it stands."""
        fields: dict[str, Any] = {}
        for name in ("name", "model", "instructions", "description", "metadata"):
            if name in given and not (
                name in ("model", "metadata") and getattr(body, name) is None
            ):
                fields[name] = getattr(body, name)
        if "name" in fields:
            fields["name"] = fields["name"] or ""
        if tools is not None:
            fields["tools"] = tools
        base = current.parameters if body.parameters is None else body.parameters
        fields["parameters"] = sampling(body, base)
        profile = svc.engine.profile(fields.get("model", current.model))
        options = assistant_options(body, current.options, profile)
        if resources is not None:
            options["tool_resources"] = resources
        fields["options"] = options or None
        return fields

    updated = await svc.db.write(
        reads.update_assistant, user_id=user.id, assistant_id=assistant_id, change=change
    )
    return _public(updated)


@router.delete("/assistants/{assistant_id}")
async def delete_assistant(assistant_id: str, user: CurrentUser, svc: Svc) -> Deleted:
    await svc.db.write(store.delete_assistant, user_id=user.id, assistant_id=assistant_id)
    return Deleted(id=assistant_id, object="assistant.deleted")
