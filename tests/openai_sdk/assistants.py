"""What the official ``openai`` SDK's Assistants v2 calls (``client.beta``) do against
Parley: assistants, threads, messages with parts, runs polled and streamed with the SDK's
helpers, tool outputs, run steps, cancel and pagination.

Like ``scenarios.py`` (which lists these among its own), each scenario is a plain function
``scenario(client, setup)`` using nothing but the standard library and ``openai``, so the
same functions run with openai 3.x in the test process and 2.x in a subprocess. The SDK
marks the Assistants API deprecated; its warnings are silenced here, as an application
moving to Parley would.
"""

from __future__ import annotations

import base64
import functools
import json
import re
import time
import warnings
from collections.abc import Callable
from typing import Any

import openai

#: A 1x1 PNG, as a data URL.
PIXEL = (
    "data:image/png;base64,"
    + base64.b64encode(
        bytes.fromhex(
            "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
            "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
        )
    ).decode()
)

WEATHER: dict[str, Any] = {
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
OUTPUT = "22 C and sunny"


def _quiet(scenario: Callable[[openai.OpenAI, Any], None]) -> Callable[[openai.OpenAI, Any], None]:
    """The scenario with the SDK's deprecation warnings of the Assistants API silenced."""

    @functools.wraps(scenario)
    def run(client: openai.OpenAI, setup: Any) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            scenario(client, setup)

    return run


def _error(kind: type[openai.APIStatusError], call: Callable[[], Any]) -> Any:
    try:
        call()
    except kind as exc:
        return exc
    raise AssertionError(f"expected {kind.__name__}")


def _text(message: Any) -> str:
    return "".join(p.text.value for p in message.content if p.type == "text")


def _assistant(client: openai.OpenAI, model: str, **fields: Any) -> Any:
    return client.beta.assistants.create(model=model, instructions="Be brief.", **fields)


def _tokens(usage: Any) -> tuple[int, int, int]:
    """A run's or a step's usage: prompt, completion and total tokens."""
    return usage.prompt_tokens, usage.completion_tokens, usage.total_tokens


class Recorder(openai.AssistantEventHandler):
    """An ``AssistantEventHandler`` that records each call of its content handlers, in
    order, as ``(handler, what it was given)``: a tool call's id, type and text (a
    function's ``(name, arguments)``, the code interpreter's ``(input, outputs)``, a file
    search's ``file_search``), a text's value, an image's file id, a message's id and its
    parts' types. OpenAI's quickstart prints from these same handlers."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, Any]] = []

    def on_tool_call_created(self, tool_call: Any) -> None:
        self.calls.append(("tool_call_created", _call(tool_call)))

    def on_tool_call_delta(self, delta: Any, snapshot: Any) -> None:
        self.calls.append(("tool_call_delta", (delta.index, _call(delta))))

    def on_tool_call_done(self, tool_call: Any) -> None:
        self.calls.append(("tool_call_done", _call(tool_call)))

    def on_message_created(self, message: Any) -> None:
        self.calls.append(("message_created", (message.id, [p.type for p in message.content])))

    def on_text_created(self, text: Any) -> None:
        self.calls.append(("text_created", text.value))

    def on_text_delta(self, delta: Any, snapshot: Any) -> None:
        self.calls.append(("text_delta", delta.value))

    def on_text_done(self, text: Any) -> None:
        self.calls.append(("text_done", text.value))

    def on_image_file_done(self, image_file: Any) -> None:
        self.calls.append(("image_file_done", image_file.file_id))

    def on_message_done(self, message: Any) -> None:
        self.calls.append(("message_done", (message.id, [p.type for p in message.content])))

    def named(self, *handlers: str) -> list[Any]:
        """What the handlers of these names were given, in order."""
        return [given for name, given in self.calls if name in handlers]

    def content(self) -> list[str]:
        """The handlers of messages and of their content that fired (all but the tool
        calls'), in order."""
        return [name for name, _ in self.calls if not name.startswith("tool_call")]


def _call(call: Any) -> tuple[Any, ...]:
    """A tool call (or a call's delta) as ``Recorder`` keeps it."""
    if call.type == "function":
        return (call.id, "function", (call.function.name, call.function.arguments))
    if call.type == "code_interpreter":
        code = call.code_interpreter
        outputs = [o.model_dump(exclude_none=True) for o in code.outputs or ()]
        return (call.id, "code_interpreter", (code.input, outputs))
    search = call.file_search  # a dict in a delta, the SDK's object in a snapshot
    return (call.id, call.type, search if isinstance(search, dict) else search.model_dump())


def streamed_message(count: int, *, figure: bool = False, node: bool = False) -> list[str]:
    """The handlers one streamed message with text fires, ``count`` of them in all, in the
    order the SDKs' stream helpers fire them: the message created, its text created, the
    text's deltas, the text done, the message done. A figure before the text (``figure``)
    is done once the text's first delta comes. ``node``: with the names of the Node SDK's
    ``AssistantStream`` events (``messageCreated``, ``textDelta``, ...)."""
    head = ["message_created", "text_created"]
    if figure:
        head += ["text_delta", "image_file_done"]
    tail = ["text_done", "message_done"]
    names = [*head, *["text_delta"] * (count - len(head) - len(tail)), *tail]
    if node:
        names = [re.sub(r"_(\w)", lambda m: m.group(1).upper(), n) for n in names]
    return names


# ------------------------------------------------------------------------- scenarios


@_quiet
def assistants_crud(client: openai.OpenAI, setup: Any) -> None:
    first = client.beta.assistants.create(
        model=setup.text_model,
        name="Weather",
        description="Says the weather.",
        instructions="Be brief.",
        tools=[WEATHER],
        temperature=0.2,
        top_p=0.9,
        metadata={"team": "a"},
        response_format={"type": "json_object"},
    )
    assert first.object == "assistant" and first.id.startswith("asst_")
    assert (first.name, first.description, first.model) == (
        "Weather",
        "Says the weather.",
        setup.text_model,
    )
    assert (first.temperature, first.top_p, first.metadata) == (0.2, 0.9, {"team": "a"})
    assert first.tools[0].type == "function" and first.tools[0].function.name == "get_weather"
    assert first.response_format.type == "json_object"
    second = client.beta.assistants.create(model=setup.text_model)
    assert second.name is None and second.tools == [] and second.response_format == "auto"
    got = client.beta.assistants.retrieve(first.id)
    assert got.id == first.id and got.instructions == "Be brief."
    updated = client.beta.assistants.update(first.id, name="Renamed", temperature=1.0)
    assert (updated.name, updated.temperature, updated.top_p) == ("Renamed", 1.0, 0.9)
    page = client.beta.assistants.list(limit=1)
    assert [a.id for a in page.data] == [second.id] and page.has_more
    following = client.beta.assistants.list(limit=1, after=second.id)
    assert [a.id for a in following.data] == [first.id]
    assert [a.id for a in client.beta.assistants.list(order="asc", limit=100)][-2:] == [
        first.id,
        second.id,
    ]
    exc = _error(
        openai.BadRequestError,
        lambda: client.beta.assistants.create(
            model=setup.text_model,
            tools=[{"type": "web_search"}],  # type: ignore[list-item]
        ),
    )
    assert "web_search" in exc.message, exc.body
    deleted = client.beta.assistants.delete(second.id)
    assert deleted.deleted and deleted.id == second.id
    _error(openai.NotFoundError, lambda: client.beta.assistants.retrieve(second.id))


@_quiet
def threads_and_messages(client: openai.OpenAI, setup: Any) -> None:
    thread = client.beta.threads.create(
        messages=[
            {"role": "user", "content": "First question"},
            {"role": "assistant", "content": "First answer"},
        ],
        metadata={"topic": "demo"},
    )
    assert thread.object == "thread" and thread.metadata == {"topic": "demo"}
    parts = client.beta.threads.messages.create(
        thread_id=thread.id,
        role="user",
        content=[
            {"type": "text", "text": "What is in this picture?"},
            {"type": "image_url", "image_url": {"url": PIXEL}},
        ],
        metadata={"k": "v"},
    )
    assert parts.object == "thread.message" and parts.role == "user"
    assert parts.content[0].type == "text"
    assert parts.content[0].text.value == "What is in this picture?"
    assert parts.content[1].type == "image_url" and parts.content[1].image_url.url == PIXEL
    assert parts.metadata == {"k": "v"} and parts.status == "completed"
    newest_first = client.beta.threads.messages.list(thread_id=thread.id)
    assert [_text(m) for m in newest_first.data] == [
        "What is in this picture?",
        "First answer",
        "First question",
    ]
    asc = client.beta.threads.messages.list(thread_id=thread.id, order="asc", limit=2)
    assert [m.role for m in asc.data] == ["user", "assistant"] and asc.has_more
    rest = client.beta.threads.messages.list(thread_id=thread.id, order="asc", after=asc.last_id)
    assert [m.id for m in rest.data] == [parts.id] and not rest.has_more
    before = client.beta.threads.messages.list(thread_id=thread.id, order="asc", before=parts.id)
    assert [m.id for m in before.data] == [m.id for m in asc.data]
    got = client.beta.threads.messages.retrieve(parts.id, thread_id=thread.id)
    assert got.id == parts.id
    changed = client.beta.threads.messages.update(
        parts.id, thread_id=thread.id, metadata={"k": "w"}
    )
    assert changed.metadata == {"k": "w"}
    assert client.beta.threads.messages.delete(parts.id, thread_id=thread.id).deleted
    assert len(client.beta.threads.messages.list(thread_id=thread.id).data) == 2
    updated = client.beta.threads.update(thread.id, metadata={"topic": "other"})
    assert updated.metadata == {"topic": "other"}
    assert client.beta.threads.retrieve(thread.id).metadata == {"topic": "other"}
    assert client.beta.threads.delete(thread.id).deleted
    _error(openai.NotFoundError, lambda: client.beta.threads.retrieve(thread.id))


@_quiet
def run_polled(client: openai.OpenAI, setup: Any) -> None:
    assistant = _assistant(client, setup.text_model)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Hello"}])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, metadata={"n": "1"}
    )
    assert run.status == "completed", (run.status, run.last_error)
    assert run.object == "thread.run" and run.thread_id == thread.id
    assert run.assistant_id == assistant.id and run.model == setup.text_model
    assert run.instructions == "Be brief." and run.metadata == {"n": "1"}
    assert run.usage is not None and run.usage.completion_tokens > 0
    assert run.usage.total_tokens == run.usage.prompt_tokens + run.usage.completion_tokens
    assert run.completed_at is not None and run.last_error is None
    [answer, question] = client.beta.threads.messages.list(thread_id=thread.id).data
    assert question.role == "user" and _text(question) == "Hello"
    assert answer.role == "assistant" and _text(answer) == setup.text
    assert answer.run_id == run.id and answer.assistant_id == assistant.id
    [step] = client.beta.threads.runs.steps.list(run_id=run.id, thread_id=thread.id).data
    assert step.type == "message_creation" and step.status == "completed"
    assert step.step_details.message_creation.message_id == answer.id
    assert step.usage is not None and _tokens(step.usage) == _tokens(run.usage)
    same = client.beta.threads.runs.steps.retrieve(step.id, thread_id=thread.id, run_id=run.id)
    assert same.id == step.id
    by_run = client.beta.threads.messages.list(thread_id=thread.id, run_id=run.id)
    assert [m.id for m in by_run.data] == [answer.id]
    again = client.beta.threads.runs.retrieve(run.id, thread_id=thread.id)
    assert again.status == "completed" and again.id == run.id


@_quiet
def run_tools_polled(client: openai.OpenAI, setup: Any) -> None:
    assistant = _assistant(client, setup.tool_model, tools=[WEATHER])
    thread = client.beta.threads.create()
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id,
        assistant_id=assistant.id,
        additional_messages=[{"role": "user", "content": "Weather in Paris?"}],
    )
    assert run.status == "requires_action", (run.status, run.last_error)
    assert run.required_action is not None and run.required_action.type == "submit_tool_outputs"
    [call] = run.required_action.submit_tool_outputs.tool_calls
    assert call.type == "function" and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == setup.tool_arguments
    [calls_step] = client.beta.threads.runs.steps.list(run_id=run.id, thread_id=thread.id).data
    assert calls_step.type == "tool_calls" and calls_step.status == "in_progress"
    assert calls_step.usage is None
    first_call = _tokens(run.usage)
    done = client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id,
        thread_id=thread.id,
        tool_outputs=[{"tool_call_id": call.id, "output": OUTPUT}],
    )
    assert done.status == "completed" and done.id == run.id
    [answer, question] = client.beta.threads.messages.list(thread_id=thread.id).data
    assert _text(question) == "Weather in Paris?"
    assert _text(answer) == setup.answer_to("get_weather", OUTPUT)
    steps = client.beta.threads.runs.steps.list(run_id=run.id, thread_id=thread.id, order="asc")
    assert [(s.type, s.status) for s in steps.data] == [
        ("tool_calls", "completed"),
        ("message_creation", "completed"),
    ]
    # Each step has the tokens of its model call; together, the run's.
    calls_tokens, answer_tokens = (_tokens(s.usage) for s in steps.data)
    assert calls_tokens == first_call and answer_tokens[1] > 0
    assert tuple(map(sum, zip(calls_tokens, answer_tokens, strict=True))) == _tokens(done.usage)
    [detail] = steps.data[0].step_details.tool_calls
    assert (detail.id, detail.function.name, detail.function.output) == (
        call.id,
        "get_weather",
        OUTPUT,
    )
    _error(
        openai.APIStatusError,
        lambda: client.beta.threads.runs.submit_tool_outputs(
            run_id=run.id,
            thread_id=thread.id,
            tool_outputs=[{"tool_call_id": call.id, "output": "x"}],
        ),
    )


