"""Turn endpoints of the two seed flows: ``completions`` (flow A), ``process`` and
``submit_tool_output`` (flow B). A turn streams as SSE, or with ``"stream": false``
answers its result as one JSON body."""

from __future__ import annotations

import functools

from fastapi import APIRouter
from fastapi.responses import Response, StreamingResponse

from parley.engine import TurnHandle, UsageSource
from parley.server.deps import AuthenticatedCaller, Caller, CurrentUser, Services, Svc
from parley.server.faces.kit.resources import RunPublic, action_items
from parley.server.faces.native.runs import event_stream_response, run_public
from parley.server.faces.native.schemas import (
    CompletionRequest,
    ProcessRequest,
    RunError,
    ToolOutputSubmit,
    TurnResultPublic,
    marks_of,
)
from parley.server.idempotency import Idempotency, Idempotent, Made, Streamed, answer
from parley.server.openapi import errors, event_stream
from parley.store import runs as run_store
from parley.types import RunStatus

router = APIRouter(tags=["turns"])

_TURN_ANSWERS = {
    **event_stream(
        "The turn as server-sent events, or its result as JSON with `stream` false.",
        TurnResultPublic,
    ),
    **errors(404, 409, 503),
}


async def _answer(turn: TurnHandle, stream: bool, idem: Idempotency) -> Made:
    if stream:
        headers = {
            "X-Parley-Run-Id": turn.run_id,
            "X-Parley-Thread-Id": turn.thread_id,
            "X-Parley-Message-Id": turn.message_id,
        }
        response = event_stream_response(turn.events(), headers)
        return Streamed(response, turn.run_id, turn.first_seq - 1, headers)
    await idem.started(turn.run_id)
    outcome = await turn.result()
    run, message = outcome.run, outcome.message
    error = (
        RunError(code=run.error_code, message=run.error_message or "") if run.error_code else None
    )
    result = TurnResultPublic(
        run_id=run.id,
        thread_id=run.thread_id,
        message_id=message.id if message else None,
        status=RunStatus(run.status),
        text=message.content if message else "",
        reasoning=message.reasoning if message else None,
        actions=action_items(outcome.actions, marks_of(message)),
        usage=outcome.usage,
        error=error,
        items=outcome.items,
    )
    return answer(result)


async def _replay(
    svc: Services, user_id: str, run_id: str, after: int, headers: dict[str, str]
) -> StreamingResponse:
    """The stream of a turn started before: the run's events after ``after``, up to the
    turn's ``done``."""
    await svc.db.read(run_store.get_run, run_id=run_id, user_id=user_id)
    return event_stream_response(svc.engine.follow(run_id, after=after), headers, one_turn=True)


@router.post("/completions", responses=_TURN_ANSWERS, response_model=None)
async def completions(
    body: CompletionRequest, caller: AuthenticatedCaller, svc: Svc, idem: Idempotent
) -> Response:
    return await completion_turn(body, caller, svc, idem)


async def completion_turn(
    body: CompletionRequest, caller: Caller, svc: Services, idem: Idempotency
) -> Response:
    async def make() -> Made:
        async with svc.limits.run_slot(caller.key_hash) as slot:
            turn = await svc.engine.start_turn(
                user_id=caller.user.id,
                run_id=body.run_id,
                thread_id=body.thread_id,
                assistant_id=body.assistant_id,
                source=UsageSource(caller.key_hash, "runs"),
            )
            slot.hold_until(turn.when_done)
        return await _answer(turn, body.stream, idem)

    replay = functools.partial(_replay, svc, caller.user.id)
    return await idem.once(svc.db, caller.user.id, make, replay)


@router.post("/process", responses=_TURN_ANSWERS, response_model=None)
async def process(
    body: ProcessRequest, caller: AuthenticatedCaller, svc: Svc, idem: Idempotent
) -> Response:
    return await process_turn(body, caller, svc, idem)


async def process_turn(
    body: ProcessRequest, caller: Caller, svc: Services, idem: Idempotency
) -> Response:
    async def make() -> Made:
        async with svc.limits.run_slot(caller.key_hash) as slot:
            if body.run_id is not None:
                turn = await svc.engine.start_turn(
                    user_id=caller.user.id,
                    run_id=body.run_id,
                    source=UsageSource(caller.key_hash, "runs"),
                )
            else:
                assert body.assistant_id is not None and body.content is not None
                turn = await svc.engine.start_first_turn(
                    user_id=caller.user.id,
                    assistant_id=body.assistant_id,
                    content=body.content,
                    images=[i.model_dump() for i in body.images],
                    thread_id=body.thread_id,
                    source=UsageSource(caller.key_hash, "runs"),
                )
            slot.hold_until(turn.when_done)
        return await _answer(turn, body.stream, idem)

    replay = functools.partial(_replay, svc, caller.user.id)
    return await idem.once(svc.db, caller.user.id, make, replay)


@router.post("/submit_tool_output", responses=errors(404, 409))
async def submit_tool_output(body: ToolOutputSubmit, user: CurrentUser, svc: Svc) -> RunPublic:
    run_id, call_id = body.run_id, body.tool_call_id
    if body.action_id is not None:
        action = await svc.db.read(run_store.get_action, action_id=body.action_id, user_id=user.id)
        run_id, call_id = action.run_id, action.tool_call_id
    assert run_id is not None and call_id is not None
    run = await svc.engine.submit_tool_outputs(
        user_id=user.id, run_id=run_id, outputs=[(call_id, body.answer())]
    )
    return await run_public(svc, run)
