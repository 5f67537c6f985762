"""The vocabulary of the terminal client's conversations: what one model turn and one whole
exchange (a user message and the turns and tool calls it leads to) produced, and the
``ChatOutput`` protocol through which the processor shows them. No I/O here.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from parley.events import ActionItem, Event
from parley.sdk import TurnAccumulator

if TYPE_CHECKING:
    from parley.errors import ParleyError

__all__ = [
    "Answer",
    "ChatOutput",
    "ExchangeResult",
    "StopReason",
    "ToolRecord",
    "TurnState",
]

StopReason = Literal["interrupted", "timeout"]
#: A confirmation's answer: run it, do not, run it and do not ask again for this tool.
Answer = Literal["yes", "no", "always"]
#: Events that count as the model's chunks for the first-chunk and idle timeouts.
CHUNK_EVENTS = frozenset(
    {"content.delta", "reasoning.delta", "tool_calls", "hosted_tool", "error", "done"}
)


# ------------------------------------------------------------------------ results


@dataclass(frozen=True)
class ToolRecord:
    """One tool call of an exchange and the text sent back for it."""

    tool_call_id: str
    name: str
    arguments: Mapping[str, Any]
    output: str
    is_error: bool
    #: The result as shown (``output`` without the ``Error:`` prefix added for the model).
    text: str = ""
    kind: str = "ok"


class TurnState(TurnAccumulator):
    """One model turn as it streams (the seed's ``StreamingResponseHandler`` state): the
    SDK's ``TurnAccumulator`` plus the clock the timeouts read and why the turn stopped."""

    def __init__(self) -> None:
        super().__init__()
        self.started_at = time.monotonic()
        self.first_chunk_at: float | None = None
        self.last_chunk_at: float | None = None
        self.interrupted = False
        self.timed_out: str | None = None

    def add(self, event: Event) -> None:
        if event.type in CHUNK_EVENTS:
            now = time.monotonic()
            self.last_chunk_at = now
            if self.first_chunk_at is None:
                self.first_chunk_at = now
        super().add(event)

    @property
    def stopped(self) -> StopReason | None:
        if self.interrupted:
            return "interrupted"
        return "timeout" if self.timed_out else None


@dataclass
class ExchangeResult:
    """What one user message led to, across its turns."""

    thread_id: str
    run_id: str | None = None
    texts: list[str] = field(default_factory=list)
    input_tokens: int = 0
    output_tokens: int = 0
    status: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    stopped: StopReason | None = None
    note: str | None = None
    #: The error came from a failed request, not from an ``error`` event.
    raised: bool = False
    turns: int = 0
    tool_results: list[ToolRecord] = field(default_factory=list)
    started_at: float = field(default_factory=time.monotonic)
    elapsed: float = 0.0

    @property
    def text(self) -> str:
        return "\n\n".join(t for t in self.texts if t)

    @property
    def ok(self) -> bool:
        return self.stopped is None and self.error_message is None and self.status == "completed"

    def add_turn(self, turn: TurnState) -> None:
        self.turns += 1
        self.run_id = turn.run_id or self.run_id
        self.texts.append("".join(turn.text))
        self.input_tokens += turn.usage.input_tokens
        self.output_tokens += turn.usage.output_tokens
        self.status = turn.status or self.status
        if turn.error is not None:
            self.error_code, self.error_message = turn.error.code, turn.error.message
        self.stopped = turn.stopped
        if turn.timed_out:
            self.note = turn.timed_out

    def fail(self, exc: ParleyError) -> None:
        self.error_code, self.error_message = exc.code, exc.message
        self.raised = True


# ------------------------------------------------------------------------- output


class ChatOutput(Protocol):
    """Where an exchange is shown (``parley.terminal.output`` has the implementations).

    Methods are called from the event loop, in this order: ``begin``; per model turn
    ``turn_started`` then ``event`` for each event; per tool round ``tool_calls``, then
    ``tool_started`` / ``tool_finished`` per call (concurrently: any order), ``confirm`` for
    calls that need it, ``ask`` for a call the server runs once approved (hosted MCP);
    ``notice`` for side remarks; ``finished`` once.
    """

    @property
    def can_confirm(self) -> bool:
        """Whether a user is there to answer ``confirm``."""
        ...

    def begin(self) -> None: ...

    def turn_started(self, turn: int) -> None: ...

    def event(self, event: Event) -> None: ...

    def tool_calls(self, actions: Sequence[ActionItem]) -> None: ...

    def tool_started(self, action: ActionItem) -> None: ...

    def tool_finished(self, action: ActionItem, record: ToolRecord) -> None: ...

    async def confirm(self, name: str, arguments: Mapping[str, Any]) -> Answer: ...

    async def ask(self, text: str) -> Answer:
        """The user's answer to the yes/no question ``text`` (no when nobody can answer)."""
        ...

    def notice(self, text: str, *, error: bool = False) -> None: ...

    def finished(self, result: ExchangeResult) -> None: ...
