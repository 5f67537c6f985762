"""Runs, their actions, event logs, tool outputs and cancellation; and the native stream's
translator (``EntryFrames``), for these runs' events and for turns."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query
from fastapi.responses import Response, StreamingResponse

from parley.engine import Entry
from parley.errors import InvalidRequest, ParleyError
from parley.server.deps import AuthenticatedCaller, CurrentUser, DescList, Svc
from parley.server.faces.kit import reads as kit_reads
from parley.server.faces.kit.direct_write import direct_write
from parley.server.faces.kit.hosted import check_owned, kept
from parley.server.faces.kit.pages import Page
from parley.server.faces.kit.resources import RunPublic
from parley.server.faces.kit.sse import PING, entry_frames
from parley.server.faces.kit.sse_response import SSEResponse, sse_response
from parley.server.faces.kit.streams import pump
from parley.server.faces.native import reads
from parley.server.faces.native.schemas import ActionPublic, RunCreate, ToolOutputsSubmit
from parley.server.idempotency import Idempotent, answer
from parley.server.openapi import errors, event_stream
from parley.store import runs as store
from parley.store.records import Run
from parley.types import ActionStatus, RunStatus

router = APIRouter(tags=["runs"])


class EntryFrames:
    """The native stream's translator: a run's engine entries as they are, each one frame
    numbered by its sequence number and named by its type (the vocabulary of
    ``parley.events``). A stream cut off ends with no word: the run's own log ends a turn
    with ``error`` and ``done``, and a client resumes with ``Last-Event-ID``."""

    __slots__ = ()

    def opening(self) -> bytes:
        return b""

    add = staticmethod(entry_frames)

    async def closing(self) -> bytes:
        return b""

    def cut_off(self, error: ParleyError | None) -> bytes:
        if error is not None:
            raise error
        return b""


_ENTRY_FRAMES = EntryFrames()


def event_stream_response(
    source: AsyncIterator[list[Entry]],
    headers: dict[str, str] | None = None,
    *,
    one_turn: bool = False,
) -> SSEResponse:
    """A run's events from ``source`` as server-sent events, as long as it gives them (a
    turn's own, ``TurnHandle.events``, end with it); with ``one_turn``, up to the first
    turn's ``done`` (a run's log, ``Engine.follow``, goes on to its later turns)."""
    direct = direct_write(source, _ENTRY_FRAMES.add)
    frames = pump(_ENTRY_FRAMES, source, ping=PING, turn=one_turn)
    return sse_response(frames, headers, direct=direct)


async def run_public(svc: Svc, run: Run) -> RunPublic:
    """The run as ``kit.reads.run_public`` answers it (a read only for a run that waits for
    tool outputs: no other has a ``required_action``)."""
    if run.status != RunStatus.ACTION_REQUIRED:
        return RunPublic.of(run)
    return await svc.db.read(kit_reads.run_public, run=run)


@router.post("/runs", status_code=201, response_model=RunPublic, responses=errors(404, 409))
async def create_run(
    body: RunCreate, caller: AuthenticatedCaller, svc: Svc, idem: Idempotent
) -> Response:
    user = caller.user

    async def make() -> Response:
        tools = None if body.tools is None else kept(body.tools, svc, user, caller.key_id)
        await check_owned(svc.db, user_id=user.id, tools=tools or [])  # file_search's
        run = await svc.engine.create_run(
            user_id=user.id,
            thread_id=body.thread_id,
            assistant_id=body.assistant_id,
            model=body.model,
            instructions=body.instructions,
            tools=tools,
            parameters=body.parameters,
        )
        return answer(RunPublic.of(run), 201)

    return await idem.once(svc.db, user.id, make)


@router.get("/runs", responses=errors(400, 404))
async def list_runs(
    user: CurrentUser,
    svc: Svc,
    q: DescList,
    thread_id: Annotated[str | None, Query(max_length=64)] = None,
) -> Page[RunPublic]:
    items, more = await svc.db.read(
        kit_reads.list_runs, user_id=user.id, thread_id=thread_id, page=q
    )
    return Page.of(items, more)


@router.get("/runs/{run_id}")
async def get_run(run_id: str, user: CurrentUser, svc: Svc) -> RunPublic:
    run = await svc.db.read(store.get_run, run_id=run_id, user_id=user.id)
    return await run_public(svc, run)


@router.post("/runs/{run_id}/cancel", responses=errors(409))
async def cancel_run(run_id: str, user: CurrentUser, svc: Svc) -> RunPublic:
    return RunPublic.of(await svc.engine.cancel(user_id=user.id, run_id=run_id))


@router.post("/runs/{run_id}/submit_tool_outputs", responses=errors(409))
async def submit_tool_outputs(
    run_id: str, body: ToolOutputsSubmit, user: CurrentUser, svc: Svc
) -> RunPublic:
    outputs = [(o.tool_call_id, o.answer()) for o in body.tool_outputs]
    run = await svc.engine.submit_tool_outputs(user_id=user.id, run_id=run_id, outputs=outputs)
    return await run_public(svc, run)


@router.get(
    "/runs/{run_id}/events",
    response_class=StreamingResponse,
    responses={
        **event_stream("The run's events after the cursor, then live ones while it runs."),
        **errors(400),
    },
)
async def run_events(
    run_id: str,
    user: CurrentUser,
    svc: Svc,
    after: Annotated[int | None, Query(ge=0, le=store.MAX_SEQ)] = None,
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    """Replay the run's event log after a sequence number, then follow it live."""
    cursor = after or 0
    if last_event_id is not None:
        cursor = max(cursor, _sequence_number(last_event_id))
    await svc.db.read(store.get_run, run_id=run_id, user_id=user.id)
    return event_stream_response(svc.engine.follow(run_id, after=cursor))


def _sequence_number(value: str) -> int:
    """A ``Last-Event-ID`` as a sequence number: ASCII digits, at most ``MAX_SEQ``."""
    value = value.strip()
    if not (value.isascii() and value.isdigit()) or len(value) > 10:
        raise InvalidRequest(
            "Last-Event-ID must be an event sequence number.", code="bad_last_event_id"
        )
    seq = int(value)
    if seq > store.MAX_SEQ:
        raise InvalidRequest(
            f"Last-Event-ID must be at most {store.MAX_SEQ}.", code="bad_last_event_id"
        )
    return seq


@router.get("/actions", responses=errors(404))
async def list_actions(
    user: CurrentUser,
    svc: Svc,
    run_id: Annotated[str, Query(max_length=64)],
    status: ActionStatus | None = None,
) -> Page[ActionPublic]:
    items = await svc.db.read(reads.run_actions, user_id=user.id, run_id=run_id, status=status)
    return Page.of([ActionPublic.of(a) for a in items])