@_quiet
def run_token_budget(client: openai.OpenAI, setup: Any) -> None:
    """``max_completion_tokens`` counts over the whole run: a budget the first turn used
    up ends the run ``incomplete`` once the tool outputs are in, without another call."""
    assistant = _assistant(client, setup.tool_model, tools=[WEATHER])
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Lima?"}])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, max_completion_tokens=1
    )
    assert run.status == "requires_action", (run.status, run.last_error)
    assert run.max_completion_tokens == 1 and run.usage is not None
    [call] = run.required_action.submit_tool_outputs.tool_calls
    ended = client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id,
        thread_id=thread.id,
        tool_outputs=[{"tool_call_id": call.id, "output": OUTPUT}],
    )
    assert ended.status == "incomplete", (ended.status, ended.last_error)
    assert ended.incomplete_details is not None
    assert ended.incomplete_details.reason == "max_completion_tokens"
    assert _tokens(ended.usage) == _tokens(run.usage)
    [question] = client.beta.threads.messages.list(thread_id=thread.id).data
    assert question.role == "user"


@_quiet
def run_streamed_with_handler(client: openai.OpenAI, setup: Any) -> None:
    """``runs.stream`` with an ``AssistantEventHandler``: the tool call, its output sent
    with ``submit_tool_outputs_stream``, and the answer's text."""
    assistant = _assistant(client, setup.tool_model, tools=[WEATHER])
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Paris?"}])
    seen: list[str] = []
    text: list[str] = []
    calls: list[Any] = []

    class Handler(openai.AssistantEventHandler):
        def on_event(self, event: Any) -> None:
            seen.append(event.event)
            if event.event == "thread.run.requires_action":
                run = event.data
                outputs = [
                    {"tool_call_id": c.id, "output": OUTPUT}
                    for c in run.required_action.submit_tool_outputs.tool_calls
                ]
                with client.beta.threads.runs.submit_tool_outputs_stream(
                    thread_id=run.thread_id,
                    run_id=run.id,
                    tool_outputs=outputs,
                    event_handler=Handler(),
                ) as resumed:
                    resumed.until_done()

        def on_tool_call_created(self, tool_call: Any) -> None:
            calls.append(tool_call)

        def on_text_delta(self, delta: Any, snapshot: Any) -> None:
            text.append(delta.value)

    with client.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=assistant.id, event_handler=Handler()
    ) as stream:
        stream.until_done()
    assert [c.function.name for c in calls] == ["get_weather"]
    assert "".join(text) == setup.answer_to("get_weather", OUTPUT)
    first = seen[: seen.index("thread.run.requires_action") + 1]
    assert first == [
        "thread.run.created",
        "thread.run.queued",
        "thread.run.in_progress",
        "thread.run.step.created",
        "thread.run.step.in_progress",
        *["thread.run.step.delta"] * (len(first) - 6),  # the call, then its arguments
        "thread.run.requires_action",
    ], first
    second = seen[len(first) :]
    assert second[:3] == [
        "thread.run.step.completed",
        "thread.run.queued",
        "thread.run.in_progress",
    ]
    assert second[3:7] == [
        "thread.run.step.created",
        "thread.run.step.in_progress",
        "thread.message.created",
        "thread.message.in_progress",
    ], second
    assert second[-3:] == [
        "thread.message.completed",
        "thread.run.step.completed",
        "thread.run.completed",
    ], second
    [answer, _] = client.beta.threads.messages.list(thread_id=thread.id).data
    assert _text(answer) == "".join(text)


