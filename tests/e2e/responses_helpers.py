"""Helpers of the end-to-end tests of the OpenAI faces (Responses, Conversations, and the
Responses WebSocket), over plain httpx and a real WebSocket client against ``parley serve``.

Their streams are the Open Responses ones: ``event: <type>`` frames without ``id``, whose
``data`` is the event (with its ``sequence_number``), and a last ``data: [DONE]``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.e2e.helpers import (
    CLOCK,
    WEATHER,
    assert_error,
    assert_no_leak,
    check_sse_response,
    get_run,
    list_all,
    messages,
    wait_until,
)
from tests.e2e.sse import parse


def flat_tool(tool: dict[str, Any]) -> dict[str, Any]:
    """The Responses API's flat shape of a Chat Completions function tool."""
    return {"type": "function", **tool["function"]}


WEATHER_TOOL = flat_tool(WEATHER)
CLOCK_TOOL = flat_tool(CLOCK)
#: The arguments the fake upstream's ``auto`` model calls ``WEATHER_TOOL`` with.
WEATHER_ARGUMENTS = {"city": "city 0"}

#: The events that end a response's stream.
TERMINAL = frozenset({"response.completed", "response.failed", "response.incomplete"})
#: Statuses of a response that has ended.
ENDED = frozenset({"completed", "failed", "cancelled", "incomplete"})


# -------------------------------------------------------------------------------- errors


def check_error_fields(error: dict[str, Any], param: str | None, code: str | None) -> None:
    """An error object in OpenAI's shape (``message``, ``type``, ``param``, ``code``)."""
    assert set(error) == {"message", "type", "param", "code"}, error
    assert (error["param"], error["code"]) == (param, code), error


def openai_error(
    answer: httpx.Response, status: int, param: str | None, code: str | None
) -> dict[str, Any]:
    """``answer`` is an error in OpenAI's shape with the specification's type for
    ``status``."""
    error = assert_error(answer, status)
    check_error_fields(error, param, code)
    return error


# ----------------------------------------------------------------------------- responses


def _made(answer: httpx.Response, kind: str, prefix: str) -> dict[str, Any]:
    """The ``kind`` object that ``answer`` must have made, with an id starting ``prefix``."""
    assert answer.status_code == 200, answer.text
    made = dict(answer.json())
    assert made["object"] == kind and made["id"].startswith(prefix), made
    return made


def create(http: httpx.Client, **body: Any) -> dict[str, Any]:
    """``POST /responses`` (not streamed) that must succeed."""
    return _made(http.post("/responses", json=body), "response", "run_")


def get(http: httpx.Client, response_id: str) -> dict[str, Any]:
    answer = http.get(f"/responses/{response_id}")
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def wait_response(
    http: httpx.Client, response_id: str, statuses: frozenset[str] = ENDED, timeout: float = 15
) -> dict[str, Any]:
    """Poll ``GET /responses/{id}`` until its status is one of ``statuses``."""

    def check() -> dict[str, Any] | None:
        response = get(http, response_id)
        return response if response["status"] in statuses else None

    return dict(wait_until(check, timeout, f"response {response_id} to be {sorted(statuses)}"))


def output_text(response: dict[str, Any]) -> str:
    """The text of a response's assistant messages."""
    return "".join(
        part["text"]
        for item in response["output"]
        if item["type"] == "message"
        for part in item["content"]
        if part["type"] == "output_text"
    )


def input_items(http: httpx.Client, response_id: str) -> list[dict[str, Any]]:
    """Every input item of a response, oldest first."""
    return list_all(http, f"/responses/{response_id}/input_items", order="asc")


