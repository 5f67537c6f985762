"""``ThreadTarget.after_run``: a turn that goes on after a run's answer, its thread found
before the turn's claim (``Engine.place``), on in that thread or in a branch of it, as the
Responses face's ``previous_response_id`` asks; and a scratch turn named a kept thread,
which goes into a scratch copy of it (a ``store: false`` response in a conversation)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from parley.engine import Engine, NewMessage, RunConfig, ThreadTarget, TurnOutcome
from parley.errors import InvalidRequest, NotFound
from parley.events import FinishPart, ModelEvent, TextPart, ToolCallPart
from parley.providers.base import ModelRequest
from parley.store import threads, users
from parley.types import Role
from tests.engine.inprocess import running_engine


class Echo:
    """Answers with what it was sent, the messages' texts joined; ``hold`` keeps an
    answer from ending until it is set."""

    def __init__(self) -> None:
        self.hold: asyncio.Event | None = None

    async def stream(self, request: ModelRequest) -> AsyncGenerator[ModelEvent, None]:
        yield TextPart("/".join(m.content for m in request.messages))
        if self.hold is not None:
            await self.hold.wait()
        yield FinishPart("stop")


class Calls:
    """Calls the tool ``lookup`` when the last message is the user's; else says "done"."""

    async def stream(self, request: ModelRequest) -> AsyncGenerator[ModelEvent, None]:
        if request.messages[-1].role == "tool":
            yield TextPart("done")
            yield FinishPart("stop")
            return
        yield ToolCallPart(index=0, id="call_1", name="lookup", arguments="{}")
        yield FinishPart("tool_calls")


TOOL = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    async with running_engine(tmp_path, {"echo": Echo(), "calls": Calls()}) as eng:
        yield eng


def said(text: str) -> list[NewMessage]:
    return [NewMessage(role=Role.USER, content=text)]


async def turn(
    engine: Engine, user_id: str, target: ThreadTarget, text: str
) -> tuple[TurnOutcome, str]:
    """A turn of ``text`` at ``target`` to its end: its outcome, and its thread's id."""
    handle = await engine.start_items_turn(
        user_id=user_id, target=target, messages=said(text), config=RunConfig(model="echo/x")
    )
    outcome = await handle.result()
    assert outcome.run.status == "completed", outcome.run
    return outcome, handle.thread_id


def answer(outcome: TurnOutcome) -> str:
    assert outcome.message is not None
    return outcome.message.content


async def contents(engine: Engine, thread_id: str) -> list[str]:
    return [m.content for m in await engine.db.read(threads.thread_context, thread_id=thread_id)]


async def new_user(engine: Engine, name: str = "u") -> Any:
    return (await engine.db.write(users.create_user, name=name)).id


async def test_after_the_last_answer_of_a_thread_the_turn_goes_on_in_it(engine: Engine) -> None:
    user = await new_user(engine)
    first, thread_id = await turn(engine, user, ThreadTarget(), "a")
    second, again = await turn(engine, user, ThreadTarget.after_run(first.run.id), "b")
    assert again == thread_id
    assert answer(second) == "a/a/b"
    assert await contents(engine, thread_id) == ["a", "a", "b", "a/a/b"]


async def test_after_an_earlier_answer_the_turn_goes_on_in_a_branch(engine: Engine) -> None:
    """A run whose answer the thread went on after: a new thread, holding the messages up
    to that answer, and the original left as it was."""
    user = await new_user(engine)
    first, thread_id = await turn(engine, user, ThreadTarget(), "a")
    await turn(engine, user, ThreadTarget.after_run(first.run.id), "b")
    target = ThreadTarget.after_run(first.run.id, metadata={"k": "v"})
    branched, branch_id = await turn(engine, user, target, "c")
    assert branch_id != thread_id
    assert answer(branched) == "a/a/c"
    assert await contents(engine, branch_id) == ["a", "a", "c", "a/a/c"]
    assert await contents(engine, thread_id) == ["a", "a", "b", "a/a/b"]
    branch = await engine.db.read(threads.get_thread, user_id=user, thread_id=branch_id)
    assert branch.metadata == {"k": "v"}


async def test_a_run_nobody_can_continue_is_not_found(engine: Engine) -> None:
    """No such run, another user's, and the run of a scratch thread the face does not
    hold: one neutral error, which names no request field."""
    user, other = await new_user(engine), await new_user(engine, "o")
    theirs, _ = await turn(engine, other, ThreadTarget(), "a")
    scratch, scratch_thread = await turn(engine, user, ThreadTarget(scratch=True), "s")
    for run_id in ("run_nowhere", theirs.run.id, scratch.run.id):
        with pytest.raises(NotFound) as missing:
            await turn(engine, user, ThreadTarget.after_run(run_id), "b")
        assert (missing.value.code, missing.value.param) == ("previous_run_not_found", None)
        assert run_id in missing.value.message
    engine.release_scratch(scratch_thread)


