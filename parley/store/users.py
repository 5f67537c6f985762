"""Users and API keys. Keys are stored as SHA-256 of the secret, with a prefix for display.

A key authenticates while it is not revoked, not past its ``expires_at``, and its user is
not disabled (``KeyOwner.refusal``); a key may also have a daily token budget
(``server.usage``)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.engine import Connection

from parley.errors import AuthenticationFailed, NotFound
from parley.store.db import new_id, now
from parley.store.records import ApiKey, User
from parley.store.tables import api_keys, users

KEY_PREFIX = "pk_"
#: ``last_used_at`` is refreshed at most this often, so auth is not a write per request.
_LAST_USED_RESOLUTION = 60.0

_AUTHENTICATE = (
    select(
        users,
        api_keys.c.id.label("key_id"),
        api_keys.c.last_used_at,
        api_keys.c.expires_at.label("key_expires_at"),
        api_keys.c.daily_token_budget,
    )
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


@dataclass(frozen=True, slots=True)
class UserSummary:
    """A user, and how many of its keys authenticate now (not revoked, not expired)."""

    user: User
    active_keys: int


def list_users(conn: Connection) -> list[UserSummary]:
    """Every user, oldest first, with its active keys counted."""
    k = api_keys.c
    active = k.revoked_at.is_(None) & (k.expires_at.is_(None) | (k.expires_at > now()))
    counted = select(k.user_id, func.count()).where(active).group_by(k.user_id)
    counts: dict[str, int] = {row[0]: int(row[1]) for row in conn.execute(counted)}
    rows = conn.execute(select(users).order_by(users.c.created_at, users.c.id))
    return [UserSummary(User.from_row(r), counts.get(r.id, 0)) for r in rows]


def set_user_disabled(conn: Connection, *, user_id: str, disabled: bool) -> User:
    """Disable the user (its keys stop authenticating; a user disabled already keeps the
    time it was disabled) or enable it again.

    Raises:
        NotFound: no such user.
    """
    query = update(users).where(users.c.id == user_id)
    if disabled:
        query = query.where(users.c.disabled_at.is_(None)).values(disabled_at=now())
    else:
        query = query.values(disabled_at=None)
    conn.execute(query)
    return get_user(conn, user_id=user_id)


def create_api_key(
    conn: Connection,
    *,
    user_id: str,
    expires_at: float | None = None,
    daily_token_budget: int | None = None,
) -> tuple[ApiKey, str]:
    """A new key for the user, which stops authenticating at ``expires_at`` (Unix seconds)
    when given, and may use ``daily_token_budget`` tokens a day when given; the secret is
    returned here once and never stored."""
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(
        id=new_id("key"),
        user_id=user_id,
        prefix=secret[:10],
        created_at=now(),
        last_used_at=None,
        revoked_at=None,
        expires_at=expires_at,
        daily_token_budget=daily_token_budget,
    )
    conn.execute(
        insert(api_keys).values(
            id=key.id,
            user_id=user_id,
            key_hash=hash_key(secret),
            prefix=key.prefix,
            created_at=key.created_at,
            expires_at=expires_at,
            daily_token_budget=daily_token_budget,
        )
    )
    return key, secret


def expired_key(expires_at: float) -> AuthenticationFailed:
    """The error of a key used after ``expires_at``."""
    when = datetime.fromtimestamp(expires_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return AuthenticationFailed(f"This API key expired at {when}.", code="api_key_expired")


@dataclass(frozen=True, slots=True)
class KeyOwner:
    """An unrevoked API key's user, and what ``stamp_key`` and the checks at use need."""

    user: User
    key_id: str
    last_used_at: float | None
    expires_at: float | None = None
    daily_token_budget: int | None = None

    def stale(self, at: float) -> bool:
        """Whether ``last_used_at`` is due a refresh at ``at``."""
        return self.last_used_at is None or at - self.last_used_at > _LAST_USED_RESOLUTION

    def refusal(self, at: float) -> AuthenticationFailed | None:
        """Why the key may not authenticate at ``at`` (its user is disabled, or it has
        expired), or None."""
        if self.user.disabled_at is not None:
            return AuthenticationFailed(
                "The user of this API key is disabled; an admin can enable it again.",
                code="user_disabled",
            )
        if self.expires_at is not None and self.expires_at <= at:
            return expired_key(self.expires_at)
        return None


def find_key(conn: Connection, *, key_hash: str) -> KeyOwner | None:
    """The owner of this unrevoked key (by hash), or None; disabled users and expired keys
    are found too (``KeyOwner.refusal`` says why they may not authenticate). Reads only:
    an unknown key costs no write."""
    row = conn.execute(_AUTHENTICATE, {"key_hash": key_hash}).first()
    if row is None:
        return None
    return KeyOwner(
        user=User.from_row(row),
        key_id=row.key_id,
        last_used_at=row.last_used_at,
        expires_at=row.key_expires_at,
        daily_token_budget=row.daily_token_budget,
    )


def stamp_key(conn: Connection, *, key_id: str, at: float) -> None:
    """Record that the key was used at ``at`` (a no-op when a newer stamp is there)."""
    recent = api_keys.c.last_used_at.is_(None) | (api_keys.c.last_used_at < at)
    conn.execute(update(api_keys).where(api_keys.c.id == key_id, recent).values(last_used_at=at))


def authenticate(
    conn: Connection, *, secret: str | None = None, key_hash: str | None = None
) -> User | None:
    """The user owning this key, given as the secret or its hash, or None (also for a key
    revoked, expired or of a disabled user); refreshes the key's ``last_used_at`` when it
    is stale."""
    owner = find_key(conn, key_hash=key_hash or hash_key(secret or ""))
    t = now()
    if owner is None or owner.refusal(t) is not None:
        return None
    if owner.stale(t):
        stamp_key(conn, key_id=owner.key_id, at=t)
    return owner.user


def list_api_keys(conn: Connection, *, user_id: str | None) -> list[ApiKey]:
    """The keys of the user (None: of every user), oldest first."""
    query = select(api_keys).order_by(api_keys.c.created_at, api_keys.c.id)
    if user_id is not None:
        query = query.where(api_keys.c.user_id == user_id)
    return [ApiKey.from_row(r) for r in (conn.execute(query)).all()]


def revoke_api_key(conn: Connection, *, user_id: str | None, key_id: str) -> ApiKey:
    """Revoke the key of the user (None: of any user); revoking it again changes nothing.

    Raises:
        NotFound: no such key (of that user).
    """
    owned = api_keys.c.id == key_id
    if user_id is not None:
        owned &= api_keys.c.user_id == user_id
    conn.execute(
        update(api_keys).where(owned, api_keys.c.revoked_at.is_(None)).values(revoked_at=now())
    )
    row = (conn.execute(select(api_keys).where(owned))).first()
    if row is None:
        raise NotFound(f"No API key with id {key_id}.", code="api_key_not_found")
    return ApiKey.from_row(row)
