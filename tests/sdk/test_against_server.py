"""Both seed flows through the SDK against a real ``parley serve`` on loopback: with the demo
model, and with the OpenAI-compatible adapter against the fake upstream."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from parley import (
    AsyncClient,
    Client,
    Conflict,
    InvalidRequest,
    NotFound,
    RunFailed,
    RunStatus,
    ValidationFailed,
)
from parley.testing.fake_upstream import expected_text, tool_arguments, tool_results_text

WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}
PNG = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAE"
    "hQGAhKmMIQAAAABJRU5ErkJggg=="
)
TIME = {
    "name": "get_time",
    "description": "Time in a zone",
    "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}},
}


@pytest.fixture
def client(server: Any, user_key: str) -> Any:
    with Client(base_url=server.base_url, api_key=user_key) as c:
        yield c


def _stream_text(events: Any) -> tuple[str, list[Any]]:
    seen = list(events)
    return "".join(e.text for e in seen if e.type == "content.delta"), seen


@pytest.mark.parametrize(
    ("model", "content", "calls"),
    [
        ("demo/x", "get_weather Paris", [("get_weather", {"city": "Paris"})]),
        ("fake/tools:1", "weather please", [("get_weather", tool_arguments(None, 0))]),
    ],
)
def test_flow_a_with_the_seed_names(client: Client, model: str, content: str, calls: Any) -> None:
    assistant = client.assistants.create(name="A", model=model, tools=[WEATHER])
    thread = client.threads.create()
    message = client.messages.create_message(thread_id=thread.id, content=content, role="user")
    run = client.runs.create_run(assistant_id=assistant.id, thread_id=thread.id)
    assert run.status == "queued"

    sync_stream = client.synchronous_inference_stream
    sync_stream.setup(
        thread_id=thread.id, assistant_id=assistant.id, message_id=message.id, run_id=run.id
    )
    _, events = _stream_text(sync_stream.stream_chunks())
    sync_stream.close()
    assert [e.type for e in events][-1] == "done"
    assert events[-1].status == "action_required"
    waiting = client.runs.retrieve(run.id)  # the wire says requires_action
    assert waiting.status == "action_required" and waiting.status is RunStatus.ACTION_REQUIRED
    assert waiting.required_action is not None
    [action] = waiting.required_action.actions
    [call] = waiting.required_action.submit_tool_outputs.tool_calls
    assert action.name == call.function.name == "get_weather"
    assert call.id == action.tool_call_id
    assert json.loads(call.function.arguments) == action.arguments

    seen: list[tuple[str, dict[str, Any]]] = []

    def tool_executor(name: str, arguments: dict[str, Any]) -> str:
        seen.append((name, arguments))
        return "sunny, 21C"

    handled = client.runs.poll_and_execute_action(
        run_id=run.id,
        thread_id=thread.id,
        assistant_id=assistant.id,
        tool_executor=tool_executor,
        timeout=20.0,
        interval=0.1,
    )
    assert handled is True
    if model.startswith("demo"):
        assert seen == calls
    else:
        assert [name for name, _ in seen] == ["get_weather"]
    assert client.runs.retrieve(run.id).status == "queued"

    final_stream = client.synchronous_inference_stream
    final_stream.setup(
        thread_id=thread.id, assistant_id=assistant.id, message_id=message.id, run_id=run.id
    )
    text, events = _stream_text(final_stream.stream_chunks())
    final_stream.close()
    assert events[-1].status == "completed"
    if model.startswith("demo"):
        assert text == 'Demo model: the tool get_weather returned "sunny, 21C".'
    else:
        assert text == tool_results_text([("get_weather", "sunny, 21C")])

    history = client.messages.list(thread_id=thread.id).data  # oldest first, every message
    assert [m.role for m in history] == ["user", "assistant", "tool", "assistant"]
    assert history[0].text == content and history[2].text == "sunny, 21C"
    assert [c.name for c in history[1].tool_calls] == ["get_weather"]
    assert history[3].text == text and history[3].status == "completed"
    assert history[3].assistant_id == assistant.id and history[3].run_id == run.id
    # As the Assistants API lists them: newest first, no tool calls and results.
    listed = client.messages.list(thread_id=thread.id, order="desc", all_messages=False).data
    assert [m.id for m in listed] == [history[3].id, history[0].id]


def test_threads_and_messages_in_the_assistants_shapes(client: Client) -> None:
    assistant = client.assistants.create(model="demo/x", description="No name needed.")
    assert (assistant.name, assistant.description) == (None, "No name needed.")
    assert assistant.response_format == "auto" and assistant.tool_resources == {}

    thread = client.threads.create(
        messages=[{"content": "first"}, {"content": "look", "images": [PNG]}],
        metadata={"topic": "a"},
    )
    assert thread.metadata == {"topic": "a"} and thread.tool_resources == {}
    assert client.threads.update(thread.id, metadata={"topic": "b"}).metadata == {"topic": "b"}

    first, second = client.messages.list(thread_id=thread.id).data
    assert (first.text, first.images) == ("first", [])
    assert second.text == "look" and [i.url for i in second.images] == [PNG]
    assert [p.type for p in second.content] == ["text", "image_url"]

    only_image = client.messages.create_message(
        thread_id=thread.id,
        content=[{"type": "image_url", "image_url": {"url": PNG}}],
        metadata={"k": "v"},
    )
    assert only_image.text == "" and [p.type for p in only_image.content] == ["image_url"]
    assert client.messages.retrieve(only_image.id, thread_id=thread.id).metadata == {"k": "v"}
    updated = client.messages.update(only_image.id, thread_id=thread.id, metadata={"k": "w"})
    assert updated.metadata == {"k": "w"}
    assert client.messages.delete(first.id, thread_id=thread.id).deleted is True
    left = client.messages.list(thread_id=thread.id).data
    assert [m.id for m in left] == [second.id, only_image.id]


@pytest.mark.parametrize("model", ["demo/x", "fake/tools:2"])
def test_flow_b_with_two_parallel_tool_calls(client: Client, upstream: Any, model: str) -> None:
    assistant = client.assistants.create(name="B", model=model, tools=[WEATHER, TIME])
    with client.process(
        assistant_id=assistant.id, content="get_weather Oslo get_time CET"
    ) as stream:
        events = list(stream)
    manifest = next(e for e in events if e.type == "tool_calls")
    run_id = events[-1].run_id
    assert events[-1].type == "done" and events[-1].status == "action_required"
    assert [a.name for a in manifest.actions] == ["get_weather", "get_time"]
    assert len({a.tool_call_id for a in manifest.actions}) == 2
    if model.startswith("demo"):
        assert [a.arguments for a in manifest.actions] == [{"city": "Oslo"}, {"zone": "CET"}]

    outputs = {"get_weather": "rain", "get_time": "12:00"}
    first, second = manifest.actions
    client.submit_tool_output(action_id=first.action_id, output=outputs[first.name])
    assert client.runs.retrieve(run_id).status == "action_required"  # one still pending
    client.submit_tool_output(
        run_id=run_id, tool_call_id=second.tool_call_id, output=outputs[second.name]
    )
    assert client.runs.retrieve(run_id).status == "queued"

    upstream.reset()
    with client.process(run_id=run_id) as stream:
        text, events = _stream_text(stream)
    assert events[-1].status == "completed"
    if model.startswith("demo"):
        assert (
            text
            == 'Demo model: the tool get_weather returned "rain". The tool get_time returned "12:00".'
            or ("rain" in text and "12:00" in text)
        )
    else:
        assert text == tool_results_text([("get_weather", "rain"), ("get_time", "12:00")])
        # Turn 2 was rebuilt from the database: user, the assistant's two calls, two results.
        sent = upstream.requests[-1]["messages"]
        assert [m["role"] for m in sent] == ["user", "assistant", "tool", "tool"]
        assert [c["id"] for c in sent[1]["tool_calls"]] == [
            a.tool_call_id for a in manifest.actions
        ]


def test_respond_runs_the_whole_tool_loop(client: Client) -> None:
    assistant = client.assistants.create(name="R", model="fake/tools:2", tools=[WEATHER, TIME])
    calls: list[str] = []

    def weather(**kwargs: Any) -> str:
        calls.append("weather")
        return "warm"

    def clock(**kwargs: Any) -> dict[str, str]:
        calls.append("clock")
        return {"time": "noon"}

    result = client.respond(
        assistant_id=assistant.id, content="go", tools={"get_weather": weather, "get_time": clock}
    )
    assert result.status == "completed"
    assert sorted(calls) == ["clock", "weather"]
    assert result.text == tool_results_text(
        [("get_weather", "warm"), ("get_time", '{"time": "noon"}')]
    )


@pytest.mark.parametrize(
    ("model", "code"),
    [("fake/error:401", "upstream_auth"), ("dead/any", "upstream_unreachable")],
)
def test_a_failed_run_raises_with_the_providers_error(
    server: Any, user_key: str, model: str, code: str
) -> None:
    """A provider refusing the key, or not there at all: ``respond()`` raises, from both
    clients, with the run's error; a stream's final result too."""
    with Client(base_url=server.base_url, api_key=user_key) as client:
        bot = client.assistants.create(name="F", model=model)
        with pytest.raises(RunFailed) as raised:
            client.respond(assistant_id=bot.id, content="hi")
        with (
            client.process(assistant_id=bot.id, content="hi") as stream,
            pytest.raises(RunFailed) as streamed,
        ):
            stream.final_result()
    failure = raised.value
    assert failure.code == streamed.value.code == code
    assert failure.result.status == "failed" and failure.result.error is not None
    assert failure.message == failure.result.error.message and failure.message
    assert str(failure) == f"run {failure.run_id} failed: {code}: {failure.message}"

    async def respond_async() -> RunFailed:
        async with AsyncClient(base_url=server.base_url, api_key=user_key) as aclient:
            with pytest.raises(RunFailed) as araised:
                await aclient.respond(assistant_id=bot.id, content="hi")
        return araised.value

    again = asyncio.run(respond_async())
    assert (again.code, again.message) == (code, failure.message)


async def test_async_client_streams_the_same_turn(server: Any, user_key: str) -> None:
    async with AsyncClient(base_url=server.base_url, api_key=user_key) as client:
        assistant = await client.assistants.create(name="T", model="fake/text:22")
        stream = await client.process(assistant_id=assistant.id, content="hi")
        texts = [e.text async for e in stream if e.type == "content.delta"]
        assert "".join(texts) == expected_text(22)
        result = await client.process(assistant_id=assistant.id, content="again", stream=False)
        assert result.text == expected_text(22)
        assert result.status == "completed"


def test_errors_arrive_typed(client: Client) -> None:
    with pytest.raises(NotFound):
        client.runs.retrieve("run_missing")
    assistant = client.assistants.create(name="E", model="demo/x", tools=[WEATHER])
    result = client.process(assistant_id=assistant.id, content="get_weather Rome", stream=False)
    with pytest.raises(Conflict) as busy:
        client.process(
            assistant_id=assistant.id, content="again", thread_id=result.thread_id, stream=False
        )
    assert busy.value.code == "thread_busy"


def test_errors_keep_their_classes_on_the_assistants_paths(client: Client) -> None:
    """``/v1/assistants`` and ``/v1/threads`` answer errors in OpenAI's shape (a failed
    validation is a 400 there, a 422 on Parley's own paths): the SDK raises the same
    classes on both."""
    with pytest.raises(ValidationFailed) as invalid:
        client.assistants.create(name="E", model="demo/x", temperature=5)
    assert (invalid.value.status_code, invalid.value.param) == (400, "temperature")
    with pytest.raises(ValidationFailed) as native:  # POST /v1/messages: Parley's own
        client.messages.create_message(thread_id="thread_x", content="hi", role="tool")
    assert native.value.status_code == 422 and native.value.details
    with pytest.raises(InvalidRequest) as refused:
        client.assistants.create(name="E", model="demo/x", response_format="yaml")
    assert type(refused.value) is InvalidRequest
    assert (refused.value.status_code, refused.value.param) == (400, "response_format")
    with pytest.raises(NotFound) as missing:
        client.threads.retrieve("thread_" + "0" * 24)
    assert missing.value.code == "thread_not_found"
    assistant = client.assistants.create(name="E", model="demo/x", tools=[WEATHER])
    result = client.process(assistant_id=assistant.id, content="get_weather Rome", stream=False)
    [question, *_] = client.messages.list(thread_id=result.thread_id, order="asc").data
    with pytest.raises(Conflict) as busy:  # the run waits for its tool: 409 in OpenAI's shape
        client.messages.delete(question.id, thread_id=result.thread_id)
    assert busy.value.code == "thread_busy"


async def test_models_list_answers_the_servers_catalog(
    client: Client, server: Any, user_key: str
) -> None:
    catalog = await asyncio.to_thread(client.models.list)  # not blocking the event loop
    by_name = {p["name"]: p for p in catalog["providers"]}
    assert by_name["demo"]["ready"] is True and by_name["fake"]["kind"] == "openai-chat"
    async with AsyncClient(base_url=server.base_url, api_key=user_key) as aclient:
        assert await aclient.models.list() == catalog


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_messages_pages_keep_the_order_and_the_tool_messages(client: Client, order: str) -> None:
    assistant = client.assistants.create(model="demo/x", tools=[WEATHER])
    result = client.respond(
        assistant_id=assistant.id,
        content="get_weather Oslo",
        tools={"get_weather": lambda city: f"snow in {city}"},
    )
    assert result.thread_id is not None
    client.messages.create_message(thread_id=result.thread_id, content="thanks")
    every = client.messages.list(thread_id=result.thread_id, order=order).data
    roles = ["user", "assistant", "tool", "assistant", "user"]
    assert [m.role for m in every] == (roles if order == "asc" else roles[::-1])

    first = client.messages.list(thread_id=result.thread_id, limit=2, order=order)
    assert first.has_more and len(first.data) == 2
    assert [m.id for m in first.iter_all()] == [m.id for m in every]
    # before: the messages ahead of one, in the same order
    ahead = client.messages.list(thread_id=result.thread_id, before=every[3].id, order=order)
    assert [m.id for m in ahead.data] == [m.id for m in every[:3]]


async def test_a_client_without_a_key_is_told_to_set_parley_api_key(
    server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from parley import AuthenticationFailed

    monkeypatch.delenv("PARLEY_API_KEY", raising=False)
    with Client(base_url=server.base_url) as sync, pytest.raises(AuthenticationFailed) as caught:
        sync.assistants.list()
    assert "PARLEY_API_KEY" in str(caught.value) and "parley users create" in str(caught.value)
    assert caught.value.code == "missing_api_key" and caught.value.status_code == 401
    async with AsyncClient(base_url=server.base_url) as client:
        with pytest.raises(AuthenticationFailed, match="PARLEY_API_KEY"):
            await client.threads.create()
    # A key that is wrong is a different mistake, and keeps the server's words.
    with (
        Client(base_url=server.base_url, api_key="pk_wrong") as wrong,
        pytest.raises(AuthenticationFailed) as caught,
    ):
        wrong.assistants.list()
    assert "PARLEY_API_KEY" not in str(caught.value)
