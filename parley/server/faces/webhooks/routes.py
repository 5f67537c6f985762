"""``/v1/webhooks``: a user's webhook endpoints and their deliveries (docs/webhooks.md).

OpenAI has no such API, so this one is Parley's own. An endpoint's ``secret`` is shown when
it is made and when it is rotated, never in a list. Another user's endpoint or delivery
answers 404. A URL must pass the address policy (``PARLEY_WEBHOOK_ALLOW_URLS``), checked
here after DNS and again at every delivery.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import Field, StrictStr

from parley.server.deps import CurrentUser, DescList, Svc
from parley.server.faces.kit.bodies import Body, Deleted
from parley.server.openapi import errors
from parley.store import webhooks as store
from parley.store.db import now
from parley.webhooks.delivery import webhook_policy
from parley.webhooks.endpoints import check_endpoint, delivery_public, endpoint_public

router = APIRouter(tags=["webhooks"])


class WebhookCreate(Body):
    """``POST /v1/webhooks``."""

    url: Annotated[StrictStr, Field(min_length=1, max_length=4096)]
    events: Annotated[list[StrictStr], Field(max_length=64)]
    description: Annotated[StrictStr, Field(max_length=512)] | None = None


@router.post("/webhooks", responses=errors(400))
async def create_webhook(body: WebhookCreate, user: CurrentUser, svc: Svc) -> dict[str, Any]:
    events = await check_endpoint(webhook_policy(svc.settings), body.url, body.events)
    made = await svc.db.write(
        store.create_endpoint,
        user_id=user.id,
        url=body.url,
        events=events,
        description=body.description,
    )
    return endpoint_public(made, with_secret=True)


@router.get("/webhooks")
async def list_webhooks(user: CurrentUser, svc: Svc) -> dict[str, Any]:
    found = await svc.db.read(store.list_endpoints, user_id=user.id)
    return {"object": "list", "data": [endpoint_public(e) for e in found]}


@router.get("/webhooks/{webhook_id}", responses=errors(404))
async def retrieve_webhook(webhook_id: str, user: CurrentUser, svc: Svc) -> dict[str, Any]:
    found = await svc.db.read(store.get_endpoint, user_id=user.id, endpoint_id=webhook_id)
    return endpoint_public(found)


@router.delete("/webhooks/{webhook_id}", responses=errors(404))
async def delete_webhook(webhook_id: str, user: CurrentUser, svc: Svc) -> Deleted:
    await svc.db.write(store.delete_endpoint, user_id=user.id, endpoint_id=webhook_id)
    return Deleted(id=webhook_id, object="webhook_endpoint.deleted")


@router.post("/webhooks/{webhook_id}/rotate_secret", responses=errors(404))
async def rotate_webhook_secret(webhook_id: str, user: CurrentUser, svc: Svc) -> dict[str, Any]:
    found = await svc.db.write(store.rotate_secret, user_id=user.id, endpoint_id=webhook_id)
    return endpoint_public(found, with_secret=True)


@router.get("/webhooks/{webhook_id}/deliveries", responses=errors(400, 404))
async def list_webhook_deliveries(
    webhook_id: str, user: CurrentUser, svc: Svc, q: DescList
) -> dict[str, Any]:
    """The endpoint's deliveries, newest first, each with its attempts."""
    found, more = await svc.db.read(
        store.list_deliveries, user_id=user.id, endpoint_id=webhook_id, page=q
    )
    data = [delivery_public(d, attempts) for d, attempts in found]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": more,
    }


@router.post("/webhooks/{webhook_id}/deliveries/{delivery_id}/replay", responses=errors(404))
async def replay_webhook_delivery(
    webhook_id: str, delivery_id: str, user: CurrentUser, svc: Svc
) -> dict[str, Any]:
    """Send the delivery again (now, then retried as a new one would be)."""
    found = await svc.db.write(
        store.replay,
        user_id=user.id,
        endpoint_id=webhook_id,
        delivery_id=delivery_id,
        retry_until=now() + svc.settings.webhook_retry_hours * 3600,
    )
    return delivery_public(found, [])
