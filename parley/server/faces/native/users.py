"""Users and API keys."""

from __future__ import annotations

from fastapi import APIRouter

from parley.errors import NotFound, PermissionDenied, ValidationFailed
from parley.server.deps import AdminUser, AuthenticatedCaller, Caller, CurrentUser, Svc
from parley.server.faces.kit.pages import Page
from parley.server.faces.native import reads
from parley.server.faces.native.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyPublic,
    UserCreate,
    UserCreated,
    UserPublic,
)
from parley.server.openapi import errors
from parley.store import users as user_store
from parley.store.db import now

router = APIRouter(tags=["users"])


@router.get("/me")
async def me(user: CurrentUser) -> UserPublic:
    return UserPublic.of(user)


@router.post("/users", status_code=201, responses=errors(403))
async def create_user(body: UserCreate, _: AdminUser, svc: Svc) -> UserCreated:
    user, key, secret = await svc.db.write(
        reads.create_user, name=body.name, is_admin=body.is_admin
    )
    return UserCreated(
        user=UserPublic.of(user),
        api_key=ApiKeyCreated(**ApiKeyPublic.of(key).model_dump(), key=secret),
    )


@router.post("/api_keys", status_code=201, responses=errors(403, 404))
async def create_api_key(
    body: ApiKeyCreate, caller: AuthenticatedCaller, svc: Svc
) -> ApiKeyCreated:
    """A new key for the caller (an admin: for any user). Only an admin may give it a
    daily token budget, or make one with a key that has a budget; a key made with a key
    that expires expires no later than it."""
    user = caller.user
    owner = body.user_id or user.id
    if owner != user.id and not user.is_admin:
        raise NotFound(f"No user with id {owner}.", code="user_not_found")
    expires_at = _expiry(body.expires_at, caller)
    if not user.is_admin and (body.daily_token_budget is not None or caller.key_budget is not None):
        raise PermissionDenied(
            "Only an admin can set a key's daily token budget, or create keys for a user "
            "whose key has one.",
            code="admin_only",
        )

    key, secret = await svc.db.write(
        reads.create_api_key,
        user_id=owner,
        expires_at=expires_at,
        daily_token_budget=body.daily_token_budget,
    )
    return ApiKeyCreated(**ApiKeyPublic.of(key).model_dump(), key=secret)


def _expiry(asked: int | None, caller: Caller) -> float | None:
    """The new key's expiry: as asked (in the future), and for a non-admin no later than
    the caller's own key's."""
    if asked is not None and asked <= now():
        problem = "the expiry must be in the future"
        raise ValidationFailed(
            f"Invalid request: body.expires_at: {problem}.",
            details=[{"loc": ["body", "expires_at"], "msg": problem, "type": "value_error"}],
            param="expires_at",
        )
    limit = None if caller.user.is_admin else caller.key_expires_at
    if limit is None:
        return asked
    return limit if asked is None else min(asked, limit)


@router.get("/api_keys")
async def list_api_keys(user: CurrentUser, svc: Svc) -> Page[ApiKeyPublic]:
    keys = await svc.db.read(user_store.list_api_keys, user_id=user.id)
    return Page.of([ApiKeyPublic.of(k) for k in keys])


@router.delete("/api_keys/{key_id}")
async def revoke_api_key(key_id: str, user: CurrentUser, svc: Svc) -> ApiKeyPublic:
    key = await svc.db.write(user_store.revoke_api_key, user_id=user.id, key_id=key_id)
    svc.keys.clear()
    return ApiKeyPublic.of(key)
