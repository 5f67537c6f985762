"""Every resource method sends the documented request and parses the documented answer.

Each case runs through ``Client`` and ``AsyncClient`` (the ``client`` fixture).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from parley.sdk import (
    Action,
    ApiKey,
    ApiKeyCreated,
    Assistant,
    Deleted,
    Image,
    Message,
    Page,
    Run,
    Thread,
    TurnResult,
    User,
    UserCreated,
)
from parley.types import RunStatus
from tests.sdk.fake import (
    API_KEY,
    FakeServer,
    action_body,
    call,
    message_body,
    ok,
    page,
    required_action,
    run_body,
)

ASSISTANT = {
    "id": "asst_1",
    "object": "assistant",
    "created_at": 1700000000,
    "name": "Helper",
    "model": "demo/echo",
    "instructions": "Be brief.",
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "get_time",
                "description": "Now.",
                "parameters": {"type": "object"},
            },
        }
    ],
    "tool_resources": {},
    "metadata": {"team": "a"},
    "temperature": 0.2,
    "top_p": None,
    "response_format": "auto",
    "reasoning_effort": None,
    "description": None,
    "parameters": {"temperature": 0.2},
    "future_field": "kept",
}
THREAD = {
    "id": "thread_1",
    "object": "thread",
    "created_at": 1700000000,
    "metadata": {},
    "tool_resources": {},
}
MESSAGE = message_body("hello")
USER = {"id": "user_1", "object": "user", "name": "ada", "is_admin": False, "created_at": 1}
KEY_CREATED = {
    "id": "key_1",
    "object": "api_key",
    "user_id": "user_1",
    "prefix": "pk_ab",
    "created_at": 1,
    "key": "pk_abcdef",
}
KEY = {
    **{k: v for k, v in KEY_CREATED.items() if k != "key"},
    "last_used_at": None,
    "revoked": False,
}
TURN = {
    "run_id": "run_1",
    "thread_id": "thread_1",
    "message_id": "msg_2",
    "status": "action_required",
    "text": "",
    "reasoning": None,
    "actions": [
        {"action_id": "act_1", "tool_call_id": "call_1", "name": "get_time", "arguments": {}}
    ],
    "usage": {"input_tokens": 3, "output_tokens": 4, "reasoning_tokens": 2, "cached_tokens": 1},
    "error": None,
}
PNG_URL = "data:image/png;base64,iVBORw0KGgo="
PHOTO_URL = "https://images.example.test/cat.jpg"
CATALOG = {
    "object": "list",
    "data": [{"id": "demo/parley", "object": "model", "provider": "demo"}],
    "providers": [
        {"name": "demo", "kind": "demo", "ready": True, "problem": None, "models_listed": True}
    ],
}
TOOL_FLAT = {"name": "get_time", "description": "Now.", "parameters": {"type": "object"}}
TOOL_OPENAI = {"type": "function", "function": TOOL_FLAT}


@dataclass
class Case:
    invoke: Callable[[Any], Any]
    method: str
    path: str
    answer: Any
    expect: type[Any] | Callable[[Any], bool]
    body: Any = None
    params: dict[str, str] = field(default_factory=dict)
    status: int = 200


CASES: dict[str, Case] = {
    "users.me": Case(lambda c: c.users.me(), "GET", "/v1/me", USER, User),
    "users.create": Case(
        lambda c: c.users.create(name="ada", is_admin=True),
        "POST",
        "/v1/users",
        {"user": USER, "api_key": KEY_CREATED},
        UserCreated,
        body={"name": "ada", "is_admin": True},
        status=201,
    ),
    "api_keys.create": Case(
        lambda c: c.api_keys.create(user_id="user_1"),
        "POST",
        "/v1/api_keys",
        KEY_CREATED,
        lambda r: isinstance(r, ApiKeyCreated) and r.key == "pk_abcdef",
        body={"user_id": "user_1"},
        status=201,
    ),
    "api_keys.create own": Case(
        lambda c: c.api_keys.create(), "POST", "/v1/api_keys", KEY_CREATED, ApiKeyCreated, body={}
    ),
    "api_keys.list": Case(
        lambda c: c.api_keys.list(),
        "GET",
        "/v1/api_keys",
        page([KEY]),
        lambda r: [type(k) for k in r] == [ApiKey],
    ),
    "api_keys.revoke": Case(
        lambda c: c.api_keys.revoke("key_1"),
        "DELETE",
        "/v1/api_keys/key_1",
        {**KEY, "revoked": True},
        lambda r: isinstance(r, ApiKey) and r.revoked,
    ),
    "assistants.create": Case(
        lambda c: c.assistants.create(
            name="Helper",
            model="demo/echo",
            instructions="Be brief.",
            tools=[TOOL_FLAT],
            parameters={"temperature": 0.2},
            metadata={"team": "a"},
        ),
        "POST",
        "/v1/assistants",
        ASSISTANT,
        lambda r: isinstance(r, Assistant) and r.tools[0].function.name == "get_time",
        body={
            "name": "Helper",
            "model": "demo/echo",
            "instructions": "Be brief.",
            "tools": [TOOL_OPENAI],
            "parameters": {"temperature": 0.2},
            "metadata": {"team": "a"},
        },
    ),
    "assistants.create minimal": Case(
        lambda c: c.assistants.create(name="Helper", model="demo/echo", tools=[TOOL_OPENAI]),
        "POST",
        "/v1/assistants",
        ASSISTANT,
        Assistant,
        body={"name": "Helper", "model": "demo/echo", "tools": [TOOL_OPENAI]},
    ),
    "assistants.create no name, OpenAI's options": Case(
        lambda c: c.assistants.create(
            model="demo/echo",
            description="Tells the time.",
            temperature=0.5,
            top_p=0.9,
            response_format={"type": "json_object"},
            reasoning_effort="low",
        ),
        "POST",
        "/v1/assistants",
        {
            **ASSISTANT,
            "name": None,
            "description": "Tells the time.",
            "temperature": 0.5,
            "top_p": 0.9,
            "response_format": {"type": "json_object"},
            "reasoning_effort": "low",
        },
        lambda r: (
            r.name is None
            and (r.description, r.temperature, r.top_p, r.reasoning_effort)
            == ("Tells the time.", 0.5, 0.9, "low")
            and r.response_format == {"type": "json_object"}
        ),
        body={
            "model": "demo/echo",
            "description": "Tells the time.",
            "temperature": 0.5,
            "top_p": 0.9,
            "response_format": {"type": "json_object"},
            "reasoning_effort": "low",
        },
    ),
    "assistants.retrieve": Case(
        lambda c: c.assistants.retrieve("asst_1"),
        "GET",
        "/v1/assistants/asst_1",
        ASSISTANT,
        lambda r: (
            isinstance(r, Assistant)
            and r.model_extra == {"future_field": "kept"}
            and (r.name, r.response_format, r.tool_resources) == ("Helper", "auto", {})
        ),
    ),
    "assistants.update": Case(
        lambda c: c.assistants.update("asst_1", instructions=None, tools=[TOOL_FLAT]),
        "POST",
        "/v1/assistants/asst_1",
        ASSISTANT,
        Assistant,
        body={"instructions": None, "tools": [TOOL_OPENAI]},
    ),
    "assistants.update options": Case(
        lambda c: c.assistants.update("asst_1", temperature=0.1, description="d"),
        "POST",
        "/v1/assistants/asst_1",
        ASSISTANT,
        Assistant,
        body={"temperature": 0.1, "description": "d"},
    ),
    "assistants.list": Case(
        lambda c: c.assistants.list(limit=2, after="asst_0", order="asc"),
        "GET",
        "/v1/assistants",
        page([ASSISTANT]),
        lambda r: isinstance(r, Page) and isinstance(r.data[0], Assistant),
        params={"limit": "2", "after": "asst_0", "order": "asc"},
    ),
    "assistants.delete": Case(
        lambda c: c.assistants.delete("asst_1"),
        "DELETE",
        "/v1/assistants/asst_1",
        {"id": "asst_1", "object": "assistant.deleted", "deleted": True},
        lambda r: isinstance(r, Deleted) and r.deleted,
    ),
    "threads.create": Case(
        lambda c: c.threads.create(metadata={"k": "v"}),
        "POST",
        "/v1/threads",
        THREAD,
        Thread,
        body={"metadata": {"k": "v"}},
    ),
    "threads.create bare": Case(
        lambda c: c.threads.create(), "POST", "/v1/threads", THREAD, Thread, body={}
    ),
    "threads.create messages": Case(
        lambda c: c.threads.create(
            messages=[{"content": "hi"}, {"content": "look", "images": [PNG_URL]}]
        ),
        "POST",
        "/v1/threads",
        THREAD,
        lambda r: isinstance(r, Thread) and r.tool_resources == {},
        body={
            "messages": [
                {"content": "hi", "role": "user"},
                {"content": "look", "role": "user", "images": [{"url": PNG_URL}]},
            ]
        },
    ),
    "threads.update": Case(
        lambda c: c.threads.update("thread_1", metadata={"title": "x"}),
        "POST",
        "/v1/threads/thread_1",
        {**THREAD, "metadata": {"title": "x"}},
        lambda r: r.metadata == {"title": "x"},
        body={"metadata": {"title": "x"}},
    ),
    "threads.retrieve": Case(
        lambda c: c.threads.retrieve("thread_1"), "GET", "/v1/threads/thread_1", THREAD, Thread
    ),
    "threads.list": Case(
        lambda c: c.threads.list(),
        "GET",
        "/v1/threads",
        page([THREAD]),
        lambda r: r.data[0].id == "thread_1",
    ),
    "threads.delete": Case(
        lambda c: c.threads.delete("thread_1"),
        "DELETE",
        "/v1/threads/thread_1",
        {"id": "thread_1", "object": "thread.deleted", "deleted": True},
        Deleted,
    ),
    "messages.create_message": Case(
        lambda c: c.messages.create_message(thread_id="thread_1", content="hello"),
        "POST",
        "/v1/messages",
        MESSAGE,
        Message,
        body={"thread_id": "thread_1", "content": "hello", "role": "user"},
        status=201,
    ),
    "messages.create_message images": Case(
        lambda c: c.messages.create_message(
            thread_id="thread_1", content="hello", images=[PNG_URL, PHOTO_URL]
        ),
        "POST",
        "/v1/messages",
        message_body("hello", images=(PNG_URL, PHOTO_URL)),
        lambda r: (
            r.text == "hello"
            and r.images == [Image(url=PNG_URL), Image(url=PHOTO_URL)]
            and [p.type for p in r.content] == ["text", "image_url", "image_url"]
        ),
        body={
            "thread_id": "thread_1",
            "content": "hello",
            "role": "user",
            "images": [{"url": PNG_URL}, {"url": PHOTO_URL}],
        },
        status=201,
    ),
    "messages.create_message parts": Case(
        lambda c: c.messages.create_message(
            thread_id="thread_1",
            content=[
                {"type": "text", "text": "hello"},
                {"type": "image_url", "image_url": {"url": PHOTO_URL}},
            ],
            role="assistant",
            metadata={"k": "v"},
        ),
        "POST",
        "/v1/messages",
        message_body("hello", images=(PHOTO_URL,), role="assistant", metadata={"k": "v"}),
        lambda r: r.role == "assistant" and r.metadata == {"k": "v"} and len(r.images) == 1,
        body={
            "thread_id": "thread_1",
            "content": [
                {"type": "text", "text": "hello"},
                {"type": "image_url", "image_url": {"url": PHOTO_URL}},
            ],
            "role": "assistant",
            "metadata": {"k": "v"},
        },
        status=201,
    ),
    "messages.list": Case(
        lambda c: c.messages.list(thread_id="thread_1", limit=5),
        "GET",
        "/v1/threads/thread_1/messages",
        page([MESSAGE]),
        lambda r: isinstance(r.data[0], Message) and r.data[0].text == "hello",
        params={"limit": "5", "order": "asc", "all_messages": "true"},
    ),
    "messages.list as the Assistants API": Case(
        lambda c: c.messages.list(
            thread_id="thread_1",
            order="desc",
            before="msg_9",
            run_id="run_1",
            all_messages=False,
        ),
        "GET",
        "/v1/threads/thread_1/messages",
        page([MESSAGE]),
        lambda r: isinstance(r.data[0], Message),
        params={"order": "desc", "before": "msg_9", "run_id": "run_1"},
    ),
    "messages.retrieve": Case(
        lambda c: c.messages.retrieve("msg_1"), "GET", "/v1/messages/msg_1", MESSAGE, Message
    ),
    "messages.retrieve in a thread": Case(
        lambda c: c.messages.retrieve("msg_1", thread_id="thread_1"),
        "GET",
        "/v1/threads/thread_1/messages/msg_1",
        MESSAGE,
        Message,
    ),
    "messages.update": Case(
        lambda c: c.messages.update("msg_1", thread_id="thread_1", metadata={"k": "v"}),
        "POST",
        "/v1/threads/thread_1/messages/msg_1",
        {**MESSAGE, "metadata": {"k": "v"}},
        lambda r: r.metadata == {"k": "v"},
        body={"metadata": {"k": "v"}},
    ),
    "messages.delete": Case(
        lambda c: c.messages.delete("msg_1", thread_id="thread_1"),
        "DELETE",
        "/v1/threads/thread_1/messages/msg_1",
        {"id": "msg_1", "object": "thread.message.deleted", "deleted": True},
        lambda r: isinstance(r, Deleted) and r.deleted,
    ),
    "runs.create_run": Case(
        lambda c: c.runs.create_run(assistant_id="asst_1", thread_id="thread_1", model="demo/x"),
        "POST",
        "/v1/runs",
        run_body(),
        lambda r: isinstance(r, Run) and r.status is RunStatus.QUEUED,
        body={"thread_id": "thread_1", "assistant_id": "asst_1", "model": "demo/x"},
        status=201,
    ),
    "runs.create_run tools": Case(
        lambda c: c.runs.create_run(
            assistant_id="asst_1", thread_id="thread_1", instructions="x", tools=[TOOL_FLAT]
        ),
        "POST",
        "/v1/runs",
        run_body(),
        Run,
        body={
            "thread_id": "thread_1",
            "assistant_id": "asst_1",
            "instructions": "x",
            "tools": [TOOL_OPENAI],
        },
    ),
    "runs.retrieve": Case(
        lambda c: c.runs.retrieve("run_1"),
        "GET",
        "/v1/runs/run_1",
        run_body("requires_action", required_action=required_action(("get_time", {"tz": "UTC"}))),
        lambda r: (
            r.status is RunStatus.ACTION_REQUIRED
            and r.required_action.actions[0].name == "get_time"
            and r.required_action.actions[0].arguments == {"tz": "UTC"}
            and r.required_action.submit_tool_outputs.tool_calls[0].function.arguments
            == '{"tz": "UTC"}'
            and r.required_action.submit_tool_outputs.tool_calls[0].id
            == r.required_action.actions[0].tool_call_id
        ),
    ),
    "runs.list": Case(
        lambda c: c.runs.list(thread_id="thread_1", order="desc"),
        "GET",
        "/v1/runs",
        page([run_body()]),
        lambda r: isinstance(r.data[0], Run),
        params={"thread_id": "thread_1", "order": "desc"},
    ),
    "runs.cancel": Case(
        lambda c: c.runs.cancel("run_1"),
        "POST",
        "/v1/runs/run_1/cancel",
        run_body("cancelled"),
        lambda r: r.status is RunStatus.CANCELLED,
    ),
    "runs.submit_tool_outputs": Case(
        lambda c: c.runs.submit_tool_outputs(
            "run_1", [{"tool_call_id": "call_1", "output": "12:00"}]
        ),
        "POST",
        "/v1/runs/run_1/submit_tool_outputs",
        run_body("queued"),
        Run,
        body={"tool_outputs": [{"tool_call_id": "call_1", "output": "12:00"}]},
    ),
    "actions.list": Case(
        lambda c: c.actions.list(run_id="run_1"),
        "GET",
        "/v1/actions",
        page([action_body(1, "get_time", {"tz": "UTC"})]),
        lambda r: isinstance(r[0], Action) and r[0].arguments == {"tz": "UTC"},
        params={"run_id": "run_1", "status": "pending"},
    ),
    "actions.list all": Case(
        lambda c: c.actions.list(run_id="run_1", status=None),
        "GET",
        "/v1/actions",
        [action_body(1, "get_time", {})],
        lambda r: len(r) == 1,
        params={"run_id": "run_1"},
    ),
    "models.list": Case(
        lambda c: c.models.list(), "GET", "/v1/models", CATALOG, lambda r: r == CATALOG
    ),
    "completions.create stream=False": Case(
        lambda c: c.completions.create(run_id="run_1", message_id="msg_1", stream=False),
        "POST",
        "/v1/completions",
        TURN,
        lambda r: isinstance(r, TurnResult) and r.actions[0].tool_call_id == "call_1",
        body={"run_id": "run_1", "message_id": "msg_1", "stream": False},
    ),
    "process turn 1 stream=False": Case(
        lambda c: c.process(assistant_id="asst_1", content="hi", stream=False),
        "POST",
        "/v1/process",
        TURN,
        lambda r: (
            (r.usage.output_tokens, r.usage.reasoning_tokens, r.usage.cached_tokens) == (4, 2, 1)
        ),
        body={"assistant_id": "asst_1", "content": "hi", "stream": False},
    ),
    "process turn 1 images stream=False": Case(
        lambda c: c.process(assistant_id="asst_1", content="hi", images=[PNG_URL], stream=False),
        "POST",
        "/v1/process",
        TURN,
        TurnResult,
        body={
            "assistant_id": "asst_1",
            "content": "hi",
            "images": [{"url": PNG_URL}],
            "stream": False,
        },
    ),
    "process later turn stream=False": Case(
        lambda c: c.process(run_id="run_1", stream=False),
        "POST",
        "/v1/process",
        {**TURN, "status": "completed", "actions": [], "text": "done"},
        lambda r: r.text == "done",
        body={"run_id": "run_1", "stream": False},
    ),
    "submit_tool_output by call id": Case(
        lambda c: c.submit_tool_output(run_id="run_1", tool_call_id="call_1", output="12:00"),
        "POST",
        "/v1/submit_tool_output",
        run_body("queued"),
        Run,
        body={"run_id": "run_1", "tool_call_id": "call_1", "output": "12:00"},
    ),
    "submit_tool_output by action id": Case(
        lambda c: c.submit_tool_output(action_id="act_1", output="12:00"),
        "POST",
        "/v1/submit_tool_output",
        run_body("queued"),
        Run,
        body={"action_id": "act_1", "output": "12:00"},
    ),
}


@pytest.mark.parametrize("name", list(CASES))
async def test_request_and_answer(name: str, client: Any, fake_server: FakeServer) -> None:
    case = CASES[name]
    fake_server.on(case.method, case.path, ok(case.answer, case.status))

    result = await call(case.invoke(client))

    [seen] = fake_server.requests
    assert (seen.method, seen.path) == (case.method, case.path)
    assert seen.params == case.params
    assert seen.body == case.body
    assert seen.headers["authorization"] == f"Bearer {API_KEY}"
    if isinstance(case.expect, type):
        assert isinstance(result, case.expect)
    else:
        assert case.expect(result), result


async def test_ids_are_escaped_in_paths(client: Any, fake_server: FakeServer) -> None:
    fake_server.on("GET", "/v1/runs/a%2Fb", ok(run_body()))
    await call(client.runs.retrieve("a/b"))
    assert fake_server.requests[0].path == "/v1/runs/a%2Fb"


@pytest.mark.parametrize("bad_id", ["", None])
async def test_empty_ids_are_refused_before_sending(
    client: Any, fake_server: FakeServer, bad_id: Any
) -> None:
    with pytest.raises(ValueError, match="run_id"):
        await call(client.runs.retrieve(bad_id))
    assert fake_server.requests == []


async def test_images_are_refused_before_sending_when_misgiven(
    client: Any, fake_server: FakeServer
) -> None:
    with pytest.raises(TypeError, match="not one string"):
        await call(client.messages.create_message(thread_id="t", content="c", images=PNG_URL))
    with pytest.raises(ValueError, match="images"):
        await call(client.process(run_id="run_1", images=[PNG_URL]))
    assert fake_server.requests == []
