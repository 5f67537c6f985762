"""Users and API keys. Keys are stored as SHA-256 of the secret, with a prefix for display."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.engine import Connection

from parley.errors import NotFound
from parley.store.db import new_id, now
from parley.store.records import ApiKey, User
from parley.store.tables import api_keys, users

KEY_PREFIX = "pk_"
#: ``last_used_at`` is refreshed at most this often, so auth is not a write per request.
_LAST_USED_RESOLUTION = 60.0

_AUTHENTICATE = (
    select(users, api_keys.c.id.label("key_id"), api_keys.c.last_used_at)
    .join(api_keys, api_keys.c.user_id == users.c.id)
    .where(api_keys.c.key_hash == bindparam("key_hash"), api_keys.c.revoked_at.is_(None))
)


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_user(conn: Connection, *, name: str, is_admin: bool = False) -> User:
    user = User(id=new_id("user"), name=name, is_admin=is_admin, created_at=now())
    conn.execute(
        insert(users).values(
            id=user.id, name=user.name, is_admin=user.is_admin, created_at=user.created_at
        )
    )
    return user


def get_user(conn: Connection, *, user_id: str) -> User:
    row = (conn.execute(select(users).where(users.c.id == user_id))).first()
    if row is None:
        raise NotFound(f"No user with id {user_id}.", code="user_not_found")
    return User.from_row(row)


def count_users(conn: Connection) -> int:
    return int((conn.execute(select(func.count()).select_from(users))).scalar_one())


def create_api_key(conn: Connection, *, user_id: str) -> tuple[ApiKey, str]:
    """A new key for the user; the secret is returned here once and never stored."""
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(
        id=new_id("key"),
        user_id=user_id,
        prefix=secret[:10],
        created_at=now(),
        last_used_at=None,
        revoked_at=None,
    )
    conn.execute(
        insert(api_keys).values(
            id=key.id,
            user_id=user_id,
            key_hash=hash_key(secret),
            prefix=key.prefix,
            created_at=key.created_at,
        )
    )
    return key, secret


@dataclass(frozen=True, slots=True)
class KeyOwner:
    """An unrevoked API key's user, and what ``stamp_key`` needs."""

    user: User
    key_id: str
    last_used_at: float | None

    def stale(self, at: float) -> bool:
        """Whether ``last_used_at`` is due a refresh at ``at``."""
        return self.last_used_at is None or at - self.last_used_at > _LAST_USED_RESOLUTION


def find_key(conn: Connection, *, key_hash: str) -> KeyOwner | None:
    """The owner of this unrevoked key (by hash), or None. Reads only: an unknown key
    costs no write."""
    row = conn.execute(_AUTHENTICATE, {"key_hash": key_hash}).first()
    if row is None:
        return None
    return KeyOwner(user=User.from_row(row), key_id=row.key_id, last_used_at=row.last_used_at)


def stamp_key(conn: Connection, *, key_id: str, at: float) -> None:
    """Record that the key was used at ``at`` (a no-op when a newer stamp is there)."""
    recent = api_keys.c.last_used_at.is_(None) | (api_keys.c.last_used_at < at)
    conn.execute(update(api_keys).where(api_keys.c.id == key_id, recent).values(last_used_at=at))


def authenticate(
    conn: Connection, *, secret: str | None = None, key_hash: str | None = None
) -> User | None:
    """The user owning this (unrevoked) key, given as the secret or its hash, or None;
    refreshes the key's ``last_used_at`` when it is stale."""
    owner = find_key(conn, key_hash=key_hash or hash_key(secret or ""))
    if owner is None:
        return None
    t = now()
    if owner.stale(t):
        stamp_key(conn, key_id=owner.key_id, at=t)
    return owner.user


def list_api_keys(conn: Connection, *, user_id: str) -> list[ApiKey]:
    query = select(api_keys).where(api_keys.c.user_id == user_id).order_by(api_keys.c.created_at)
    return [ApiKey.from_row(r) for r in (conn.execute(query)).all()]


def revoke_api_key(conn: Connection, *, user_id: str, key_id: str) -> ApiKey:
    owned = (api_keys.c.id == key_id) & (api_keys.c.user_id == user_id)
    conn.execute(
        update(api_keys).where(owned, api_keys.c.revoked_at.is_(None)).values(revoked_at=now())
    )
    row = (conn.execute(select(api_keys).where(owned))).first()
    if row is None:
        raise NotFound(f"No API key with id {key_id}.", code="api_key_not_found")
    return ApiKey.from_row(row)
