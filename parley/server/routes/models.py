"""The providers and the models they offer."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from parley.providers.catalog import describe
from parley.server.deps import CurrentUser, Svc

router = APIRouter(tags=["models"])


@router.get("/models")
async def list_models(_: CurrentUser, svc: Svc) -> dict[str, Any]:
    """Every provider (ready or what it needs) and the models of those that list them."""
    return await describe(svc.providers)
