"""The Responses API (Open Responses): create a response (JSON, server-sent events, or in
the background), retrieve it (or resume its event stream), delete, cancel, list its input
items, and compact a conversation. A response is a run; see ``parley.server.faces.responses``."""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, WebSocket
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import Headers

from parley.engine import Entry
from parley.errors import InvalidRequest
from parley.server.deps import AuthenticatedCaller, Caller, CurrentUser, Services, Svc
from parley.server.faces.kit.direct_write import direct_write
from parley.server.faces.kit.hosted import who_of
from parley.server.faces.kit.pages import Page, window
from parley.server.faces.kit.sse import DONE, PING
from parley.server.faces.kit.sse_response import SSEResponse, sse_response
from parley.server.faces.kit.streams import no_items, pump
from parley.server.faces.responses import compaction, reads, websocket
from parley.server.faces.responses.dialect import Dialect, event_dialect
from parley.server.faces.responses.protocol import CompactCreate, ResponseCreate, wants_state
from parley.server.faces.responses.requests import plan, start
from parley.server.faces.responses.resource import (
    STATUS,
    StoredResponse,
    head,
    response_object,
)
from parley.server.faces.responses.stream import ResponseEvents, sse_frame
from parley.server.faces.responses.translators import ResponseFrames, StateReader
from parley.server.idempotency import KEY_HEADER, Idempotency, Idempotent, Made, Streamed
from parley.server.openapi import errors, json_or_events, upstream_errors
from parley.store.pagination import ListQuery
from parley.types import RunStatus

log = logging.getLogger("parley.server")

router = APIRouter(tags=["responses"])

_CREATE_ANSWERS = {
    **json_or_events(
        "The response as JSON, or with `stream` true its events as "
        "server-sent events (`event: <type>`, `data: <event>`), ending with `data: [DONE]`."
    ),
    **errors(404, 409, 503),
}


@router.post("/responses", responses=_CREATE_ANSWERS, response_model=None)
async def create_response(
    body: ResponseCreate, caller: AuthenticatedCaller, svc: Svc, idem: Idempotent, request: Request
) -> Response:
    return await create_once(body, caller, svc, idem, headers=request.headers)


async def create_once(
    body: ResponseCreate,
    caller: Caller,
    svc: Services,
    idem: Idempotency,
    *,
    headers: Headers | None = None,
) -> Response:
    dialect = event_dialect(headers.items() if headers is not None else ())
    make = functools.partial(_create, body, caller, svc, idem, dialect)
    replay = functools.partial(_replay, svc, caller.user.id, dialect=dialect)
    return await idem.once(svc.db, caller.user.id, make, replay)


async def _create(
    body: ResponseCreate, caller: Caller, svc: Services, idem: Idempotency, dialect: Dialect
) -> Made:
    user_id = caller.user.id
    if compaction.triggers(body):  # the response is a compaction of the window
        response, compacted = await compaction.triggered(
            svc.db, svc.engine, user_id=user_id, body=body
        )
        if not body.stream:
            return JSONResponse(response)
        return sse_response(_listed(compacted))
    planned = await plan(svc, user_id=user_id, body=body, who=who_of(caller))
    kept = (
        (body.background, "Background responses"),
        (idem.key, f"Responses with an {KEY_HEADER}"),
    )
    for needs_store, what in kept:
        if needs_store and not planned.store:  # what they answer later must be kept
            raise InvalidRequest(
                f"{what} must be stored: store cannot be false.",
                code="invalid_value",
                param="store",
            )
    turn = await start(svc, user_id, planned, caller.key_hash)
    if body.stream:
        after = turn.first_seq - 1
        events = ResponseEvents(head(turn.run, "in_progress"), after, dialect)
        if not wants_state(body.include):
            if not planned.store:  # the stream reads nothing back: gone once the turn ends
                svc.engine.release_scratch(turn.thread_id)
            return Streamed(_sse(ResponseFrames(events), turn.events()), turn.run_id, after)
        # It reads the answers' states back at its end: a scratch thread is held till then.
        states = _states_of(svc, user_id, turn.run_id, scratch=not planned.store)
        frames = ResponseFrames(events, states=states)
        release = None
        if not planned.store:
            release = functools.partial(_release, svc, turn.thread_id)
        return Streamed(_sse(frames, turn.events(), release=release), turn.run_id, after)
    if body.background:
        return JSONResponse(head(turn.run, "in_progress"))
    try:
        await idem.started(turn.run_id)
        await turn.result()
        stored = await svc.db.read(
            reads.read_response,
            user_id=user_id,
            response_id=turn.run_id,
            scratch=not planned.store,
        )
    finally:  # a scratch thread goes once its response is read (or its client has gone)
        if not planned.store:
            svc.engine.release_scratch(turn.thread_id)
    return JSONResponse(response_object(stored, state=wants_state(body.include)))


async def _replay(
    svc: Services,
    user_id: str,
    run_id: str,
    after: int,
    headers: dict[str, str],
    *,
    dialect: Dialect = "open-responses",
) -> SSEResponse:
    """The stream of a response made before, from its first event (``after``: 0), in the
    dialect of the request that asks again."""
    stored = await svc.db.read(reads.read_response, user_id=user_id, response_id=run_id)
    return _resumed(svc, stored, after=after, dialect=dialect)


@router.websocket("/responses")
async def responses_socket(socket: WebSocket) -> None:
    await websocket.serve(socket)


