"""Users and API keys."""

from __future__ import annotations

import functools

from fastapi import APIRouter
from sqlalchemy.engine import Connection

from parley.errors import NotFound
from parley.server.deps import AdminUser, CurrentUser, Svc
from parley.server.openapi import errors
from parley.server.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyPublic,
    ListPublic,
    UserCreate,
    UserCreated,
    UserPublic,
)
from parley.store import users as user_store
from parley.store.records import ApiKey, User

router = APIRouter(tags=["users"])


@router.get("/me")
async def me(user: CurrentUser) -> UserPublic:
    return UserPublic.of(user)


@router.post("/users", status_code=201, responses=errors(403))
async def create_user(body: UserCreate, _: AdminUser, svc: Svc) -> UserCreated:
    def create(conn: Connection) -> tuple[User, ApiKey, str]:
        user = user_store.create_user(conn, name=body.name, is_admin=body.is_admin)
        return user, *user_store.create_api_key(conn, user_id=user.id)

    user, key, secret = await svc.db.write(create)
    return UserCreated(
        user=UserPublic.of(user),
        api_key=ApiKeyCreated(**ApiKeyPublic.of(key).model_dump(), key=secret),
    )


@router.post("/api_keys", status_code=201, responses=errors(404))
async def create_api_key(body: ApiKeyCreate, user: CurrentUser, svc: Svc) -> ApiKeyCreated:
    owner = body.user_id or user.id
    if owner != user.id and not user.is_admin:
        raise NotFound(f"No user with id {owner}.", code="user_not_found")

    def create(conn: Connection) -> tuple[ApiKey, str]:
        user_store.get_user(conn, user_id=owner)
        return user_store.create_api_key(conn, user_id=owner)

    key, secret = await svc.db.write(create)
    return ApiKeyCreated(**ApiKeyPublic.of(key).model_dump(), key=secret)


@router.get("/api_keys")
async def list_api_keys(user: CurrentUser, svc: Svc) -> ListPublic[ApiKeyPublic]:
    keys = await svc.db.read(functools.partial(user_store.list_api_keys, user_id=user.id))
    return ListPublic.of([ApiKeyPublic.of(k) for k in keys], False)  # type: ignore[return-value]


@router.delete("/api_keys/{key_id}")
async def revoke_api_key(key_id: str, user: CurrentUser, svc: Svc) -> ApiKeyPublic:
    key = await svc.db.write(
        functools.partial(user_store.revoke_api_key, user_id=user.id, key_id=key_id)
    )
    svc.keys.clear()
    return ApiKeyPublic.of(key)