@_quiet
def run_streamed_handlers(client: openai.OpenAI, setup: Any) -> None:
    """Every content handler of an ``AssistantEventHandler`` fires as with OpenAI: a
    function call created with its name, its arguments in pieces (``on_tool_call_delta``),
    done with the whole of them; then the answer after its output, text created, in
    deltas and done, and the message done."""
    assistant = _assistant(client, setup.tool_model, tools=[WEATHER])
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Paris?"}])
    asked = Recorder()
    with client.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=assistant.id, event_handler=asked
    ) as stream:
        stream.until_done()
    run = asked.get_final_run()
    assert run.status == "requires_action" and run.required_action is not None
    [required] = run.required_action.submit_tool_outputs.tool_calls
    arguments = json.dumps(setup.tool_arguments, separators=(",", ":"))
    created, *deltas, done = asked.calls
    assert created == ("tool_call_created", (required.id, "function", ("get_weather", "")))
    assert done == ("tool_call_done", (required.id, "function", ("get_weather", arguments)))
    assert len(deltas) > 1, asked.calls  # the arguments in pieces, as the model wrote them
    for name, (index, (call_id, kind, (call_name, _))) in deltas:
        assert (name, index, call_id, kind, call_name) == (
            "tool_call_delta",
            0,
            None,
            "function",
            None,
        )
    assert "".join(piece for _, (_, (_, _, (_, piece))) in deltas) == arguments

    answered = Recorder()
    with client.beta.threads.runs.submit_tool_outputs_stream(
        thread_id=thread.id,
        run_id=run.id,
        tool_outputs=[{"tool_call_id": required.id, "output": OUTPUT}],
        event_handler=answered,
    ) as stream:
        stream.until_done()
    answer = setup.answer_to("get_weather", OUTPUT)
    names = [name for name, _ in answered.calls]
    assert names == streamed_message(len(names)), names
    [(message_id, parts)] = answered.named("message_created")
    assert parts == [] and answered.named("message_done") == [(message_id, ["text"])]
    assert answer.startswith(answered.named("text_created")[0])
    assert "".join(answered.named("text_delta")) == answer
    assert answered.named("text_done") == [answer]


