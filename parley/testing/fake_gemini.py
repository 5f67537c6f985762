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
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qs, unquote, urlsplit

import orjson

from parley.testing.loopback import Connection, LoopbackFake, Received, Request

__all__ = ["FakeGemini", "Received", "Script", "gemini_error", "usage_metadata"]

_PREFIX = "/v1beta"
_PAGE = 2


def gemini_error(code: int, message: str, status: str) -> dict[str, Any]:
    """An error body as the Gemini API writes it."""
    return {"error": {"code": code, "message": message, "status": status}}


def usage_metadata(
    prompt: int, candidates: int, *, thoughts: int = 0, cached: int = 0
) -> dict[str, Any]:
    """A ``usageMetadata`` as the Gemini API writes it: the ``thoughts`` are counted apart
    from the ``candidates`` (the total is all three), and the ``cached`` content's tokens are
    part of the ``prompt``'s. Counts other than the prompt's are left out when they are 0,
    as the API leaves them out."""
    usage: dict[str, Any] = {"promptTokenCount": prompt}
    if candidates:
        usage["candidatesTokenCount"] = candidates
    usage["totalTokenCount"] = prompt + candidates + thoughts
    usage["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": prompt}]
    if cached:
        usage["cachedContentTokenCount"] = cached
        usage["cacheTokensDetails"] = [{"modality": "TEXT", "tokenCount": cached}]
    if thoughts:
        usage["thoughtsTokenCount"] = thoughts
    return usage


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


class FakeGemini(LoopbackFake):
    """The server; ``async with FakeGemini() as fake`` starts it on a free loopback port."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: dict[str, Script] = {}
        self.models: list[dict[str, Any]] = []
        self.requests: list[Received] = []
        #: Refuse a request whose current turn has a function call step without its
        #: thought signature, as Gemini 3 does.
        self.require_signatures = False
        #: Streams being written or held.
        self.active_streams = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{_PREFIX}"

    async def _respond(self, request: Request, conn: Connection) -> bool:
        """Answer one request; ``False`` when the connection is to be closed."""
        received = Received.of(request)
        self.requests.append(received)
        method, target, body = received.method, received.target, received.body
        path = unquote(urlsplit(target).path)
        if method == "GET" and path == f"{_PREFIX}/models":
            token = parse_qs(urlsplit(target).query).get("pageToken", ["0"])[0]
            await _answer(conn, 200, self._models_page(int(token)))
            return True
        model, _, verb = path.removeprefix(f"{_PREFIX}/models/").partition(":")
        script = self.scripts.get(model)
        if method != "POST" or verb != "streamGenerateContent" or script is None:
            error = gemini_error(404, f"models/{model} is not found.", "NOT_FOUND")
            await _answer(conn, 404, error)
            return True
        unsigned = _unsigned_call(body) if self.require_signatures else None
        if unsigned is not None:
            await _answer(conn, 400, gemini_error(400, unsigned, "INVALID_ARGUMENT"))
            return True
        if script.status != 200 or script.whole:
            await _answer(conn, script.status, script.events if script.whole else script.error)
            return True
        self.active_streams += 1
        try:
            return await _stream(conn, script)
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


async def _answer(conn: Connection, status: int, body: Any) -> None:
    await conn.send(status, orjson.dumps(body), content_type="application/json; charset=UTF-8")


async def _stream(conn: Connection, script: Script) -> bool:
    await conn.begin_chunked()
    for event in script.events:
        data = event if isinstance(event, bytes) else b"data: " + orjson.dumps(event) + b"\r\n\r\n"
        await conn.send_chunk(data)
        await asyncio.sleep(0)  # one event per network write, as far as the client can tell
    if script.end == "cut":
        return False
    if script.end == "hold":
        await conn.wait_for_close()
        return False
    await conn.end_chunked()
    return True
