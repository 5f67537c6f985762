"""The mutable state of one turn in progress, shared by its task and the engine.

A ``Turn`` never leaves ``parley.engine``: faces see a ``TurnHandle``. Its events get a
per-run sequence number and go to the live channel at once (``emit``); they reach the
database's event log at every checkpoint (``engine.checkpoints``) and when the turn ends
(``engine.settling``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from parley.engine.budget import budget_left
from parley.engine.bus import RedisBus
from parley.engine.early import EarlyStart
from parley.engine.hub import Entry, RunChannel
from parley.engine.stream_clock import StreamClock
from parley.engine.thread_item import Item
from parley.engine.usage import UsageSource
from parley.errors import UpstreamTimeout
from parley.providers.accumulator import AnswerAccumulator
from parley.store.records import Run
from parley.types import ToolCall, Usage

if TYPE_CHECKING:
    from parley.engine.hosted.approvals import Approved
    from parley.engine.hosted.toolbox import Ran, Toolbox

#: Seconds from a turn's claim to the first save of its text by a checkpoint
#: (``checkpoints.TEXT_MAX_SECONDS`` says how the saves space out after it).
TEXT_SECONDS = 1.0


class TurnStopped(Exception):
    """The run left ``in_progress`` under the turn (cancelled from elsewhere)."""


@dataclass(slots=True)
class Behind:
    """A round of the turn (an answer whose calls the server ran, and their results) being
    written while the turn's next model call goes on (``Settler.next_round``): the write,
    the round's events, and what the turn was before the round, put back if nothing was
    written."""

    write: asyncio.Future[list[Item] | None]
    entries: list[Entry]
    #: The turn's context before the round's messages.
    base: int
    message_id: str
    acc: AnswerAccumulator
    ran: list[Ran]
    spent: Usage
    #: Set once the write ended: True when it wrote the round.
    landed: bool | None = None


@dataclass(slots=True)
class Answer:
    """The answer the turn is building: its current message's parts, and what its rounds
    (model calls) came to so far."""

    acc: AnswerAccumulator = field(default_factory=AnswerAccumulator)
    #: Model calls made so far, and the tokens of those already finished.
    rounds: int = 1
    spent: Usage = field(default_factory=Usage)
    #: Calls the turn fails with, stored with their tool errors (``MAX_CALL_ROUNDS``).
    unanswered: list[ToolCall] = field(default_factory=list)
    #: Set when the run's output token budget was used up before the model call the turn
    #: was about to make (``engine.budget``): the turn ends without it.
    out_of_budget: bool = False
    #: Messages of the thread its last model call left out (``engine.context``); None
    #: before the turn's first call.
    dropped: int | None = None
    #: Set when a summary call to compact the turn's context failed: not tried again.
    compaction_failed: bool = False

    def texts(self) -> tuple[str, str | None, list[list[Any]] | None]:
        """The answer and reasoning so far, and their order (``AnswerAccumulator.layout``)."""
        acc = self.acc
        return acc.text, acc.reasoning or None, acc.layout

    def usage(self) -> Usage:
        """The tokens of this turn's model calls."""
        return self.spent + self.acc.usage

    def call_usage(self) -> dict[str, int] | None:
        """The tokens of the model call that wrote the turn's current message, as stored
        with it; None when the turn made no call for it."""
        return None if self.out_of_budget else self.acc.usage.model_dump()

    def provider_state(self, provider: str) -> dict[str, Any] | None:
        """What the adapter asked to keep with the answer, marked with ``provider``, the
        name of its provider."""
        state = self.acc.state
        if not state:
            return None
        return {**state, "provider": provider}


@dataclass(slots=True)
class TurnLog:
    """Where the turn's events and text are: their sequence numbers, those not yet in the
    database's log, when its text and its lease were last saved, and the last round's write
    while it goes on (``engine.checkpoints``, ``engine.settling``)."""

    #: Sequence number of the last event emitted.
    seq: int
    #: Events emitted but not yet in the database's log.
    unsaved: list[Entry] = field(default_factory=list)
    #: When the oldest of ``unsaved`` was emitted (``time.monotonic``), or earlier: a
    #: checkpoint saves it within ``checkpoint_seconds`` of that (``engine.checkpoints``).
    unsaved_since: float = 0.0
    #: When the run's lease was last renewed (``time.monotonic``; the claim sets it first):
    #: the heartbeat renews it once a beat.
    renewed: float = field(default_factory=time.monotonic)
    #: When a checkpoint last saved the message's text (``time.monotonic``; from the claim,
    #: which stores the message); it does so next once ``text_gap`` has passed
    #: (``turn.TEXT_SECONDS``).
    text_saved: float = field(default_factory=time.monotonic)
    text_gap: float = TEXT_SECONDS
    #: The sequence number of the turn's last event when its text was last saved (at
    #: first the claim's): a turn with events since has text to save, even once nothing
    #: new streams.
    text_seq: int = field(init=False)
    #: The last round's write, while it goes on behind the next model call.
    behind: Behind | None = None
    #: Events of this loop iteration still to go to followers on other replicas.
    remote_batch: list[Entry] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.text_seq = self.seq

    def record(self, event: Any) -> Entry:
        """Number the event and queue it for the log, without publishing it."""
        return self.record_json(event.type, event.model_dump_json())

    def record_json(self, kind: str, data: str) -> Entry:
        """``record`` of an event already written as JSON (``data``, of type ``kind``)."""
        self.seq += 1
        entry = (self.seq, kind, data)
        if not self.unsaved:
            self.unsaved_since = time.monotonic()
        self.unsaved.append(entry)
        return entry

    def take(self) -> list[Entry]:
        """The events not yet in the log, for a write to log them (``put_back`` if not)."""
        entries, self.unsaved = self.unsaved, []
        return entries

    def put_back(self, entries: list[Entry], since: float = 0.0) -> None:
        """Queue again, before the newer ones, events a write took and did not log;
        ``since``: when the oldest was sent (0: long ago, the next checkpoint saves them)."""
        self.unsaved = entries + self.unsaved
        self.unsaved_since = since


