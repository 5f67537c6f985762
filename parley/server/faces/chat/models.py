"""The providers and the models they offer."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from parley.providers.catalog import describe, find_model
from parley.server.deps import CurrentUser, Svc
from parley.server.openapi import errors

router = APIRouter(tags=["models"])


@router.get("/models")
async def list_models(_: CurrentUser, svc: Svc) -> dict[str, Any]:
    """Every provider (ready or what it needs) and the models of those that list them."""
    return await describe(svc.providers)


@router.get("/models/{model:path}", responses=errors())
async def retrieve_model(model: str, _: CurrentUser, svc: Svc) -> dict[str, Any]:
    """One model (``provider/model-id``, or a name without ``/`` for the default
    provider's), in OpenAI's shape, if it can be used now."""
    return await find_model(svc.providers, model)
