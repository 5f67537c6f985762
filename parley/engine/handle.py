"""What a face holds of a turn it started: ``TurnHandle``, and the turn's ``TurnOutcome``.

Every face (the native routes, and each protocol's) starts a turn through ``Engine`` and gets
a handle back. The handle is all it needs::

    turn = await engine.start_first_turn(user_id=..., assistant_id=..., content=...)
    turn.run_id, turn.thread_id, turn.message_id       # ids, for headers and bodies
    async for batch in turn.events():                   # (seq, type, json) entries, live
        ...
    outcome = await turn.result()                       # run, message, pending actions, usage,
                                                        # the items of the tools the server ran
    turn.when_done(callback)                            # e.g. give back a rate-limit slot
    await turn.cancel()

The engine's ``Turn`` (``engine.turn``), mutable and shared with its task, stays inside
``parley.engine``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import orjson
from sqlalchemy.engine import Connection

from parley.config import Settings
from parley.engine.hub import Entry, Followed
from parley.errors import NotFound
from parley.store import runs as run_store
from parley.store import threads as thread_store
from parley.store.db import Database
from parley.store.records import Action, Message, Run
from parley.types import ActionStatus, Usage

if TYPE_CHECKING:
    from parley.engine.turn import Turn


class TurnOwner(Protocol):
    """What a handle asks of the engine that started its turn (``Engine`` is one): the
    database its outcome is read from, the keep-alive interval, the run's event log, and
    cancelling the run."""

    db: Database
    settings: Settings

    def follow(self, run_id: str, *, after: int) -> AsyncIterator[list[Entry]]: ...

    async def cancel(self, *, user_id: str, run_id: str) -> Run: ...


@dataclass(frozen=True, slots=True)
class TurnOutcome:
    """How a turn ended: the run as stored, the turn's answer message, the actions left
    pending (when it asked for tools), the tokens of every model call of the turn, and the
    items of the tools the server ran in it (``hosted_items``)."""

    run: Run
    message: Message | None
    actions: list[Action]
    usage: Usage
    items: list[dict[str, Any]]


class TurnHandle:
    """One turn started by the engine, seen from outside it."""

    __slots__ = ("_engine", "_turn")

    def __init__(self, engine: TurnOwner, turn: Turn) -> None:
        self._engine = engine
        self._turn = turn

    @property
    def run_id(self) -> str:
        return self._turn.run.id

    @property
    def run(self) -> Run:
        """The run as the turn claimed it (a snapshot: ``result()`` reads it as it ends)."""
        return self._turn.run

    @property
    def thread_id(self) -> str:
        return self._turn.run.thread_id

    @property
    def message_id(self) -> str:
        """The id of the assistant message this turn writes."""
        return self._turn.message_id

    @property
    def first_seq(self) -> int:
        """The sequence number of this turn's first event; earlier ones are earlier turns'."""
        return self._turn.channel.first_seq

    def events(self, *, after: int | None = None) -> AsyncIterator[list[Entry]]:
        """Batches of the run's events with sequence numbers above ``after`` (by default,
        this turn's from its first), live until the turn ends. An empty batch means
        nothing happened for a keep-alive interval. This turn's own events can be written
        by the turn itself to a stream's ``FrameSink`` while their reader waits
        (``write_to``, ``engine.tap``); an earlier turn's, read from the log, cannot."""
        channel = self._turn.channel
        start = channel.first_seq - 1 if after is None else after
        if start + 1 < channel.first_seq:  # earlier turns' events: the log first
            return self._engine.follow(self.run_id, after=start)
        return Followed(channel, start, self._engine.settings.keepalive_seconds)

    async def result(self) -> TurnOutcome:
        """Wait for the turn to end (without tying it to the caller) and read its outcome."""
        turn = self._turn
        if turn.task is not None:
            await asyncio.shield(asyncio.wait([turn.task]))
        usage = turn.answer.usage()
        items = hosted_items(turn.channel.entries)
        return await self._engine.db.read(
            _outcome, run_id=turn.run.id, message_id=turn.message_id, usage=usage, items=items
        )

    def when_done(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once the turn has ended (at once if it has)."""
        task = self._turn.task
        if task is None or task.done():
            callback()
        else:
            task.add_done_callback(lambda _: callback())

    async def cancel(self) -> Run:
        """Cancel the run; the model call stops at once, the text so far is kept."""
        run = self._turn.run
        return await self._engine.cancel(user_id=run.user_id, run_id=run.id)


def hosted_items(entries: list[Entry]) -> list[dict[str, Any]]:
    """The items of the tools the server ran (an MCP server's tool list, a call), each as it
    ended, in order: from a turn's ``hosted_tool`` events."""
    items = []
    for _, kind, data in entries:
        if kind == "hosted_tool":
            event = orjson.loads(data)
            if event.get("phase") == "done":
                items.append(event["item"])
    return items


def _outcome(
    conn: Connection, *, run_id: str, message_id: str, usage: Usage, items: list[dict[str, Any]]
) -> TurnOutcome:
    run = run_store.get_run(conn, run_id=run_id)
    message: Message | None = None
    with contextlib.suppress(NotFound):
        message = thread_store.get_message(
            conn, user_id=run.user_id, message_id=message_id, scratch=True
        )
    pending = run_store.list_actions(conn, run_id=run.id, status=ActionStatus.PENDING)
    return TurnOutcome(run=run, message=message, actions=pending, usage=usage, items=items)
