"""Early starts: the upstream call of a turn on a new thread, begun while the turn is still
being claimed in the database, so the claim's time hides behind the model's.

Only a turn on a new thread qualifies, as its whole context is known before the claim:
- a native first turn: the new user message and the assistant's configuration, as last
  read by a claim of this process (``first_turn_request``);
- a turn from items (the OpenAI faces) on a new thread, whose messages are plain text
  and images (no files), no tool calls or results (``items_request``): a claim that could refuse
  them must not follow a call already made.

A call the model's context window could not take whole is not begun early (the turn cuts
the context, or fails before any call). The claim gives the run and its context; the
early call is kept only if the request the turn would have sent is the one already sent
(``fits``), and nothing of it reaches a client before the claim has committed. A failed
claim, or a request that changed (an assistant edited meanwhile), discards it at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, Callable

from parley.engine.budget import call_parameters
from parley.engine.context import Window, always_sent, answer_room, fit_start
from parley.engine.inputs import NewMessage, RunConfig
from parley.errors import ParleyError
from parley.events import ModelEvent
from parley.providers.base import ChatMessage, ModelOptions, ModelRequest
from parley.providers.registry import ProviderRegistry
from parley.store.records import Assistant
from parley.types import Role, ToolSpec, file_entries, image_urls


def first_turn_request(assistant: Assistant, content: str, model_id: str) -> ModelRequest:
    """What a native first turn of ``assistant`` on a new thread sends."""
    return ModelRequest(
        model=model_id,
        messages=[ChatMessage(role=Role.USER, content=content)],
        instructions=assistant.instructions,
        tools=[ToolSpec.model_validate(t) for t in assistant.tools],
        parameters=dict(assistant.parameters),
    )


def items_request(
    config: RunConfig, messages: list[NewMessage], model_id: str
) -> ModelRequest | None:
    """What a turn from ``messages`` on a new thread sends; None when a message holds tool
    calls or results (the claim checks those, and may refuse them)."""
    chat: list[ChatMessage] = []
    for m in messages:
        if m.tool_calls or m.tool_call_id is not None:
            return None
        if m.role == Role.ASSISTANT and not m.content:
            return None  # the turn leaves such a message out; not worth following here
        if file_entries(m.images):
            return None  # its files are read for the call once the turn is claimed
        chat.append(
            ChatMessage(
                role=Role(m.role),
                content=m.content,
                reasoning=m.reasoning,
                images=image_urls(m.images),
            )
        )
    return ModelRequest(
        model=model_id,
        messages=chat,
        instructions=config.instructions,
        tools=[ToolSpec.model_validate(t) for t in config.tools],
        parameters=call_parameters(config.parameters, config.options, 0),
        options=ModelOptions.of(config.options),
    )


class EarlyStart:
    def __init__(self, request: ModelRequest, stream: AsyncGenerator[ModelEvent, None]) -> None:
        self.request = request
        self.stream = stream
        #: When the call began (``time.perf_counter()``), for the metrics.
        self.began = time.perf_counter()
        self.first: asyncio.Task[ModelEvent | None] = asyncio.create_task(_first(stream))

    @classmethod
    def begin(
        cls,
        providers: ProviderRegistry,
        model: str,
        request_for: Callable[[str], ModelRequest | None],
    ) -> EarlyStart | None:
        """The call ``request_for(model_id)`` describes, begun now; None when it gives no
        request, or the model is not there (the claim reports that)."""
        try:
            provider, model_id = providers.resolve(model)
        except ParleyError:
            return None
        request = request_for(model_id)
        if request is None:
            return None
        window = providers.context_window(model)
        if window is not None and not _fits_whole(request, window):
            return None  # the turn cuts it, or fails it before any call
        return cls(request, provider.stream(request))

    def fits(self, request: ModelRequest) -> bool:
        """Whether ``request``, what the claimed turn sends, is the call already made."""
        return request == self.request

    async def discard(self) -> None:
        self.first.cancel()
        with contextlib.suppress(BaseException):
            await self.first
        with contextlib.suppress(Exception):
            await self.stream.aclose()


def _fits_whole(request: ModelRequest, window: int) -> bool:
    """Whether the turn would send ``request`` as it is to a model of ``window`` tokens
    (``engine.context``)."""
    tools = [t.model_dump(mode="json") for t in request.tools]
    limit = Window(window, answer_room(window, request.parameters.get("max_tokens")))
    try:
        fixed = always_sent(request.instructions, tools)
        return fit_start(request.messages, {}, fixed, window=limit) == 0
    except ParleyError:
        return False


async def _first(stream: AsyncGenerator[ModelEvent, None]) -> ModelEvent | None:
    try:
        return await anext(stream)
    except StopAsyncIteration:
        return None
