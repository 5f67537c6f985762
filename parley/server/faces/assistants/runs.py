"""Runs of the Assistants API, under their thread: create (streamed or not), create with a
new thread, list, retrieve, update, cancel, submit tool outputs (streamed or not), and run
steps. A run created here starts its turn at once and runs on the server; after tool
outputs, its next turn starts at once too. The runs are the native ones
(``/v1/runs/{id}`` shows the same run)."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response

from parley.engine import Entry, RunConfig, ThreadTarget, UsageSource
from parley.errors import NotFound
from parley.server.deps import AuthenticatedCaller, Caller, CurrentUser, DescList, Services, Svc
from parley.server.faces.assistants import files, reads
from parley.server.faces.assistants.requests import (
    RunCreate,
    RunUpdate,
    ThreadAndRunCreate,
    ToolOutputsStream,
    added_messages,
    run_config,
)
from parley.server.faces.assistants.stream import DONE_FRAME, TurnEvents, run_frames
from parley.server.faces.kit import reads as kit_reads
from parley.server.faces.kit.direct_write import direct_write
from parley.server.faces.kit.hosted import check_owned, kept
from parley.server.faces.kit.pages import Page, window
from parley.server.faces.kit.resources import RunPublic
from parley.server.faces.kit.run_steps import RunStepPublic, step_message_id
from parley.server.faces.kit.sse import PING
from parley.server.faces.kit.sse_response import SSEResponse, sse_response
from parley.server.faces.kit.streams import pump
from parley.server.idempotency import Idempotent, Made, Streamed
from parley.server.openapi import errors, json_or_events
from parley.store import assistants as assistant_store
from parley.store import code_files
from parley.store.records import Assistant
from parley.types import RunStatus

router = APIRouter(tags=["runs"])

#: How soon a client polling a run (the ``openai`` SDK's ``*_and_poll`` helpers) asks again.
POLL_AFTER_MS = "100"

_CREATE_ANSWERS = {
    **json_or_events(
        "The run as JSON (it goes on on the server), or with `stream` true "
        "its events as server-sent events (`event: thread.run.created`, ...), ending with "
        "`event: done` and `data: [DONE]`."
    ),
    **errors(404, 409, 503),
}


def _run_answer(run: RunPublic) -> JSONResponse:
    body = run.model_dump(mode="json")
    return JSONResponse(body, headers={"openai-poll-after-ms": POLL_AFTER_MS})


def _stream(
    events: TurnEvents, source: AsyncIterator[list[Entry]], headers: dict[str, str] | None = None
) -> SSEResponse:
    """A turn's stream: ``source``'s run events up to the turn's end, as ``events`` tells
    them, then ``event: done``."""
    direct = direct_write(source, events.add)
    frames = pump(events, source, ping=PING, end=DONE_FRAME, turn=True)
    return sse_response(frames, headers, direct=direct)


async def _start(
    svc: Services, caller: Caller, body: RunCreate | ThreadAndRunCreate, thread_id: str | None
) -> Made:
    """Start the run's first turn; answer the run, or stream the turn."""
    user_id = caller.user.id
    assistant = await svc.db.read(
        assistant_store.get_assistant, user_id=user_id, assistant_id=body.assistant_id
    )
    profile = svc.engine.profile(body.model or assistant.model)  # the model, resolved once
    given = None
    if body.tools is not None:
        given = kept(body.tools, svc, caller.user, caller.key_id, assistants=True)
        await check_owned(svc.db, user_id=user_id, tools=given)
    config = run_config(body, assistant, profile, tools=given)
    if isinstance(body, ThreadAndRunCreate):
        thread = body.thread
        target = ThreadTarget(metadata=thread.metadata if thread else {})
        adding = thread.messages if thread else None
    else:
        target = ThreadTarget(thread_id=thread_id)
        adding = body.additional_messages
    messages = await added_messages(svc.engine.files, adding, user_id=user_id)
    config, made, code_new = await _with_stores(svc, user_id, body, assistant, config, thread_id)
    # The turn's one model call fits the model's context window: the most it reserves of
    # a daily budget (None, unknown: the rest of the budget).
    async with svc.limits.run_slot(caller.key_hash, profile.window) as slot:
        turn = await svc.engine.start_items_turn(
            user_id=user_id,
            target=target,
            messages=messages,
            config=config,
            source=UsageSource(caller.key_hash, "assistants"),
        )
        slot.hold_until(turn.when_done)
    if made:  # the stores a new thread's resources and attachments made are the thread's
        await svc.db.write(
            reads.give_thread, user_id=user_id, thread_id=turn.run.thread_id, store_ids=made
        )
    if code_new:  # and so are the files they give the code interpreter
        await svc.db.write(
            code_files.add_code_files,
            user_id=user_id,
            thread_id=turn.run.thread_id,
            file_ids=code_new,
        )
    if not body.stream:
        return _run_answer(RunPublic.of(turn.run))
    message = await svc.db.read(reads.turn_message, user_id=user_id, message_id=turn.message_id)
    events = TurnEvents(svc.db, turn.run, message, run_frames(turn.run, new=True))
    response = _stream(events, turn.events())
    return Streamed(response, turn.run_id, turn.first_seq - 1)


