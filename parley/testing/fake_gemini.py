"""A fake Gemini API server, for tests: real HTTP/1.1 over a loopback socket, in the running
event loop.

It answers ``POST {prefix}/models/{model}:streamGenerateContent?alt=sse`` with the script a
test gave for that model (``FakeGemini.scripts``): each event is written as one chunk of a
chunked body, ``data: {json}`` and a blank line with ``\\r\\n`` line breaks, as the Gemini
API frames them. ``GET {prefix}/models`` lists ``FakeGemini.models``, two per page. Every
request is kept (``requests``) with its target, headers and JSON body.

With ``require_signatures`` set, the fake checks thought signatures as Gemini 3 does: in
the current turn (the model contents after the last user content that is not only
function responses), the first ``functionCall`` part of each model content must carry a
``thoughtSignature``, or the answer is HTTP 400 ``INVALID_ARGUMENT``.

The streams a test writes are constructed from the documented wire format (the
``GenerateContentResponse`` shape), not recorded from the real API.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Literal
from urllib.parse import parse_qs, unquote, urlsplit

import orjson

__all__ = ["FakeGemini", "Received", "Script", "gemini_error"]

_PREFIX = "/v1beta"
_PAGE = 2


def gemini_error(code: int, message: str, status: str) -> dict[str, Any]:
    """An error body as the Gemini API writes it."""
    return {"error": {"code": code, "message": message, "status": status}}


@dataclass
class Script:
    """What the fake answers for one model.

    ``events``: each a JSON value (sent as one ``data:`` event) or raw bytes (sent as is).
    ``status`` other than 200 answers ``error`` as a JSON body instead. ``end``: ``"close"``
    ends the body cleanly, ``"hold"`` sends nothing more until the client goes away,
    ``"cut"`` closes the connection in the middle of the body. ``whole``: the events as
    one JSON array, as the API answers without ``alt=sse``.
    """

    events: list[Any] = field(default_factory=list)
    status: int = 200
    error: dict[str, Any] | None = None
    end: Literal["close", "hold", "cut"] = "close"
    whole: bool = False


@dataclass
class Received:
    """One request the fake received."""

    method: str
    target: str
    headers: dict[str, str]
    body: Any


class FakeGemini:
    """The server; ``async with FakeGemini() as fake`` starts it on a free loopback port."""

    def __init__(self) -> None:
        self.scripts: dict[str, Script] = {}
        self.models: list[dict[str, Any]] = []
        self.requests: list[Received] = []
        #: Refuse a request whose current turn has a function call step without its
        #: thought signature, as Gemini 3 does.
        self.require_signatures = False
        #: Streams being written or held, and connections accepted so far.
        self.active_streams = 0
        self.connections = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{_PREFIX}"

    async def __aenter__(self) -> FakeGemini:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        try:
            while await self._one_request(reader, writer):
                pass
        except (OSError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _one_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Answer one request; ``False`` when the connection is to be closed."""
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        except asyncio.IncompleteReadError:
            return False
        request_line, *lines = head.rstrip("\r\n").split("\r\n")
        method, target, _ = request_line.split(" ", 2)
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        raw = await reader.readexactly(int(headers.get("content-length", "0")))
        body = orjson.loads(raw) if raw else None
        self.requests.append(Received(method, target, headers, body))
        path = unquote(urlsplit(target).path)
        if method == "GET" and path == f"{_PREFIX}/models":
            token = parse_qs(urlsplit(target).query).get("pageToken", ["0"])[0]
            await _answer(writer, 200, self._models_page(int(token)))
            return True
        model, _, verb = path.removeprefix(f"{_PREFIX}/models/").partition(":")
        script = self.scripts.get(model)
        if method != "POST" or verb != "streamGenerateContent" or script is None:
            error = gemini_error(404, f"models/{model} is not found.", "NOT_FOUND")
            await _answer(writer, 404, error)
            return True
        unsigned = _unsigned_call(body) if self.require_signatures else None
        if unsigned is not None:
            await _answer(writer, 400, gemini_error(400, unsigned, "INVALID_ARGUMENT"))
            return True
        if script.status != 200 or script.whole:
            await _answer(writer, script.status, script.events if script.whole else script.error)
            return True
        self.active_streams += 1
        try:
            return await _stream(reader, writer, script)
        finally:
            self.active_streams -= 1

    def _models_page(self, start: int) -> dict[str, Any]:
        page: dict[str, Any] = {"models": self.models[start : start + _PAGE]}
        if start + _PAGE < len(self.models):
            page["nextPageToken"] = str(start + _PAGE)
        return page


def _unsigned_call(body: Any) -> str | None:
    """Why ``body`` fails Gemini 3's signature check, or None when it passes."""
    contents = body.get("contents") if isinstance(body, dict) else None
    if not isinstance(contents, list):
        return None
    start = 0
    for position, content in enumerate(contents):
        parts = content.get("parts", ())
        if content.get("role") == "user" and any("functionResponse" not in p for p in parts):
            start = position + 1
    for position, content in enumerate(contents[start:], start):
        if content.get("role") != "model":
            continue
        calls = [p for p in content.get("parts", ()) if "functionCall" in p]
        if calls and not calls[0].get("thoughtSignature"):
            name = calls[0]["functionCall"].get("name")
            return (
                f"The function call {name!r} of content {position} has no thought_signature; "
                "function calls of the current turn must be sent back with theirs."
            )
    return None


async def _answer(writer: asyncio.StreamWriter, status: int, body: Any) -> None:
    data = orjson.dumps(body)
    reason = HTTPStatus(status).phrase
    writer.write(
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json; charset=UTF-8\r\n"
        f"content-length: {len(data)}\r\n\r\n".encode()
        + data
    )
    await writer.drain()


async def _stream(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, script: Script
) -> bool:
    writer.write(
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
    )
    for event in script.events:
        data = event if isinstance(event, bytes) else b"data: " + orjson.dumps(event) + b"\r\n\r\n"
        writer.write(b"%x\r\n%s\r\n" % (len(data), data))
        await writer.drain()
        await asyncio.sleep(0)  # one event per network write, as far as the client can tell
    if script.end == "cut":
        return False
    if script.end == "hold":
        while await reader.read(65536):
            pass
        return False
    writer.write(b"0\r\n\r\n")
    await writer.drain()
    return True