@_quiet
def run_streamed_text(client: openai.OpenAI, setup: Any) -> None:
    """``create_and_run_stream``: a new thread and run, the text as it is written, and the
    final message and run from the stream helper."""
    assistant = _assistant(client, setup.text_model)
    with client.beta.threads.create_and_run_stream(
        assistant_id=assistant.id,
        thread={"messages": [{"role": "user", "content": "Tell me"}], "metadata": {"a": "b"}},
    ) as stream:
        deltas = list(stream.text_deltas)
        final = stream.get_final_run()
        [message] = stream.get_final_messages()
    assert "".join(deltas) == setup.text and len(deltas) == setup.text_chunks
    assert final.status == "completed" and final.usage is not None
    assert _text(message) == setup.text and message.status == "completed"
    assert client.beta.threads.retrieve(final.thread_id).metadata == {"a": "b"}
    polled = client.beta.threads.create_and_run_poll(
        assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": "Again"}]}
    )
    assert polled.status == "completed" and polled.thread_id != final.thread_id


@_quiet
def run_cancelled(client: openai.OpenAI, setup: Any) -> None:
    assistant = _assistant(client, setup.hang_model)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Wait"}])
    run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
    assert run.status in ("queued", "in_progress")
    busy = _error(
        openai.ConflictError,
        lambda: client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id),
    )
    assert busy.status_code == 409 and busy.code == "thread_busy", busy.body
    cancelled = client.beta.threads.runs.cancel(run.id, thread_id=thread.id)
    assert cancelled.status in ("cancelling", "cancelled")
    deadline = time.monotonic() + 10
    while cancelled.status != "cancelled" and time.monotonic() < deadline:
        time.sleep(0.05)
        cancelled = client.beta.threads.runs.retrieve(run.id, thread_id=thread.id)
    assert cancelled.status == "cancelled" and cancelled.cancelled_at is not None


