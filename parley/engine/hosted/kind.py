"""The interface every hosted tool kind implements, and the approval wrapper any kind can
have.

A kind (``mcp``, ``file_search``, ``code_interpreter``, ``web_search``: one module each) is
named by the entry ``type`` of a run's ``tools`` it serves. At a turn's start it opens the
turn's entries of its type as a ``Toolset`` (``Kind.open``: a file search waits for its
stores, an MCP server's tools are listed). A toolset holds the ``Tool`` s the model sees, one
function each, and the records it made before the model call (``ahead``: tool lists). The
turn's ``Toolbox`` holds the toolsets of its kinds and knows none of them by name::

    Kind ──open(entries, turn, services)──▶ Toolset ──tools──▶ Tool ──call──▶ Ran
                                               │                 │       (record, told)
                                               └── ahead          └── Approving(Tool)

A ``Tool`` says what the model sees (``spec``, its ``name`` with a ``fallback`` when a
client function has it), what a stored call is marked with (``mark``), what an approval
says of it (``about``), and runs a call (``call``: bounded, cancellable, its
``HostedToolEvent`` s emitted as it starts and ends). What it stores is a typed record
(``hosted.records``); what the model is told is ``Ran.content``.

A tool that needs the client's approval is wrapped in ``Approving``: the turn pauses on
its calls, and runs them once approved (``Toolbox.run_approved``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from parley.events import HostedToolEvent
from parley.store.records import Run
from parley.types import ToolCall, ToolSpec

if TYPE_CHECKING:
    from parley.engine.hosted.approvals import Approved
    from parley.engine.hosted.records import Record
    from parley.engine.hosted.services import Services
    from parley.engine.usage import UsageSource


@dataclass(frozen=True, slots=True)
class TurnView:
    """What a turn shows its hosted tools: its run, whom it is for, the headers its request
    brought for their servers (by server label, never stored), the calls its messages
    approved, and where its events go."""

    run: Run
    emit: Callable[[Any], None]
    source: UsageSource | None = None
    secrets: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    approved: Sequence[Approved] = ()

    def started(self, record: Record) -> None:
        """Tell the turn's followers a hosted item started (``record``, in progress)."""
        self.emit(HostedToolEvent(run_id=self.run.id, phase="started", item=record.to_stored()))

    def done(self, record: Record) -> None:
        """Tell the turn's followers a hosted item ended."""
        self.emit(HostedToolEvent(run_id=self.run.id, phase="done", item=record.to_stored()))


@dataclass(frozen=True, slots=True)
class Ran:
    """A hosted call the turn ran: what the model is told, and the record it stores."""

    call_id: str
    content: str
    record: Record

    @property
    def item(self) -> dict[str, Any]:
        """The record as the answer's message stores it."""
        return self.record.to_stored()


class Tool:
    """One function the model sees, and what runs it."""

    #: The name the model sees it by, and the one it takes when a client function (or a
    #: tool named first) has that one.
    name: str
    fallback: str
    #: Whether it takes its name after the tools whose names are fixed (an MCP server's
    #: tools yield to the server's own tools and the client's functions).
    yields: bool = False
    #: Whether a call waits for the client's approval (``Approving``).
    needs_approval: bool = False

    def spec(self, name: str) -> ToolSpec:
        """The function the model sees, under ``name``."""
        raise NotImplementedError

    def about(self) -> dict[str, Any]:
        """What an approval action, and a stored call's mark, say of the tool."""
        raise NotImplementedError

    def mark(self, item_id: str | None, approval_id: str | None) -> dict[str, Any]:
        """A stored call's ``hosted`` mark: the tool, the id of its item once run (and of
        the approval it waits for, for a kind that can wait)."""
        return {**self.about(), "item_id": item_id}

    async def call(self, call: ToolCall, turn: TurnView, approval_id: str | None = None) -> Ran:
        """Run one call, its events emitted as it starts and ends."""
        raise NotImplementedError


class Approving(Tool):
    """A tool whose calls wait for the client's approval: the wrapped tool, paused on."""

    needs_approval = True

    def __init__(self, wrapped: Tool) -> None:
        self.wrapped = wrapped
        self.name, self.fallback, self.yields = wrapped.name, wrapped.fallback, wrapped.yields

    def spec(self, name: str) -> ToolSpec:
        return self.wrapped.spec(name)

    def about(self) -> dict[str, Any]:
        return self.wrapped.about()

    def mark(self, item_id: str | None, approval_id: str | None) -> dict[str, Any]:
        return self.wrapped.mark(item_id, approval_id)

    async def call(self, call: ToolCall, turn: TurnView, approval_id: str | None = None) -> Ran:
        return await self.wrapped.call(call, turn, approval_id)


@dataclass(eq=False)
class Toolset:
    """A kind's tools for one turn, and the records it made opening them (``ahead``: stored
    before the turn's answer)."""

    tools: list[Tool] = field(default_factory=list)
    ahead: list[Record] = field(default_factory=list)

    def absent(self, approved: Approved) -> str | None:
        """Why the tool of an approved call is not here, when this toolset knows."""
        return None

    async def aclose(self) -> None:
        """The turn is done with the toolset."""


class Kind:
    """One kind of hosted tool, named by the entry types it serves."""

    #: The kind's name (an approval's and a stored mark's ``type``), and the entry types
    #: of a run's ``tools`` it serves.
    name: ClassVar[str]
    types: ClassVar[frozenset[str]]
    #: A kind of one function (not an MCP server's many): the name the model sees, and the
    #: one it sees when a client function has that name (what a ``tool_choice`` naming the
    #: kind forces). None for a kind of many.
    function: ClassVar[str | None] = None
    fallback: ClassVar[str | None] = None

    async def open(
        self, entries: list[Mapping[str, Any]], turn: TurnView, services: Services
    ) -> Toolset:
        """The turn's tools of this kind, made ready from its ``entries``."""
        raise NotImplementedError

    async def absent(
        self, approved: Approved, turn: TurnView, toolset: Toolset | None
    ) -> Ran | None:
        """An approved call whose tool this turn does not have, answered with an error
        (None: the kind has no approvals)."""
        return None

    def told(self, item: Mapping[str, Any]) -> str:
        """What the model was told of a stored call of this kind's function (a call a
        client gives back is told as it was when the server ran it)."""
        raise NotImplementedError
