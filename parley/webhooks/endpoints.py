"""What the API and the CLI share about webhook endpoints: the checks of a new endpoint,
and the public shapes of endpoints and deliveries."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from parley.errors import InvalidRequest
from parley.mcp.addresses import AddressPolicy, AddressRefused
from parley.store.records import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from parley.store.webhooks import EVENTS

#: The longest URL an endpoint may have.
MAX_URL = 2048


async def check_endpoint(policy: AddressPolicy, url: str, events: Sequence[str]) -> list[str]:
    """The events, without repeats, once the URL and the events pass: 400 naming ``url``
    (a URL the address policy refuses, after DNS) or ``events`` (none, or one unknown)."""
    if len(url) > MAX_URL:
        raise InvalidRequest(f"The URL is longer than {MAX_URL} characters.", param="url")
    try:
        await policy.check_reachable(url)
    except AddressRefused as exc:
        raise InvalidRequest(
            f"Webhooks may not be sent to this URL: {exc.message}.",
            code="address_refused",
            param="url",
        ) from None
    if not events:
        raise InvalidRequest("Name at least one event.", param="events")
    unknown = [e for e in events if e not in EVENTS]
    if unknown:
        raise InvalidRequest(
            f"Unknown event {unknown[0]!r}; the events are: {', '.join(EVENTS)}.",
            code="unknown_event",
            param="events",
        )
    return list(dict.fromkeys(events))


def endpoint_public(endpoint: WebhookEndpoint, *, with_secret: bool = False) -> dict[str, Any]:
    """An endpoint as the API shows it; its secret only when it was just made or rotated."""
    shown: dict[str, Any] = {
        "id": endpoint.id,
        "object": "webhook_endpoint",
        "url": endpoint.url,
        "events": endpoint.events,
        "description": endpoint.description,
        "created_at": int(endpoint.created_at),
    }
    if with_secret:
        shown["secret"] = endpoint.secret
    return shown


def delivery_public(
    delivery: WebhookDelivery, attempts: Sequence[WebhookAttempt]
) -> dict[str, Any]:
    """A delivery as the API shows it, with each of its attempts."""
    return {
        "id": delivery.id,
        "object": "webhook_delivery",
        "endpoint_id": delivery.endpoint_id,
        "event_id": delivery.event_id,
        "event_type": delivery.event_type,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "created_at": int(delivery.created_at),
        "next_attempt_at": (
            int(delivery.next_attempt_at)
            if delivery.status == "pending" and delivery.next_attempt_at is not None
            else None
        ),
        "last_status_code": delivery.last_status_code,
        "last_error": delivery.last_error,
        "delivered_at": int(delivery.delivered_at) if delivery.delivered_at else None,
        "attempt_log": [
            {
                "number": a.number,
                "at": a.at,
                "status_code": a.status_code,
                "error": a.error,
                "duration_ms": round(a.duration_ms, 1),
            }
            for a in attempts
        ],
    }
