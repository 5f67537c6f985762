"""What the official ``openai`` SDK does against Parley's Responses and Conversations face,
its Chat Completions gateway and its models.

Each scenario is a plain function ``scenario(client, setup)``: an ``openai.OpenAI`` client
of a fresh user of a real ``parley serve`` and a ``Setup`` (the fake upstream's models and
what they answer, and ids owned by another user). They use nothing but the standard library
and ``openai``, so the same functions run in the test process with the installed 3.x
(``test_sdk_3x.py``) and here, in a subprocess, with the 2.x of ``.venv/openai2``
(``test_sdk_2x.py``)::

    python tests/openai_sdk/scenarios.py < request.json > report.json

where the request is ``{"base_url", "api_key", "setup", "scenarios": [names]}`` and the
report ``{"openai_version", "results": {name: {"outcome", "detail"}}}``, an outcome being
``passed``, ``failed`` (detail: the traceback) or ``skipped`` (detail: why).

A scenario raises ``Unsupported`` when the SDK at hand has no method it needs.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import openai

#: The shape of a response id of Parley (a run's id).
RESPONSE_ID = re.compile(r"run_[0-9a-f]{24}")
#: The shape of a message item id (an assistant or user message).
MESSAGE_ID = re.compile(r"msg_[0-9a-f]{24}")

WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
    "strict": False,
}
QUESTION = "What is the weather in Paris?"
#: What the client's ``get_weather`` returns.
WEATHER_OUTPUT = "22 C and sunny"


@dataclass(frozen=True, slots=True)
class Setup:
    """The models of the session server the scenarios use, and what they answer."""

    #: A model answering ``text`` in ``text_chunks`` deltas.
    text_model: str
    text: str
    text_chunks: int
    #: A model answering ``slow_text`` slowly enough to drop a stream halfway through.
    slow_model: str
    slow_text: str
    slow_chunks: int
    #: A model that never answers until its request is cancelled.
    hang_model: str
    #: A model that calls the first offered tool after a user message, else answers text.
    tool_model: str
    #: The arguments ``tool_model`` calls ``get_weather`` with.
    tool_arguments: dict[str, Any]
    #: Its answer after a tool result, with ``{name}`` and ``{output}`` to fill in.
    tool_answer: str
    #: Another user's key, and a response and a conversation of theirs.
    other_api_key: str
    other_response_id: str
    other_conversation_id: str

    def answer_to(self, name: str, output: str) -> str:
        return self.tool_answer.replace("{name}", name).replace("{output}", output)


class Unsupported(Exception):
    """The SDK at hand lacks a method the scenario needs (the reason says which)."""


def _require(client: openai.OpenAI, path: str) -> None:
    target: Any = client
    for name in path.split("."):
        if not hasattr(target, name):
            raise Unsupported(f"openai {openai.__version__} has no client.{path}")
        target = getattr(target, name)


# ------------------------------------------------------------------------------ helpers


def _text(item: Any) -> str:
    """The text of a message item (input or output parts)."""
    return "".join(getattr(part, "text", "") or "" for part in item.content)


def _check_text_response(response: Any, model: str, text: str) -> None:
    assert response.object == "response"
    assert RESPONSE_ID.fullmatch(response.id), response.id
    assert response.status == "completed", response.status
    assert response.model == model
    assert response.error is None and response.incomplete_details is None
    assert response.output_text == text
    [item] = response.output
    assert item.type == "message" and item.role == "assistant" and item.status == "completed"
    assert MESSAGE_ID.fullmatch(item.id), item.id
    [part] = item.content
    assert part.type == "output_text" and part.text == text
    assert response.completed_at is not None and response.completed_at >= response.created_at
    assert abs(time.time() - response.created_at) < 300


def _same_response(a: Any, b: Any) -> None:
    """Two views of one finished response agree on what matters."""
    assert a.id == b.id
    assert a.status == b.status
    assert a.model == b.model
    assert a.output_text == b.output_text
    assert [(o.type, o.id) for o in a.output] == [(o.type, o.id) for o in b.output]
    assert a.usage is not None and b.usage is not None
    assert (a.usage.input_tokens, a.usage.output_tokens, a.usage.total_tokens) == (
        b.usage.input_tokens,
        b.usage.output_tokens,
        b.usage.total_tokens,
    )


def _text_events(chunks: int) -> list[str]:
    """The event types of a streamed answer of one text item in ``chunks`` deltas."""
    return [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * chunks,
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]


def _deltas(events: Iterable[Any]) -> str:
    return "".join(e.delta for e in events if e.type == "response.output_text.delta")


def _function_call(response: Any, setup: Setup) -> Any:
    """The one ``get_weather`` call of a response of ``tool_model``, checked."""
    assert response.status == "completed", response.status
    assert response.output_text == ""
    [call] = response.output
    assert call.type == "function_call", call.type
    assert call.name == "get_weather"
    assert call.call_id and call.id and call.id != call.call_id
    assert call.status == "completed"
    assert json.loads(call.arguments) == setup.tool_arguments
    assert [t.name for t in response.tools] == ["get_weather"]
    return call


def _expect(error: type[openai.APIStatusError], call: Callable[[], Any]) -> Any:
    """The error ``call`` raises, of class ``error``, with its JSON body."""
    try:
        call()
    except error as exc:
        assert isinstance(exc.body, dict), exc.body
        return exc
    raise AssertionError(f"expected {error.__name__}")


def _not_found(call: Callable[[], Any]) -> Any:
    exc = _expect(openai.NotFoundError, call)
    assert exc.status_code == 404 and exc.body["type"] == "not_found", exc.body
    return exc


def _previous_not_found(call: Callable[[], Any]) -> Any:
    """A ``previous_response_id`` of no response of the caller: a 400, as OpenAI answers."""
    exc = _expect(openai.BadRequestError, call)
    assert exc.status_code == 400 and exc.param == "previous_response_id", exc.body
    assert exc.code == "previous_response_not_found", exc.body
    return exc


def _words(*texts: str) -> int:
    """Input tokens as the fake upstream counts them: the words of every message."""
    return sum(len(t.split()) for t in texts)


def _call_output(call: Any) -> list[dict[str, Any]]:
    return [{"type": "function_call_output", "call_id": call.call_id, "output": WEATHER_OUTPUT}]


# ---------------------------------------------------------- 1. create, without streaming


def create_with_string_input(client: openai.OpenAI, setup: Setup) -> None:
    prompt = "Hello there Parley"
    response = client.responses.create(model=setup.text_model, input=prompt)
    _check_text_response(response, setup.text_model, setup.text)
    assert response.instructions is None and response.previous_response_id is None
    assert response.background is False and response.store is True
    # The fake upstream counts a word of the prompt as a token, and a delta as one.
    assert response.usage is not None
    assert response.usage.input_tokens == _words(prompt)
    assert response.usage.output_tokens == setup.text_chunks
    assert response.usage.total_tokens == _words(prompt) + setup.text_chunks


def create_with_items_and_instructions(client: openai.OpenAI, setup: Setup) -> None:
    instructions = "Answer in one short sentence."
    question = "What does Parley stream?"
    response = client.responses.create(
        model=setup.text_model,
        instructions=instructions,
        input=[
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi"}]},
            {"type": "message", "role": "assistant", "content": "Hello! How can I help?"},
            {"type": "message", "role": "user", "content": question},
        ],
        metadata={"case": "items"},
        temperature=0.5,
    )
    _check_text_response(response, setup.text_model, setup.text)
    assert response.instructions == instructions
    assert response.metadata == {"case": "items"}
    assert response.temperature == 0.5
    words = _words(instructions, "Hi", "Hello! How can I help?", question)
    assert response.usage is not None
    assert response.usage.input_tokens == words
    assert response.usage.output_tokens == setup.text_chunks
    # ... and the words of the messages before the newest as read from its cache.
    assert response.usage.input_tokens_details.cached_tokens == words - _words(question)
    assert response.usage.output_tokens_details.reasoning_tokens == 0
    # The input items are the three messages, not the instructions.
    items = client.responses.input_items.list(response.id, order="asc")
    assert [(i.type, i.role, _text(i)) for i in items.data] == [
        ("message", "user", "Hi"),
        ("message", "assistant", "Hello! How can I help?"),
        ("message", "user", question),
    ]


def create_without_storing(client: openai.OpenAI, setup: Setup) -> None:
    response = client.responses.create(model=setup.text_model, input="Forget me", store=False)
    _check_text_response(response, setup.text_model, setup.text)
    assert response.store is False
    _not_found(lambda: client.responses.retrieve(response.id))


def stream_without_storing(client: openai.OpenAI, setup: Setup) -> None:
    with client.responses.create(
        model=setup.text_model, input="Forget me", store=False, stream=True
    ) as stream:
        events = list(stream)
    assert [e.type for e in events] == _text_events(setup.text_chunks)
    final = events[-1].response
    assert final.store is False and final.status == "completed"
    assert final.output_text == _deltas(events) == setup.text
    _not_found(lambda: client.responses.retrieve(final.id))
    _previous_not_found(
        lambda: client.responses.create(
            model=setup.text_model, input="Again", previous_response_id=final.id
        ),
    )


# ------------------------------------------------------------ 2 and 3. streaming


def stream_events(client: openai.OpenAI, setup: Setup) -> None:
    stream = client.responses.create(model=setup.text_model, input="Stream to me", stream=True)
    with stream:
        events = list(stream)
    assert [e.type for e in events] == _text_events(setup.text_chunks)
    assert [e.sequence_number for e in events] == list(range(len(events)))
    created, in_progress, added, part_added = events[:4]
    text_done, part_done, item_done, completed = events[-4:]
    response_id = created.response.id
    assert RESPONSE_ID.fullmatch(response_id), response_id
    assert created.response.status == in_progress.response.status == "in_progress"
    assert created.response.output == [] and created.response.model == setup.text_model
    item_id = added.item.id
    assert MESSAGE_ID.fullmatch(item_id), item_id
    assert added.item.type == "message" and added.item.status == "in_progress"
    assert added.output_index == 0 and part_added.output_index == 0
    for event in events[3:-2]:
        assert event.item_id == item_id and event.output_index == 0, event
    assert item_done.item.id == item_id and item_done.output_index == 0
    assert _deltas(events) == setup.text
    assert text_done.text == setup.text and part_done.part.text == setup.text
    assert item_done.item.status == "completed" and _text(item_done.item) == setup.text
    final = completed.response
    assert final.id == response_id and final.status == "completed"
    assert final.output_text == setup.text and final.usage is not None
    assert final.usage.output_tokens == setup.text_chunks
    _same_response(final, client.responses.retrieve(response_id))


def stream_helper(client: openai.OpenAI, setup: Setup) -> None:
    with client.responses.stream(model=setup.text_model, input="Use the helper") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == setup.text
    _check_text_response(final, setup.text_model, setup.text)
    _same_response(final, client.responses.retrieve(final.id))


# ------------------------------------------------- 4. retrieve, delete, cancel, input items


def retrieve_and_delete(client: openai.OpenAI, setup: Setup) -> None:
    response = client.responses.create(model=setup.text_model, input="Keep this")
    retrieved = client.responses.retrieve(response.id)
    _same_response(response, retrieved)
    _check_text_response(retrieved, setup.text_model, setup.text)
    assert client.responses.delete(response.id) is None
    for gone in (
        lambda: client.responses.retrieve(response.id),
        lambda: client.responses.delete(response.id),
        lambda: client.responses.input_items.list(response.id),
    ):
        assert response.id in _not_found(gone).message


def cancel_background(client: openai.OpenAI, setup: Setup) -> None:
    started = client.responses.create(model=setup.hang_model, input="Never mind", background=True)
    assert RESPONSE_ID.fullmatch(started.id), started.id
    assert started.background is True
    assert started.status in ("queued", "in_progress"), started.status
    assert client.responses.retrieve(started.id).status in ("queued", "in_progress")
    cancelled = client.responses.cancel(started.id)
    assert cancelled.id == started.id and cancelled.status == "cancelled", cancelled.status
    assert client.responses.retrieve(started.id).status == "cancelled"
    assert client.responses.cancel(started.id).status == "cancelled"  # idempotent
    # A response that has finished cannot be cancelled.
    done = client.responses.create(model=setup.text_model, input="Quick")
    refused = _expect(openai.BadRequestError, lambda: client.responses.cancel(done.id))
    assert refused.code == "response_not_cancellable", refused.body
    assert "completed" in refused.message
    assert client.responses.retrieve(done.id).status == "completed"


def input_items_paging(client: openai.OpenAI, setup: Setup) -> None:
    said = [f"line {n} of five" for n in range(1, 6)]
    response = client.responses.create(
        model=setup.text_model,
        input=[{"type": "message", "role": "user", "content": text} for text in said],
    )
    # The default order is newest first.
    newest = client.responses.input_items.list(response.id)
    assert [_text(i) for i in newest.data] == said[::-1] and newest.has_more is False
    ids = [i.id for i in newest.data][::-1]
    assert len(set(ids)) == 5 and all(MESSAGE_ID.fullmatch(i) for i in ids), ids
    # Page by hand: two at a time, oldest first.
    pages, after = [], None
    while True:
        page = client.responses.input_items.list(
            response.id, limit=2, order="asc", **({"after": after} if after else {})
        )
        pages.append([i.id for i in page.data])
        if not page.has_more:
            break
        after = page.data[-1].id
    assert pages == [ids[0:2], ids[2:4], ids[4:5]], pages
    # And as the SDK pages on its own.
    every = client.responses.input_items.list(response.id, limit=2, order="asc")
    assert [i.id for i in every] == ids
    assert [i.id for i in client.responses.input_items.list(response.id, after=ids[2])] == [
        ids[1],
        ids[0],
    ]


# ------------------------------------------------------------------- 5. function tools


def function_tool_round_trip(client: openai.OpenAI, setup: Setup) -> None:
    asked = client.responses.create(model=setup.tool_model, input=QUESTION, tools=[WEATHER_TOOL])
    call = _function_call(asked, setup)
    answered = client.responses.create(
        model=setup.tool_model,
        previous_response_id=asked.id,
        input=_call_output(call),
        tools=[WEATHER_TOOL],
    )
    expected = setup.answer_to("get_weather", WEATHER_OUTPUT)
    _check_text_response(answered, setup.tool_model, expected)
    assert answered.previous_response_id == asked.id
    # The model saw the question, its call and the output (the call's message has no words).
    assert asked.usage is not None and answered.usage is not None
    assert asked.usage.input_tokens == _words(QUESTION)
    assert answered.usage.input_tokens == _words(QUESTION, WEATHER_OUTPUT)
    given = client.responses.input_items.list(answered.id).data[0]
    assert given.type == "function_call_output"
    assert (given.call_id, given.output) == (call.call_id, WEATHER_OUTPUT)


def function_tool_streamed(client: openai.OpenAI, setup: Setup) -> None:
    with client.responses.create(
        model=setup.tool_model,
        input=QUESTION,
        tools=[WEATHER_TOOL],
        stream=True,
    ) as stream:
        events = list(stream)
    assert [e.sequence_number for e in events] == list(range(len(events)))
    kinds = [e.type for e in events]
    assert kinds[:3] == ["response.created", "response.in_progress", "response.output_item.added"]
    assert kinds[-3:] == [
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert set(kinds[3:-3]) <= {"response.function_call_arguments.delta"}
    added, arguments_done, item_done, completed = events[2], events[-3], events[-2], events[-1]
    call = _function_call(completed.response, setup)
    assert added.item.type == "function_call" and added.item.call_id == call.call_id
    assert arguments_done.item_id == item_done.item.id == call.id
    assert json.loads(arguments_done.arguments) == setup.tool_arguments
    streamed = "".join(e.delta for e in events if e.type.endswith("arguments.delta"))
    assert streamed == arguments_done.arguments == item_done.item.arguments
    # The SDK's helper puts the call together from the same events.
    with client.responses.stream(
        model=setup.tool_model, input=QUESTION, tools=[WEATHER_TOOL]
    ) as helper:
        kinds = [e.type for e in helper]
        final = helper.get_final_response()
    assert "response.function_call_arguments.done" in kinds
    helped = _function_call(final, setup)
    assert helped.call_id != call.call_id
    [stored] = client.responses.retrieve(final.id).output
    fields = ("type", "id", "call_id", "name", "arguments", "status")
    assert [getattr(helped, f) for f in fields] == [getattr(stored, f) for f in fields]


# -------------------------------------------------------------------- 6. conversations


def conversation_round_trip(client: openai.OpenAI, setup: Setup) -> None:
    _require(client, "conversations.items.list")
    intro = "My name is Ada."
    conversation = client.conversations.create(
        items=[{"type": "message", "role": "user", "content": intro}],
        metadata={"topic": "weather"},
    )
    assert conversation.object == "conversation" and conversation.id
    assert conversation.metadata == {"topic": "weather"}
    question = QUESTION
    asked = client.responses.create(
        model=setup.tool_model,
        conversation=conversation.id,
        input=question,
        tools=[WEATHER_TOOL],
    )
    call = _function_call(asked, setup)
    assert asked.conversation is not None and asked.conversation.id == conversation.id
    answered = client.responses.create(
        model=setup.tool_model,
        conversation={"id": conversation.id},
        input=_call_output(call),
        tools=[WEATHER_TOOL],
    )
    expected = setup.answer_to("get_weather", WEATHER_OUTPUT)
    _check_text_response(answered, setup.tool_model, expected)
    assert answered.conversation is not None and answered.conversation.id == conversation.id
    # Each turn saw the whole conversation.
    assert asked.usage is not None and answered.usage is not None
    assert asked.usage.input_tokens == _words(intro, question)
    assert answered.usage.input_tokens == _words(intro, question, WEATHER_OUTPUT)

    items = list(client.conversations.items.list(conversation.id, order="asc"))
    assert [i.type for i in items] == [
        "message",
        "message",
        "function_call",
        "function_call_output",
        "message",
    ], items
    first, second, called, output, answer = items
    assert (first.role, _text(first)) == ("user", intro)
    assert (second.role, _text(second)) == ("user", question)
    assert (called.id, called.call_id, called.name) == (call.id, call.call_id, "get_weather")
    assert json.loads(called.arguments) == setup.tool_arguments
    assert (output.call_id, output.output) == (call.call_id, WEATHER_OUTPUT)
    assert (answer.role, _text(answer)) == ("assistant", expected)
    assert answer.id == answered.output[0].id
    one = client.conversations.items.retrieve(called.id, conversation_id=conversation.id)
    assert one.model_dump() == called.model_dump()
    newest = client.conversations.items.list(conversation.id, limit=2)
    assert [i.id for i in newest.data] == [answer.id, output.id] and newest.has_more is True

    assert client.conversations.retrieve(conversation.id).metadata == {"topic": "weather"}
    updated = client.conversations.update(conversation.id, metadata={"topic": "sun"})
    assert updated.id == conversation.id and updated.metadata == {"topic": "sun"}
    assert client.conversations.retrieve(conversation.id).metadata == {"topic": "sun"}
    deleted = client.conversations.delete(conversation.id)
    assert deleted.id == conversation.id and deleted.deleted is True
    _not_found(lambda: client.conversations.retrieve(conversation.id))
    _not_found(lambda: client.conversations.items.list(conversation.id))


# ---------------------------------------------------- 7. background, dropped and resumed


def background_stream_resumed(client: openai.OpenAI, setup: Setup) -> None:
    seen: list[Any] = []
    stream = client.responses.create(
        model=setup.slow_model, input="Take your time", background=True, stream=True
    )
    for event in stream:
        seen.append(event)
        if sum(e.type == "response.output_text.delta" for e in seen) == 3:
            break
    stream.close()  # the connection drops; the background response goes on
    last = seen[-1].sequence_number
    assert [e.sequence_number for e in seen] == list(range(last + 1))
    response_id = seen[0].response.id
    assert seen[0].response.background is True

    resumed = client.responses.retrieve(response_id, stream=True, starting_after=last)
    with resumed:
        rest = list(resumed)
    assert [e.sequence_number for e in rest] == list(range(last + 1, last + 1 + len(rest)))
    assert rest[-1].type == "response.completed"
    assert _deltas(seen) + _deltas(rest) == setup.slow_text
    final = rest[-1].response
    assert final.id == response_id and final.status == "completed"
    assert final.output_text == setup.slow_text

    # The SDK's helper resumes the same way (it reads the stream from the start and drops
    # what it was given before ``starting_after``).
    with client.responses.stream(response_id=response_id, starting_after=last) as helper:
        again = [e.sequence_number for e in helper]
        helped = helper.get_final_response()
    assert again == [e.sequence_number for e in rest]
    _same_response(helped, final)

    # The whole stream again, from the start, is what a live one would have been.
    with client.responses.retrieve(response_id, stream=True) as replay:
        every = list(replay)
    assert [e.type for e in every] == _text_events(setup.slow_chunks)
    assert [e.model_dump() for e in every[: last + 1]] == [e.model_dump() for e in seen]
    assert [e.sequence_number for e in every[last + 1 :]] == [e.sequence_number for e in rest]
    _same_response(final, client.responses.retrieve(response_id))


# ------------------------------------------------------------- 8. retries, idempotent


def _idempotency_key() -> dict[str, str]:
    """A new ``Idempotency-Key``, as ``extra_headers``."""
    return {"Idempotency-Key": f"sdk-{uuid.uuid4()}"}


def idempotent_retries(client: openai.OpenAI, setup: Setup) -> None:
    """A request sent again with its ``Idempotency-Key`` (``extra_headers``) gets the first
    one's answer back, and nothing is made twice; the key with another request is a 422."""
    key = _idempotency_key()
    conversation = client.conversations.create(metadata={"case": "retries"}, extra_headers=key)
    raw = client.conversations.with_raw_response.create(
        metadata={"case": "retries"}, extra_headers=key
    )
    assert raw.headers.get("Idempotent-Replayed") == "true", raw.headers
    assert raw.parse().id == conversation.id

    key = _idempotency_key()
    first = client.responses.create(
        model=setup.text_model, input="Once", conversation=conversation.id, extra_headers=key
    )
    raw_response = client.responses.with_raw_response.create(
        model=setup.text_model, input="Once", conversation=conversation.id, extra_headers=key
    )
    assert raw_response.headers.get("Idempotent-Replayed") == "true", raw_response.headers
    retried = raw_response.parse()
    _check_text_response(retried, setup.text_model, setup.text)
    _same_response(retried, first)

    key = _idempotency_key()
    streams: list[list[Any]] = []
    for _ in range(2):
        with client.responses.create(
            model=setup.text_model,
            input="Stream once",
            conversation=conversation.id,
            stream=True,
            extra_headers=key,
        ) as stream:
            streams.append(list(stream))
    streamed, replayed = streams
    assert (
        [e.type for e in replayed] == [e.type for e in streamed] == _text_events(setup.text_chunks)
    )
    assert _deltas(replayed) == setup.text
    assert replayed[-1].response.id == streamed[-1].response.id

    # Two responses in the conversation, not four.
    items = client.conversations.items.list(conversation.id, order="asc")
    assert [(i.type, i.role, _text(i)) for i in items.data] == [
        ("message", "user", "Once"),
        ("message", "assistant", setup.text),
        ("message", "user", "Stream once"),
        ("message", "assistant", setup.text),
    ]

    reused = _expect(
        openai.UnprocessableEntityError,
        lambda: client.responses.create(
            model=setup.text_model, input="Another", conversation=conversation.id, extra_headers=key
        ),
    )
    assert reused.status_code == 422, reused.status_code
    assert (reused.code, reused.param) == ("idempotency_key_reused", "Idempotency-Key"), reused.body


