"""Creating requests that are safe to retry: the ``Idempotency-Key`` header.

A client sends ``Idempotency-Key: <1 to 255 characters>`` with a creating POST. When it
sends the same request again with the same key (its first one timed out, its connection
dropped), nothing is made twice. A key belongs to the API user, and is kept for 24 hours
with the request's method, path (and query) and a hash of its JSON body (key order and
spacing aside), and with what the request made::

    a new key            the route runs; a JSON answer below 400 is recorded (status and
                         body), a stream records the run whose events it carries; an error
                         answer, or an exception, lets the key go: a retry is new
    the same request     the recorded answer, or the stream again (the run's events from
                         the stream's first, followed live while it runs), with the header
                         ``Idempotent-Replayed: true``
      ... while the first has recorded nothing yet
                         waits up to ``SETTLE_SECONDS`` for it to record something (or to
                         fail: then this request is new), then as above, or 409
                         ``idempotency_key_in_use`` (also at once while a ``stream: false``
                         turn the first started runs)
    another method, path or body
                         422 ``idempotency_key_reused``

A route hands its work to ``Idempotency.once`` (the request's key comes as the dependency
``Idempotent``). The key's row (``store.idempotency_keys``) is claimed before the work
starts, and its primary key lets one of two requests with the key in, on every replica.
A claim that has recorded nothing and started no run for ``ABANDONED_SECONDS`` is taken as
abandoned (its server stopped mid-request) and the key is free again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated

import orjson
from fastapi import Depends, Header, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel

from parley.errors import Conflict, InvalidRequest, ValidationFailed
from parley.store import idempotency_keys as store
from parley.store.db import Database, now
from parley.store.idempotency_keys import Fingerprint, IdempotencyKey

KEY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_CHARS = 255
#: How long a key is kept.
KEEP_SECONDS = 24 * 3600.0
#: How long a claim that has recorded nothing and started no run holds its key.
ABANDONED_SECONDS = 60.0
#: How long a retry waits for the request before it to record something (its answer, its
#: stream or its run) before it is told the key is in use; and its pauses between looks.
SETTLE_SECONDS = 1.0
SETTLE_FIRST_PAUSE = 0.01
SETTLE_LONGEST_PAUSE = 0.1


@dataclass(frozen=True, slots=True)
class Streamed:
    """A route's answer that streams a run's events after sequence number ``after``: a
    retry gets them again from the run's event log (the route's ``Replay``), with
    ``headers``."""

    response: StreamingResponse
    run_id: str
    after: int
    headers: dict[str, str] = field(default_factory=dict)


#: What a route's work gives: a JSON answer, or a stream of a run.
Made = Response | Streamed
#: How a route streams a run again: ``(run_id, after, headers) -> response``.
Replay = Callable[[str, int, dict[str, str]], Awaitable[Response]]


class Idempotency:
    """The request's ``Idempotency-Key`` (None: none was sent), and what its route made."""

    __slots__ = ("_claimed", "_db", "_user_id", "key", "request")

    def __init__(self, key: str | None = None, request: Fingerprint | None = None) -> None:
        self.key = key
        self.request = request
        self._db: Database | None = None
        self._user_id = ""
        self._claimed = 0.0

    async def once(
        self,
        db: Database,
        user_id: str,
        make: Callable[[], Awaitable[Made]],
        replay: Replay | None = None,
    ) -> Response:
        """``make()``'s answer, made once per key: a retry gets the first request's
        answer back (``replay`` streams it again when it was a stream)."""
        if self.key is None:
            made = await make()
            return made.response if isinstance(made, Streamed) else made
        self._db, self._user_id = db, user_id
        found = await self._claim()
        if found is not None:
            found = await self._settled(found)
            if found is None:  # the first request failed and let the key go: this one is new
                found = await self._claim()
        if found is not None:
            return await self._again(found, replay)
        try:
            return await self._record(await make())
        except BaseException:
            await asyncio.shield(self._let_go())
            raise

    async def started(self, run_id: str) -> None:
        """The route started ``run_id`` and waits for the turn's end to answer: until it
        has, a retry is told the key is in use, however long the turn takes."""
        if self.key is None or self._db is None:
            return
        await self._db.write(
            store.record_run,
            user_id=self._user_id,
            key=self.key,
            claimed_at=self._claimed,
            run_id=run_id,
        )

    # ----------------------------------------------------------------------- internals

    async def _claim(self) -> IdempotencyKey | None:
        assert self._db is not None and self.key is not None and self.request is not None
        self._claimed = at = now()
        return await self._db.write(
            store.claim,
            user_id=self._user_id,
            key=self.key,
            request=self.request,
            at=at,
            expired_before=at - KEEP_SECONDS,
            abandoned_before=at - ABANDONED_SECONDS,
        )

    async def _settled(self, found: IdempotencyKey) -> IdempotencyKey | None:
        """The key as the request that claimed it leaves it within ``SETTLE_SECONDS``, while
        it has recorded nothing and started no run: a stream records its run a moment after
        the run is stored, and a short request answers in milliseconds. None when it let the
        key go (it failed)."""
        assert self._db is not None and self.key is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SETTLE_SECONDS
        pause = SETTLE_FIRST_PAUSE
        while found.silent and loop.time() < deadline:
            await asyncio.sleep(pause)
            pause = min(2 * pause, SETTLE_LONGEST_PAUSE)
            again = await self._db.read(store.find, user_id=self._user_id, key=self.key)
            if again is None:
                return None
            found = again
        return found

    async def _again(self, found: IdempotencyKey, replay: Replay | None) -> Response:
        """The answer to a request whose key was claimed before."""
        if found.request != self.request:
            raise ValidationFailed(
                f"This {KEY_HEADER} was sent before with another request (method, path or "
                "body); use a new key for a new request.",
                code="idempotency_key_reused",
                param=KEY_HEADER,
            )
        if found.status_code is not None and found.body is not None:
            return Response(
                found.body,
                status_code=found.status_code,
                media_type="application/json",
                headers={REPLAYED_HEADER: "true"},
            )
        if found.stream_after is not None and found.run_id is not None:
            assert replay is not None, "a route that answers Streamed replays it"
            response = await replay(found.run_id, found.stream_after, found.headers or {})
            response.headers[REPLAYED_HEADER] = "true"
            return response
        making = f" (it made {found.run_id})" if found.run_id else ""
        raise Conflict(
            f"A request with this {KEY_HEADER} is still being processed{making}; retry once "
            "it has answered.",
            code="idempotency_key_in_use",
        )

    async def _record(self, made: Made) -> Response:
        """Keep what the route made; an error answer lets the key go instead."""
        assert self._db is not None and self.key is not None
        if isinstance(made, Streamed):
            await self._db.write(
                store.record_stream,
                user_id=self._user_id,
                key=self.key,
                claimed_at=self._claimed,
                run_id=made.run_id,
                after=made.after,
                headers=made.headers,
            )
            return made.response
        assert not isinstance(made, StreamingResponse), "a stream is answered as Streamed"
        if made.status_code >= 400:
            await self._let_go()
            return made
        await self._db.write(
            store.record_answer,
            user_id=self._user_id,
            key=self.key,
            claimed_at=self._claimed,
            status_code=made.status_code,
            body=bytes(made.body).decode(),
        )
        return made

    async def _let_go(self) -> None:
        assert self._db is not None and self.key is not None
        await self._db.write(
            store.forget, user_id=self._user_id, key=self.key, claimed_at=self._claimed
        )