@router.get("/responses/{response_id}", responses=errors(), response_model=None)
async def retrieve_response(
    response_id: str,
    user: CurrentUser,
    svc: Svc,
    request: Request,
    stream: bool = False,
    starting_after: Annotated[int | None, Query(ge=-1)] = None,
    include: Annotated[list[str] | None, Query()] = None,
    include_listed: Annotated[
        list[str] | None,
        Query(alias="include[]", description="The same as `include` (as OpenAI's SDKs send it)."),
    ] = None,
) -> JSONResponse | SSEResponse:
    include = [*(include or ()), *(include_listed or ())]
    stored = await svc.db.read(reads.kept_response, user_id=user.id, response_id=response_id)
    if not stream:
        return JSONResponse(response_object(stored, state=wants_state(include), include=include))
    return _resumed(
        svc,
        stored,
        starting_after=-1 if starting_after is None else starting_after,
        dialect=event_dialect(request.headers.items()),
        state=wants_state(include),
    )


@router.delete("/responses/{response_id}", responses=errors(409))
async def delete_response(response_id: str, user: CurrentUser, svc: Svc) -> dict[str, Any]:
    await svc.db.write(reads.delete_response, user_id=user.id, response_id=response_id)
    return {"id": response_id, "object": "response", "deleted": True}


@router.post("/responses/{response_id}/cancel", responses=errors(400))
async def cancel_response(response_id: str, user: CurrentUser, svc: Svc) -> dict[str, Any]:
    stored = await svc.db.read(reads.read_response, user_id=user.id, response_id=response_id)
    status = RunStatus(stored.run.status)
    if status in (RunStatus.QUEUED, RunStatus.IN_PROGRESS):
        await svc.engine.cancel(user_id=user.id, run_id=stored.run.id)
        stored = await svc.db.read(reads.read_response, user_id=user.id, response_id=response_id)
    elif status != RunStatus.CANCELLED:
        raise InvalidRequest(
            f"Cannot cancel a response with status '{STATUS[status]}'.",
            code="response_not_cancellable",
            param="response_id",
        )
    return response_object(stored)


@router.get("/responses/{response_id}/input_items", responses=errors(400))
async def list_input_items(
    response_id: str,
    user: CurrentUser,
    svc: Svc,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    order: Literal["asc", "desc"] = "desc",
    after: Annotated[str | None, Query(max_length=128)] = None,
    before: Annotated[str | None, Query(max_length=128)] = None,
    include: Annotated[list[str] | None, Query()] = None,
) -> Page[dict[str, Any]]:
    items = await svc.db.read(reads.input_items, user_id=user.id, response_id=response_id)
    return window(items, ListQuery(limit=limit, order=order, after=after, before=before))


@router.post("/responses/compact", responses=upstream_errors(), response_model=None)
async def compact(body: CompactCreate, caller: AuthenticatedCaller, svc: Svc) -> dict[str, Any]:
    async with svc.limits.reserve(caller.key_hash):  # a model call: of the key's budget
        made, used = await compaction.compact(svc.db, svc.engine, user_id=caller.user.id, body=body)
        svc.usage.count(
            user_id=caller.user.id,
            key_hash=caller.key_hash,
            model=svc.providers.qualified(body.model),
            face="responses",
            used=used,
        )
    return made


# ----------------------------------------------------------------------------- streams


async def _listed(events: list[dict[str, Any]]) -> AsyncIterator[bytes]:
    """A stream of events made in advance."""
    for event in events:
        yield sse_frame(event)
    yield DONE


def _sse(
    frames: ResponseFrames,
    source: AsyncIterator[list[Entry]] | None,
    *,
    release: Callable[[], Awaitable[None]] | None = None,
) -> SSEResponse:
    """A response's stream of ``frames``: from ``source``'s run events up to the turn's
    end, or, with no source, its opening and its stored end; ``release`` awaited once it
    is over."""
    if source is None:
        return sse_response(pump(frames, no_items(), end=DONE))
    direct = direct_write(source, frames.add)
    body = pump(frames, source, ping=PING, end=DONE, turn=True, release=release)
    return sse_response(body, direct=direct)


def _states_of(svc: Services, user_id: str, run_id: str, *, scratch: bool = False) -> StateReader:
    """What reads the provider state of a response's answers, by message id."""
    return functools.partial(
        svc.db.read, reads.answer_states, user_id=user_id, response_id=run_id, scratch=scratch
    )


async def _release(svc: Services, thread_id: str) -> None:
    svc.engine.release_scratch(thread_id)


def _resumed(
    svc: Services,
    stored: StoredResponse,
    *,
    after: int = 0,
    starting_after: int = -1,
    dialect: Dialect = "open-responses",
    state: bool = False,
) -> SSEResponse:
    """A response's stream again, from the run's events after ``after`` (the translation
    numbers the protocol's events from there), those up to ``starting_after`` left out;
    followed live while the response runs; with ``state``, its answers' provider state."""
    events = ResponseEvents(head(stored.run, "in_progress"), after, dialect)
    if stored.run.events_pruned_at is not None:  # its start, then its stored end whole
        whole = response_object(stored, state=state)
        frames = ResponseFrames(events, after=starting_after, stored=whole)
        return _sse(frames, None)
    states = _states_of(svc, stored.run.user_id, stored.run.id) if state else None
    frames = ResponseFrames(events, after=starting_after, states=states)
    return _sse(frames, svc.engine.follow(stored.run.id, after=after))