# ------------------------------------------------------------------------- 9. errors


def unknown_ids_not_found(client: openai.OpenAI, setup: Setup) -> None:
    missing = "run_" + "0" * 24
    exc = _not_found(lambda: client.responses.retrieve(missing))
    assert exc.type == "not_found" and exc.param == "response_id", exc.body
    assert missing in exc.message
    for call in (
        lambda: client.responses.retrieve(missing, stream=True),
        lambda: client.responses.delete(missing),
        lambda: client.responses.cancel(missing),
        lambda: client.responses.input_items.list(missing),
        lambda: client.conversations.retrieve("thread_" + "0" * 24),
        lambda: client.conversations.items.list("thread_" + "0" * 24),
    ):
        _not_found(call)


def bad_bodies_rejected(client: openai.OpenAI, setup: Setup) -> None:
    for stream in (False, True):
        exc = _expect(
            openai.BadRequestError,
            lambda stream=stream: client.responses.create(
                model=setup.text_model,
                input="Hi",
                temperature="hot",  # type: ignore[arg-type]
                stream=stream,
            ),
        )
        assert exc.type == "invalid_request" and exc.param == "temperature", exc.body
        assert "temperature" in exc.message
    exc = _expect(
        openai.BadRequestError,
        lambda: client.responses.create(
            model=setup.text_model,
            input=[{"type": "message", "role": "narrator", "content": "Hi"}],  # type: ignore[list-item]
        ),
    )
    assert exc.param == "input[0].role", exc.body
    exc = _expect(
        openai.BadRequestError,
        lambda: client.responses.create(
            model=setup.text_model, input="Hi", extra_body={"no_such_field": 1}
        ),
    )
    assert exc.param == "no_such_field", exc.body
    exc = _expect(
        openai.BadRequestError,
        lambda: client.conversations.create(metadata={"count": 1}),  # type: ignore[dict-item]
    )
    assert exc.param == "metadata", exc.body


