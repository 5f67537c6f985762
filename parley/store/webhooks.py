"""Webhook endpoints and the outbox of their deliveries (``parley.webhooks``).

An endpoint belongs to a user and names the events it wants. When a run ends, the
transaction that ends it (``engine.states.move``) calls ``enqueue``: one ``pending``
delivery per subscribed endpoint is written there and then, so an end is never lost
between the run's row and the outbox. A delivery worker of any replica then claims due
deliveries (``claim``: compare-and-set on ``next_attempt_at``, ``FOR UPDATE SKIP LOCKED`` on
PostgreSQL), sends them, and writes each attempt's outcome (``finish_attempt``) only while
its claim still holds. A claim lasts until ``next_attempt_at``: a worker that died leaves
the delivery due again once its claim runs out, so every event is delivered at least once.

The events (``EVENTS``): a run made by the Responses API with ``background: true`` gives
``response.completed``, ``response.failed``, ``response.cancelled`` or
``response.incomplete``, as OpenAI sends them (a response that was not in the background
gives none, as at OpenAI).
Any other run (Assistants, Parley's own ``/v1/runs``) gives ``thread.run.<status>`` for
``completed``, ``failed``, ``cancelled``, ``incomplete`` and ``expired``, and
``thread.run.requires_action`` at each pause for tool outputs.

Each function runs in one transaction on a database thread (``Database.write``).
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.engine import Connection

from parley.errors import NotFound
from parley.store import driver
from parley.store.db import new_id, now
from parley.store.pagination import ListQuery, fetch_page
from parley.store.records import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from parley.store.tables import runs, webhook_attempts, webhook_deliveries, webhook_endpoints
from parley.store.transaction import notify
from parley.types import RunStatus

#: The events of runs made by the Responses API, by the run's new status.
RESPONSE_EVENTS: dict[RunStatus, str] = {
    RunStatus.ACTION_REQUIRED: "response.completed",  # a response ends at its tool calls
    RunStatus.COMPLETED: "response.completed",
    RunStatus.FAILED: "response.failed",
    RunStatus.CANCELLED: "response.cancelled",
    RunStatus.INCOMPLETE: "response.incomplete",
}
#: The events of every other run (Assistants runs, native runs), by the run's new status.
RUN_EVENTS: dict[RunStatus, str] = {
    RunStatus.ACTION_REQUIRED: "thread.run.requires_action",
    RunStatus.COMPLETED: "thread.run.completed",
    RunStatus.FAILED: "thread.run.failed",
    RunStatus.CANCELLED: "thread.run.cancelled",
    RunStatus.INCOMPLETE: "thread.run.incomplete",
    RunStatus.EXPIRED: "thread.run.expired",
}
#: Every event an endpoint may subscribe to.
EVENTS: tuple[str, ...] = tuple(dict.fromkeys([*RESPONSE_EVENTS.values(), *RUN_EVENTS.values()]))
#: The statuses whose moves may write events (``enqueue`` is a no-op for the others).
ENDING = frozenset(RUN_EVENTS)

_E = webhook_endpoints
#: What a transaction that writes deliveries tells of once it commits (``Database.listen``).
TOPIC = "webhooks"

_D = webhook_deliveries
_SUBSCRIBED = (
    select(
        _E.c.id,
        _E.c.events,
        runs.c.user_id,
        runs.c.thread_id,
        runs.c.request,
        runs.c.paused_at,
    )
    .join(runs, runs.c.user_id == _E.c.user_id)
    .where(runs.c.id == bindparam("run_id"))
)
_INSERT_DELIVERIES = insert(_D)


def new_secret() -> str:
    """``whsec_`` and the base64 of 32 random bytes, as OpenAI's signing secrets look."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def endpoint_not_found(endpoint_id: str) -> NotFound:
    return NotFound(f"No webhook endpoint with id {endpoint_id}.", code="webhook_not_found")


# ----------------------------------------------------------------------------- endpoints


def create_endpoint(
    conn: Connection, *, user_id: str, url: str, events: Sequence[str], description: str | None
) -> WebhookEndpoint:
    """A new endpoint with a new secret (the URL and events are checked by the caller)."""
    made = WebhookEndpoint(
        id=new_id("wh"),
        user_id=user_id,
        url=url,
        events=list(dict.fromkeys(events)),
        description=description,
        secret=new_secret(),
        created_at=now(),
    )
    conn.execute(insert(_E).values(**made.values()))
    return made


def list_endpoints(conn: Connection, *, user_id: str) -> list[WebhookEndpoint]:
    rows = conn.execute(
        select(_E).where(_E.c.user_id == user_id).order_by(_E.c.created_at, _E.c.id)
    )
    return [WebhookEndpoint.from_row(row) for row in rows]


def get_endpoint(conn: Connection, *, user_id: str, endpoint_id: str) -> WebhookEndpoint:
    row = conn.execute(
        select(_E).where(_E.c.id == endpoint_id, _E.c.user_id == user_id)
    ).one_or_none()
    if row is None:
        raise endpoint_not_found(endpoint_id)
    return WebhookEndpoint.from_row(row)


