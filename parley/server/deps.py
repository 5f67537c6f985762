"""Request dependencies: the app's services, and the authenticated user."""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query, Request

from parley.config import Settings
from parley.engine import Engine
from parley.errors import AuthenticationFailed, PermissionDenied
from parley.providers.registry import ProviderRegistry
from parley.store import users as user_store
from parley.store.db import Database
from parley.store.pagination import Order
from parley.store.records import User


@dataclass(slots=True)
class Services:
    settings: Settings
    db: Database
    providers: ProviderRegistry
    engine: Engine
    keys: KeyCache


async def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


def _key_from(request: Request) -> str | None:
    auth = request.headers.get("authorization")
    if auth:
        scheme, _, token = auth.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
        raise AuthenticationFailed("Use 'Authorization: Bearer <key>'.", code="bad_auth_header")
    return request.headers.get("x-api-key")


class KeyCache:
    """Recently seen API keys (by hash) and their users, for ``ttl`` seconds: most requests
    then need no database read to authenticate. A revoke here clears it at once; other
    replicas see a revoke within ``ttl``."""

    def __init__(self, ttl: float, size: int = 10_000) -> None:
        self.ttl = ttl
        self.size = size
        self._users: dict[str, tuple[User, float]] = {}

    def get(self, key_hash: str) -> User | None:
        hit = self._users.get(key_hash)
        if hit is None or hit[1] < time.monotonic():
            return None
        return hit[0]

    def put(self, key_hash: str, user: User) -> None:
        if len(self._users) >= self.size:
            self._users.clear()
        self._users[key_hash] = (user, time.monotonic() + self.ttl)

    def clear(self) -> None:
        self._users.clear()


async def current_user(request: Request, svc: Annotated[Services, Depends(services)]) -> User:
    secret = _key_from(request)
    if not secret:
        raise AuthenticationFailed(
            "No API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'.",
            code="missing_api_key",
        )
    key_hash = user_store.hash_key(secret)
    user = svc.keys.get(key_hash)
    if user is None:
        user = await svc.db.write(functools.partial(user_store.authenticate, key_hash=key_hash))
        if user is None:
            raise AuthenticationFailed("Invalid or revoked API key.", code="invalid_api_key")
        svc.keys.put(key_hash, user)
    return user


async def admin_user(user: Annotated[User, Depends(current_user)]) -> User:
    if not user.is_admin:
        raise PermissionDenied("This needs an admin API key.", code="admin_only")
    return user


@dataclass(slots=True)
class ListQuery:
    limit: int
    after: str | None
    order: Order


def list_query(default_order: Order) -> object:
    async def dep(
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        after: Annotated[str | None, Query(max_length=64)] = None,
        order: Annotated[Order, Query()] = default_order,
    ) -> ListQuery:
        return ListQuery(limit=limit, after=after, order=order)

    return Depends(dep)


Svc = Annotated[Services, Depends(services)]
CurrentUser = Annotated[User, Depends(current_user)]
AdminUser = Annotated[User, Depends(admin_user)]
DescList = Annotated[ListQuery, list_query("desc")]
AscList = Annotated[ListQuery, list_query("asc")]