async def _with_stores(
    svc: Services,
    user_id: str,
    body: RunCreate | ThreadAndRunCreate,
    assistant: Assistant,
    config: RunConfig,
    thread_id: str | None,
) -> tuple[RunConfig, list[str], list[str]]:
    """The run's config, its ``file_search`` tool given the stores to search (``files``):
    the assistant's, the thread's, and those the request's resources name or make; the
    files of the messages it adds put in the thread's store; its ``code_interpreter`` tool
    given the files its container starts with (``reads.code_tools``). Also the stores made
    for a thread that does not exist yet (``thread_and_run``), and the files given to its
    code interpreter, to give it once made."""
    extra: list[str] = []
    code_new: list[str] = []
    made: list[str] = []
    embedding = svc.settings.embedding_model
    resources = body.tool_resources
    added = body.additional_messages if isinstance(body, RunCreate) else None
    if isinstance(body, ThreadAndRunCreate) and body.thread is not None:
        resources = body.thread.tool_resources or resources
        added = body.thread.messages
    if resources:
        kept_ = await svc.db.write(
            reads.kept_resources,
            user_id=user_id,
            resources=resources,
            embedding_model=embedding,
            thread_id=thread_id,
        )
        extra += files.resource_ids(kept_)
        if thread_id is None:
            code_new += (kept_.get("code_interpreter") or {}).get("file_ids") or []
    attachments = [a for m in added or () for a in m.attachments or ()]
    if attachments and thread_id is not None:
        await svc.db.write(
            reads.attach,
            user_id=user_id,
            thread_id=thread_id,
            attachments=attachments,
            embedding_model=embedding,
        )
    elif attachments:
        code_new += reads.for_tool(attachments, "code_interpreter")
        store = await svc.db.write(
            reads.attach_new, user_id=user_id, attachments=attachments, embedding_model=embedding
        )
        if store is not None:
            extra.append(store)
            made.append(store)
    if thread_id is None:
        made += extra
    tools = config.tools
    if any(t.get("type") == "file_search" for t in tools):
        tools = await svc.db.write(
            reads.run_tools,
            user_id=user_id,
            tools=tools,
            assistant_resources=(assistant.options or {}).get("tool_resources"),
            thread_id=thread_id,
            extra=extra,
        )
    if any(t.get("type") == "code_interpreter" for t in tools):
        tools = await svc.db.read(
            reads.code_tools,
            user_id=user_id,
            tools=tools,
            assistant_resources=(assistant.options or {}).get("tool_resources"),
            thread_id=thread_id,
            extra=code_new,
        )
    options = {k: v for k, v in (config.options or {}).items() if k != "tool_resources"}
    made = list(dict.fromkeys(made))
    return replace(config, tools=tools, options=options or None), made, code_new


async def _replay(
    svc: Services, user_id: str, run_id: str, after: int, headers: dict[str, str]
) -> Response:
    """A run's first turn streamed again (a retry with the same ``Idempotency-Key``)."""
    run, message = await svc.db.read(reads.first_turn, user_id=user_id, run_id=run_id)
    events = TurnEvents(svc.db, run, message, run_frames(run, new=True))
    return _stream(events, svc.engine.follow(run_id, after=after), headers)


@router.post("/threads/runs", responses=_CREATE_ANSWERS, response_model=RunPublic)
async def create_thread_and_run(
    body: ThreadAndRunCreate, caller: AuthenticatedCaller, svc: Svc, idem: Idempotent
) -> Response:
    make = functools.partial(_start, svc, caller, body, None)
    replay = functools.partial(_replay, svc, caller.user.id)
    return await idem.once(svc.db, caller.user.id, make, replay)


@router.post("/threads/{thread_id}/runs", responses=_CREATE_ANSWERS, response_model=RunPublic)
async def create_run(
    thread_id: str, body: RunCreate, caller: AuthenticatedCaller, svc: Svc, idem: Idempotent
) -> Response:
    make = functools.partial(_start, svc, caller, body, thread_id)
    replay = functools.partial(_replay, svc, caller.user.id)
    return await idem.once(svc.db, caller.user.id, make, replay)


@router.get("/threads/{thread_id}/runs", responses=errors(400))
async def list_runs(thread_id: str, user: CurrentUser, svc: Svc, q: DescList) -> Page[RunPublic]:
    items, more = await svc.db.read(
        kit_reads.list_runs, user_id=user.id, thread_id=thread_id, page=q
    )
    return Page.of(items, more)


