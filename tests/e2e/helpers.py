"""Helpers of the end-to-end tests: create things, stream turns, poll runs, check errors.

Everything goes through plain httpx against the real ``parley serve`` process.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

from tests.e2e.sse import Event, stream_events

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
CLOCK = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "The time in a time zone.",
        "parameters": {
            "type": "object",
            "properties": {"zone": {"type": "string"}},
            "required": ["zone"],
        },
    },
}

#: Statuses of a run that is still going.
ACTIVE = frozenset({"queued", "in_progress", "requires_action"})
#: Statuses of a finished run.
FINISHED = frozenset({"completed", "failed", "cancelled", "expired", "incomplete"})

#: What a client must never see: tracebacks, Python exception class names, driver names.
_LEAK = re.compile(
    r"Traceback|File \"|\b[A-Z][A-Za-z]*(?:Error|Exception|Exit|Interrupt)\b"
    r"|sqlalchemy|asyncpg|aiosqlite|sqlite3|pydantic_core|starlette|uvicorn"
)

#: The error ``type`` of each status on Parley's own paths.
ERROR_TYPES = {
    400: "invalid_request",
    401: "authentication_error",
    403: "permission_denied",
    404: "not_found",
    405: "invalid_request",
    409: "conflict",
    413: "payload_too_large",
    422: "validation_error",
    429: "rate_limited",
}
#: The first segment under ``/v1`` of the paths of OpenAI's protocols, whose errors have
#: OpenAI's shape (``message``, ``type``, ``param``, ``code``) and statuses (docs/openai.md).
OPENAI_FACES = frozenset({"responses", "conversations", "chat", "models", "assistants", "threads"})
#: Parley's own types an OpenAI-shaped error may carry in ``X-Parley-Error-Type``, where
#: the status alone does not say which.
_OWN_TYPES = {
    400: {"invalid_request", "validation_error", "upstream_error"},
    422: {"validation_error"},
    429: {"rate_limited", "upstream_error"},
    500: {"internal_error"},
    502: {"upstream_error"},
    503: {"service_unavailable"},
    504: {"upstream_error", "upstream_timeout"},
}


def marker() -> str:
    """A unique word to find this test's requests among those the fake upstream got."""
    return f"mark{uuid.uuid4().hex[:12]}"


def assert_no_leak(text: str) -> None:
    found = _LEAK.search(text)
    assert found is None, f"internal detail {found.group()!r} reaches the client: {text[:2000]}"


def check_response(response: httpx.Response) -> None:
    """Response hook: every JSON body is read and checked for leaks at once."""
    if response.headers.get("content-type", "").startswith("application/json"):
        response.read()
        assert_no_leak(response.text)


def guarded(client: httpx.Client) -> httpx.Client:
    client.event_hooks["response"].append(check_response)
    return client


# ------------------------------------------------------------------------------- errors


def openai_face(response: httpx.Response) -> bool:
    """Whether ``response`` answers a path of one of OpenAI's protocols."""
    parts = response.request.url.path.split("/")
    return len(parts) > 2 and parts[1] == "v1" and parts[2] in OPENAI_FACES


def openai_error_type(status: int) -> str:
    """The specification's error ``type`` for ``status`` on OpenAI's paths (409, 413 and a
    reused key's 422 are ``invalid_request`` too; a provider's 502 or 504 is
    ``model_error``)."""
    types = {
        401: "authentication_error",
        403: "permission_denied",
        404: "not_found",
        429: "too_many_requests",
        500: "server_error",
        502: "model_error",
        503: "server_error",
        504: "model_error",
    }
    return types.get(status, "invalid_request")


