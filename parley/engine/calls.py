"""Model calls that store nothing: no thread, no run (``Engine.call_model`` for the chat
gateway, ``Engine.complete`` for work beside a conversation, such as compaction)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable
from typing import Any

from parley.engine.inputs import NewMessage
from parley.engine.stream_clock import StreamClock
from parley.errors import UpstreamTimeout
from parley.events import ModelEvent, ReasoningPart, TextPart, ToolCallPart, UsagePart
from parley.metrics import Metrics
from parley.providers.accumulator import AnswerAccumulator
from parley.providers.base import ChatMessage, ModelOptions, ModelRequest
from parley.providers.registry import ProviderRegistry
from parley.types import Usage, image_urls

_ANSWERING = (TextPart, ReasoningPart, ToolCallPart)


async def call_model(
    providers: ProviderRegistry,
    metrics: Metrics,
    model: str,
    request_of: Callable[[str], ModelRequest],
    *,
    check: Callable[[], None],
) -> AsyncGenerator[ModelEvent, None]:
    """One model call that stores nothing, as its events: ``request_of(model_id)`` is
    sent to ``model``'s provider (``provider/model-id``). The provider's first-token and
    idle timeouts apply, as in a turn: a model that goes quiet ends the call with
    ``UpstreamTimeout``. Closing the generator stops the upstream call at once. ``check``
    is called first, as the first event is asked for: it raises to refuse the call."""
    check()
    provider, model_id = providers.resolve(model)
    first, idle = providers.timeouts(model)
    stream = provider.stream(request_of(model_id))
    call = metrics.upstream_call(providers.provider_of(model), model_id)
    if not (first or idle):
        started = False
        try:
            async for part in stream:
                if type(part) is UsagePart:
                    call.counted(part)
                elif not started and isinstance(part, _ANSWERING):
                    started = True
                    call.first_token()
                yield part
        except BaseException as exc:
            call.failed(exc)
            raise
        finally:
            call.finish()
            await stream.aclose()
        return
    reader = [asyncio.current_task()]  # the task reading the events

    def stop(_: UpstreamTimeout) -> bool:
        if reader[0] is None:
            return False
        reader[0].cancel()
        return True

    clock = StreamClock(stop, first, idle)
    time = asyncio.get_running_loop().time
    try:
        async for part in stream:
            clock.last = time()
            if not clock.started and isinstance(part, _ANSWERING):
                clock.begin()
                call.first_token()
            elif type(part) is UsagePart:
                call.counted(part)
            yield part
            reader[0] = asyncio.current_task()
            clock.last = time()  # a reader slow to come back is not a quiet model
    except asyncio.CancelledError:
        if clock.error is None or reader[0] is None:
            raise
        reader[0].uncancel()
        call.failed(clock.error)
        raise clock.error from None
    except BaseException as exc:
        call.failed(exc)
        raise
    finally:
        clock.stop()
        call.finish()
        await stream.aclose()


async def complete(
    providers: ProviderRegistry,
    metrics: Metrics,
    *,
    model: str,
    messages: list[NewMessage],
    instructions: str | None = None,
    parameters: dict[str, Any] | None = None,
) -> tuple[str, Usage]:
    """One model call that stores nothing (no thread, no run): the answer's text and
    its tokens. For work beside a conversation, such as compaction."""
    providers.check_model(model)
    provider, model_id = providers.resolve(model)
    request = ModelRequest(
        model=model_id,
        messages=[
            ChatMessage(
                role=m.role,
                content=m.content,
                images=image_urls(m.images),
            )
            for m in messages
        ],
        instructions=instructions,
        parameters=dict(parameters or {}),
        options=ModelOptions(tool_choice="none"),
    )
    acc = AnswerAccumulator()
    stream = provider.stream(request)
    call = metrics.upstream_call(providers.provider_of(model), model_id)
    try:
        async for part in stream:
            acc.add(part)
    except BaseException as exc:
        call.failed(exc)
        raise
    finally:
        call.finish(acc.usage)
        await stream.aclose()
    return acc.text, acc.usage
