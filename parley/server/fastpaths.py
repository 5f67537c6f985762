"""The turn-starting POSTs, answered as soon as a request reaches the app (``app.ParleyApp``),
before FastAPI's and Starlette's layers, routing and dependency solving: on a stream of a
few hundred milliseconds those were a large part of the server's own time to the first
chunk and of its CPU per stream.

A fast path has the same authentication, limits, validation, errors and work as its
route, which stays the one the OpenAPI document describes: both call the same function
(``routes.turns.process_turn``, ``routes.chat.create_chat_completion``). The app puts the
same request guard and CORS in front of the fast paths as in front of its routes."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError
from starlette.types import Receive, Scope, Send

from parley.server.deps import Services
from parley.server.errors import exception_response, validation_failed

log = logging.getLogger("parley.server")

M = TypeVar("M", bound=BaseModel)

#: A fast path's work: the request and the app's services in, the answer out; a
#: ``ParleyError`` (or any other exception) is answered as the app's handlers would.
Handler = Callable[[Request, Services], Awaitable[Response]]


class FastPaths:
    """``POST`` to one of ``handlers``' paths, answered by its handler. ``app`` is the app
    whose services they use."""

    def __init__(self, app: FastAPI, handlers: Mapping[str, Handler]) -> None:
        self.app = app
        self.handlers = dict(handlers)

    def serves(self, scope: Scope) -> bool:
        return (
            scope["type"] == "http" and scope["method"] == "POST" and scope["path"] in self.handlers
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        response: Response
        try:
            response = await self.handlers[scope["path"]](request, self.app.state.services)
        except Exception as exc:  # noqa: BLE001 - a boundary, as the app's own handlers
            response = exception_response(exc, scope["path"])
        await response(scope, receive, send)


def parse_body(model: type[M], raw: bytes) -> M:
    """The request body as ``model``, checked as a route's body parameter is: parsed, then
    validated as Python data (the same messages), errors located in ``body``."""
    try:
        data = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        raise validation_failed([{"type": "json_invalid"}]) from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        raise validation_failed(errors) from None
