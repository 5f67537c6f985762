"""``Client`` and ``AsyncClient`` send the same requests and give the same results.

Each scenario is written once and run through both clients against identically scripted
fake servers; the recorded requests (method, path, query, body, headers) and the results
must be equal.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from parley.errors import ParleyError
from parley.sdk import RunFailed
from tests.sdk.fake import (
    RUN,
    FakeServer,
    action_body,
    call,
    close,
    collect,
    done,
    error,
    make_client,
    ok,
    page,
    raises,
    run_body,
    sse,
    status,
    text,
    tool_calls,
    turn,
    usage,
)
from tests.sdk.test_resources import ASSISTANT, MESSAGE, THREAD

Scenario = Callable[[Any], Awaitable[Any]]

TURN_1 = turn(
    1,
    status("in_progress"),
    tool_calls(("get_time", {"tz": "UTC"})),
    usage(3, 4),
    status("action_required"),
    done("action_required"),
)
TURN_2 = turn(
    6,
    status("in_progress"),
    text("It is "),
    text("noon."),
    usage(8, 2),
    status("completed"),
    done("completed"),
)


def dump(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list | tuple):
        return [dump(item) for item in value]
    if isinstance(value, dict):
        return {key: dump(item) for key, item in value.items()}
    return value


def script_flow_a(fake_server: FakeServer) -> None:
    fake_server.on("POST", "/v1/assistants", ok(ASSISTANT))
    fake_server.on("POST", "/v1/threads", ok(THREAD))
    fake_server.on("POST", "/v1/messages", ok(MESSAGE, 201))
    fake_server.on("POST", "/v1/runs", ok(run_body(), 201))
    fake_server.on("POST", "/v1/completions", sse(TURN_1), sse(TURN_2))
    fake_server.on("GET", f"/v1/runs/{RUN}", ok(run_body("requires_action")))
    fake_server.on("GET", "/v1/actions", ok(page([action_body(1, "get_time", {"tz": "UTC"})])))
    fake_server.on("POST", f"/v1/runs/{RUN}/submit_tool_outputs", ok(run_body("queued")))
    fake_server.on("GET", "/v1/threads/thread_1/messages", ok(page([MESSAGE])))


async def flow_a(client: Any) -> Any:
    """The seed's flow A, with the seed's names."""
    assistant = await call(
        client.assistants.create(
            name="Helper", model="demo/echo", tools=[{"name": "get_time", "parameters": {}}]
        )
    )
    thread = await call(client.threads.create())
    message = await call(
        client.messages.create_message(thread_id=thread.id, content="What time is it?")
    )
    run = await call(client.runs.create_run(assistant_id=assistant.id, thread_id=thread.id))
    first = client.synchronous_inference_stream
    first.setup(
        thread_id=thread.id, assistant_id=assistant.id, message_id=message.id, run_id=run.id
    )
    chunks_1 = await collect(first.stream_chunks())
    await close(first)
    handled = await call(
        client.runs.poll_and_execute_action(
            run_id=run.id,
            thread_id=thread.id,
            assistant_id=assistant.id,
            tool_executor=lambda name, args: f"{name}: 12:00 {args['tz']}",
            timeout=1.0,
            interval=0.001,
        )
    )
    final = client.synchronous_inference_stream
    final.setup(
        thread_id=thread.id, assistant_id=assistant.id, message_id=message.id, run_id=run.id
    )
    chunks_2 = await collect(final.stream_chunks())
    await close(final)
    history = await call(client.messages.list(thread_id=thread.id))
    return [assistant, thread, message, run, chunks_1, handled, chunks_2, history.data]


def script_flow_b(fake_server: FakeServer) -> None:
    fake_server.on("POST", "/v1/process", sse(TURN_1), sse(TURN_2))
    fake_server.on("POST", f"/v1/runs/{RUN}/submit_tool_outputs", ok(run_body("queued")))
    fake_server.on("GET", f"/v1/runs/{RUN}", ok(run_body("completed")))


async def flow_b(client: Any) -> Any:
    events: list[Any] = []
    result = await call(
        client.respond(
            assistant_id="asst_1",
            content="What time is it?",
            tools={"get_time": lambda tz: {"time": "12:00", "tz": tz}},
            on_event=events.append,
        )
    )
    return [result, events]


def script_errors(fake_server: FakeServer) -> None:
    fake_server.on("GET", "/v1/me", error(401, "authentication_error", "Bad key."))
    fake_server.on("POST", "/v1/runs", error(409, "conflict", "Busy.", code="thread_busy"))
    fake_server.on("GET", "/v1/threads/thread_x", raises(httpx.ConnectError("refused")))
    fake_server.on(
        "POST",
        "/v1/process",
        error(
            422, "validation_error", "Bad.", details=[{"loc": ["body"], "msg": "m", "type": "t"}]
        ),
    )


async def errors(client: Any) -> Any:
    attempts: list[Callable[[], Any]] = [
        lambda: client.users.me(),
        lambda: client.runs.create_run(assistant_id="a", thread_id="t"),
        lambda: client.threads.retrieve("thread_x"),
        lambda: client.process(assistant_id="a", content="c"),
    ]
    caught = []
    for attempt in attempts:
        with pytest.raises(ParleyError) as info:
            await call(attempt())
        err = info.value
        caught.append(
            (type(err).__name__, err.status_code, err.code, err.message[:20], err.details)
        )
    return caught


FAILED = turn(
    1,
    status("in_progress"),
    text("Half"),
    {"type": "error", "run_id": RUN, "code": "upstream_auth", "message": "Key refused."},
    status("failed"),
    done("failed"),
)


def script_failed_run(fake_server: FakeServer) -> None:
    fake_server.on("POST", "/v1/process", sse(FAILED), sse(FAILED), sse(FAILED))
    fake_server.on("GET", f"/v1/runs/{RUN}", ok(run_body("failed")))


async def failed_run(client: Any) -> Any:
    """A run that ends ``failed``: ``respond()`` raises, or answers when asked not to; a
    stream's final result raises the same way."""
    with pytest.raises(RunFailed) as raised:
        await call(client.respond(assistant_id="asst_1", content="hi"))
    answered = await call(
        client.respond(assistant_id="asst_1", content="hi", raise_on_failure=False)
    )
    stream = await call(client.process(assistant_id="asst_1", content="hi"))
    with pytest.raises(RunFailed) as streamed:
        await call(stream.final_result())
    return [
        (str(raised.value), raised.value.code, raised.value.result),
        answered,
        (str(streamed.value), streamed.value.result),
    ]


