"""``POST /v1/chat/completions``: one model call through Parley's providers, streamed as
OpenAI's chunks or answered as one completion. Nothing is stored but the tokens used, per
API key (``store.usage``); see ``parley.server.faces.chat``."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any, Generic, TypeVar

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from parley.engine import ModelProfile
from parley.errors import ParleyError
from parley.events import ModelEvent
from parley.server.calls import Call
from parley.server.deps import AuthenticatedCaller, Caller, Services, Svc
from parley.server.errors import openai_error
from parley.server.faces.chat.chunks import Completion, error_frame
from parley.server.faces.chat.requests import ChatCompletionCreate, new_state_token, read_call
from parley.server.faces.kit.sse import DONE
from parley.server.faces.kit.sse_response import SSEResponse, sse_response
from parley.server.faces.kit.streams import pump
from parley.server.openapi import errors, json_or_events, upstream_errors
from parley.store import call_states
from parley.store.db import now

log = logging.getLogger("parley.server")

router = APIRouter(tags=["chat"])

T = TypeVar("T")

_ANSWERS = {
    **json_or_events(
        "The completion as JSON, or with `stream` true its chunks as "
        "server-sent events (`data: <chunk>`), ending with `data: [DONE]`."
    ),
    **errors(404, 503),
    **upstream_errors(),
}


@router.post("/chat/completions", responses=_ANSWERS, response_model=None)
async def create_chat_completion(
    body: ChatCompletionCreate, caller: AuthenticatedCaller, svc: Svc
) -> Response:
    profile = svc.engine.profile(body.model)  # the model, resolved once
    call = read_call(body, profile)
    await call.read_files(svc.engine.files, user_id=caller.user.id, model=body.model)
    window = profile.window
    call.check_window(window)
    if call.tokens:
        tokens = set(call.tokens.values())
        states = await svc.db.read(call_states.states_of, user_id=caller.user.id, tokens=tokens)
        call.with_states(states)
    # The most the call may use, reserved of the key's daily budget (when it has one).
    most = call.most_tokens(window) if caller.key_budget is not None else None
    async with svc.limits.run_slot(caller.key_hash, most) as slot:
        events = svc.engine.call_model(body.model, call.request)
        progress = svc.calls.track()  # the drain waits for it, and ends it when over
        # The reply is made while the upstream works on the request: the wait for the
        # first event is the only idle time before the first chunk goes out.
        make = functools.partial(_Reply, svc, caller, body, profile, events, progress)
        ahead = _Ahead(make)
        # The first event before any byte: a call refused upstream is an HTTP error.
        try:
            first = await progress.next(events)
        except BaseException:
            ahead.cancel()
            svc.calls.forget(progress)
            await events.aclose()
            raise
        reply = ahead.value()
        slot.hold_until(reply.release.append)
    reply.first = first
    return reply.response if reply.response is not None else await reply.whole()


class _Ahead(Generic[T]):
    """``make()``, run in the event loop's next turn, which comes as soon as this task
    waits (for the upstream's first answer); or when its ``value`` is asked for, if that
    turn has not come (an answer that needed no wait)."""

    __slots__ = ("_handle", "_make", "_value")

    def __init__(self, make: Callable[[], T]) -> None:
        self._make: Callable[[], T] | None = make
        self._value: T = _UNSET
        self._handle = asyncio.get_running_loop().call_soon(self._run)

    def _run(self) -> None:
        if self._make is not None:
            self._value = self._make()
            self._make = None

    def value(self) -> T:
        self._handle.cancel()
        self._run()
        return self._value

    def cancel(self) -> None:
        self._handle.cancel()
        self._make = None


_UNSET: Any = object()


class _Events:
    """A call's model events, read through its ``progress`` (a shutdown ends them with
    ``server_shutdown``); None after the last."""

    __slots__ = ("events", "progress")

    def __init__(self, progress: Call, events: AsyncIterator[ModelEvent]) -> None:
        self.progress, self.events = progress, events

    def __aiter__(self) -> _Events:
        return self

    def __anext__(self) -> Awaitable[ModelEvent | None]:
        return self.progress.next(self.events)


class _Reply:
    """One call's answer on its way to the client: its chunks as they come (``response``,
    with ``stream``) or the whole completion (``whole``). At the end, once, the key's
    slot is given back (``release``) and the tokens are counted.

    Streamed, it is the stream's translator for the kit's pump (``kit.streams``): its
    source is the call's model events, read through the call's ``progress`` (so that a
    shutdown ends it with an error chunk); a failure after the first byte is an error
    object; ``data: [DONE]`` ends it."""

    __slots__ = (
        "add",
        "answer",
        "caller",
        "events",
        "first",
        "model",
        "progress",
        "qualified",
        "release",
        "response",
        "svc",
    )

    def __init__(
        self,
        svc: Services,
        caller: Caller,
        body: ChatCompletionCreate,
        profile: ModelProfile,
        events: AsyncGenerator[ModelEvent, None],
        progress: Call,
    ) -> None:
        self.svc, self.caller, self.model, self.events = svc, caller, body.model, events
        self.progress = progress
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        token = new_state_token() if profile.hands_back_state else None
        self.qualified = profile.qualified
        self.answer = Completion(body.model, include_usage=include_usage, token=token)
        #: An event's chunks (the translator's ``add``).
        self.add = self.answer.add
        #: The first event, read before the reply began (None: the call ended at once).
        self.first: ModelEvent | None = None
        self.release: list[Callable[[], None]] = []
        self.response: SSEResponse | None = None
        if body.stream:
            source = _Events(progress, events)
            # (mypy joins the members of ModelEvent | None into object: it infers no Item.)
            frames = pump(self, source, end=DONE, release=self.finish)  # type: ignore[misc]
            self.response = sse_response(frames, watch_after_first=True)

    def opening(self) -> bytes:
        """The role chunk, and the first event's (read before the reply began)."""
        self.progress.follow()  # read from the streaming task from now on
        opening = self.answer.start()
        if self.first is not None:
            opening += self.answer.add(self.first)
        return opening

    async def closing(self) -> bytes:
        await self.keep_state()
        return self.answer.closing()

    def cut_off(self, error: ParleyError | None) -> bytes:
        if error is None:  # the call's events end the stream: never cut off
            return b""
        _, body = openai_error(error)
        return error_frame(body)

    async def finish(self) -> None:
        """The stream is over, however it ended."""
        await self.events.aclose()
        self.done()

    async def whole(self) -> JSONResponse:
        """The whole completion, once the call has ended."""
        # Read in the route's own task, the one that tracked the call.
        answer, events, progress = self.answer, self.events, self.progress
        try:
            if self.first is not None:
                answer.add(self.first)
            while (event := await progress.next(events)) is not None:
                answer.add(event)
            await self.keep_state()
        finally:
            await events.aclose()
            self.done()
        return JSONResponse(answer.completion())

    async def keep_state(self) -> None:
        """Keep what the provider wants back with the calls, before the client has them."""
        state, token = self.answer.kept_state, self.answer.token
        if state is None or token is None:
            return
        try:
            await self.svc.db.write(
                call_states.keep_state,
                user_id=self.caller.user.id,
                token=token,
                state=state,
                at=now(),
            )
        except Exception:  # a boundary: the answer stands; its next call may be refused
            log.exception("could not keep the provider's state of a chat completion")

    def done(self) -> None:
        self.svc.calls.forget(self.progress)
        caller = self.caller
        self.svc.usage.count(
            user_id=caller.user.id,
            key_hash=caller.key_hash,
            model=self.qualified,  # gpt-4o counts as openai/gpt-4o
            face="chat.completions",
            used=self.answer.acc.usage,
        )
        # Counted first: the tokens the call reserved of the key's budget give way to them.
        while self.release:
            self.release.pop()()
