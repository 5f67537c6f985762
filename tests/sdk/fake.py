"""A scripted stand-in for the Parley server, for ``httpx.MockTransport``.

Routes answer what ``docs/api.md`` documents; each route holds a queue of answers (the last
one repeats). Every request is recorded so tests can check method, path, query, body and
headers. The same ``FakeServer`` serves ``Client`` and ``AsyncClient``.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, overload

import httpx

from parley.sdk import AsyncClient, Client

Answer = Callable[[httpx.Request], httpx.Response]
T = TypeVar("T")

API_KEY = "pk_test_secret"
BASE_URL = "http://parley.test"


@dataclass
class Seen:
    """One request the fake server received."""

    method: str
    path: str
    params: dict[str, str]
    body: Any
    headers: dict[str, str] = field(repr=False)

    @property
    def route(self) -> str:
        return f"{self.method} {self.path}"


class FakeServer:
    def __init__(self) -> None:
        self.requests: list[Seen] = []
        self._routes: dict[tuple[str, str], list[Answer]] = {}

    def on(self, method: str, path: str, *answers: Answer) -> FakeServer:
        self._routes.setdefault((method, path), []).extend(answers)
        return self

    def __call__(self, request: httpx.Request) -> httpx.Response:
        headers = dict(request.headers)
        content_type = headers.get("content-type", "")
        if content_type.startswith("multipart/form-data"):
            body: Any = form_fields(request.content, content_type)
            headers["content-type"] = "multipart/form-data"  # the boundary is random
        else:
            body = json.loads(request.content) if request.content else None
        path = request.url.raw_path.split(b"?")[0].decode()  # still percent-encoded
        self.requests.append(
            Seen(
                method=request.method,
                path=path,
                params=dict(request.url.params),
                body=body,
                headers=headers,
            )
        )
        queue = self._routes.get((request.method, path))
        if not queue:
            return error(404, "not_found", f"no fake route {request.method} {path}")(request)
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        return answer(request)

    @property
    def routes(self) -> list[str]:
        return [seen.route for seen in self.requests]

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)


def form_fields(content: bytes, content_type: str) -> dict[str, Any]:
    """A ``multipart/form-data`` body's fields: text as it is, a file as
    ``{"filename", "content_type", "content"}``."""
    boundary = content_type.partition("boundary=")[2].encode()
    fields: dict[str, Any] = {}
    for part in content.split(b"--" + boundary)[1:-1]:
        head, _, value = part[2:-2].partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        disposition = dict(re.findall(r'(\w+)="([^"]*)"', lines[0]))
        if "filename" in disposition:
            media = lines[1].partition(": ")[2] if len(lines) > 1 else ""
            fields[disposition["name"]] = {
                "filename": disposition["filename"],
                "content_type": media,
                "content": value.decode(),
            }
        else:
            fields[disposition["name"]] = value.decode()
    return fields


# ------------------------------------------------------------------------------- answers


def ok(body: Any, status: int = 200) -> Answer:
    return lambda request: httpx.Response(status, json=body)


def error(
    status: int,
    type_: str,
    message: str,
    *,
    code: str | None = None,
    details: list[dict[str, Any]] | None = None,
) -> Answer:
    err: dict[str, Any] = {"type": type_, "message": message}
    if code is not None:
        err["code"] = code
    if details is not None:
        err["details"] = details
    return ok({"error": err}, status)


def openai_error(
    status: int,
    type_: str,
    message: str,
    *,
    own_type: str,
    code: str | None = None,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> Answer:
    """An error of an OpenAI face's path (``/v1/assistants``, ``/v1/threads``, ...):
    OpenAI's shape, with Parley's own type in ``X-Parley-Error-Type``."""
    err = {"message": message, "type": type_, "param": param, "code": code}
    answer = {"X-Parley-Error-Type": own_type, **(headers or {})}
    return lambda request: httpx.Response(status, json={"error": err}, headers=answer)


def raises(exc: Exception) -> Answer:
    def answer(request: httpx.Request) -> httpx.Response:
        raise exc

    return answer


class Chunks(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A response body sent in the given chunks, optionally failing after the last one."""

    def __init__(self, chunks: Iterable[bytes], fail: Exception | None = None) -> None:
        self._chunks = list(chunks)
        self._fail = fail

    def __iter__(self) -> Iterator[bytes]:
        yield from self._chunks
        if self._fail is not None:
            raise self._fail

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self._chunks:
            yield chunk
        if self._fail is not None:
            raise self._fail


