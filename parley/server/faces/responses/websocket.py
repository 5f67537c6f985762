"""The Responses API over a WebSocket on ``/v1/responses`` (Open Responses 2026-04-24).

A connection authenticates like HTTP (``Authorization: Bearer``), then takes
``response.create`` messages: each response streams its events as JSON text messages, the
same events as the HTTP stream. A message without ``stream_id`` is answered whole before
the next message is read. A message with one (``[A-Za-z0-9_.-]{1,256}``) goes to that
stream: a stream answers its messages one at a time in order, streams run side by side,
and each event of a stream's responses (its errors too) carries its ``stream_id``; a
response that continues one another stream is still answering starts once that one ends. A
connection runs at most ``MAX_STREAMS`` streams, each with at most ``MAX_WAITING``
messages waiting; past either, the message is refused (``websocket_stream_limit_reached``).
Every frame goes out through one writer (``Connection.send``), one at a time, so a slow
reader holds up the streams instead of filling memory. A connection that ends (its client
gone, or its time up) stops its streams: waiting messages are dropped, and the runs already
started go on in the engine, as when a client goes away mid-response.
The connection holds the responses it made, so a ``store: false`` response can be
continued with ``previous_response_id`` on the same connection (its scratch thread lives
as long as the connection); a continuation that fails forgets the response it named.
A ``generate: false`` message is a warm-up: an empty completed response, no model call, that
the connection keeps; a response that continues it (``previous_response_id``) takes its
input before its own, and what it continued (``Connection.unwarm``).
Failures are ``{"type": "error", "status", "error": {"code", "message", "param"}}`` (with
the ``stream_id`` of a stream's message); a binary frame is one (``unsupported_frame``), and
the connection stays usable.
A connection lasts at most ``MAX_SECONDS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import orjson
from pydantic import ValidationError
from starlette.websockets import WebSocket, WebSocketDisconnect

from parley.engine import TurnHandle
from parley.errors import InvalidRequest, NotFound, ParleyError, PayloadTooLarge
from parley.server.deps import Caller, Services, authenticated
from parley.server.errors import openai_error, validation_failed
from parley.server.faces.kit.hosted import who_of
from parley.server.faces.kit.streams import Message, no_items, pump, send_message
from parley.server.faces.responses import reads
from parley.server.faces.responses.dialect import Dialect, event_dialect
from parley.server.faces.responses.protocol import WebSocketCreate, wants_state
from parley.server.faces.responses.requests import plan, run_config, start
from parley.server.faces.responses.resource import head
from parley.server.faces.responses.stream import ResponseEvents
from parley.server.faces.responses.translators import ResponseMessages
from parley.store.records import Run
from parley.store.runs import new_run
from parley.types import RunStatus

log = logging.getLogger("parley.server")

#: How long one connection may last (the specification's 60 minutes).
MAX_SECONDS = 60 * 60
#: Responses a connection holds for continuation; the oldest is let go past this.
MAX_HELD = 64
#: Streams (``stream_id``) a connection runs at once.
MAX_STREAMS = 16
#: Messages one stream keeps waiting behind the one it answers.
MAX_WAITING = 8
#: What a ``stream_id`` may be (OpenAI's pattern and lengths).
STREAM_ID = re.compile(r"[A-Za-z0-9_.-]{1,256}")


def error_event(exc: ParleyError) -> dict[str, Any]:
    """A failure as the socket says it: ``{"type": "error", "status", "error": {...}}``."""
    status, body = openai_error(exc)
    return {"type": "error", "status": status, **body}


class Stream:
    """One ``stream_id`` of a connection: its messages, answered one at a time in order by
    its task, which ends (and the stream with it) once none is waiting."""

    def __init__(self, stream_id: str) -> None:
        self.id = stream_id
        #: Its messages behind the one it answers.
        self.waiting: deque[dict[str, Any]] = deque()
        self.task: asyncio.Task[None] | None = None
        #: Its response has started in the engine: stopping the stream only stops its
        #: events (before that, a start is let finish, as a request's is).
        self.streaming = False


class Connection:
    """One WebSocket's session: who it is, the responses it holds, and its streams."""

    def __init__(
        self, socket: WebSocket, svc: Services, caller: Caller, dialect: Dialect = "open-responses"
    ) -> None:
        self.socket = socket
        self.svc = svc
        self.caller = caller
        #: The names of its streams' reasoning events (``stream.event_dialect``).
        self.dialect: Dialect = dialect
        self.held: dict[str, Run] = {}
        #: Warm-ups (``generate: false``) by their response id: each as a next message
        #: continues it (its input whole, its ``previous_response_id`` its start's).
        self.warm: dict[str, WebSocketCreate] = {}
        #: Scratch threads of ``store: false`` responses, held until the connection ends.
        self.scratch: set[str] = set()
        #: Responses started and not yet held, by id: a continuation of one waits for it
        #: (another stream may be answering it).
        self.ending: dict[str, asyncio.Event] = {}
        #: The streams with a message answered or waiting, by ``stream_id``.
        self.streams: dict[str, Stream] = {}
        #: Held by whoever writes a frame: one at a time, whole.
        self.writing = asyncio.Lock()
        #: The connection is ending: nothing more is sent, and no waiting message starts.
        self.closing = False

    async def send(self, message: Message, stream_id: str | None = None) -> None:
        """One event out, tagged with ``stream_id`` when it has one. A connection that is
        ending sends nothing: the sender is told as if its client had gone."""
        if stream_id is not None:
            message = {**message, "stream_id": stream_id}
        async with self.writing:
            if self.closing:
                raise WebSocketDisconnect(1000)
            try:
                await send_message(self.socket, message)
            except WebSocketDisconnect:
                self.closing = True  # the client is gone: the socket takes no more sends
                raise

    async def relay(self, frames: AsyncIterator[list[Message]], stream_id: str | None) -> None:
        """A pump's events, each as one message."""
        async for messages in frames:
            for message in messages:
                await self.send(message, stream_id)

    async def fail(self, exc: ParleyError, stream_id: str | None = None) -> None:
        await self.send(error_event(exc), stream_id)

    async def serve(self) -> None:
        deadline = time.monotonic() + MAX_SECONDS
        while True:
            try:
                async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                    message = await self.socket.receive()
            except TimeoutError:
                await self.stop()
                limit = InvalidRequest(
                    f"The connection reached its limit of {MAX_SECONDS // 60} minutes; "
                    "open a new one.",
                    code="websocket_connection_limit_reached",
                )
                await send_message(self.socket, error_event(limit))
                await self.socket.close(code=1000)
                return
            if message["type"] == "websocket.disconnect":
                raise WebSocketDisconnect(message.get("code", 1000), message.get("reason"))
            text = message.get("text")
            if text is None:  # a binary frame
                await self.fail(
                    InvalidRequest(
                        "Binary frames are not accepted: send each message as a JSON text frame.",
                        code="unsupported_frame",
                    )
                )
                continue
            await self.take(text)

    async def take(self, text: str) -> None:
        """One text message: answered now when it names no stream, else put on its
        stream's queue (the stream made, and its task started, when it has none)."""
        try:
            data: dict[str, Any] | ParleyError = self.decode(text)
        except ParleyError as exc:
            data = exc
        if isinstance(data, ParleyError) or "stream_id" not in data:
            await self.turn(data)
            return
        stream_id = data.pop("stream_id")
        if not isinstance(stream_id, str) or not STREAM_ID.fullmatch(stream_id):
            await self.turn(
                InvalidRequest(
                    "'stream_id' must be 1 to 256 letters, digits, '_', '.' or '-'.",
                    code="invalid_value",
                    param="stream_id",
                )
            )
            return
        stream = self.streams.get(stream_id)
        if stream is None and len(self.streams) >= MAX_STREAMS:
            await self.fail(_stream_limit(f"{MAX_STREAMS} streams at once"), stream_id)
        elif stream is not None and len(stream.waiting) >= MAX_WAITING:
            await self.fail(_stream_limit(f"{MAX_WAITING} messages waiting"), stream_id)
        elif stream is None:
            stream = self.streams[stream_id] = Stream(stream_id)
            stream.task = asyncio.create_task(self.answer(stream, data))
        else:
            stream.waiting.append(data)

    async def answer(self, stream: Stream, first: dict[str, Any]) -> None:
        """A stream's task: its first message, then those waiting, one at a time, until
        none waits."""
        try:
            await self.turn(first, stream)
            while stream.waiting and not self.closing:
                await self.turn(stream.waiting.popleft(), stream)
        except WebSocketDisconnect:
            pass  # the client went, or the connection is ending: its runs go on
        except Exception:
            log.exception("a WebSocket stream failed")
            self.closing = True
            with contextlib.suppress(Exception):
                await self.socket.close(code=1011)
        finally:
            if self.streams.get(stream.id) is stream:
                del self.streams[stream.id]

    async def stop(self) -> None:
        """The connection ends: no stream sends any more, waiting messages are dropped,
        streaming ones stop at once (their runs go on in the engine) and one that is
        starting its response ends once it has; answers once no stream's task runs."""
        self.closing = True
        tasks = []
        for stream in list(self.streams.values()):
            stream.waiting.clear()
            if stream.task is not None:
                if stream.streaming:
                    stream.task.cancel()
                tasks.append(stream.task)
        await asyncio.gather(*tasks, return_exceptions=True)

    async def turn(self, data: dict[str, Any] | ParleyError, stream: Stream | None = None) -> None:
        """One ``response.create`` (or what was wrong with a message): its events, or one
        error envelope, tagged with its stream's id when it has one."""
        previous: str | None = None
        stream_id = stream.id if stream is not None else None
        try:
            # Each message is a request of the key, counted as HTTP requests are.
            address = self.socket.client.host if self.socket.client else "-"
            await self.svc.limits.check_message(address, self.caller.key_hash)
            if isinstance(data, ParleyError):
                raise data
            body = self.validate(data)
            previous = body.previous_response_id
            if previous in self.ending:  # made on another stream, and not yet held
                await self.ending[previous].wait()
                if self.closing:  # the connection ended meanwhile: this one never starts
                    return
            named, body = previous, self.unwarm(body)
            if body.generate is False:
                await self.warm_up(body, named, stream_id)
                return
            planned = await plan(
                self.svc,
                user_id=self.caller.user.id,
                body=body,
                held=self.held,
                who=who_of(self.caller),
            )
            if named != body.previous_response_id and planned.config.request is not None:
                echoed = {**planned.config.request, "previous_response_id": named}  # as sent
                planned.config = replace(planned.config, request=echoed)
            turn = await start(self.svc, self.caller.user.id, planned, self.caller.key_hash)
        except ParleyError as exc:
            if previous is not None:
                self.held.pop(previous, None)
                self.warm.pop(previous, None)
            await self.fail(exc, stream_id)
            return
        if not planned.store:
            self.scratch.add(turn.thread_id)
        ended = self.ending[turn.run_id] = asyncio.Event()
        if stream is not None:
            stream.streaming = True
        try:
            await self.follow(turn, body, previous, stream_id)
        finally:
            if stream is not None:
                stream.streaming = False
            del self.ending[turn.run_id]
            ended.set()

    async def follow(
        self, turn: TurnHandle, body: WebSocketCreate, previous: str | None, stream_id: str | None
    ) -> None:
        """A started response's events, then what the connection holds of it."""
        events = ResponseEvents(head(turn.run, "in_progress"), turn.first_seq - 1, self.dialect)
        states = None
        if wants_state(body.include):  # the connection holds its scratch threads
            states = functools.partial(
                self.svc.db.read,
                reads.answer_states,
                user_id=self.caller.user.id,
                response_id=turn.run_id,
                scratch=True,
            )
        messages = ResponseMessages(events, states=states)
        await self.relay(pump(messages, turn.events(), turn=True), stream_id)
        try:
            outcome = await turn.result()
        except NotFound:  # a scratch thread let go of meanwhile (the server stopping)
            return
        if outcome.run.status == RunStatus.FAILED and previous is not None:
            self.held.pop(previous, None)
        self.hold(outcome.run)

    def unwarm(self, body: WebSocketCreate) -> WebSocketCreate:
        """``body`` with the warm-up it continues, if it does, folded in: the warm-up's
        input before its own, and where the warm-up went on from."""
        warm = self.warm.get(body.previous_response_id or "")
        if warm is None:
            return body
        return body.model_copy(
            update={
                "input": _items(warm.input) + _items(body.input),
                "previous_response_id": warm.previous_response_id,
                "conversation": body.conversation or warm.conversation,
            }
        )

    async def warm_up(
        self, body: WebSocketCreate, named: str | None, stream_id: str | None
    ) -> None:
        """A ``generate: false`` message: its request checked as any other's, then an
        empty completed response (``response.created``, ``response.in_progress``,
        ``response.completed``) with no model call; the connection keeps the request for
        the response that continues it."""
        if body.model is None:
            raise InvalidRequest(
                "Missing required parameter: 'model'.",
                code="missing_required_parameter",
                param="model",
            )
        self.svc.engine.profile(body.model)  # a model that does not exist is refused
        if body.input or body.previous_response_id is not None or body.conversation is not None:
            await plan(
                self.svc,
                user_id=self.caller.user.id,
                body=body,
                held=self.held,
                who=who_of(self.caller),
            )
        config = run_config(body, body.model)
        request = {**(config.request or {}), "previous_response_id": named}
        run = new_run(
            user_id=self.caller.user.id,
            thread_id="",
            assistant_id=None,
            model=body.model,
            instructions=config.instructions,
            tools=config.tools,
            parameters=config.parameters,
            status=RunStatus.COMPLETED,
            metadata=config.metadata,
            request=request,
        )
        run.completed_at = run.started_at = run.created_at  # answered at once, with nothing
        events = ResponseEvents(head(run, "in_progress"))
        events.ended_at = int(run.created_at)
        messages = ResponseMessages(events, stored=events.final("completed"))
        self.warm[run.id] = body  # before its events: a next message may continue it at once
        while len(self.warm) > MAX_HELD:
            self.warm.pop(next(iter(self.warm)))
        await self.relay(pump(messages, no_items()), stream_id)

    def decode(self, text: str) -> dict[str, Any]:
        """A message's JSON object."""
        if len(text) > self.svc.settings.max_body_bytes:
            raise PayloadTooLarge(
                f"The message is larger than {self.svc.settings.max_body_bytes} bytes."
            )
        try:
            data = orjson.loads(text)
        except orjson.JSONDecodeError:
            raise InvalidRequest("The message is not valid JSON.", code="invalid_json") from None
        if not isinstance(data, dict):
            raise _not_a_create()
        return data

    @staticmethod
    def validate(data: dict[str, Any]) -> WebSocketCreate:
        """A message's object (its ``stream_id`` taken out) as a ``response.create``."""
        if data.get("type") != "response.create":
            raise _not_a_create()
        try:
            return WebSocketCreate.model_validate(data)
        except ValidationError as exc:
            raise validation_failed(exc.errors()) from None

    def hold(self, run: Run) -> None:
        self.held[run.id] = run
        while len(self.held) > MAX_HELD:
            self.held.pop(next(iter(self.held)))

    def close(self) -> None:
        """Let go of the scratch threads of this connection's ``store: false`` responses:
        each goes now, or once its turn ends (``Engine.release_scratch``)."""
        for thread_id in self.scratch:
            self.svc.engine.release_scratch(thread_id)


def _not_a_create() -> InvalidRequest:
    return InvalidRequest(
        'Send {"type": "response.create", ...} messages.', code="invalid_value", param="type"
    )


def _stream_limit(what: str) -> InvalidRequest:
    return InvalidRequest(
        f"This WebSocket connection has reached its stream limit ({what}); "
        "send it once a response ends.",
        code="websocket_stream_limit_reached",
        param="stream_id",
    )


def _items(value: str | list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """A request's ``input`` as a list of items (a string is one user message)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": value}]
    return list(value)


async def serve(socket: WebSocket) -> None:
    svc: Services = socket.app.state.services
    await socket.accept()
    try:
        caller = await authenticated(socket, svc)
        dialect = event_dialect(socket.headers.items())  # the handshake's, for every response
    except ParleyError as exc:
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            await send_message(socket, error_event(exc))
            await socket.close(code=1008)
        return
    connection = Connection(socket, svc, caller, dialect)
    try:
        await connection.serve()
    except WebSocketDisconnect:
        pass
    finally:
        await connection.stop()  # before close: a starting stream may still add a scratch
        connection.close()
