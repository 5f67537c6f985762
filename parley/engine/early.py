"""Early starts: the upstream call of a new thread's first turn, begun while the turn is
still being claimed in the database, so the claim's time hides behind the model's.

Only a first turn on a new thread qualifies: its whole context is the new user message and
the assistant's configuration, known from the last time this process claimed a turn of that
assistant. The claim reads the assistant again; the early call is kept only if nothing
changed, and nothing of it reaches a client before the claim has committed. A failed claim
(or a changed assistant) discards it at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

from parley.errors import ParleyError
from parley.events import ModelEvent
from parley.providers.base import ChatMessage, ModelRequest
from parley.providers.registry import ProviderRegistry
from parley.store.records import Assistant
from parley.types import Role, ToolSpec


@dataclass(frozen=True, slots=True)
class AssistantView:
    """What a turn takes from its assistant."""

    user_id: str
    model: str
    instructions: str | None
    tools: tuple[Any, ...]
    parameters: tuple[tuple[str, Any], ...]

    @classmethod
    def of(cls, a: Assistant) -> AssistantView:
        return cls(
            user_id=a.user_id,
            model=a.model,
            instructions=a.instructions,
            tools=tuple(repr(t) for t in a.tools),
            parameters=tuple(sorted((k, repr(v)) for k, v in a.parameters.items())),
        )


class EarlyStart:
    def __init__(self, view: AssistantView, stream: AsyncGenerator[ModelEvent, None]) -> None:
        self.view = view
        self.stream = stream
        self.first: asyncio.Task[ModelEvent | None] = asyncio.create_task(_first(stream))

    @classmethod
    def begin(
        cls, providers: ProviderRegistry, assistant: Assistant, content: str
    ) -> EarlyStart | None:
        try:
            provider, model_id = providers.resolve(assistant.model)
        except ParleyError:
            return None  # the normal path reports it
        request = ModelRequest(
            model=model_id,
            messages=[ChatMessage(role=Role.USER, content=content)],
            instructions=assistant.instructions,
            tools=[ToolSpec.model_validate(t) for t in assistant.tools],
            parameters=dict(assistant.parameters),
        )
        return cls(AssistantView.of(assistant), provider.stream(request))

    def fits(self, assistant: Assistant) -> bool:
        return AssistantView.of(assistant) == self.view

    async def parts(self) -> AsyncGenerator[ModelEvent, None]:
        first = await self.first
        if first is None:
            return
        yield first
        async for part in self.stream:
            yield part

    async def discard(self) -> None:
        self.first.cancel()
        with contextlib.suppress(BaseException):
            await self.first
        with contextlib.suppress(Exception):
            await self.stream.aclose()


async def _first(stream: AsyncGenerator[ModelEvent, None]) -> ModelEvent | None:
    try:
        return await anext(stream)
    except StopAsyncIteration:
        return None
