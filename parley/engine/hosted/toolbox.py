"""A turn's hosted tools, made ready (``HostedTools.open``) and run (``Toolbox.run``).

The toolbox is the generic loop over the turn's tools: each kind (``hosted.kinds``) opens
its entries as a toolset, the toolbox names their tools (a tool yields its name to a
client function that has it, and an MCP server's tools to the server's own), and runs the
calls the model makes by the name it called. It knows no kind by name.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Connection

from parley.engine.hosted.approvals import Approved
from parley.engine.hosted.kind import Ran, Tool, Toolset, TurnView
from parley.engine.hosted.kinds import BY_NAME, KINDS, ORDER
from parley.engine.hosted.services import Services
from parley.store import threads as thread_store
from parley.types import Role, ToolCall, ToolSpec

__all__ = ["MAX_CALLS", "Ahead", "HostedTools", "Ran", "Toolbox", "store_ahead"]

#: Hosted calls one turn may make when its run sets no ``max_tool_calls``: a model that
#: keeps calling tools ends its turn, rather than running for ever.
MAX_CALLS = 64


def hosted_entries(tools: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The entries of a run's ``tools`` the server runs (all but the client's functions)."""
    return [t for t in tools if t.get("type", "function") != "function"]


@dataclass(frozen=True, slots=True)
class Ahead:
    """A message a turn stores ahead of its answer: a tool list, or the result of a call
    it ran once approved."""

    role: Role
    item: dict[str, Any]
    content: str = ""
    tool_call_id: str | None = None


class HostedTools(Services):
    """The engine's registry of hosted tools: opens each turn's ``Toolbox``."""

    async def open(self, turn: TurnView) -> Toolbox | None:
        """The turn's hosted tools, listed (events and records of the listings made now),
        or None when its run has none and its messages approved no call."""
        entries = hosted_entries(turn.run.tools)
        if not entries and not turn.approved:
            return None
        most = (turn.run.options or {}).get("max_tool_calls")
        box = Toolbox(self, turn, max_calls=most if isinstance(most, int) else MAX_CALLS)
        await box.prepare(entries)
        return box