def bad_queries_rejected(client: openai.OpenAI, setup: Setup) -> None:
    """A bad query parameter is named as OpenAI names it: ``limit``, not ``query.limit``."""
    response = client.responses.create(model=setup.text_model, input="Hi")
    conversation = client.conversations.create()
    for param, call in (
        ("limit", lambda: client.responses.input_items.list(response.id, limit=1000)),
        ("order", lambda: client.conversations.items.list(conversation.id, order="up")),  # type: ignore[arg-type]
        (
            "starting_after",
            lambda: client.responses.retrieve(response.id, stream=True, starting_after=-5),
        ),
    ):
        exc = _expect(openai.BadRequestError, call)
        assert exc.type == "invalid_request" and exc.param == param, exc.body


def other_users_ids_not_found(client: openai.OpenAI, setup: Setup) -> None:
    theirs = setup.other_response_id
    for call in (
        lambda: client.responses.retrieve(theirs),
        lambda: client.responses.retrieve(theirs, stream=True),
        lambda: client.responses.delete(theirs),
        lambda: client.responses.cancel(theirs),
        lambda: client.responses.input_items.list(theirs),
        lambda: client.conversations.retrieve(setup.other_conversation_id),
        lambda: client.conversations.items.list(setup.other_conversation_id),
        lambda: client.conversations.update(setup.other_conversation_id, metadata={"a": "b"}),
        lambda: client.conversations.delete(setup.other_conversation_id),
    ):
        _not_found(call)
    # Chaining onto them, or adding to them, is refused as if they did not exist.
    _previous_not_found(
        lambda: client.responses.create(
            model=setup.text_model, input="Hi", previous_response_id=theirs
        ),
    )
    joined = _not_found(
        lambda: client.responses.create(
            model=setup.text_model, input="Hi", conversation=setup.other_conversation_id
        ),
    )
    assert joined.param == "conversation", joined.body
    # And they are still there, unchanged, for their owner.
    with openai.OpenAI(
        base_url=str(client.base_url), api_key=setup.other_api_key, max_retries=0
    ) as owner:
        mine = owner.responses.retrieve(theirs)
        assert mine.status == "completed" and mine.output_text
        kept = owner.conversations.retrieve(setup.other_conversation_id)
        assert kept.metadata == {"owner": "other"}
        assert owner.conversations.items.list(setup.other_conversation_id).data == []


