"""Turn endpoints of the two seed flows: ``completions`` (flow A), ``process`` and
``submit_tool_output`` (flow B). A turn streams as SSE, or with ``"stream": false``
answers its result as one JSON body."""

from __future__ import annotations

import functools

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from parley.engine.run_loop import Turn
from parley.server.deps import AuthenticatedCaller, CurrentUser, Svc
from parley.server.openapi import errors, event_stream
from parley.server.routes.runs import run_public
from parley.server.routes.streams import sse_response
from parley.server.schemas import (
    CompletionRequest,
    ProcessRequest,
    RunError,
    RunPublic,
    ToolOutputSubmit,
    TurnResultPublic,
    action_items,
)
from parley.store import runs as run_store
from parley.types import RunStatus, Usage

router = APIRouter(tags=["turns"])

_TURN_ANSWERS = {
    **event_stream(
        "The turn as server-sent events, or its result as JSON with `stream` false.",
        TurnResultPublic,
    ),
    **errors(404, 409, 503),
}


async def _answer(svc: Svc, turn: Turn, stream: bool) -> StreamingResponse | TurnResultPublic:
    run = turn.run
    if stream:
        headers = {
            "X-Parley-Run-Id": run.id,
            "X-Parley-Thread-Id": run.thread_id,
            "X-Parley-Message-Id": turn.message_id,
        }
        after = turn.channel.first_seq - 1
        return sse_response(
            turn.channel.follow(after, idle_timeout=svc.settings.keepalive_seconds), headers
        )
    result = await svc.engine.wait(turn)
    done = result.run
    error = (
        RunError(code=done.error_code, message=done.error_message or "")
        if done.error_code
        else None
    )
    return TurnResultPublic(
        run_id=done.id,
        thread_id=done.thread_id,
        message_id=result.message.id if result.message else None,
        status=RunStatus(done.status),
        text=result.message.content if result.message else "",
        reasoning=result.message.reasoning if result.message else None,
        actions=action_items(result.actions),
        usage=Usage(input_tokens=turn.acc.input_tokens, output_tokens=turn.acc.output_tokens),
        error=error,
    )


@router.post("/completions", responses=_TURN_ANSWERS, response_model=None)
async def completions(
    body: CompletionRequest, caller: AuthenticatedCaller, svc: Svc
) -> StreamingResponse | TurnResultPublic:
    async with svc.limits.run_slot(caller.key_hash) as slot:
        turn = await svc.engine.start_turn(
            user_id=caller.user.id,
            run_id=body.run_id,
            thread_id=body.thread_id,
            assistant_id=body.assistant_id,
        )
        slot.hold_until(turn.task)
    return await _answer(svc, turn, body.stream)


@router.post("/process", responses=_TURN_ANSWERS, response_model=None)
async def process(
    body: ProcessRequest, caller: AuthenticatedCaller, svc: Svc
) -> StreamingResponse | TurnResultPublic:
    async with svc.limits.run_slot(caller.key_hash) as slot:
        if body.run_id is not None:
            turn = await svc.engine.start_turn(user_id=caller.user.id, run_id=body.run_id)
        else:
            assert body.assistant_id is not None and body.content is not None
            turn = await svc.engine.start_first_turn(
                user_id=caller.user.id,
                assistant_id=body.assistant_id,
                content=body.content,
                images=[i.model_dump() for i in body.images],
                thread_id=body.thread_id,
            )
        slot.hold_until(turn.task)
    return await _answer(svc, turn, body.stream)


@router.post("/submit_tool_output", responses=errors(404, 409))
async def submit_tool_output(body: ToolOutputSubmit, user: CurrentUser, svc: Svc) -> RunPublic:
    run_id, call_id = body.run_id, body.tool_call_id
    if body.action_id is not None:
        action = await svc.db.read(
            functools.partial(run_store.get_action, action_id=body.action_id, user_id=user.id)
        )
        run_id, call_id = action.run_id, action.tool_call_id
    assert run_id is not None and call_id is not None
    run = await svc.engine.submit_tool_outputs(
        user_id=user.id, run_id=run_id, outputs=[(call_id, body.output)]
    )
    return await run_public(svc, run)