def calls(response: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``function_call`` items of a response's output."""
    return [item for item in response["output"] if item["type"] == "function_call"]


def call_output(call_id: str, output: str) -> dict[str, Any]:
    return {"type": "function_call_output", "call_id": call_id, "output": output}


def weather_result(call_id: str, output: str, **fields: Any) -> dict[str, Any]:
    """The body of a response that sends ``fake/auto`` the output of its ``get_weather``
    call (``fields``: where it goes, ``previous_response_id`` or ``conversation``)."""
    return {
        "model": "fake/auto",
        "input": [call_output(call_id, output)],
        "tools": [WEATHER_TOOL],
        **fields,
    }


def user(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": text}


# ------------------------------------------------------------------------------- streams


def sse_events(body: str) -> list[dict[str, Any]]:
    """The events of a whole Responses SSE body, checked: it ends with ``data: [DONE]``,
    frames carry no ``id``, each ``event`` is its data's ``type``, nothing leaks."""
    assert_no_leak(body)
    head, done, tail = body.rpartition("data: [DONE]\n\n")
    assert done and not tail.strip(), f"the stream does not end with [DONE]: {body[-300:]!r}"
    events = parse(head)
    for event in events:
        assert event.id is None, event
        assert event.event == event.data["type"], event
    return [event.data for event in events]


def read_stream(http: httpx.Client, method: str, path: str, **kwargs: Any) -> list[dict[str, Any]]:
    """A Responses stream read to its end (``POST /responses`` with ``stream``, or
    ``GET /responses/{id}?stream=true``)."""
    with http.stream(method, path, **kwargs) as answer:
        check_sse_response(answer)
        return sse_events(answer.read().decode())


def stream_create(http: httpx.Client, **body: Any) -> list[dict[str, Any]]:
    events = read_stream(http, "POST", "/responses", json={**body, "stream": True})
    check_sequence(events)
    return events


def check_sequence(events: list[dict[str, Any]], first: int = 0) -> None:
    """A whole response's events: numbered from ``first`` without gaps, ending with one
    terminal event."""
    numbers = [e["sequence_number"] for e in events]
    assert numbers == list(range(first, first + len(events))), numbers
    kinds = [e["type"] for e in events]
    assert kinds[-1] in TERMINAL and sum(k in TERMINAL for k in kinds) == 1, kinds
    if first == 0:
        assert kinds[:2] == ["response.created", "response.in_progress"], kinds


def deltas(events: list[dict[str, Any]]) -> str:
    return "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")


def clockless(response: dict[str, Any]) -> dict[str, Any]:
    """A response without its ``completed_at``."""
    return {**response, "completed_at": None}


def without_clock(event: dict[str, Any]) -> dict[str, Any]:
    """An event whose response (if it carries one) is ``clockless``."""
    return {**event, "response": clockless(event["response"])} if "response" in event else event


# ------------------------------------------------------------------------- conversations


def conversation(http: httpx.Client, **body: Any) -> dict[str, Any]:
    return _made(http.post("/conversations", json=body), "conversation", "thread_")


def conversation_items(http: httpx.Client, conversation_id: str) -> list[dict[str, Any]]:
    """Every item of a conversation, oldest first, page by page."""
    return list_all(http, f"/conversations/{conversation_id}/items", order="asc")


def texts(items: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """``(role or type, text)`` of each item: a compact view of a conversation."""
    seen = []
    for item in items:
        if item["type"] == "message":
            seen.append((item["role"], "".join(p.get("text", "") for p in item["content"])))
        elif item["type"] == "function_call_output":
            seen.append(("function_call_output", item["output"]))
        else:
            seen.append((item["type"], item.get("name", "")))
    return seen


# -------------------------------------------------------------------------- what is kept


def thread_ids(http: httpx.Client) -> set[str]:
    """The ids of the user's threads, as the native API lists them."""
    return {t["id"] for t in list_all(http, "/threads")}


def stored(http: httpx.Client) -> tuple[Any, ...]:
    """Everything a user has, as the native API shows it: threads, runs, messages."""
    while True:  # a scratch thread may go while it is read: read again, without it
        threads = list_all(http, "/threads")
        runs = list_all(http, "/runs")
        kept = []
        for t in threads:
            path = f"/threads/{t['id']}/messages"
            answer = http.get(path, params={"limit": 100})
            if answer.status_code == 404:
                break
            page = answer.json()
            kept.append(list_all(http, path) if page["has_more"] else page["data"])
        else:
            return (threads, runs, kept)


@contextmanager
def nothing_stored(http: httpx.Client) -> Iterator[None]:
    """What the block does (refused requests) changes nothing the user has."""
    before = stored(http)
    yield
    assert stored(http) == before


def thread_of(http: httpx.Client, response_id: str) -> str:
    """The thread of a response (a run, in the native API)."""
    return str(get_run(http, response_id)["thread_id"])


def native_messages(http: httpx.Client, thread_id: str) -> list[tuple[str, str]]:
    return [(m["role"], m["content"]) for m in messages(http, thread_id)]


def sent_request(upstream: Any, word: str) -> dict[str, Any]:
    """The one request the fake upstream got whose last message mentions ``word``."""
    found = [
        body
        for body in upstream.requests
        if word in str((body.get("messages") or [{}])[-1].get("content"))
    ]
    assert len(found) == 1, f"{len(found)} upstream requests end with {word!r}"
    return dict(found[0])


def sent(upstream: Any, word: str) -> list[tuple[str, str]]:
    """``(role, content)`` of the messages of ``sent_request(upstream, word)``."""
    body = sent_request(upstream, word)
    return [(m["role"], str(m.get("content") or "")) for m in body["messages"]]


# ----------------------------------------------------------------------------- websocket


class Socket:
    """A Responses WebSocket of one user: send messages, read events."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection

    def send(self, message: dict[str, Any] | str | bytes) -> None:
        """A text message (a dict as its JSON), or a binary one (``bytes``)."""
        self.connection.send(message if isinstance(message, str | bytes) else json.dumps(message))

    def receive(self, timeout: float = 10) -> dict[str, Any]:
        text = self.connection.recv(timeout=timeout)
        assert isinstance(text, str), text
        assert_no_leak(text)
        event = json.loads(text)
        assert isinstance(event, dict), event
        return event

    def turn(self, message: dict[str, Any] | str | bytes) -> list[dict[str, Any]]:
        """Send one message; its events up to a terminal one, or its one ``error``."""
        self.send(message)
        events = [self.receive()]
        while events[-1]["type"] != "error" and events[-1]["type"] not in TERMINAL:
            events.append(self.receive())
        return events

    def create(self, **body: Any) -> dict[str, Any]:
        """A ``response.create`` that must stream a whole response; answers it (the
        terminal event's ``response``)."""
        events = self.turn({"type": "response.create", **body})
        assert events[-1]["type"] != "error", events[-1]
        check_sequence(events)
        return dict(events[-1]["response"])

    def error(self, message: dict[str, Any] | str | bytes) -> dict[str, Any]:
        """A message that must be answered by one ``error`` event; answers it."""
        events = self.turn(message)
        assert [e["type"] for e in events] == ["error"], events
        error = events[0]
        assert set(error) == {"type", "status", "error"}, error
        assert isinstance(error["error"]["message"], str) and error["error"]["message"], error
        return dict(error)

    def closed(self, timeout: float = 5) -> int | None:
        """Wait for the server to close the connection; answers its close code."""
        try:
            extra = self.connection.recv(timeout=timeout)
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None
        raise AssertionError(f"the connection is still open: {extra!r}")


def ws_url(server: Any) -> str:
    return str(server.base_url).replace("http://", "ws://", 1) + "/v1/responses"


@contextmanager
def websocket(
    server: Any, key: str | None, header: str = "Authorization", **more: str
) -> Iterator[Socket]:
    """A WebSocket on ``/v1/responses`` with ``key`` (none: no credentials), and ``more``
    handshake headers (``X_Stainless_Lang="js"`` for ``X-Stainless-Lang``)."""
    headers = {name.replace("_", "-"): value for name, value in more.items()}
    if key is not None:
        headers[header] = f"Bearer {key}" if header == "Authorization" else key
    with connect(ws_url(server), additional_headers=headers, open_timeout=10) as connection:
        yield Socket(connection)