@_quiet
def runs_listed_and_updated(client: openai.OpenAI, setup: Any) -> None:
    assistant = _assistant(client, setup.text_model)
    thread = client.beta.threads.create()
    made = []
    for word in ("one", "two", "three"):
        client.beta.threads.messages.create(thread_id=thread.id, role="user", content=word)
        made.append(
            client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
        )
    page = client.beta.threads.runs.list(thread_id=thread.id, limit=2)
    assert [r.id for r in page.data] == [made[2].id, made[1].id] and page.has_more
    every = [r.id for r in client.beta.threads.runs.list(thread_id=thread.id, limit=1)]
    assert every == [r.id for r in reversed(made)]
    updated = client.beta.threads.runs.update(made[0].id, thread_id=thread.id, metadata={"x": "y"})
    assert updated.metadata == {"x": "y"} and updated.status == "completed"
    truncated = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id,
        assistant_id=assistant.id,
        truncation_strategy={"type": "last_messages", "last_messages": 1},
        max_completion_tokens=500,
        additional_instructions="Answer in one word.",
    )
    assert truncated.truncation_strategy.type == "last_messages"
    assert truncated.truncation_strategy.last_messages == 1
    assert truncated.max_completion_tokens == 500
    assert truncated.instructions == "Be brief.\n\nAnswer in one word."


