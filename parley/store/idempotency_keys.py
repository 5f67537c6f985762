"""Idempotency keys: what a creating request sent with an ``Idempotency-Key`` made, so that
its retries get it back (``parley.server.idempotency`` says how a retry is answered).

One row per user and key, its primary key: of two requests that claim one key at once, on
any replicas, the database lets exactly one in. A claim is identified by the time it was
made (``created_at``), so a request only ever records into, or lets go of, its own claim.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, bindparam, delete, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from parley.errors import Conflict
from parley.store.tables import idempotency_keys as keys

_FIND = select(keys).where(keys.c.user_id == bindparam("user_id"), keys.c.key == bindparam("key"))
_INSERT = insert(keys)


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """The request a key was sent with: method, path (with its query) and body's hash."""

    method: str
    path: str
    body_hash: str


@dataclass(slots=True)
class IdempotencyKey:
    """A row of ``idempotency_keys``."""

    user_id: str
    key: str
    method: str
    path: str
    body_hash: str
    created_at: float
    run_id: str | None
    status_code: int | None
    body: str | None
    stream_after: int | None
    headers: dict[str, str] | None

    @property
    def request(self) -> Fingerprint:
        return Fingerprint(self.method, self.path, self.body_hash)

    @property
    def pending(self) -> bool:
        """The request that claimed the key has recorded nothing yet."""
        return self.status_code is None and self.stream_after is None

    @property
    def silent(self) -> bool:
        """The request that claimed the key has recorded nothing and started no run."""
        return self.pending and self.run_id is None

    def abandoned(self, before: float) -> bool:
        """A claim made before ``before`` that has recorded nothing and started no run."""
        return self.silent and self.created_at < before


def find(conn: Connection, *, user_id: str, key: str) -> IdempotencyKey | None:
    row = conn.execute(_FIND, {"user_id": user_id, "key": key}).first()
    return None if row is None else IdempotencyKey(**row._mapping)


def claim(
    conn: Connection,
    *,
    user_id: str,
    key: str,
    request: Fingerprint,
    at: float,
    expired_before: float,
    abandoned_before: float,
) -> IdempotencyKey | None:
    """Claim ``key`` for ``request``: None when the key is now this request's (a claim
    stamped ``at``), else the key as an earlier request left it.

    Keys made before ``expired_before`` are forgotten first (every user's: the sweep of
    old keys is done here). A claim made before ``abandoned_before`` that recorded
    nothing and started no run is taken as abandoned (its server stopped mid-request), and
    replaced.

    Raises:
        Conflict: ``idempotency_key_in_use``, in the rare case where another request
            claimed the key during this call and has let it go since.
    """
    conn.execute(delete(keys).where(keys.c.created_at < expired_before))
    found = find(conn, user_id=user_id, key=key)
    if found is not None and found.abandoned(abandoned_before):
        forget(conn, user_id=user_id, key=key, claimed_at=found.created_at)
        found = None
    if found is not None:
        return found
    values: dict[str, Any] = {
        "user_id": user_id,
        "key": key,
        "method": request.method,
        "path": request.path,
        "body_hash": request.body_hash,
        "created_at": at,
    }
    try:
        with conn.begin_nested():  # a savepoint: the transaction survives a lost race
            conn.execute(_INSERT, values)
    except IntegrityError:
        # Another request (on any replica) claimed the key after the read above.
        found = find(conn, user_id=user_id, key=key)
        if found is None:
            raise Conflict(
                "Another request with this Idempotency-Key was being processed; retry.",
                code="idempotency_key_in_use",
            ) from None
        return found
    return None


def record_run(conn: Connection, *, user_id: str, key: str, claimed_at: float, run_id: str) -> None:
    """The claim's request started ``run_id`` and waits for it: the key stays in use."""
    conn.execute(update(keys).where(_claim(user_id, key, claimed_at)).values(run_id=run_id))


def record_answer(
    conn: Connection,
    *,
    user_id: str,
    key: str,
    claimed_at: float,
    status_code: int,
    body: str,
) -> None:
    """The claim's request answered ``body`` (JSON) with ``status_code``."""
    conn.execute(
        update(keys)
        .where(_claim(user_id, key, claimed_at))
        .values(status_code=status_code, body=body)
    )


def record_stream(
    conn: Connection,
    *,
    user_id: str,
    key: str,
    claimed_at: float,
    run_id: str,
    after: int,
    headers: dict[str, str],
) -> None:
    """The claim's request streams the events of ``run_id`` after sequence number
    ``after``, with ``headers``."""
    conn.execute(
        update(keys)
        .where(_claim(user_id, key, claimed_at))
        .values(run_id=run_id, stream_after=after, headers=headers)
    )


def forget(conn: Connection, *, user_id: str, key: str, claimed_at: float) -> None:
    """Let go of a claim (its request failed): the next request with the key is new."""
    conn.execute(delete(keys).where(_claim(user_id, key, claimed_at)))


def _claim(user_id: str, key: str, claimed_at: float) -> Any:
    return and_(keys.c.user_id == user_id, keys.c.key == key, keys.c.created_at == claimed_at)
