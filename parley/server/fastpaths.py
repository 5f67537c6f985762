"""The turn-starting POSTs, answered as soon as a request reaches the app (``app.ParleyApp``),
before FastAPI's and Starlette's layers, routing and dependency solving: on a stream of a
few hundred milliseconds those were a large part of the server's own time to the first
chunk and of its CPU per stream.

A fast path has the same authentication, limits, validation, errors and work as its
route, which stays the one the OpenAPI document describes: both call the same function
(``FastRoute.work``: ``routes.turns.process_turn``, ``routes.chat.create_chat_completion``,
...). The app puts the same request guard and CORS in front of the fast paths as in front
of its routes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError
from starlette.types import Receive, Scope, Send

from parley.server.deps import Services, authenticated
from parley.server.errors import exception_response, invalid_json, validation_failed
from parley.server.idempotency import request_idempotency

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class FastRoute:
    """A route as a fast path: its body's model, and its work, ``work(body, caller, svc)``
    (with ``idempotent``, ``work(body, caller, svc, idem)``, ``idem`` the request's
    ``Idempotency-Key``; with ``headers``, the request's headers too, as ``headers=``). A
    ``ParleyError`` (or any other exception) it raises is answered as the app's handlers
    would."""

    body: type[BaseModel]
    work: Callable[..., Awaitable[Response]]
    idempotent: bool = True
    headers: bool = False


class FastPaths:
    """``POST`` to one of ``routes``' paths, answered by its route. ``app`` is the app whose
    services they use."""

    def __init__(self, app: FastAPI, routes: Mapping[str, FastRoute]) -> None:
        self.app = app
        self.routes = dict(routes)

    def serves(self, scope: Scope) -> bool:
        return (
            scope["type"] == "http" and scope["method"] == "POST" and scope["path"] in self.routes
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self.routes[scope["path"]]
        request = Request(scope, receive)
        response: Response
        try:
            svc: Services = self.app.state.services
            caller = await authenticated(request, svc)
            body = parse_body(route.body, await request.body())
            idem = (await request_idempotency(request),) if route.idempotent else ()
            more = {"headers": request.headers} if route.headers else {}
            response = await route.work(body, caller, svc, *idem, **more)
        except Exception as exc:  # noqa: BLE001 - a boundary, as the app's own handlers
            response = exception_response(exc, scope["path"])
        await response(scope, receive, send)


def parse_body(model: type[M], raw: bytes) -> M:
    """The request body as ``model``, checked as a route's body parameter is: parsed, then
    validated as Python data (the same messages), errors located in ``body``."""
    try:
        data = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        raise invalid_json() from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        raise validation_failed(errors) from None