def script_resume(fake_server: FakeServer) -> None:
    fake_server.on(
        "POST",
        "/v1/process",
        sse(TURN_2[:2], fail=httpx.RemoteProtocolError("incomplete chunked read")),
    )
    fake_server.on("GET", f"/v1/runs/{RUN}/events", sse(TURN_2[2:], expect_last_event_id="7"))


async def resume(client: Any) -> Any:
    stream = await call(client.process(run_id=RUN))
    return [await collect(stream), stream.last_event_id]


FILE = {"id": "file-1", "object": "file", "bytes": 5, "created_at": 1, "filename": "notes.txt",
        "purpose": "assistants", "status": "processed"}  # fmt: skip
STORE = {"id": "vs_1", "object": "vector_store", "created_at": 1, "name": "notes",
         "usage_bytes": 0, "status": "completed", "last_active_at": 1, "metadata": {},
         "file_counts": {"in_progress": 0, "completed": 0, "failed": 0, "cancelled": 0,
                         "total": 0}}  # fmt: skip


def store_file(status: str, last_error: dict[str, str] | None = None) -> dict[str, Any]:
    return {"id": "file-1", "object": "vector_store.file", "usage_bytes": 0, "created_at": 1,
            "vector_store_id": "vs_1", "status": status, "last_error": last_error}  # fmt: skip


