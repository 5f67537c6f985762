"""The Responses API over a WebSocket on ``/v1/responses`` (Open Responses 2026-04-24).

A connection authenticates like HTTP (``Authorization: Bearer``), then takes
``response.create`` messages one at a time: each response streams its events as JSON text
messages, the same events as the HTTP stream, and the next message is read once it ends.
The connection holds the responses it made, so a ``store: false`` response can be
continued with ``previous_response_id`` on the same connection (its scratch thread lives
as long as the connection); a continuation that fails forgets the response it named.
A ``generate: false`` message is a warm-up: an empty completed response, no model call, that
the connection keeps; a response that continues it (``previous_response_id``) takes its
input before its own, and what it continued (``Connection.unwarm``).
Failures are ``{"type": "error", "status", "error": {"code", "message", "param"}}``; a
binary frame is one (``unsupported_frame``), and the connection stays usable.
A connection lasts at most ``MAX_SECONDS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from dataclasses import replace
from typing import Any

import orjson
from pydantic import ValidationError
from starlette.websockets import WebSocket, WebSocketDisconnect

from parley.errors import InvalidRequest, NotFound, ParleyError, PayloadTooLarge
from parley.server.deps import Caller, Services, authenticated
from parley.server.errors import openai_error, validation_failed
from parley.server.faces.kit.hosted import who_of
from parley.server.faces.kit.streams import (
    no_items,
    pump,
    send_message,
    to_socket,
)
from parley.server.faces.responses import reads
from parley.server.faces.responses.dialect import Dialect, event_dialect
from parley.server.faces.responses.protocol import WebSocketCreate, wants_state
from parley.server.faces.responses.requests import plan, run_config, start
from parley.server.faces.responses.resource import head
from parley.server.faces.responses.stream import ResponseEvents, ResponseMessages
from parley.store.records import Run
from parley.store.runs import new_run
from parley.types import RunStatus

log = logging.getLogger("parley.server")

#: How long one connection may last (the specification's 60 minutes).
MAX_SECONDS = 60 * 60
#: Responses a connection holds for continuation; the oldest is let go past this.
MAX_HELD = 64


def error_event(exc: ParleyError) -> dict[str, Any]:
    """A failure as the socket says it: ``{"type": "error", "status", "error": {...}}``."""
    status, body = openai_error(exc)
    return {"type": "error", "status": status, **body}


class Connection:
    """One WebSocket's session: who it is, and the responses it holds."""

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

    async def fail(self, exc: ParleyError) -> None:
        await send_message(self.socket, error_event(exc))

    async def serve(self) -> None:
        deadline = time.monotonic() + MAX_SECONDS
        while True:
            try:
                async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                    message = await self.socket.receive()
            except TimeoutError:
                await self.fail(
                    InvalidRequest(
                        f"The connection reached its limit of {MAX_SECONDS // 60} minutes; "
                        "open a new one.",
                        code="websocket_connection_limit_reached",
                    )
                )
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
            await self.turn(text)

    async def turn(self, text: str) -> None:
        """One ``response.create``: its events, or one error envelope."""
        previous: str | None = None
        try:
            # Each message is a request of the key, counted as HTTP requests are.
            address = self.socket.client.host if self.socket.client else "-"
            await self.svc.limits.check_message(address, self.caller.key_hash)
            body = self.parse(text)
            previous = body.previous_response_id
            named, body = previous, self.unwarm(body)
            if body.generate is False:
                await self.warm_up(body, named)
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
            await self.fail(exc)
            return
        if not planned.store:
            self.scratch.add(turn.thread_id)
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
        await to_socket(self.socket, pump(messages, turn.events(), turn=True))
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

    async def warm_up(self, body: WebSocketCreate, named: str | None) -> None:
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
        await to_socket(self.socket, pump(messages, no_items()))
        self.warm[run.id] = body
        while len(self.warm) > MAX_HELD:
            self.warm.pop(next(iter(self.warm)))

    def parse(self, text: str) -> WebSocketCreate:
        if len(text) > self.svc.settings.max_body_bytes:
            raise PayloadTooLarge(
                f"The message is larger than {self.svc.settings.max_body_bytes} bytes."
            )
        try:
            data = orjson.loads(text)
        except orjson.JSONDecodeError:
            raise InvalidRequest("The message is not valid JSON.", code="invalid_json") from None
        if not isinstance(data, dict) or data.get("type") != "response.create":
            raise InvalidRequest(
                'Send {"type": "response.create", ...} messages.',
                code="invalid_value",
                param="type",
            )
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
        connection.close()