@dataclass(slots=True)
class HostedState:
    """The turn's hosted tools (``engine.hosted``): what it was given for them, the open
    toolbox, and the calls of its current answer."""

    #: Headers a request brought for the servers of its hosted tools, by server label:
    #: held here only, never stored.
    secrets: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    #: The turn's hosted tools, once open; None: its run has none.
    box: Toolbox | None = None
    #: The hosted calls of the current answer that the turn ran, stored with it.
    ran: list[Ran] = field(default_factory=list)
    #: The hosted calls of the current answer that wait for the client's approval: the id
    #: of each one's approval request, by call id.
    approvals: dict[str, str] = field(default_factory=dict)
    #: Hosted calls the turn's messages approved: run before its first model call.
    approved: list[Approved] = field(default_factory=list)

    def items(self) -> dict[str, dict[str, Any]]:
        """The items of the hosted calls the turn ran, by call id."""
        return {r.call_id: r.item for r in self.ran}

    def stored_calls(self, calls: list[ToolCall]) -> list[dict[str, Any]]:
        """The answer's calls as stored: a hosted one marked with its server and tool."""
        if self.box is None:
            return [c.model_dump() for c in calls]
        ran = {r.call_id: r.item["id"] for r in self.ran}
        box, asked = self.box, self.approvals
        return [box.stored(c, ran.get(c.id), asked.get(c.id)) for c in calls]


@dataclass(eq=False)
class Turn:
    """One turn in progress: the run and message it writes, the context it sends, how it
    is run and stopped, and its three records: ``answer`` (what it is building), ``log``
    (where its events are), ``hosted`` (its hosted tools)."""

    run: Run
    message_id: str
    #: The thread's messages before the turn's own (``engine.history``).
    context: list[Item]
    channel: RunChannel
    log: TurnLog
    answer: Answer = field(default_factory=Answer)
    hosted: HostedState = field(default_factory=HostedState)
    #: Why the task is being cancelled: "cancel" (user), "shutdown", or "remote".
    stop_reason: str | None = None
    #: Set once the turn writes its end: from then on it is not interrupted.
    settling: bool = False
    task: asyncio.Task[None] | None = None
    #: The upstream call, when it was started before the claim (``engine.early``).
    early: EarlyStart | None = None
    #: Set when a follower on another replica watches this run (``engine.bus``).
    remote: RedisBus | None = None
    #: The timeouts of the model call in progress.
    clock: StreamClock | None = None
    #: Whom the turn's tokens count against (``engine.usage``); None: not counted.
    source: UsageSource | None = None

    def stop_model(self, _: UpstreamTimeout) -> bool:
        """Stop the turn for a model that went quiet (``StreamClock``), unless it is
        writing its end."""
        if self.settling or self.task is None:
            return False
        self.task.cancel()
        return True

    def run_totals(self) -> dict[str, int]:
        """The run's token counts with this turn's added, and the messages its last model
        call left out (when it made one)."""
        used, run = self.answer.usage(), self.run
        totals = {
            "input_tokens": run.input_tokens + used.input_tokens,
            "output_tokens": run.output_tokens + used.output_tokens,
            "reasoning_tokens": run.reasoning_tokens + used.reasoning_tokens,
            "cached_tokens": run.cached_tokens + used.cached_tokens,
        }
        if self.answer.dropped is not None:
            totals["dropped_messages"] = self.answer.dropped
        return totals

    def tool_errors(self, calls: list[ToolCall]) -> list[tuple[str, str]]:
        """``(call id, tool error)`` of the calls whose arguments could not be read, and
        ``(call id, result)`` of the hosted calls the turn ran."""
        invalid = self.answer.acc.invalid
        errors = [(c.id, invalid[c.id]) for c in calls if c.id in invalid]
        return errors + [(r.call_id, r.content) for r in self.hosted.ran]

    def budget_left(self) -> int | None:
        """What the run's next model call may use of its output token budget (None: the
        run has none): the budget less the run's earlier turns and this turn's calls."""
        used = self.run.output_tokens + self.answer.spent.output_tokens
        return budget_left(self.run.options, used)

    def emit(self, event: Any) -> None:
        """Number, queue for the log, and publish to live followers at once."""
        self.emit_json(event.type, event.model_dump_json())

    def emit_json(self, kind: str, data: str) -> None:
        """``emit`` of an event already written as JSON (``data``, of type ``kind``): the
        text deltas of an answer, made without a model each (``engine.streaming``)."""
        entry = self.log.record_json(kind, data)
        self.channel.publish(entry)
        if self.remote is not None:
            self._to_remote([entry])

    def publish_closing(self, entries: list[Entry]) -> None:
        """Publish the committed end of the turn, and close its channel."""
        self.channel.publish_many(entries)
        self.channel.close()
        if self.remote is not None:
            self._to_remote(entries)

    def _to_remote(self, entries: list[Entry]) -> None:
        # Entries of one loop iteration go out as one message.
        batch = self.log.remote_batch
        if not batch:
            asyncio.get_running_loop().call_soon(self._flush_remote)
        batch.extend(entries)

    def _flush_remote(self) -> None:
        batch, self.log.remote_batch = self.log.remote_batch, []
        if batch and self.remote is not None:
            self.remote.publish(self.run.id, batch)