def script_files(fake_server: FakeServer) -> None:
    fake_server.on("POST", "/v1/vector_stores", ok(STORE))
    fake_server.on("POST", "/v1/files", ok(FILE))
    fake_server.on("POST", "/v1/vector_stores/vs_1/files", ok(store_file("in_progress")))
    fake_server.on(
        "GET",
        "/v1/vector_stores/vs_1/files/file-1",
        ok(store_file("in_progress")),
        ok(store_file("failed", {"code": "unsupported_file", "message": "Not text."})),
    )
    fake_server.on("GET", "/v1/files/file-1", ok(FILE))
    fake_server.on("DELETE", "/v1/files/file-1", ok({"id": "file-1", "object": "file",
                                                     "deleted": True}))  # fmt: skip


async def files(client: Any) -> Any:
    """Upload into a new store and wait for the indexing, which fails on the second look."""
    store = await call(client.vector_stores.create(name="notes", metadata={"chat": "1"}))
    indexed = await call(
        client.vector_stores.files.upload_and_poll(
            vector_store_id=store.id,
            file=b"hello",
            filename="notes.txt",
            timeout=5.0,
            interval=0.001,
        )
    )
    again = await call(client.files.retrieve(indexed.id))
    deleted = await call(client.files.delete(indexed.id))
    return [store, indexed, again, deleted]


SCENARIOS: dict[str, tuple[Callable[[FakeServer], None], Scenario]] = {
    "flow A": (script_flow_a, flow_a),
    "flow B respond": (script_flow_b, flow_b),
    "errors": (script_errors, errors),
    "stream resume": (script_resume, resume),
    "files and vector stores": (script_files, files),
    "failed run": (script_failed_run, failed_run),
}


async def run_scenario(kind: str, name: str) -> tuple[Any, list[Any]]:
    script, scenario = SCENARIOS[name]
    fake_server = FakeServer()
    script(fake_server)
    client = make_client(kind, fake_server)
    try:
        result = await scenario(client)
    finally:
        await close(client)
    return dump(result), fake_server.requests


@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_sync_and_async_clients_behave_alike(name: str) -> None:
    sync_result, sync_requests = await run_scenario("sync", name)
    async_result, async_requests = await run_scenario("async", name)

    assert sync_requests, "the scenario sent nothing"
    assert [(r.route, r.params, r.body, r.headers) for r in sync_requests] == [
        (r.route, r.params, r.body, r.headers) for r in async_requests
    ]
    assert sync_result == async_result
    assert CHECKS[name](sync_result), sync_result


CHECKS: dict[str, Callable[[Any], bool]] = {
    "flow A": lambda r: r[5] is True and r[6][-1] == done("completed") and len(r[7]) == 1,
    "flow B respond": lambda r: r[0]["text"] == "It is noon." and r[0]["turns"] == 2,
    "errors": lambda r: (
        [e[0] for e in r]
        == ["AuthenticationFailed", "Conflict", "APIConnectionError", "ValidationFailed"]
    ),
    "stream resume": lambda r: r[1] == "11" and len(r[0]) == len(TURN_2),
    "failed run": lambda r: (
        r[0][0] == f"run {RUN} failed: upstream_auth: Key refused."
        and r[0][2]["text"] == "Half"
        and r[0][2]["thread_id"] == "thread_1"
        and r[1]["status"] == "failed"
        and r[2][1]["error"] == {"code": "upstream_auth", "message": "Key refused."}
    ),
    "files and vector stores": lambda r: (
        r[1]["status"] == "failed"
        and r[1]["last_error"]["code"] == "unsupported_file"
        and r[3]["deleted"] is True
    ),
}


async def test_a_file_goes_as_the_form_openai_takes() -> None:
    _, requests = await run_scenario("sync", "files and vector stores")
    upload = next(r for r in requests if r.route == "POST /v1/files")
    assert upload.body == {
        "purpose": "assistants",
        "file": {"filename": "notes.txt", "content_type": "text/plain", "content": "hello"},
    }
    looks = [r for r in requests if r.route == "GET /v1/vector_stores/vs_1/files/file-1"]
    assert len(looks) == 2  # polled until the indexing ended