def assert_error(
    response: httpx.Response, status: int, code: str | None = None, *, type_: str | None = None
) -> dict[str, Any]:
    """The response is the JSON error ``status`` (with ``code``, when given), in OpenAI's
    shape on OpenAI's paths (Parley's own type in ``X-Parley-Error-Type``), else in
    Parley's."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error, dict), body
    if openai_face(response):
        assert set(error) == {"message", "type", "param", "code"}, body
        assert error["type"] == (type_ or openai_error_type(status)), body
        own = response.headers.get("x-parley-error-type")
        assert own in _OWN_TYPES.get(status, {ERROR_TYPES.get(status)}), (own, body)
    else:
        assert error.get("type") == (type_ or ERROR_TYPES[status]), body
    assert isinstance(error.get("message"), str) and error["message"].strip(), body
    if code is not None:
        assert error.get("code") == code, body
    assert_no_leak(response.text)
    return dict(error)


def assert_invalid(response: httpx.Response, param: str | None = None) -> dict[str, Any]:
    """The request failed validation: on OpenAI's paths a 400 whose ``param`` names the
    field (``param``, when given), on Parley's own a 422 whose ``details`` locate each
    field."""
    if not openai_face(response):
        error = assert_error(response, 422)
        assert error["details"], error
        return error
    error = assert_error(response, 400)
    assert response.headers["x-parley-error-type"] == "validation_error", response.headers
    assert error["code"] in ("invalid_value", "unknown_parameter", "missing_required_parameter")
    if param is not None:
        assert error["param"] == param, error
    return error


# ------------------------------------------------------------------------------ creating


def create_assistant(
    http: httpx.Client,
    model: str = "demo/x",
    tools: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    body = {"name": extra.pop("name", "e2e"), "model": model, **extra}
    if tools is not None:
        body["tools"] = tools
    answer = http.post("/assistants", json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["id"].startswith("asst_")
    return dict(answer.json())


def create_thread(http: httpx.Client, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    answer = http.post("/threads", json={"metadata": metadata or {}})
    assert answer.status_code == 200, answer.text
    assert answer.json()["id"].startswith("thread_")
    return dict(answer.json())


def add_message(http: httpx.Client, thread_id: str, content: str) -> dict[str, Any]:
    """The seed's ``create_message``: ``POST /messages``; the message read as ``flat``."""
    answer = http.post(
        "/messages", json={"thread_id": thread_id, "content": content, "role": "user"}
    )
    assert answer.status_code == 201, answer.text
    return flat(answer.json())


def create_run(
    http: httpx.Client, thread_id: str, assistant_id: str, **extra: Any
) -> dict[str, Any]:
    answer = http.post(
        "/runs", json={"thread_id": thread_id, "assistant_id": assistant_id, **extra}
    )
    assert answer.status_code == 201, answer.text
    run = dict(answer.json())
    assert run["status"] == "queued", run
    return run


def get_run(http: httpx.Client, run_id: str) -> dict[str, Any]:
    answer = http.get(f"/runs/{run_id}")
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def list_all(http: httpx.Client, path: str, **params: Any) -> list[dict[str, Any]]:
    """Every item of a list endpoint, following ``after`` cursors."""
    items: list[dict[str, Any]] = []
    after: str | None = None
    for _ in range(1000):
        query = {"limit": 100, **params, **({"after": after} if after else {})}
        answer = http.get(path, params=query)
        assert answer.status_code == 200, answer.text
        page = answer.json()
        items.extend(page["data"])
        if not page["has_more"]:
            return items
        after = page["last_id"]
    raise AssertionError("the list never ends")


def messages(http: httpx.Client, thread_id: str) -> list[dict[str, Any]]:
    """Every message of the thread, oldest first, tool results included; each with its
    content parts read back as a text (``content``) and images (``images``)."""
    listed = list_all(http, f"/threads/{thread_id}/messages", order="asc", all_messages="true")
    return [flat(m) for m in listed]


def flat(message: dict[str, Any]) -> dict[str, Any]:
    """A message with its parts as ``content`` (the text) and ``images`` (``[{"url"}]``)."""
    parts = message["content"]
    return {
        **message,
        "content": "".join(p["text"]["value"] for p in parts if p["type"] == "text"),
        "images": [{"url": p["image_url"]["url"]} for p in parts if p["type"] == "image_url"],
    }


def runs_of(http: httpx.Client, thread_id: str) -> list[dict[str, Any]]:
    return list_all(http, "/runs", thread_id=thread_id)


def actions(http: httpx.Client, run_id: str, status: str | None = None) -> list[dict[str, Any]]:
    params = {"run_id": run_id, **({"status": status} if status else {})}
    answer = http.get("/actions", params=params)
    assert answer.status_code == 200, answer.text
    return list(answer.json()["data"])