def delete_endpoint(conn: Connection, *, user_id: str, endpoint_id: str) -> None:
    """Delete the endpoint with its deliveries (pending ones are never sent)."""
    get_endpoint(conn, user_id=user_id, endpoint_id=endpoint_id)
    ids = select(_D.c.id).where(_D.c.endpoint_id == endpoint_id).scalar_subquery()
    conn.execute(delete(webhook_attempts).where(webhook_attempts.c.delivery_id.in_(ids)))
    conn.execute(delete(_D).where(_D.c.endpoint_id == endpoint_id))
    conn.execute(delete(_E).where(_E.c.id == endpoint_id))


def rotate_secret(conn: Connection, *, user_id: str, endpoint_id: str) -> WebhookEndpoint:
    """A new secret for the endpoint; every attempt from now on is signed with it."""
    found = get_endpoint(conn, user_id=user_id, endpoint_id=endpoint_id)
    found.secret = new_secret()
    conn.execute(update(_E).where(_E.c.id == endpoint_id).values(secret=found.secret))
    return found


# ----------------------------------------------------------------------------- the outbox


def event_type(request: dict[str, Any] | None, status: RunStatus, *, paused: bool) -> str | None:
    """The event a run's move to ``status`` gives, if any. As OpenAI's, a response gives
    events only when it ran in the background; one that paused for tool calls ended there
    (``response.completed``): its later end gives nothing more."""
    if request is not None and request.get("api") == "responses":
        if not request.get("background"):
            return None
        return (
            None if paused and status != RunStatus.ACTION_REQUIRED else RESPONSE_EVENTS.get(status)
        )
    return RUN_EVENTS.get(status)


def enqueue(conn: Connection, *, run_id: str, status: RunStatus) -> int:
    """The run just moved to ``status`` in this transaction: write one ``pending`` delivery
    for each of its user's endpoints subscribed to the event it gives. Returns how many.
    The move itself says whether the user has any endpoint (``runs.end_status``): almost
    never, and then this is not called."""
    found = conn.execute(_SUBSCRIBED, {"run_id": run_id}).all()
    if not found:
        return 0
    first = found[0]
    name = event_type(first.request, status, paused=first.paused_at is not None)
    wanted = [row.id for row in found if name is not None and name in row.events]
    if name is None or not wanted:
        return 0
    at = now()
    data: dict[str, Any] = {"id": run_id}
    if not name.startswith("response."):
        data["thread_id"] = first.thread_id
    event_id = new_id("evt")
    payload = orjson.dumps(
        {"id": event_id, "type": name, "created_at": int(at), "object": "event", "data": data}
    ).decode()
    conn.execute(
        _INSERT_DELIVERIES,
        [
            {
                "id": new_id("whd"),
                "endpoint_id": endpoint_id,
                "user_id": first.user_id,
                "event_id": event_id,
                "event_type": name,
                "payload": payload,
                "status": "pending",
                "attempts": 0,
                "created_at": at,
                "next_attempt_at": at,
                "lease_owner": None,
                "retry_until": None,
                "last_status_code": None,
                "last_error": None,
                "delivered_at": None,
            }
            for endpoint_id in wanted
        ],
    )
    notify(conn, TOPIC)  # this replica's sender sends them once they commit
    return len(wanted)


def list_deliveries(
    conn: Connection, *, user_id: str, endpoint_id: str, page: ListQuery
) -> tuple[list[tuple[WebhookDelivery, list[WebhookAttempt]]], bool]:
    """A page of the endpoint's deliveries, each with its attempts (oldest first)."""
    get_endpoint(conn, user_id=user_id, endpoint_id=endpoint_id)
    rows, more = fetch_page(
        conn, _D, where=_D.c.endpoint_id == endpoint_id, sort_column="created_at", page=page
    )
    found = [WebhookDelivery.from_row(row) for row in rows]
    attempts: dict[str, list[WebhookAttempt]] = {d.id: [] for d in found}
    if found:
        query = (
            select(webhook_attempts)
            .where(webhook_attempts.c.delivery_id.in_(list(attempts)))
            .order_by(webhook_attempts.c.delivery_id, webhook_attempts.c.number)
        )
        for row in conn.execute(query):
            attempts[row.delivery_id].append(WebhookAttempt.from_row(row))
    return [(d, attempts[d.id]) for d in found], more


def replay(
    conn: Connection, *, user_id: str, endpoint_id: str, delivery_id: str, retry_until: float
) -> WebhookDelivery:
    """Queue the delivery again, due now, retried until ``retry_until``; a claim under way
    on it is let go (its outcome is not written)."""
    get_endpoint(conn, user_id=user_id, endpoint_id=endpoint_id)
    where = (_D.c.id == delivery_id) & (_D.c.endpoint_id == endpoint_id)
    done = conn.execute(
        update(_D)
        .where(where)
        .values(status="pending", next_attempt_at=now(), lease_owner=None, retry_until=retry_until)
    )
    if not done.rowcount:
        raise NotFound(f"No webhook delivery with id {delivery_id}.", code="delivery_not_found")
    notify(conn, TOPIC)
    return WebhookDelivery.from_row(conn.execute(select(_D).where(where)).one())