async def test_a_scratch_turn_goes_on_in_the_scratch_thread_its_face_holds(
    engine: Engine,
) -> None:
    """A scratch run the face holds goes on in its thread as a scratch one; a kept turn
    after it is a branch, kept (its thread seen by every read)."""
    user = await new_user(engine)
    first, scratch_thread = await turn(engine, user, ThreadTarget(scratch=True), "a")
    held = ThreadTarget.after_run(first.run.id, scratch=True, held=True)
    second, again = await turn(engine, user, held, "b")
    assert (again, answer(second)) == (scratch_thread, "a/a/b")
    kept_target = ThreadTarget.after_run(second.run.id, held=True)
    kept, kept_thread = await turn(engine, user, kept_target, "c")
    assert kept_thread != scratch_thread and answer(kept) == "a/a/b/a/a/b/c"
    found = await engine.db.read(threads.get_thread, user_id=user, thread_id=kept_thread)
    assert found.id == kept_thread
    with pytest.raises(NotFound):
        await engine.db.read(threads.get_thread, user_id=user, thread_id=scratch_thread)
    engine.release_scratch(scratch_thread)


async def test_a_scratch_turn_after_a_kept_run_is_a_scratch_branch(engine: Engine) -> None:
    user = await new_user(engine)
    first, thread_id = await turn(engine, user, ThreadTarget(), "a")
    target = ThreadTarget.after_run(first.run.id, scratch=True)
    second, scratch_thread = await turn(engine, user, target, "b")
    assert scratch_thread != thread_id and answer(second) == "a/a/b"
    assert await contents(engine, thread_id) == ["a", "a"]
    with pytest.raises(NotFound):
        await engine.db.read(threads.get_thread, user_id=user, thread_id=scratch_thread)
    engine.release_scratch(scratch_thread)


async def test_a_run_still_answering_cannot_be_continued(engine: Engine) -> None:
    user = await new_user(engine)
    echo = engine.providers.resolve("echo/x")[0]
    assert isinstance(echo, Echo)
    echo.hold = asyncio.Event()
    running = await engine.start_items_turn(
        user_id=user, target=ThreadTarget(), messages=said("a"), config=RunConfig(model="echo/x")
    )
    try:
        with pytest.raises(InvalidRequest) as busy:
            await turn(engine, user, ThreadTarget.after_run(running.run_id), "b")
        assert (busy.value.code, busy.value.param) == ("previous_run_in_progress", None)
    finally:
        echo.hold.set()
    echo.hold = None
    await running.result()
    _, thread_id = await turn(engine, user, ThreadTarget.after_run(running.run_id), "b")
    assert thread_id == running.thread_id


async def test_a_scratch_turn_named_a_kept_thread_goes_into_a_copy_of_it(engine: Engine) -> None:
    user = await new_user(engine)
    _, thread_id = await turn(engine, user, ThreadTarget(), "a")
    target = ThreadTarget(thread_id=thread_id, scratch=True)
    assert not target.placed
    placed = await engine.place(user_id=user, target=target)
    assert (placed.thread_id, placed.fork_after, placed.placed) == (thread_id, 2, True)
    copied, scratch_thread = await turn(engine, user, target, "b")
    assert scratch_thread != thread_id and answer(copied) == "a/a/b"
    assert await contents(engine, thread_id) == ["a", "a"]
    with pytest.raises(NotFound):
        await engine.db.read(threads.get_thread, user_id=user, thread_id=scratch_thread)
    engine.release_scratch(scratch_thread)


async def test_placing_checks_the_thread_is_the_callers(engine: Engine) -> None:
    user, other = await new_user(engine), await new_user(engine, "o")
    _, theirs = await turn(engine, other, ThreadTarget(), "a")
    for thread_id in ("thread_nowhere", theirs):
        with pytest.raises(NotFound) as missing:
            await engine.place(user_id=user, target=ThreadTarget(thread_id=thread_id))
        assert missing.value.code == "thread_not_found"
    new = ThreadTarget(scratch=True)
    assert await engine.place(user_id=user, target=new) is new


async def test_outputs_to_one_call_sent_at_once_are_taken_once(engine: Engine) -> None:
    """Both placed before either claim: into the same thread, where the claims take one
    output and refuse the other; sent again later, it is refused too."""
    user = await new_user(engine)
    handle = await engine.start_items_turn(
        user_id=user,
        target=ThreadTarget(),
        messages=said("go"),
        config=RunConfig(model="calls/x", tools=[TOOL]),
    )
    asked = await handle.result()
    assert asked.run.status == "action_required", asked.run
    output = [NewMessage(role=Role.TOOL, content="42", tool_call_id="call_1")]
    after = ThreadTarget.after_run(asked.run.id)
    targets = [await engine.place(user_id=user, target=after) for _ in range(2)]
    assert targets[0] == targets[1] == ThreadTarget(thread_id=handle.thread_id)
    results = await asyncio.gather(
        *(
            engine.start_items_turn(
                user_id=user, target=t, messages=output, config=RunConfig(model="calls/x")
            )
            for t in targets
        ),
        return_exceptions=True,
    )
    taken = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BaseException)]
    assert len(taken) == 1 and len(refused) == 1, results
    # Refused as taken (the first's turn ended) or as busy (it still runs): never twice.
    assert getattr(refused[0], "code", None) in ("duplicate_tool_output", "thread_busy")
    await taken[0].result()
    outputs = [
        m
        for m in await engine.db.read(threads.thread_context, thread_id=handle.thread_id)
        if m.role == Role.TOOL
    ]
    assert len(outputs) == 1
    # Sent again after the answer: the answer of the run that called holds the output
    # taken (a tool output is its caller's), so even a branch there has it already.
    with pytest.raises(InvalidRequest) as again:
        await engine.start_items_turn(
            user_id=user, target=after, messages=output, config=RunConfig(model="calls/x")
        )
    assert again.value.code == "duplicate_tool_output"