# ------------------------------------------------------------------------------ waiting

T = TypeVar("T")


def at_once(server: Any, key: str, count: int, call: Callable[[httpx.Client, int], T]) -> list[T]:
    """``call(client, i)`` from ``count`` threads, each with its own connection, released
    together."""
    barrier = threading.Barrier(count)

    def one(i: int) -> T:
        with guarded(server.client(key)) as http:
            barrier.wait(timeout=10)
            return call(http, i)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


def wait_until(check: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll ``check`` until it answers something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def wait_run(
    http: httpx.Client,
    run_id: str,
    statuses: frozenset[str] | set[str] = FINISHED,
    timeout: float = 15.0,
) -> dict[str, Any]:
    """Poll ``GET /runs/{id}`` until the run's status is one of ``statuses``."""
    last: dict[str, Any] = {}

    def check() -> dict[str, Any] | None:
        nonlocal last
        last = get_run(http, run_id)
        return last if last["status"] in statuses else None

    try:
        return dict(wait_until(check, timeout, f"run {run_id} to become {sorted(statuses)}"))
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last seen: {last}") from None


# ------------------------------------------------------------------------------ streams


@dataclass
class Turn:
    """A streamed turn as the client saw it."""

    status_code: int
    headers: httpx.Headers
    events: list[Event] = field(default_factory=list)

    @property
    def types(self) -> list[str]:
        return [e.event for e in self.events]

    @property
    def text(self) -> str:
        return joined(self.events, "content.delta")

    @property
    def reasoning(self) -> str:
        return joined(self.events, "reasoning.delta")

    @property
    def run_id(self) -> str:
        return str(self.events[0].data["run_id"])

    @property
    def final_status(self) -> str:
        return str(self.events[-1].data["status"])

    def of_type(self, kind: str) -> list[Event]:
        return [e for e in self.events if e.event == kind]

    @property
    def manifest(self) -> list[dict[str, Any]]:
        (event,) = self.of_type("tool_calls")
        return list(event.data["actions"])


def joined(events: list[Event], kind: str) -> str:
    return "".join(str(e.data["text"]) for e in events if e.event == kind)


def check_sse_response(response: httpx.Response) -> None:
    assert response.status_code == 200, (response.status_code, response.read())
    assert response.headers["content-type"].startswith("text/event-stream"), response.headers


def stream(http: httpx.Client, path: str, body: dict[str, Any]) -> Turn:
    """POST ``body`` to a turn endpoint and read the whole SSE answer."""
    with http.stream("POST", path, json=body) as response:
        check_sse_response(response)
        events = list(stream_events(response))
    turn = Turn(response.status_code, response.headers, events)
    check_turn(turn.events)
    return turn


@contextmanager
def open_stream(
    http: httpx.Client, method: str, path: str, **kwargs: Any
) -> Iterator[tuple[httpx.Response, Iterator[Event]]]:
    """A stream to read event by event; leaving the block closes the connection."""
    with http.stream(method, path, **kwargs) as response:
        check_sse_response(response)
        yield response, stream_events(response)


def read_events(http: httpx.Client, path: str, **kwargs: Any) -> list[Event]:
    """GET an SSE endpoint (``/runs/{id}/events``) to its end."""
    with open_stream(http, "GET", path, **kwargs) as (_, events):
        seen = list(events)
    check_ids(seen)
    for event in seen:
        assert event.data.get("type") == event.event, event
        assert_no_leak(str(event.data))
    return seen


def check_ids(events: list[Event]) -> None:
    ids = [e.id for e in events]
    assert all(isinstance(i, int) for i in ids), ids
    assert all(a < b for a, b in itertools.pairwise(ids)), f"ids not increasing: {ids}"


def check_turn(events: list[Event]) -> None:
    """The shape every turn stream has (docs/api.md, Streams)."""
    assert events, "the stream carried no events"
    check_ids(events)
    for event in events:
        assert event.data.get("type") == event.event, event
        assert_no_leak(str(event.data))
    types = [e.event for e in events]
    assert types.count("done") == 1, types
    assert types[-1] == "done", types
    assert types[-2] == "run.status", types
    run_ids = {e.data.get("run_id") for e in events}
    assert len(run_ids) == 1, run_ids
    assert events[0].event == "run.status" and events[0].data["status"] == "in_progress", events[0]
    assert events[-1].data["status"] == events[-2].data["status"], events[-2:]


def stream_process(http: httpx.Client, **body: Any) -> Turn:
    return stream(http, "/process", body)


def stream_completion(http: httpx.Client, run_id: str, **body: Any) -> Turn:
    return stream(http, "/completions", {"run_id": run_id, **body})


def submit_outputs(http: httpx.Client, run_id: str, outputs: dict[str, str]) -> dict[str, Any]:
    tool_outputs = [{"tool_call_id": k, "output": v} for k, v in outputs.items()]
    answer = http.post(f"/runs/{run_id}/submit_tool_outputs", json={"tool_outputs": tool_outputs})
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


# ------------------------------------------------------------------------ the upstream


def upstream_requests(upstream: Any, word: str) -> list[dict[str, Any]]:
    """The chat requests the fake upstream got whose messages mention ``word``."""
    found = []
    for body in upstream.requests:
        text = " ".join(str(m.get("content") or "") for m in body.get("messages") or ())
        if word in text:
            found.append(body)
    return found


@dataclass
class Live:
    """A turn that is streaming right now (see ``live_turn``)."""

    run_id: str
    thread_id: str
    response: httpx.Response
    events: Iterator[Event]
    seen: list[Event]

    def read_until(self, kind: str, count: int = 1) -> list[Event]:
        """Read the stream until ``count`` events of type ``kind`` arrived."""
        while sum(1 for e in self.seen if e.event == kind) < count:
            self.seen.append(next(self.events))
        return self.seen

    def rest(self) -> list[Event]:
        """Read the stream to its end; answer every event it carried."""
        self.seen.extend(self.events)
        return self.seen


@contextmanager
def live_turn(
    http: httpx.Client,
    assistant_id: str,
    content: str = "go",
    thread_id: str | None = None,
    chunks: int = 1,
) -> Iterator[Live]:
    """Start a flow B turn and read it until ``chunks`` content deltas arrived. With a
    ``stall`` model the run then stays ``in_progress``; leaving the block cancels the run
    when it is still running (with its own connection) and reads the stream to its end."""
    body: dict[str, Any] = {"assistant_id": assistant_id, "content": content}
    if thread_id:
        body["thread_id"] = thread_id
    with http.stream("POST", "/process", json=body) as response:
        check_sse_response(response)
        events = stream_events(response)
        first = next(events)
        assert first.event == "run.status" and first.data["status"] == "in_progress", first
        run_id = str(first.data["run_id"])
        live = Live(run_id, get_run(http, run_id)["thread_id"], response, events, [first])
        live.read_until("content.delta", chunks)
        try:
            yield live
        finally:
            if get_run(http, run_id)["status"] == "in_progress":
                http.post(f"/runs/{run_id}/cancel")
            if not response.is_closed:
                live.rest()


def _chunk(delta: dict[str, Any], finish: str | None = None) -> str:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    body = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": [choice]}
    return f"data: {json.dumps(body)}\n\n"


def _call(index: int, call_id: str, name: str, arguments: str) -> str:
    first = {"index": index, "id": call_id, "type": "function", "function": {"name": name}}
    rest = {"index": index, "function": {"arguments": arguments}}
    return _chunk({"tool_calls": [first]}) + _chunk({"tool_calls": [rest]})


def replayed_tool_calls(path: Path, *calls: tuple[str, str, str]) -> str:
    """An SSE file (Chat Completions wire format) answering with these ``(id, name,
    arguments)`` calls, for the fake upstream to replay; returns the model to use."""
    body = _chunk({"role": "assistant", "content": ""})
    body += "".join(_call(i, *call) for i, call in enumerate(calls))
    body += _chunk({}, "tool_calls") + "data: [DONE]\n\n"
    path.write_text(body)
    return f"fake/replay:{path}"
