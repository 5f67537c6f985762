"""A fifth hosted tool kind, made for the tests: ``echo`` (entry ``{"type": "echo"}``). The
model sees one function, ``echo``, taking ``{"text": string}``; a call stores an
``echo_call`` record and tells the model the text back.

What a new kind touches, all here (``registered``): its module (this one: the kind, its
tool and its record, put in the engine's registry), the kit's reader of entries, the
Responses face's stream table, and the Assistants face's run step table."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

from parley.engine.hosted import kinds
from parley.engine.hosted.kind import Kind, Ran, Tool, Toolset, TurnView
from parley.engine.hosted.records import Record
from parley.engine.hosted.services import Services
from parley.server.faces.assistants import files
from parley.server.faces.kit import hosted
from parley.server.faces.responses.hosted import STREAMED, Streamed
from parley.store.db import new_id
from parley.types import FunctionSpec, ToolCall, ToolSpec

PARAMETERS = {
    "type": "object",
    "properties": {"text": {"type": "string", "description": "What to say back."}},
    "required": ["text"],
}


@dataclass(slots=True, kw_only=True)
class EchoCall(Record):
    """A call of ``echo``: the text given, and the model's call."""

    type: ClassVar[str] = "echo_call"

    status: str = "in_progress"
    text: str = ""
    call_id: str | None = None


class EchoTool(Tool):
    name, fallback = "echo", "parley_echo"

    def spec(self, name: str) -> ToolSpec:
        return ToolSpec(
            function=FunctionSpec(name=name, description="Say a text back.", parameters=PARAMETERS)
        )

    def about(self) -> dict[str, Any]:
        return {"type": "echo"}

    async def call(self, call: ToolCall, turn: TurnView, approval_id: str | None = None) -> Ran:
        text, item_id = str(call.arguments.get("text", "")), new_id("echo")
        turn.started(EchoCall(id=item_id, text=text, call_id=call.id))
        record = EchoCall(id=item_id, status="completed", text=text, call_id=call.id)
        turn.done(record)
        return Ran(call.id, f"echo: {text}", record)


class EchoKind(Kind):
    name = "echo"
    types = frozenset({"echo"})
    function, fallback = EchoTool.name, EchoTool.fallback

    async def open(
        self, entries: list[Mapping[str, Any]], turn: TurnView, services: Services
    ) -> Toolset:
        return Toolset(tools=[EchoTool()])

    def told(self, item: Mapping[str, Any]) -> str:
        return f"echo: {item['text']}"


KIND = EchoKind()


def _entry(tool: Mapping[str, Any], where: str, reading: Any, given: hosted.Hosted) -> None:
    given.entries.append({"type": "echo"})


def _step(call_id: str, record: Record, tools: Any, contents: bool) -> dict[str, Any]:
    assert isinstance(record, EchoCall)
    return {"id": call_id, "type": "echo", "echo": {"text": record.text}}


@contextmanager
def registered() -> Iterator[None]:
    """The ``echo`` kind in the engine's registry and the faces' tables, then out again."""
    kinds.register(KIND, EchoCall)
    hosted.register_entry("echo", _entry)
    STREAMED[EchoCall.type] = Streamed({"status": "in_progress"})
    files.STEPS[EchoCall.type] = _step
    try:
        yield
    finally:
        del files.STEPS[EchoCall.type], STREAMED[EchoCall.type]
        hosted.unregister_entry("echo")
        kinds.unregister(KIND, EchoCall)
