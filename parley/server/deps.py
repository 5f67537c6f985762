"""Request dependencies: the app's services, and the authenticated user."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Query, Request
from starlette.requests import HTTPConnection

from parley.config import Settings
from parley.engine import Engine, UsageCounter
from parley.errors import AuthenticationFailed, PermissionDenied, ValidationFailed
from parley.mcp.addresses import AddressPolicy
from parley.providers.registry import ProviderRegistry
from parley.server.calls import Calls
from parley.server.logs import USER_ID_KEY
from parley.server.ratelimit import Limits
from parley.store import users as user_store
from parley.store.db import Database, now
from parley.store.pagination import ListQuery, Order
from parley.store.records import User


@dataclass(slots=True)
class Services:
    settings: Settings
    db: Database
    providers: ProviderRegistry
    engine: Engine
    keys: KeyCache
    limits: Limits
    usage: UsageCounter
    #: Chat completions in progress, which the drain waits for (``server.serving``).
    calls: Calls = field(default_factory=Calls)
    #: Where an MCP ``server_url`` a request gives may point (``PARLEY_MCP_ALLOW_URLS``).
    mcp_addresses: AddressPolicy = field(default_factory=AddressPolicy)


async def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


def _key_from(request: HTTPConnection) -> str:
    auth = request.headers.get("authorization")
    if auth:
        scheme, _, token = auth.strip().partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
        if scheme.lower() == "bearer":  # e.g. curl -H "Authorization: Bearer $KEY", unset
            raise AuthenticationFailed(
                "The Authorization header is 'Bearer' with no key after it: is the variable "
                "that should hold the key set?",
                code="missing_api_key",
            )
        raise AuthenticationFailed("Use 'Authorization: Bearer <key>'.", code="bad_auth_header")
    key = request.headers.get("x-api-key")
    if not key:
        raise AuthenticationFailed(
            "No API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'.",
            code="missing_api_key",
        )
    return key


class KeyCache:
    """Recently seen API keys and their users, for ``ttl`` seconds: most requests then need
    no database read to authenticate, and no hashing of the key either (SHA-256 through
    OpenSSL cost tens of microseconds of a chat completion's first chunk). Keyed by the
    key itself, so a key is held in memory as long as it is remembered. A revoke here
    clears it at once; other replicas (and ``parley keys revoke``, ``parley users
    disable``) take effect within ``ttl``. A key's expiry is checked at every use, not only
    when it is remembered."""

    def __init__(self, ttl: float, size: int = 10_000) -> None:
        self.ttl = ttl
        self.size = size
        self._callers: dict[str, tuple[Caller, float]] = {}

    def get(self, secret: str) -> Caller | None:
        hit = self._callers.get(secret)
        if hit is None or hit[1] < time.monotonic():
            return None
        return hit[0]

    def put(self, secret: str, caller: Caller) -> None:
        if self.ttl <= 0:
            return
        if len(self._callers) >= self.size:
            self._callers.clear()
        self._callers[secret] = (caller, time.monotonic() + self.ttl)

    def clear(self) -> None:
        self._callers.clear()


@dataclass(frozen=True, slots=True)
class Caller:
    """The authenticated user, the hash of the API key that authenticated it, and that
    key's expiry and daily token budget (None: none)."""

    user: User
    key_hash: str
    key_expires_at: float | None = None
    key_budget: int | None = None
    #: The key's id (``key_...``): who may use an MCP server the operator registered.
    key_id: str | None = None


async def authenticated(
    request: HTTPConnection, svc: Annotated[Services, Depends(services)]
) -> Caller:
    """Authenticate the request. An address blocked for failed authentications, or a key
    over its request limit, gets 429 before any key is looked up; every failure counts
    against the address."""
    address = request.client.host if request.client else "-"
    try:
        secret: str | AuthenticationFailed = _key_from(request)
    except AuthenticationFailed as exc:
        secret = exc
    known = svc.keys.get(secret) if isinstance(secret, str) else None
    if known is not None and known.key_expires_at is not None and known.key_expires_at <= now():
        await svc.limits.check(address, known.key_hash)
        await svc.limits.failed(address)
        raise user_store.expired_key(known.key_expires_at)
    if known is not None:
        await svc.limits.check(address, known.key_hash)
        request.scope[USER_ID_KEY] = known.user.id  # for the access log
        return known
    key_hash = user_store.hash_key(secret) if isinstance(secret, str) else None
    await svc.limits.check(address, key_hash)
    try:
        if isinstance(secret, AuthenticationFailed):
            raise secret
        assert key_hash is not None
        caller = await _caller_of(svc, key_hash)
    except AuthenticationFailed:
        await svc.limits.failed(address)
        raise
    svc.keys.put(secret, caller)
    request.scope[USER_ID_KEY] = caller.user.id
    return caller


async def _caller_of(svc: Services, key_hash: str) -> Caller:
    """The key's user, with a database read. Only a key that authenticates may write, to
    refresh its ``last_used_at`` when that is over a minute old.

    Raises:
        AuthenticationFailed: an unknown or revoked key, an expired one, or one of a
            disabled user.
    """
    owner = await svc.db.read(user_store.find_key, key_hash=key_hash)
    if owner is None:
        raise AuthenticationFailed("Invalid or revoked API key.", code="invalid_api_key")
    at = now()
    refusal = owner.refusal(at)
    if refusal is not None:
        raise refusal
    if owner.stale(at):
        await svc.db.write(user_store.stamp_key, key_id=owner.key_id, at=at)
    return Caller(owner.user, key_hash, owner.expires_at, owner.daily_token_budget, owner.key_id)


async def current_user(request: Request, svc: Annotated[Services, Depends(services)]) -> User:
    return (await authenticated(request, svc)).user


async def admin_user(user: Annotated[User, Depends(current_user)]) -> User:
    if not user.is_admin:
        raise PermissionDenied("This needs an admin API key.", code="admin_only")
    return user


def list_query(default_order: Order) -> object:
    async def dep(
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        after: Annotated[str | None, Query(max_length=64)] = None,
        order: Annotated[Order, Query()] = default_order,
        before: Annotated[str | None, Query(max_length=64)] = None,
    ) -> ListQuery:
        return ListQuery(limit=limit, after=after, order=order, before=before)

    return Depends(dep)


#: Pairs a metadata filter may hold, and the longest key and value (as thread metadata).
METADATA_FILTER_PAIRS = 16
METADATA_KEY_CHARS = 64
METADATA_VALUE_CHARS = 512
#: The filter in the OpenAPI document: ``?metadata[key]=value``, repeatable.
METADATA_FILTER_PARAMETER = {
    "name": "metadata",
    "in": "query",
    "required": False,
    "style": "deepObject",
    "explode": True,
    "description": "Only the items whose metadata has each of these keys with this string "
    "value: `metadata[key]=value`, up to 16 pairs.",
    "schema": {
        "type": "object",
        "maxProperties": METADATA_FILTER_PAIRS,
        "propertyNames": {"minLength": 1, "maxLength": METADATA_KEY_CHARS},
        "additionalProperties": {"type": "string", "maxLength": METADATA_VALUE_CHARS},
    },
}


async def metadata_filter(request: Request) -> dict[str, str]:
    """The ``metadata[key]=value`` pairs of the query (see ``METADATA_FILTER_PARAMETER``).
    Async, so that FastAPI calls it on the loop rather than through a worker thread.

    Raises:
        ValidationFailed: a malformed, repeated, too long or too many pairs.
    """
    pairs: dict[str, str] = {}
    for name, value in request.query_params.multi_items():
        if name != "metadata" and not name.startswith("metadata["):
            continue
        key = name[len("metadata[") : -1] if name.endswith("]") else ""
        problem = _metadata_problem(key, value, pairs)
        if problem:
            raise ValidationFailed(
                f"Invalid request: query.{name}: {problem}.",
                details=[{"loc": ["query", name], "msg": problem, "type": "value_error"}],
                param="metadata",
            )
        pairs[key] = value
    if len(pairs) > METADATA_FILTER_PAIRS:
        problem = f"a metadata filter holds at most {METADATA_FILTER_PAIRS} pairs"
        raise ValidationFailed(
            f"Invalid request: query.metadata: {problem}.",
            details=[{"loc": ["query", "metadata"], "msg": problem, "type": "value_error"}],
            param="metadata",
        )
    return pairs


def _metadata_problem(key: str, value: str, seen: dict[str, str]) -> str | None:
    if not key:
        return "filter metadata as metadata[key]=value"
    if len(key) > METADATA_KEY_CHARS:
        return f"a key has 1 to {METADATA_KEY_CHARS} characters"
    if len(value) > METADATA_VALUE_CHARS:
        return f"a value has at most {METADATA_VALUE_CHARS} characters"
    if key in seen:
        return "the key is given twice"
    return None


Svc = Annotated[Services, Depends(services)]
CurrentUser = Annotated[User, Depends(current_user)]
AuthenticatedCaller = Annotated[Caller, Depends(authenticated)]
AdminUser = Annotated[User, Depends(admin_user)]
DescList = Annotated[ListQuery, list_query("desc")]
MetadataFilter = Annotated[dict[str, str], Depends(metadata_filter)]
AscList = Annotated[ListQuery, list_query("asc")]
