"""The native face's queries: each runs in one transaction (``Database.read`` /
``write``) and answers what its route needs."""

from __future__ import annotations

from sqlalchemy.engine import Connection

from parley.errors import NotFound
from parley.store import runs as run_store
from parley.store import usage as usage_store
from parley.store import users as user_store
from parley.store.records import Action, ApiKey, User
from parley.store.usage import UsageFilter, UsageLine
from parley.types import ActionStatus

# ---------------------------------------------------------------------- users and keys


def create_user(conn: Connection, *, name: str, is_admin: bool) -> tuple[User, ApiKey, str]:
    """A new user with its first API key, and the key's secret."""
    user = user_store.create_user(conn, name=name, is_admin=is_admin)
    return user, *user_store.create_api_key(conn, user_id=user.id)


def create_api_key(
    conn: Connection,
    *,
    user_id: str,
    expires_at: float | None,
    daily_token_budget: int | None,
) -> tuple[ApiKey, str]:
    """A new key of an existing user (404 for none), and its secret."""
    user_store.get_user(conn, user_id=user_id)
    return user_store.create_api_key(
        conn, user_id=user_id, expires_at=expires_at, daily_token_budget=daily_token_budget
    )


# ------------------------------------------------------------------------------- runs


def run_actions(
    conn: Connection, *, user_id: str, run_id: str, status: ActionStatus | None
) -> list[Action]:
    """The actions of a run of the user's (with ``status``: those in it)."""
    run_store.get_run(conn, run_id=run_id, user_id=user_id)
    return run_store.list_actions(conn, run_id=run_id, status=status)


# ------------------------------------------------------------------------------ usage


def usage_report(
    conn: Connection,
    *,
    caller: User,
    key_id: str | None,
    where: UsageFilter,
    groups: tuple[str, ...],
    limit: int,
    offset: int,
) -> tuple[list[UsageLine], UsageLine]:
    """A page of lines (one more than ``limit``, if there is one) and the totals. A key
    named by ``key_id`` narrows the report to it (404 for another user's key, unless the
    caller is an admin)."""
    if key_id is not None:
        key = usage_store.key_of(conn, key_id=key_id)
        if key is None or (key[0] != caller.id and not caller.is_admin):
            raise NotFound(f"No API key with id {key_id}.", code="api_key_not_found")
        where = UsageFilter(where.since, where.until, where.user_id, key[1], where.model)
    lines = usage_store.usage_report(
        conn, where=where, group_by=groups, limit=limit + 1, offset=offset
    )
    (totals,) = usage_store.usage_report(conn, where=where, group_by=())
    return lines, totals