@router.get("/threads/{thread_id}/runs/{run_id}", response_model=RunPublic)
async def get_run(thread_id: str, run_id: str, user: CurrentUser, svc: Svc) -> Response:
    run = await svc.db.read(reads.thread_run, user_id=user.id, thread_id=thread_id, run_id=run_id)
    return _run_answer(run)


@router.post("/threads/{thread_id}/runs/{run_id}", response_model=RunPublic)
async def update_run(
    thread_id: str, run_id: str, body: RunUpdate, user: CurrentUser, svc: Svc
) -> Response:
    run = await svc.db.write(
        reads.update_run,
        user_id=user.id,
        thread_id=thread_id,
        run_id=run_id,
        metadata=body.metadata,
    )
    return _run_answer(run)


@router.post(
    "/threads/{thread_id}/runs/{run_id}/cancel", response_model=RunPublic, responses=errors(409)
)
async def cancel_run(thread_id: str, run_id: str, user: CurrentUser, svc: Svc) -> Response:
    await svc.db.read(reads.run_in_thread, user_id=user.id, thread_id=thread_id, run_id=run_id)
    return _run_answer(RunPublic.of(await svc.engine.cancel(user_id=user.id, run_id=run_id)))


@router.post(
    "/threads/{thread_id}/runs/{run_id}/submit_tool_outputs",
    responses=_CREATE_ANSWERS,
    response_model=RunPublic,
)
async def submit_tool_outputs(
    thread_id: str,
    run_id: str,
    body: ToolOutputsStream,
    caller: AuthenticatedCaller,
    svc: Svc,
) -> Response:
    """Store the outputs of the pending calls; once none is pending, the run's next turn
    starts at once (streamed with ``stream`` true)."""
    user_id = caller.user.id
    await svc.db.read(reads.run_in_thread, user_id=user_id, thread_id=thread_id, run_id=run_id)
    outputs = [(o.tool_call_id, o.answer()) for o in body.tool_outputs]
    # A key over its daily token budget is refused before the outputs are stored: they
    # could start the next turn, which it may not.
    await svc.limits.check_budget(caller.key_hash)
    run = await svc.engine.submit_tool_outputs(user_id=user_id, run_id=run_id, outputs=outputs)
    if run.status != RunStatus.QUEUED:  # some calls still wait for their outputs
        return _run_answer(await svc.db.read(kit_reads.run_public, run=run))
    async with svc.limits.run_slot(caller.key_hash) as slot:
        turn = await svc.engine.start_turn(
            user_id=user_id, run_id=run_id, source=UsageSource(caller.key_hash, "assistants")
        )
        slot.hold_until(turn.when_done)
    if not body.stream:
        return _run_answer(RunPublic.of(turn.run))
    answered, message, figures = await svc.db.read(
        reads.resumed_turn, queued=run, message_id=turn.message_id
    )
    head = run_frames(turn.run, new=False, resumed=answered)
    return _stream(TurnEvents(svc.db, turn.run, message, head, figures), turn.events())


# --------------------------------------------------------------------------- run steps


#: ``include[]``: the text of a file search's results, in its step's details.
Include = Annotated[list[str] | None, Query(alias="include[]")]
IncludePlain = Annotated[list[str] | None, Query(alias="include", include_in_schema=False)]


def _contents(*given: list[str] | None) -> bool:
    return any(files.RESULTS_CONTENT in (g or ()) for g in given)


@router.get("/threads/{thread_id}/runs/{run_id}/steps", responses=errors(400))
async def list_steps(
    thread_id: str,
    run_id: str,
    user: CurrentUser,
    svc: Svc,
    q: DescList,
    include: Include = None,
    include_plain: IncludePlain = None,
) -> Page[RunStepPublic]:
    """The run's steps, newest first unless ``order=asc``."""
    steps = await svc.db.read(
        reads.steps,
        user_id=user.id,
        thread_id=thread_id,
        run_id=run_id,
        contents=_contents(include, include_plain),
    )
    return window(steps, q)


@router.get("/threads/{thread_id}/runs/{run_id}/steps/{step_id}")
async def get_step(
    thread_id: str,
    run_id: str,
    step_id: str,
    user: CurrentUser,
    svc: Svc,
    include: Include = None,
    include_plain: IncludePlain = None,
) -> RunStepPublic:
    steps = await svc.db.read(
        reads.steps,
        user_id=user.id,
        thread_id=thread_id,
        run_id=run_id,
        contents=_contents(include, include_plain),
    )
    found = next((s for s in steps if s.id == step_id), None)
    if found is None or step_message_id(step_id) is None:
        raise NotFound(f"No run step with id {step_id}.", code="run_step_not_found")
    return found