#: Every scenario, by name, in the order they run.
# ------------------------------------------------------------------ chat completions

CHAT_WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {k: v for k, v in WEATHER_TOOL.items() if k not in ("type", "strict")},
}
#: A 1x1 PNG.
PNG = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQ"
    "DwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def chat_completion(client: openai.OpenAI, setup: Setup) -> None:
    answer = client.chat.completions.create(
        model=setup.text_model,
        messages=[
            {"role": "system", "content": "Be brief."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": PNG}},
                ],
            },
        ],
        max_completion_tokens=100,
        temperature=0.2,
    )
    assert answer.object == "chat.completion" and answer.model == setup.text_model
    assert answer.choices[0].message.content == setup.text
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage is not None and answer.usage.completion_tokens == setup.text_chunks
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + setup.text_chunks


def chat_completion_streamed(client: openai.OpenAI, setup: Setup) -> None:
    stream = client.chat.completions.create(
        model=setup.text_model,
        messages=[{"role": "user", "content": QUESTION}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == setup.text
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == setup.text_chunks
    with client.chat.completions.stream(
        model=setup.text_model, messages=[{"role": "user", "content": QUESTION}]
    ) as helper:
        final = helper.get_final_completion()
    assert final.choices[0].message.content == setup.text


def chat_tool_round_trip(client: openai.OpenAI, setup: Setup) -> None:
    messages: list[Any] = [{"role": "user", "content": QUESTION}]
    asked = client.chat.completions.create(
        model=setup.tool_model, messages=messages, tools=[CHAT_WEATHER_TOOL]
    )
    message = asked.choices[0].message
    assert asked.choices[0].finish_reason == "tool_calls" and message.tool_calls
    (call,) = message.tool_calls
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == setup.tool_arguments
    messages += [message, {"role": "tool", "tool_call_id": call.id, "content": WEATHER_OUTPUT}]
    answered = client.chat.completions.create(
        model=setup.tool_model, messages=messages, tools=[CHAT_WEATHER_TOOL]
    )
    assert answered.choices[0].message.content == setup.answer_to("get_weather", WEATHER_OUTPUT)
    # The same, streamed and put together by the SDK's helper.
    with client.chat.completions.stream(
        model=setup.tool_model, messages=messages[:1], tools=[CHAT_WEATHER_TOOL]
    ) as helper:
        final = helper.get_final_completion()
    calls = final.choices[0].message.tool_calls
    assert calls and calls[0].function.name == "get_weather"
    assert json.loads(calls[0].function.arguments) == setup.tool_arguments


def chat_completion_parsed(client: openai.OpenAI, setup: Setup) -> None:
    parse = getattr(client.chat.completions, "parse", None)
    if parse is None:
        raise Unsupported("this SDK has no chat.completions.parse")
    from pydantic import BaseModel

    class Weather(BaseModel):
        city: str
        degrees: int

    # The echo model answers the user's message, here the JSON the format asks for.
    wanted = '{"city": "Paris", "degrees": 22}'
    answer = parse(
        model="fake/echo", messages=[{"role": "user", "content": wanted}], response_format=Weather
    )
    assert answer.choices[0].message.parsed == Weather(city="Paris", degrees=22)


def chat_errors(client: openai.OpenAI, setup: Setup) -> None:
    error = _expect(
        openai.BadRequestError,
        lambda: client.chat.completions.create(
            model=setup.text_model, messages=[{"role": "user", "content": "hi"}], n=2
        ),
    )
    assert error.body["param"] == "n", error.body
    error = _expect(
        openai.BadRequestError,
        lambda: client.chat.completions.create(
            model="nowhere/x", messages=[{"role": "user", "content": "hi"}]
        ),
    )
    assert error.body["param"] == "model", error.body


def models_listed_and_retrieved(client: openai.OpenAI, setup: Setup) -> None:
    ids = [m.id for m in client.models.list()]
    assert "demo/parley" in ids
    model = client.models.retrieve("demo/parley")
    assert (model.id, model.owned_by, model.object) == ("demo/parley", "demo", "model")
    _not_found(lambda: client.models.retrieve("nowhere/x"))


SCENARIOS: dict[str, Callable[[openai.OpenAI, Setup], None]] = {
    f.__name__: f
    for f in (
        create_with_string_input,
        create_with_items_and_instructions,
        create_without_storing,
        stream_without_storing,
        stream_events,
        stream_helper,
        retrieve_and_delete,
        cancel_background,
        input_items_paging,
        function_tool_round_trip,
        function_tool_streamed,
        conversation_round_trip,
        background_stream_resumed,
        idempotent_retries,
        unknown_ids_not_found,
        bad_bodies_rejected,
        bad_queries_rejected,
        other_users_ids_not_found,
        chat_completion,
        chat_completion_streamed,
        chat_tool_round_trip,
        chat_completion_parsed,
        chat_errors,
        models_listed_and_retrieved,
    )
}

try:  # in the test process
    from tests.openai_sdk import assistants
except ImportError:  # run as a script (openai 2.x): this folder is first on the path
    import assistants  # type: ignore[no-redef]

SCENARIOS.update(assistants.SCENARIOS)

#: Scenarios that fail because of a Parley bug (the reason says which), with either SDK.
KNOWN_BUGS: dict[str, str] = {}


# ------------------------------------------------------------------ the subprocess side


def run(names: list[str], base_url: str, api_key: str, setup: Setup) -> dict[str, Any]:
    """Run the named scenarios, each with its own client; the report of ``main``."""
    results: dict[str, dict[str, str]] = {}
    for name in names:
        with openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=30) as c:
            try:
                SCENARIOS[name](c, setup)
            except Unsupported as exc:
                results[name] = {"outcome": "skipped", "detail": str(exc)}
            except Exception:  # noqa: BLE001 - a boundary: every failure goes into the report
                results[name] = {"outcome": "failed", "detail": traceback.format_exc()}
            else:
                results[name] = {"outcome": "passed", "detail": ""}
    return {"openai_version": openai.__version__, "results": results}


def main() -> None:
    request = json.load(sys.stdin)
    setup = Setup(**request["setup"])
    report = run(request["scenarios"], request["base_url"], request["api_key"], setup)
    json.dump(report, sys.stdout)


def setup_as_json(setup: Setup) -> dict[str, Any]:
    return dataclasses.asdict(setup)


if __name__ == "__main__":
    main()