def frame(seq: int | None, event: dict[str, Any]) -> bytes:
    head = "" if seq is None else f"id: {seq}\n"
    return f"{head}event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()


def sse(
    events: list[tuple[int, dict[str, Any]]],
    *,
    fail: Exception | None = None,
    expect_last_event_id: str | None = None,
    split: int | None = None,
) -> Answer:
    """An SSE answer of ``(seq, event)`` frames; ``fail`` cuts it off with that error;
    ``split`` sends the body in chunks of that many bytes."""

    def answer(request: httpx.Request) -> httpx.Response:
        if expect_last_event_id is not None:
            assert request.headers.get("last-event-id") == expect_last_event_id
        body = b"".join(frame(seq, event) for seq, event in events)
        chunks = (
            [body] if split is None else [body[i : i + split] for i in range(0, len(body), split)]
        )
        return httpx.Response(
            200, headers={"content-type": "text/event-stream"}, stream=Chunks(chunks, fail)
        )

    return answer


# --------------------------------------------------------------------------- event makers

RUN = "run_1"
MSG = "msg_2"


def status(value: str, run_id: str = RUN) -> dict[str, Any]:
    return {"type": "run.status", "run_id": run_id, "status": value}


def text(value: str, run_id: str = RUN, message_id: str = MSG) -> dict[str, Any]:
    return {"type": "content.delta", "run_id": run_id, "message_id": message_id, "text": value}


def thinking(value: str, run_id: str = RUN, message_id: str = MSG) -> dict[str, Any]:
    return {"type": "reasoning.delta", "run_id": run_id, "message_id": message_id, "text": value}


def tool_calls(
    *calls: tuple[str, dict[str, Any]], run_id: str = RUN, turn: int = 1
) -> dict[str, Any]:
    actions = [
        {
            "action_id": f"act_{turn}_{i}",
            "tool_call_id": f"call_{turn}_{i}",
            "name": name,
            "arguments": args,
        }
        for i, (name, args) in enumerate(calls)
    ]
    return {"type": "tool_calls", "run_id": run_id, "actions": actions}


def usage(
    inp: int, out: int, run_id: str = RUN, *, reasoning: int = 0, cached: int = 0
) -> dict[str, Any]:
    return {
        "type": "usage",
        "run_id": run_id,
        "input_tokens": inp,
        "output_tokens": out,
        "reasoning_tokens": reasoning,
        "cached_tokens": cached,
    }


def done(value: str, run_id: str = RUN, reason: str | None = None) -> dict[str, Any]:
    return {
        "type": "done",
        "run_id": run_id,
        "status": value,
        "ended_at": 1700000001,
        "reason": reason,
    }


def turn(first_seq: int, *events: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    return list(enumerate(events, start=first_seq))


# ------------------------------------------------------------------------ resource bodies


def run_body(status_: str = "queued", run_id: str = RUN, **extra: Any) -> dict[str, Any]:
    """A run as the server answers it (the Assistants API's shape, Parley's usage counts)."""
    return {
        "id": run_id,
        "object": "thread.run",
        "created_at": 1700000000,
        "thread_id": "thread_1",
        "assistant_id": "asst_1",
        "status": status_,
        "required_action": None,
        "last_error": None,
        "expires_at": None,
        "started_at": None,
        "cancelled_at": None,
        "failed_at": None,
        "completed_at": None,
        "incomplete_details": None,
        "model": "demo/echo",
        "instructions": "",
        "tools": [],
        "metadata": {},
        "usage": {
            "prompt_tokens": 0,
            "completion_tokens": 0,
            "total_tokens": 0,
            "input_tokens": 0,
            "output_tokens": 0,
            "reasoning_tokens": 0,
            "cached_tokens": 0,
        },
        "temperature": None,
        "top_p": None,
        "max_prompt_tokens": None,
        "max_completion_tokens": None,
        "truncation_strategy": {"type": "auto", "last_messages": None},
        "response_format": "auto",
        "tool_choice": "auto",
        "parallel_tool_calls": True,
        **extra,
    }


def required_action(*calls: tuple[str, dict[str, Any]], turn: int = 1) -> dict[str, Any]:
    """The ``required_action`` of a ``requires_action`` run waiting for these calls."""
    ids = [(f"act_{turn}_{i}", f"call_{turn}_{i}") for i in range(len(calls))]
    return {
        "type": "submit_tool_outputs",
        "submit_tool_outputs": {
            "tool_calls": [
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": name, "arguments": json.dumps(args)},
                }
                for (_, call_id), (name, args) in zip(ids, calls, strict=True)
            ]
        },
        "actions": [
            {"action_id": action_id, "tool_call_id": call_id, "name": name, "arguments": args}
            for (action_id, call_id), (name, args) in zip(ids, calls, strict=True)
        ],
    }


