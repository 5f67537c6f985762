"""The outbox's claims and pruning (``store.webhooks``), on a real database."""

from __future__ import annotations

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from parley.store import users
from parley.store import webhooks as store
from parley.store.db import Database, new_id, now
from parley.store.tables import webhook_deliveries


async def _endpoint(db: Database) -> tuple[str, str]:
    def make(conn: Connection) -> tuple[str, str]:
        user = users.create_user(conn, name="u")
        made = store.create_endpoint(
            conn,
            user_id=user.id,
            url="https://hooks.example.com/",
            events=["response.completed"],
            description=None,
        )
        return user.id, made.id

    return await db.write(make)


async def _delivery(db: Database, user_id: str, endpoint_id: str, *, created_at: float) -> str:
    delivery_id = new_id("whd")
    row = {
        "id": delivery_id,
        "endpoint_id": endpoint_id,
        "user_id": user_id,
        "event_id": new_id("evt"),
        "event_type": "response.completed",
        "payload": "{}",
        "status": "pending",
        "attempts": 0,
        "created_at": created_at,
        "next_attempt_at": created_at,
    }
    await db.write(lambda c: c.execute(insert(webhook_deliveries).values(**row)))
    return delivery_id


async def test_a_claim_is_taken_once_and_again_only_when_it_runs_out(db: Database) -> None:
    user_id, endpoint_id = await _endpoint(db)
    delivery_id = await _delivery(db, user_id, endpoint_id, created_at=now())
    (first,) = await db.write(store.claim, owner="a", lease_seconds=60, limit=5)
    assert first.delivery_id == delivery_id and first.attempt == 1
    assert await db.write(store.claim, owner="b", lease_seconds=60, limit=5) == []
    assert not await db.read(store.any_due)

    # The claim runs out (its replica died): another takes it, and the first's outcome is lost.
    await db.write(
        lambda c: c.execute(update(webhook_deliveries).values(next_attempt_at=now() - 1))
    )
    (second,) = await db.write(store.claim, owner="b", lease_seconds=60, limit=5)
    assert second.attempt == 2
    lost = await db.write(
        store.finish_attempt,
        claim=first,
        status_code=204,
        error=None,
        duration_ms=1.0,
        retry_at=None,
    )
    assert lost is None
    done = await db.write(
        store.finish_attempt,
        claim=second,
        status_code=204,
        error=None,
        duration_ms=1.0,
        retry_at=None,
    )
    assert done == "delivered"


async def test_a_claim_given_back_is_due_at_once_and_uncounted(db: Database) -> None:
    user_id, endpoint_id = await _endpoint(db)
    await _delivery(db, user_id, endpoint_id, created_at=now())
    (held,) = await db.write(store.claim, owner="a", lease_seconds=60, limit=5)
    await db.write(store.release_claims, claims=[held])
    assert await db.read(store.any_due)
    (again,) = await db.write(store.claim, owner="b", lease_seconds=60, limit=5)
    assert again.attempt == 1


async def test_pruning_deletes_only_old_ended_deliveries(db: Database) -> None:
    user_id, endpoint_id = await _endpoint(db)
    old = now() - 1000
    old_pending = await _delivery(db, user_id, endpoint_id, created_at=old)
    old_ended = [await _delivery(db, user_id, endpoint_id, created_at=old) for _ in range(2)]
    new_ended = await _delivery(db, user_id, endpoint_id, created_at=now())
    ended = [*old_ended, new_ended]
    await db.write(
        lambda c: c.execute(
            update(webhook_deliveries)
            .where(webhook_deliveries.c.id.in_(ended))
            .values(status="delivered", next_attempt_at=None)
        )
    )
    assert await db.write(store.prune, before=now() - 500) == 2
    left = await db.read(lambda c: {row.id for row in c.execute(select(webhook_deliveries.c.id))})
    assert left == {old_pending, new_ended}