@dataclass(eq=False)
class Toolbox:
    """The hosted tools of one turn."""

    services: Services
    turn: TurnView
    #: Hosted calls the turn may make (the run's ``max_tool_calls``, else ``MAX_CALLS``),
    #: and has made.
    max_calls: int = 0
    made: int = 0
    #: The toolset of each kind the turn has, by kind name, in ``kinds.ORDER``.
    toolsets: dict[str, Toolset] = field(default_factory=dict)
    #: The tools the model may call, by the name it sees.
    tools: dict[str, Tool] = field(default_factory=dict)
    #: The functions the model sees, one per tool (made once the tools are named).
    functions: list[ToolSpec] = field(default_factory=list)

    @property
    def listed(self) -> list[dict[str, Any]]:
        """The records the toolsets made as they opened (tool lists), to store ahead of the
        turn's answer."""
        return [r.to_stored() for toolset in self.toolsets.values() for r in toolset.ahead]

    def owns(self, name: str) -> bool:
        return name in self.tools

    def needs_approval(self, name: str) -> bool:
        tool = self.tools.get(name)
        return tool is not None and tool.needs_approval

    def stored(
        self, call: ToolCall, item_id: str | None = None, approval_id: str | None = None
    ) -> dict[str, Any]:
        """A call as its answer stores it: a hosted one marked with its tool (``Tool.mark``:
        the id of its item once run, and of the approval it waits for)."""
        dumped = call.model_dump()
        tool = self.tools.get(call.name)
        if tool is not None:
            dumped["hosted"] = tool.mark(item_id, approval_id)
        return dumped

    def hosted_of(self, name: str) -> dict[str, Any]:
        """What an approval action says of the tool behind ``name``."""
        return self.tools[name].about()

    def calls_left(self) -> int | None:
        """How many more hosted calls the turn may make."""
        return max(0, self.max_calls - self.made)

    async def prepare(self, entries: list[Mapping[str, Any]]) -> None:
        """Open the toolset of each kind among ``entries``, and name their tools: those of
        fixed names first, each taking its fallback when its name is taken."""
        by_kind: dict[str, list[Mapping[str, Any]]] = {}
        for entry in entries:
            kind = KINDS.get(str(entry.get("type")))
            if kind is not None:
                by_kind.setdefault(kind.name, []).append(entry)
        for kind in ORDER:
            if kind.name in by_kind:
                toolset = await kind.open(by_kind[kind.name], self.turn, self.services)
                self.toolsets[kind.name] = toolset
        tools = [tool for toolset in self.toolsets.values() for tool in toolset.tools]
        taken = {t["function"]["name"] for t in self.turn.run.tools if t.get("type") == "function"}
        named: dict[int, str] = {}
        for n, tool in sorted(enumerate(tools), key=lambda pair: pair[1].yields):
            name = tool.name if tool.name not in taken else tool.fallback
            taken.add(name)
            named[n] = name
        self.tools = {named[n]: tool for n, tool in enumerate(tools)}
        self.functions = [tool.spec(name) for name, tool in self.tools.items()]

    async def run(self, calls: list[ToolCall]) -> list[Ran]:
        """Run the hosted ``calls`` of one answer at once; each one's events go out as it
        starts and ends."""
        self.made += len(calls)
        return list(await asyncio.gather(*(self.tools[c.name].call(c, self.turn) for c in calls)))

    async def run_approved(self, approved: list[Approved]) -> list[Ran]:
        """Run the calls the client approved (a call of a tool this turn does not have is
        answered with an error saying so)."""
        by_tool = {_key(tool.about()): name for name, tool in self.tools.items()}
        runs = []
        for call in approved:
            name = by_tool.get((call.kind, call.server_label, call.tool))
            if name is None:
                runs.append(self._absent(call))
                continue
            self.made += 1
            toolcall = ToolCall(id=call.call_id, name=name, arguments=call.arguments)
            runs.append(self.tools[name].call(toolcall, self.turn, call.request_id))
        return list(await asyncio.gather(*runs))

    async def _absent(self, call: Approved) -> Ran:
        ran = await BY_NAME[call.kind].absent(call, self.turn, self.toolsets.get(call.kind))
        assert ran is not None, f"the {call.kind} kind asks for no approval"
        return ran

    async def aclose(self) -> None:
        """The turn is done with its toolsets."""
        for toolset in self.toolsets.values():
            await toolset.aclose()


def _key(about: Mapping[str, Any]) -> tuple[str, str, str]:
    """An approved call's tool, as ``Tool.about`` names it."""
    return (str(about["type"]), str(about.get("server_label", "")), str(about.get("name", "")))


def store_ahead(
    conn: Connection,
    *,
    user_id: str,
    thread_id: str,
    run_id: str,
    message_id: str,
    rows: list[Ahead],
) -> str:
    """Store what a turn made before its model call ahead of its answer (its tool lists,
    the calls it ran once approved): the answer's placeholder, still empty, takes the first
    row, new messages the others, and a new placeholder follows them. Returns its id."""
    first, *rest = rows
    thread_store.fill_placeholder(
        conn,
        message_id=message_id,
        role=first.role,
        content=first.content,
        tool_call_id=first.tool_call_id,
        item=first.item,
    )
    for row in rest:
        thread_store.add_message(
            conn,
            user_id=user_id,
            thread_id=thread_id,
            role=row.role,
            content=row.content,
            tool_call_id=row.tool_call_id,
            run_id=run_id,
            item=row.item,
        )
    placeholder = thread_store.add_message(
        conn, user_id=user_id, thread_id=thread_id, role=Role.ASSISTANT, content="", run_id=run_id
    )
    return placeholder.id
