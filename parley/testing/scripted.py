"""A scripted fake of an LLM HTTP API, for tests: real HTTP/1.1 over real sockets.

Each API's fake (``fake_anthropic``, ``fake_responses``) subclasses ``ScriptedAPI`` with its
paths, its authentication header, its error and model-list shapes. Each chat request takes
the next ``Answer`` queued with ``answer(...)`` (the last one is repeated). Every request is
kept in ``requests``; ``active`` counts the connections open now, ``connections`` all
accepted. Responses are keep-alive; a streamed answer is chunked, one SSE event per write.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal, Self

import orjson


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


@dataclass(slots=True)
class Received:
    method: str
    target: str
    headers: dict[str, str]
    body: Any


class ScriptedAPI:
    #: The path of the streaming chat call, and of the model list.
    chat_path = ""
    models_path = ""
    #: What ``base_url`` adds to the server's root (the part an adapter is given).
    base_path = ""
    default_models: tuple[str, ...] = ()

    def __init__(self, *, models: list[str] | None = None, api_key: str | None = None) -> None:
        self.models = list(models or self.default_models)
        #: When set, a request without this key gets the API's 401 answer.
        self.api_key = api_key
        self.requests: list[Received] = []
        self.active = 0
        self.connections = 0
        self.port = 0
        self._answers: list[Answer] = []
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

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
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.base_path}"

    def answer(self, *answers: Answer) -> None:
        """Queue answers for the next calls (the last one queued is repeated)."""
        self._answers.extend(answers)

    async def start(self) -> Self:
        self._server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _next_answer(self) -> Answer:
        if len(self._answers) > 1:
            return self._answers.pop(0)
        return self._answers[0] if self._answers else self.default_answer()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.active += 1
        self.connections += 1
        try:
            while (request := await read_request(reader)) is not None:
                self.requests.append(request)
                if not await self._respond(request, reader, writer):
                    break
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pass  # the client went away or spoke nonsense
        except asyncio.CancelledError:
            pass  # aclose() ends open connections
        finally:
            self.active -= 1
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _respond(
        self, request: Received, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Answer one request; ``False`` when the connection must close."""
        path = request.target.partition("?")[0]
        if self.api_key is not None and not self.authorized(request):
            await send_json(writer, 401, self.unauthorized_body())
            return True
        if request.method == "GET" and path == self.models_path:
            await send_json(writer, 200, self.models_page())
            return True
        if request.method != "POST" or path != self.chat_path:
            await send_json(writer, 404, self.not_found_body())
            return True
        answer = self._next_answer()
        if answer.body is not None or answer.status != 200:
            await send_json(writer, answer.status, answer.body)
            return True
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
            b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n"
        )
        for name, data in answer.events:
            payload = sse(name, data)
            writer.write(b"%x\r\n%b\r\n" % (len(payload), payload))
            await writer.drain()
        if answer.after == "cut":
            return False
        if answer.after == "hold":
            while await reader.read(65536):
                pass
            return False
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return True


async def read_request(reader: asyncio.StreamReader) -> Received | None:
    """The next request on the connection, or ``None`` at a clean end of it."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise
        return None
    request_line, *lines = head.decode("latin-1").split("\r\n")
    method, target, _version = request_line.split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length") or 0)
    raw = await reader.readexactly(length) if length else b""
    return Received(method, target, headers, orjson.loads(raw) if raw else None)


async def send_json(writer: asyncio.StreamWriter, status: int, payload: Any) -> None:
    data = orjson.dumps(payload)
    writer.write(
        b"HTTP/1.1 %d Status\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%b"
        % (status, len(data), data)
    )
    await writer.drain()