# ----------------------------------------------------------------------------- workers


@dataclass(frozen=True, slots=True)
class Claim:
    """A delivery claimed for one attempt: what to send where, and the claim's own owner
    token (a later claim of the same delivery never matches it)."""

    delivery_id: str
    owner: str
    attempt: int
    url: str
    secret: str
    event_id: str
    event_type: str
    payload: str
    created_at: float
    retry_until: float | None


def any_due(conn: Connection) -> bool:
    """Whether any pending delivery is due now."""
    due = next_due(conn)
    return due is not None and due <= now()


def next_due(conn: Connection) -> float | None:
    """When the first pending delivery is due (now or later); None when none is pending."""
    found = _NEXT_DUE.one(conn, ())[0]
    return None if found is None else float(found)


_NEXT_DUE = driver.Statement(
    "SELECT min(next_attempt_at) FROM webhook_deliveries WHERE status = 'pending'"
)


def claim(conn: Connection, *, owner: str, lease_seconds: float, limit: int) -> list[Claim]:
    """Claim at most ``limit`` due deliveries, the longest waiting first, each for one
    attempt until ``lease_seconds`` from now (compare-and-set on ``next_attempt_at``)."""
    at = now()
    query = (
        select(
            _D.c.id,
            _D.c.next_attempt_at,
            _D.c.attempts,
            _D.c.event_id,
            _D.c.event_type,
            _D.c.payload,
            _D.c.created_at,
            _D.c.retry_until,
            _E.c.url,
            _E.c.secret,
        )
        .join(_E, _E.c.id == _D.c.endpoint_id)
        .where(_D.c.status == "pending", _D.c.next_attempt_at <= at)
        .order_by(_D.c.next_attempt_at)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(of=_D, skip_locked=True)
    claims: list[Claim] = []
    for row in conn.execute(query).all():
        token = f"{owner[:40]}/{secrets.token_hex(8)}"
        taken = conn.execute(
            update(_D)
            .where(
                _D.c.id == row.id,
                _D.c.status == "pending",
                _D.c.next_attempt_at == row.next_attempt_at,
            )
            .values(
                lease_owner=token, next_attempt_at=at + lease_seconds, attempts=row.attempts + 1
            )
        )
        if taken.rowcount:
            claims.append(
                Claim(
                    delivery_id=row.id,
                    owner=token,
                    attempt=row.attempts + 1,
                    url=row.url,
                    secret=row.secret,
                    event_id=row.event_id,
                    event_type=row.event_type,
                    payload=row.payload,
                    created_at=row.created_at,
                    retry_until=row.retry_until,
                )
            )
    return claims


def finish_attempt(
    conn: Connection,
    *,
    claim: Claim,
    status_code: int | None,
    error: str | None,
    duration_ms: float,
    retry_at: float | None,
) -> str | None:
    """Write an attempt's outcome while its claim holds: ``delivered`` on a 2xx, else due
    again at ``retry_at``, or ``failed`` when that is None. Returns the delivery's new
    status, or None when the claim was lost (replayed or deleted meanwhile)."""
    at = now()
    delivered = status_code is not None and 200 <= status_code < 300
    status = "delivered" if delivered else ("pending" if retry_at is not None else "failed")
    error = error[:500] if error else None
    moved = conn.execute(
        update(_D)
        .where(_D.c.id == claim.delivery_id, _D.c.lease_owner == claim.owner)
        .values(
            status=status,
            lease_owner=None,
            next_attempt_at=retry_at if status == "pending" else None,
            last_status_code=status_code,
            last_error=error,
            delivered_at=at if delivered else None,
        )
    )
    if not moved.rowcount:
        return None
    conn.execute(
        insert(webhook_attempts).values(
            delivery_id=claim.delivery_id,
            number=claim.attempt,
            at=at,
            status_code=status_code,
            error=error,
            duration_ms=duration_ms,
        )
    )
    return status


def release_claims(conn: Connection, *, claims: Sequence[Claim]) -> None:
    """Give back claims whose attempts were cut short (the server stopping): each delivery
    is due again at once, the attempt not counted."""
    for held in claims:
        conn.execute(
            update(_D)
            .where(_D.c.id == held.delivery_id, _D.c.lease_owner == held.owner)
            .values(lease_owner=None, next_attempt_at=now(), attempts=_D.c.attempts - 1)
        )


#: Finished deliveries one pruning transaction deletes at most.
PRUNE_BATCH = 500


def prune(conn: Connection, *, before: float) -> int:
    """Delete up to ``PRUNE_BATCH`` deliveries made before ``before`` that have ended
    (``delivered`` or ``failed``), with their attempts. Returns how many went."""
    ids = [
        row.id
        for row in conn.execute(
            select(_D.c.id)
            .where(_D.c.status.in_(("delivered", "failed")), _D.c.created_at < before)
            .limit(PRUNE_BATCH)
        )
    ]
    if ids:
        conn.execute(delete(webhook_attempts).where(webhook_attempts.c.delivery_id.in_(ids)))
        conn.execute(delete(_D).where(_D.c.id.in_(ids)))
    return len(ids)
