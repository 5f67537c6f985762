"""A fake Ollama server, for tests: real HTTP/1.1 over a loopback socket, in the running
event loop.

Each ``POST /api/chat`` takes the next ``Answer`` queued with ``answer(...)``; when none is
queued, the last one taken is given again (at first, "Hi" and a done line). Each of an
answer's ``writes`` is sent as one chunk of a chunked body, a few milliseconds apart, so
that a client reads them one at a time: NDJSON lines as Ollama streams them, pieces of them
cut anywhere, or one JSON object (an error, or the answer to ``"stream": false``).
``GET /api/tags`` answers ``tags``; any other path gets Ollama's plain-text 404.

Every request is kept: in ``requests`` (method, target, lower-cased headers, JSON body) and
in ``heads`` (its request line and headers as received). ``open_connections`` counts the
connections open now, ``connections`` all accepted. The server is
``parley.testing.loopback``'s.

The lines built by ``chat_line``, ``text_line`` and ``done_line`` are constructed from
Ollama's API documentation (``/api/chat`` streaming); they are not recordings of a server.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Literal, Self

import orjson

from parley.testing.loopback import Connection, LoopbackFake, Received, Request

__all__ = ["NDJSON", "Answer", "FakeOllama", "Received", "chat_line", "done_line", "text_line"]

#: The content type of Ollama's streamed answers.
NDJSON = "application/x-ndjson"
#: The pause after each write: long enough for a client to read each on its own.
_PAUSE = 0.005


def chat_line(message: dict[str, Any] | None = None, **fields: Any) -> bytes:
    """One NDJSON line of a streamed ``/api/chat`` answer: ``message`` is the assistant
    message's fields (``content``, ``thinking``, ``tool_calls``), ``fields`` those of the
    line (``done``, ``done_reason``, the counts, or another ``model``)."""
    data: dict[str, Any] = {"model": "llama3.2", "created_at": "2025-01-01T00:00:00.0Z"}
    if message is not None:
        data["message"] = {"role": "assistant", "content": "", **message}
    data.update(fields)
    data.setdefault("done", False)
    return orjson.dumps(data) + b"\n"


def text_line(text: str, **fields: Any) -> bytes:
    """A line of the answer's text."""
    return chat_line({"content": text}, **fields)


def done_line(reason: str = "stop", *, prompt: int = 26, output: int = 5, **fields: Any) -> bytes:
    """The last line: the reason the answer ended, its durations (in nanoseconds) and its
    token counts, ``prompt_eval_count`` (``prompt``) and ``eval_count`` (``output``)."""
    return chat_line(
        {"content": ""},
        done=True,
        done_reason=reason,
        total_duration=4883583458,
        load_duration=1334875,
        prompt_eval_count=prompt,
        prompt_eval_duration=342546000,
        eval_count=output,
        eval_duration=4535599000,
        **fields,
    )


@dataclass
class Answer:
    """What the fake writes to one ``/api/chat`` call: each of ``writes`` on its own.

    ``ending`` says how the body ends: ``"end"`` cleanly (the connection kept alive),
    ``"cut"`` by closing the connection mid-body, ``"hold"`` not at all (the fake sends
    nothing more until the client goes away).
    """

    writes: list[bytes]
    status: int = 200
    content_type: str = NDJSON
    ending: Literal["end", "cut", "hold"] = "end"


class FakeOllama(LoopbackFake):
    """The server; ``async with FakeOllama() as fake`` starts it on a free loopback port."""

    def __init__(self, *, tags: Any = None) -> None:
        super().__init__()
        #: The body of ``GET /api/tags`` (the models pulled).
        self.tags: Any = {"models": []} if tags is None else tags
        self.requests: list[Received] = []
        self.heads: list[str] = []
        self._answers: list[Answer] = []
        self._last = Answer([text_line("Hi"), done_line()])

    @property
    def base_url(self) -> str:
        return self.url

    def answer(self, *answers: Answer) -> None:
        """Queue answers for the next chat calls."""
        self._answers.extend(answers)

    async def start(self) -> Self:
        await self.listen()
        return self

    async def _respond(self, request: Request, conn: Connection) -> bool:
        """Answer one request; ``False`` when the connection is to be closed."""
        self.requests.append(Received.of(request))
        self.heads.append(request.head)
        if request.method == "GET" and request.path == "/api/tags":
            await conn.send_json(200, self.tags)
            return True
        if request.method != "POST" or request.path != "/api/chat":
            await conn.send(404, b"404 page not found", content_type="text/plain")
            return True
        if self._answers:
            self._last = self._answers.pop(0)
        answer = self._last
        await conn.begin_chunked(answer.status, content_type=answer.content_type)
        for piece in answer.writes:
            await conn.send_chunk(piece)
            await asyncio.sleep(_PAUSE)
        if answer.ending == "cut":
            return False
        if answer.ending == "hold":
            await conn.wait_for_close()
            return False
        await conn.end_chunked()
        return True
