"""A scripted fake of an LLM HTTP API, for tests: real HTTP/1.1 over real sockets.

Each API's fake (``fake_anthropic``, ``fake_responses``) subclasses ``ScriptedAPI`` with its
paths, its authentication header, its error and model-list shapes. Each chat request takes
the next ``Answer`` queued with ``answer(...)`` (the last one is repeated). Every request is
kept in ``requests``; ``active`` counts the connections open now, ``connections`` all
accepted. Responses are keep-alive; a streamed answer is chunked, one SSE event per write.
The server is ``parley.testing.loopback``'s.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal, Self

import orjson

from parley.testing.loopback import Connection, LoopbackFake, Received, Request


def sse(name: str, data: Any) -> bytes:
    """One SSE event as the APIs frame it: an ``event:`` line, a ``data:`` line, a blank line."""
    return b"event: %b\ndata: %b\n\n" % (name.encode(), orjson.dumps(data))


@dataclass(slots=True)
class Answer:
    """What the fake answers to one chat request.

    ``events`` (name, data) are sent as SSE (or ``body`` as JSON with ``status``). Then
    ``after`` says how the body ends: ``"end"`` cleanly (the connection kept alive),
    ``"hold"`` not at all (the fake waits for the client to close), ``"cut"`` by closing the
    socket mid-body.
    """

    events: Iterable[tuple[str, Any]] = ()
    status: int = 200
    body: Any = None
    after: Literal["end", "hold", "cut"] = "end"


class ScriptedAPI(LoopbackFake):
    #: The path of the streaming chat call, and of the model list.
    chat_path = ""
    models_path = ""
    #: What ``base_url`` adds to the server's root (the part an adapter is given).
    base_path = ""
    default_models: tuple[str, ...] = ()

    def __init__(self, *, models: list[str] | None = None, api_key: str | None = None) -> None:
        super().__init__()
        self.models = list(models or self.default_models)
        #: When set, a request without this key gets the API's 401 answer.
        self.api_key = api_key
        self.requests: list[Received] = []
        self._answers: list[Answer] = []

    # What a subclass says about its API.

    def authorized(self, request: Received) -> bool:
        raise NotImplementedError

    def unauthorized_body(self) -> Any:
        raise NotImplementedError

    def not_found_body(self) -> Any:
        raise NotImplementedError

    def models_page(self) -> Any:
        raise NotImplementedError

    def default_answer(self) -> Answer:
        raise NotImplementedError

    # The server.

    @property
    def active(self) -> int:
        """Connections open now."""
        return self.open_connections

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.base_path}"

    def answer(self, *answers: Answer) -> None:
        """Queue answers for the next calls (the last one queued is repeated)."""
        self._answers.extend(answers)

    async def start(self) -> Self:
        await self.listen()
        return self

    def _next_answer(self) -> Answer:
        if len(self._answers) > 1:
            return self._answers.pop(0)
        return self._answers[0] if self._answers else self.default_answer()

    async def _respond(self, request: Request, conn: Connection) -> bool:
        """Answer one request; ``False`` when the connection must close."""
        received = Received.of(request)
        self.requests.append(received)
        if self.api_key is not None and not self.authorized(received):
            await conn.send_json(401, self.unauthorized_body())
            return True
        if request.method == "GET" and request.path == self.models_path:
            await conn.send_json(200, self.models_page())
            return True
        if request.method != "POST" or request.path != self.chat_path:
            await conn.send_json(404, self.not_found_body())
            return True
        answer = self._next_answer()
        if answer.body is not None or answer.status != 200:
            await conn.send_json(answer.status, answer.body)
            return True
        await conn.begin_chunked(content_type="text/event-stream; charset=utf-8")
        for name, data in answer.events:
            await conn.send_chunk(sse(name, data))
        if answer.after == "cut":
            return False
        if answer.after == "hold":
            await conn.wait_for_close()
            return False
        await conn.end_chunked()
        return True