@_quiet
def assistants_ids_not_found(client: openai.OpenAI, setup: Any) -> None:
    missing_thread = "thread_" + "0" * 24
    other = openai.OpenAI(
        base_url=str(client.base_url), api_key=setup.other_api_key, max_retries=0, timeout=30
    )
    with other:
        theirs = other.beta.threads.create(messages=[{"role": "user", "content": "Mine"}])
        their_assistant = other.beta.assistants.create(model=setup.text_model)
    for call in (
        lambda: client.beta.threads.retrieve(missing_thread),
        lambda: client.beta.threads.retrieve(theirs.id),
        lambda: client.beta.threads.messages.list(thread_id=theirs.id),
        lambda: client.beta.threads.runs.list(thread_id=theirs.id),
        lambda: client.beta.assistants.retrieve(their_assistant.id),
        lambda: client.beta.threads.runs.retrieve("run_" + "0" * 24, thread_id=missing_thread),
    ):
        _error(openai.NotFoundError, call)
    mine = client.beta.threads.create()
    _error(
        openai.NotFoundError,
        lambda: client.beta.threads.runs.create(thread_id=mine.id, assistant_id=their_assistant.id),
    )


@_quiet
def assistants_bad_requests(client: openai.OpenAI, setup: Any) -> None:
    """Invalid input is a 400 (``BadRequestError``, never ``UnprocessableEntityError``)
    naming the field in ``param``, on every resource; an unknown id is a 404."""
    exc = _error(
        openai.BadRequestError,
        lambda: client.beta.assistants.create(model=setup.text_model, temperature=5),
    )
    assert (exc.status_code, exc.param, exc.code) == (400, "temperature", "invalid_value")
    exc = _error(
        openai.BadRequestError,
        lambda: client.beta.assistants.create(model=setup.text_model, extra_body={"colour": "red"}),
    )
    assert (exc.param, exc.code) == ("colour", "unknown_parameter"), exc.body
    assert exc.body["message"] == "Unknown parameter: 'colour'.", exc.body
    exc = _error(openai.BadRequestError, lambda: client.beta.assistants.list(limit=0))
    assert exc.param == "limit", exc.body
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Hi"}])
    exc = _error(
        openai.BadRequestError,
        lambda: client.beta.threads.messages.create(
            thread_id=thread.id,
            role="system",  # type: ignore[arg-type]
            content="x",
        ),
    )
    assert exc.param == "role", exc.body
    exc = _error(
        openai.BadRequestError,
        lambda: client.beta.threads.runs.list(thread_id=thread.id, order="sideways"),  # type: ignore[arg-type]
    )
    assert exc.param == "order", exc.body
    assistant = _assistant(client, setup.text_model)
    exc = _error(
        openai.BadRequestError,
        lambda: client.beta.threads.runs.create(
            thread_id=thread.id, assistant_id=assistant.id, temperature=3
        ),
    )
    assert exc.param == "temperature", exc.body
    missing = "thread_" + "0" * 24
    exc = _error(openai.NotFoundError, lambda: client.beta.threads.retrieve(missing))
    assert (exc.code, exc.param) == ("thread_not_found", None), exc.body
    _error(
        openai.NotFoundError,
        lambda: client.beta.threads.messages.retrieve("msg_" + "0" * 24, thread_id=thread.id),
    )


SCENARIOS: dict[str, Callable[[openai.OpenAI, Any], None]] = {
    f.__name__: f
    for f in (
        assistants_crud,
        threads_and_messages,
        run_polled,
        run_tools_polled,
        run_token_budget,
        run_streamed_with_handler,
        run_streamed_handlers,
        run_streamed_text,
        run_cancelled,
        runs_listed_and_updated,
        assistants_ids_not_found,
        assistants_bad_requests,
    )
}