def message_body(
    content: str = "hello",
    *,
    message_id: str = "msg_1",
    role: str = "user",
    images: tuple[str, ...] = (),
    **extra: Any,
) -> dict[str, Any]:
    """A message as the server answers it: content as parts, text first, then images."""
    parts: list[dict[str, Any]] = []
    if content or not images:
        parts.append({"type": "text", "text": {"value": content, "annotations": []}})
    parts += [{"type": "image_url", "image_url": {"url": u, "detail": "auto"}} for u in images]
    return {
        "id": message_id,
        "object": "thread.message",
        "created_at": 1700000000,
        "thread_id": "thread_1",
        "status": "completed",
        "incomplete_details": None,
        "completed_at": 1700000000,
        "incomplete_at": None,
        "role": role,
        "content": parts,
        "assistant_id": None,
        "run_id": None,
        "attachments": [],
        "metadata": {},
        "seq": 1,
        "reasoning": None,
        "tool_calls": [],
        "tool_call_id": None,
        **extra,
    }


def action_body(i: int, name: str, arguments: dict[str, Any], run_id: str = RUN) -> dict[str, Any]:
    return {
        "id": f"act_{i}",
        "object": "run.action",
        "run_id": run_id,
        "tool_call_id": f"call_{i}",
        "name": name,
        "arguments": arguments,
        "status": "pending",
        "output": None,
        "created_at": 1700000000,
    }


def page(items: list[dict[str, Any]], has_more: bool = False) -> dict[str, Any]:
    return {
        "object": "list",
        "data": items,
        "first_id": items[0]["id"] if items else None,
        "last_id": items[-1]["id"] if items else None,
        "has_more": has_more,
    }


# ------------------------------------------------------------------ one scenario, two clients


@overload
def make_client(kind: Literal["sync"], server: FakeServer, **kwargs: Any) -> Client: ...
@overload
def make_client(kind: Literal["async"], server: FakeServer, **kwargs: Any) -> AsyncClient: ...
@overload
def make_client(kind: str, server: FakeServer, **kwargs: Any) -> Client | AsyncClient: ...


def make_client(kind: str, server: FakeServer, **kwargs: Any) -> Client | AsyncClient:
    options: dict[str, Any] = {"max_retries": 2, "retry_backoff": 0.0, **kwargs}
    if kind == "sync":
        return Client(BASE_URL, API_KEY, transport=server.transport(), **options)
    return AsyncClient(BASE_URL, API_KEY, transport=server.transport(), **options)


async def call(value: T | Awaitable[T]) -> T:
    """The value of a client call, whichever client made it."""
    if inspect.isawaitable(value):
        return await value
    return value


async def collect(stream: Any) -> list[Any]:
    """Every event of a ``Stream`` or ``AsyncStream``, closing it afterwards."""
    events: list[Any] = []
    try:
        if hasattr(stream, "__aiter__"):
            async for event in stream:
                events.append(event)
        else:
            events.extend(stream)
    finally:
        await close(stream)
    return events


async def close(thing: Any) -> None:
    if hasattr(thing, "aclose"):
        await thing.aclose()
    else:
        thing.close()