def answer(model: BaseModel, status_code: int = 200) -> JSONResponse:
    """``model`` as JSON, as FastAPI answers it: what a route's work gives ``once``."""
    return JSONResponse(model.model_dump(mode="json", by_alias=True), status_code=status_code)


def body_hash(body: bytes) -> str:
    """SHA-256 of a JSON body in one spelling (keys sorted, no spaces); of the bytes
    themselves when they are not JSON."""
    canonical = body
    if body:
        with contextlib.suppress(orjson.JSONDecodeError, orjson.JSONEncodeError):
            canonical = orjson.dumps(orjson.loads(body), option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()


async def idempotency(
    request: Request,
    key: Annotated[
        str | None,
        Header(
            alias=KEY_HEADER,
            description="Makes the request safe to retry: the same request with the same "
            "key (1 to 255 characters) within 24 hours gets the first one's answer "
            f"(`{REPLAYED_HEADER}: true`) and creates nothing.",
        ),
    ] = None,
) -> Idempotency:
    """The request's ``Idempotency-Key``, checked, with the request it came with."""
    if key is None:
        return Idempotency()
    if not 1 <= len(key) <= MAX_KEY_CHARS or len(request.headers.getlist(KEY_HEADER)) > 1:
        raise InvalidRequest(
            f"The {KEY_HEADER} header must be one value of 1 to {MAX_KEY_CHARS} characters.",
            code="invalid_idempotency_key",
            param=KEY_HEADER,
        )
    query = request.url.query
    path = f"{request.url.path}?{query}" if query else request.url.path
    return Idempotency(key, Fingerprint(request.method, path, body_hash(await request.body())))


Idempotent = Annotated[Idempotency, Depends(idempotency)]


async def request_idempotency(request: Request) -> Idempotency:
    """``idempotency`` outside FastAPI's dependencies (``server.fastpaths``)."""
    return await idempotency(request, request.headers.get(KEY_HEADER))
