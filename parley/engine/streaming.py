"""The model call of a turn: the request it sends (``build_request``), and the events it
relays as they come (``stream_answer``), timed by a ``StreamClock`` (``engine.stream_clock``).

The only awaits while an answer streams are the upstream's: every part goes into the
turn's accumulator and, as an event, to the turn's live channel at once
(``Turn.emit``). What the answer comes to is written by ``engine.settling``.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncGenerator, Sequence
from typing import Any

import orjson

from parley.engine.budget import call_parameters
from parley.engine.context import Window, always_sent, answer_room, fit_start
from parley.engine.file_inputs import FileInputs
from parley.engine.profile import ModelProfile
from parley.engine.stream_clock import StreamClock
from parley.engine.thread_item import Item
from parley.engine.turn import Turn
from parley.events import (
    ContentDelta,
    ModelEvent,
    ReasoningDelta,
    ReasoningPart,
    TextPart,
    ToolCallPart,
)
from parley.metrics import Metrics
from parley.providers.base import ChatMessage, ModelOptions, ModelRequest
from parley.store.records import Run
from parley.types import Role, ToolSpec


def build_request(
    run: Run,
    context: Sequence[Item],
    model_id: str,
    provider: str,
    *,
    spent: int = 0,
    window: int | None = None,
    hosted: Sequence[ToolSpec] = (),
) -> tuple[ModelRequest, int]:
    """The model's view of the thread, and how many of its messages it leaves out: every
    stored message, in order, less what the run's ``truncation`` option and the model's
    context ``window`` (tokens; None: unknown) cut (``engine.context``; the usage stored
    with earlier answers corrects its estimate). What a provider stored with an answer
    (``provider_state``) goes back only to that provider: ``provider``, the name the run's
    model resolves to (``ProviderRegistry.provider_of``). ``max_tokens`` is at most what is
    left of the run's output token budget (``engine.budget``), the turn's earlier calls
    having used ``spent`` of it.

    Only the messages sent are looked at, from the newest backwards (``context`` holds
    what each message gives the model, worked out once: ``engine.history``).

    Raises ``InvalidRequest`` (``context_length_exceeded``) for an input the window cannot
    hold.

    The model's tools are the run's functions and, as functions too, the ``hosted`` tools
    the turn made ready (``engine.hosted``): the run's own entries of those kinds are not
    sent."""
    parameters = call_parameters(run.parameters, run.options, run.output_tokens + spent)
    tools = [
        ToolSpec.model_validate(t) for t in run.tools if t.get("type", "function") == "function"
    ]
    tools += hosted
    truncation = (run.options or {}).get("truncation") or {}
    start = 0
    if truncation or window:
        fixed = always_sent(run.instructions, [t.model_dump() for t in tools])
        limit = None
        if window:
            limit = Window(window, answer_room(window, parameters.get("max_tokens")))
        chats = _Chats(context)
        known = _newest_count(context)
        start = fit_start(chats, truncation, fixed, window=limit, known=known, costs=chats.cost)
    messages = in_call_order([_for_provider(i.chat, provider) for i in context[start:]])
    request = ModelRequest(
        model=model_id,
        messages=messages,
        instructions=run.instructions,
        tools=tools,
        parameters=parameters,
        options=ModelOptions.of(run.options),
    )
    return request, start


def in_call_order(messages: list[ChatMessage]) -> list[ChatMessage]:
    """The tool results that follow an answer's calls, in the order of its calls: some
    providers match a result to its call by position or name, not id. They are stored in
    the order they came (a client's output can come before the result of a call the
    server ran once approved); a result of no call of that answer keeps its place."""
    out: list[ChatMessage] = []
    i = 0
    while i < len(messages):
        message = messages[i]
        out.append(message)
        i += 1
        if message.role != Role.ASSISTANT or not message.tool_calls:
            continue
        j = i
        while j < len(messages) and messages[j].role == Role.TOOL:
            j += 1
        order = {call.id: n for n, call in enumerate(message.tool_calls)}
        results = messages[i:j]
        if len(results) > 1:
            last = len(order)
            results = sorted(results, key=lambda m: order.get(m.tool_call_id or "", last))
        out += results
        i = j
    return out


class _Chats(Sequence[ChatMessage]):
    """The ``ChatMessage`` of each item, as ``engine.context`` reads them."""

    def __init__(self, items: Sequence[Item]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: Any) -> Any:
        return self.items[index].chat  # one at a time: ``fit_start`` slices nothing

    def cost(self, index: int) -> int:
        return self.items[index].cost


#: How far back from the newest message a stored usage is looked for.
_COUNT_SEARCH = 2000


def _newest_count(items: Sequence[Item]) -> dict[int, int]:
    """The index and count of the newest answer whose model call's usage was stored,
    among the newest ``_COUNT_SEARCH`` messages."""
    for index in range(len(items) - 1, max(-1, len(items) - 1 - _COUNT_SEARCH), -1):
        counted = items[index].counted
        if counted is not None:
            return {index: counted}
    return {}


def _for_provider(chat: ChatMessage, provider: str) -> ChatMessage:
    state = chat.provider_state
    if state and state.get("provider") != provider:
        return dataclasses.replace(chat, provider_state=None)
    return chat


async def stream_answer(
    turn: Turn, profile: ModelProfile, metrics: Metrics, files: FileInputs | None = None
) -> None:
    """Call the turn's model (or go on with its early call) and relay its events: its
    adapter, model id, window and timeouts are ``profile``'s (the turn's model, resolved
    once). The files of its messages are read for the call by ``files``."""
    stream: AsyncGenerator[ModelEvent, None]
    if turn.early is not None:
        # The call's own stream, its first part read ahead (``EarlyStart.first``).
        stream = turn.early.stream
        model_id, began = turn.early.request.model, turn.early.began
    else:
        began = None
        model_id = profile.model_id
        request, turn.answer.dropped = build_request(
            turn.run,
            turn.context,
            model_id,
            profile.provider,
            spent=turn.answer.spent.output_tokens,
            window=profile.window,
            hosted=turn.hosted.box.functions if turn.hosted.box is not None else (),
        )
        if files is not None:
            request = await files.resolve(request, user_id=turn.run.user_id, model=turn.run.model)
        stream = profile.adapter.stream(request)
    call = metrics.upstream_call(profile.provider, model_id, started=began)
    run_id, message_id = turn.run.id, turn.message_id
    acc, emit, emit_json = turn.answer.acc, turn.emit, turn.emit_json
    # A text delta's JSON, as ``ContentDelta(...).model_dump_json()`` writes it: the fixed
    # part once, then each text (the bulk of every answer).
    ids = f'{orjson.dumps(run_id).decode()},"message_id":{orjson.dumps(message_id).decode()}'
    delta = f'{{"type":"content.delta","run_id":{ids},"text":'
    clock = turn.clock = StreamClock(turn.stop_model, *profile.timeouts)
    time = asyncio.get_running_loop().time

    def relay(part: ModelEvent) -> None:
        acc.add(part)
        clock.last = time()
        kind = type(part)
        if kind is TextPart:
            try:
                text = orjson.dumps(part.text).decode()  # type: ignore[union-attr]
            except TypeError:  # a lone surrogate: the model's way, which replaces it
                emit(ContentDelta(run_id=run_id, message_id=message_id, text=part.text))  # type: ignore[union-attr]
            else:
                emit_json("content.delta", delta + text + "}")
        elif kind is ReasoningPart:
            emit(
                ReasoningDelta(
                    run_id=run_id,
                    message_id=message_id,
                    text=part.text,  # type: ignore[union-attr]
                    summary=part.summary,  # type: ignore[union-attr]
                )
            )
        elif kind is not ToolCallPart:
            return  # usage or provider state: not the answer itself
        if not clock.started:
            clock.begin()
            call.first_token()

    try:
        if turn.early is not None:
            first = await turn.early.first
            if first is None:  # the call ended before its first part
                return
            relay(first)
        async for part in stream:
            relay(part)
    except BaseException as exc:
        call.failed(clock.error or exc)
        raise
    finally:
        clock.stop()
        call.finish(acc.usage)
        await stream.aclose()
        if turn.early is not None:
            early, turn.early = turn.early, None
            await early.discard()  # the first-part task and the upstream stream
