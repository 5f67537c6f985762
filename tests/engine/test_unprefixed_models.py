"""Runs whose model names no provider (``x``: the default provider's): the model is stored
as given, the turn goes to the default provider, and what that provider keeps with an answer
is marked with its own name, so it goes back to it however a later run names the model."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from parley.engine import Engine
from parley.events import FinishPart, ModelEvent, StatePart, TextPart, ToolCallPart
from parley.providers.base import ModelRequest
from parley.store import assistants, threads, users
from tests.engine.inprocess import running_engine

LOOKUP = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}


class Keeper:
    """A provider that hands state back: on a user message it calls ``lookup`` and asks to
    keep ``{"sig": "s1"}``; after a tool result it answers. Every request is noted."""

    def __init__(self) -> None:
        self.requests: list[ModelRequest] = []

    def stream(self, request: ModelRequest) -> AsyncGenerator[ModelEvent, None]:
        self.requests.append(request)
        return self._answer(request)

    async def _answer(self, request: ModelRequest) -> AsyncGenerator[ModelEvent, None]:
        if request.messages[-1].role == "tool":
            yield TextPart(f"it is {request.messages[-1].content}")
            yield FinishPart("stop")
            return
        yield StatePart({"sig": "s1"})
        yield ToolCallPart(index=0, id="call_1", name="lookup", arguments="{}")
        yield FinishPart("tool_calls")


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    async with running_engine(tmp_path, {"keeper": Keeper()}, default_provider="keeper") as eng:
        yield eng


def keeper_of(engine: Engine) -> Keeper:
    keeper = engine.providers.resolve("keeper/x")[0]
    assert isinstance(keeper, Keeper)
    return keeper


async def _tool_round(engine: Engine, user_id: str, thread_id: str, assistant_id: str) -> Any:
    """A run of the assistant on the thread, through its tool call to its answer."""
    await engine.add_message(user_id=user_id, thread_id=thread_id, content="what?")
    run = await engine.create_run(user_id=user_id, thread_id=thread_id, assistant_id=assistant_id)
    first = await (await engine.start_turn(user_id=user_id, run_id=run.id)).result()
    assert first.run.status == "action_required", first.run
    (action,) = first.actions  # a call id already used in the thread gets a fresh one
    outputs = [(action.tool_call_id, "42")]
    await engine.submit_tool_outputs(user_id=user_id, run_id=run.id, outputs=outputs)
    return await (await engine.start_turn(user_id=user_id, run_id=run.id)).result()


async def test_a_run_of_an_unprefixed_model_goes_to_the_default_provider(engine: Engine) -> None:
    user = await engine.db.write(lambda c: users.create_user(c, name="u"))

    def create(model: str) -> Any:
        return lambda c: assistants.create_assistant(
            c,
            user_id=user.id,
            name="b",
            model=model,
            instructions=None,
            tools=[LOOKUP],
            parameters={},
            metadata={},
        )

    bot = await engine.db.write(create("some-model"))
    thread = await engine.db.write(lambda c: threads.create_thread(c, user_id=user.id, metadata={}))
    outcome = await _tool_round(engine, user.id, thread.id, bot.id)
    assert outcome.run.status == "completed"
    assert outcome.run.model == "some-model"  # stored as given
    assert outcome.message is not None and outcome.message.content == "it is 42"
    keeper = keeper_of(engine)
    first, second = keeper.requests
    assert first.model == second.model == "some-model"
    # The state is the provider's, under its name; it goes back with the call.
    call = next(m for m in second.messages if m.tool_calls)
    assert call.provider_state == {"sig": "s1", "provider": "keeper"}

    # Named with its provider, the model is the same provider's: the state still goes back.
    keeper.requests.clear()
    prefixed = await engine.db.write(create("keeper/some-model"))
    outcome = await _tool_round(engine, user.id, thread.id, prefixed.id)
    assert outcome.run.status == "completed"
    first_call = next(m for m in keeper.requests[0].messages if m.tool_calls)
    assert first_call.provider_state == {"sig": "s1", "provider": "keeper"}
