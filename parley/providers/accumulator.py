"""Turn model events into one answer: text, reasoning, usage, finish reason and tool calls.

Tool-call fragments are keyed by ``index``; by ``id`` only when a fragment has no index; a
fragment with neither continues the call opened last. ``id`` and ``name`` usually come on
the first fragment, argument fragments are concatenated, and each call's arguments are
parsed once, in ``finish_tool_calls``. Broken JSON is never repaired: such a call is kept
with empty arguments and listed in ``invalid`` with an error for the model to read (the
engine answers it as a failed tool call, so the model can call again).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable
from typing import Any

from parley.errors import UpstreamError
from parley.events import (
    FinishPart,
    ModelEvent,
    ReasoningPart,
    StatePart,
    TextPart,
    ToolCallPart,
    UsagePart,
)
from parley.types import ToolCall, Usage


class PendingCall:
    """One tool call being put together: its id and name (from the first fragments that
    have them), its argument fragments in order, and its place among the answer's calls."""

    __slots__ = ("arguments", "id", "index", "name")

    def __init__(self, index: int) -> None:
        self.index = index
        self.id: str | None = None
        self.name: str | None = None
        self.arguments: list[str] = []


class ToolCalls:
    """An answer's tool calls, from their fragments (``ToolCallPart``), in the order they
    first came: a fragment continues the call of its ``index``; without one, the call of
    its ``id``; with neither, the call opened last."""

    __slots__ = ("_by_id", "_by_index", "calls")

    def __init__(self) -> None:
        self.calls: list[PendingCall] = []
        self._by_index: dict[int, PendingCall] = {}
        self._by_id: dict[str, PendingCall] = {}

    def add(self, part: ToolCallPart) -> PendingCall:
        """Take one fragment; answers the call it belongs to."""
        call: PendingCall | None
        if part.index is not None:
            call = self._by_index.get(part.index)
            if call is None:
                call = self._by_index[part.index] = self._open()
        elif part.id is not None:
            call = self._by_id.get(part.id)
            if call is None:
                call = self._by_id[part.id] = self._open()
        else:
            call = self.calls[-1] if self.calls else self._open()
        if part.id and call.id is None:
            call.id = part.id
        if part.name and call.name is None:
            call.name = part.name
        if part.arguments:
            call.arguments.append(part.arguments)
        return call

    def _open(self) -> PendingCall:
        call = PendingCall(len(self.calls))
        self.calls.append(call)
        return call


class AnswerAccumulator:
    """Collects the model events of one model call. ``add`` is cheap: it is on the hot path."""

    __slots__ = (
        "_layout",
        "_reasoning",
        "_text",
        "cached_tokens",
        "calls",
        "finish_reason",
        "input_tokens",
        "invalid",
        "output_tokens",
        "reasoning_tokens",
        "state",
    )

    def __init__(self) -> None:
        self._text: list[str] = []
        self._reasoning: list[str] = []
        #: ``[kind, length]`` segments in the order they came (``layout``).
        self._layout: list[list[Any]] = []
        #: The tool calls, from their fragments.
        self.calls = ToolCalls()
        #: Why the model stopped (``stop``, ``tool_calls``, ``length``, ...), once known.
        self.finish_reason: str | None = None
        self.input_tokens = 0
        self.output_tokens = 0
        #: Of the output tokens, those spent reasoning; of the input, those read from the
        #: provider's prompt cache (``UsagePart``).
        self.reasoning_tokens = 0
        self.cached_tokens = 0
        #: Tool calls whose arguments were not a JSON object: call id -> the tool error
        #: that answers them (filled by ``finish_tool_calls``).
        self.invalid: dict[str, str] = {}
        #: What the provider wants back on the next turn (``StatePart``), if anything.
        self.state: dict[str, Any] | None = None

    def add(self, event: ModelEvent) -> None:
        """Take one model event into account."""
        if type(event) is TextPart:
            self._text.append(event.text)
            self._segment("text", event.text)
        elif type(event) is ReasoningPart:
            self._reasoning.append(event.text)
            self._segment("summary" if event.summary else "reasoning", event.text)
        elif type(event) is ToolCallPart:
            self.calls.add(event)
        elif type(event) is UsagePart:
            # Usage parts carry totals so far, so the latest one is the count, even when it
            # is lower (Gemini repeats its usage on every event and only the last is
            # right). A zero says nothing: a part may hold one count only (input first,
            # output at the end), or none at all (a trailing all-zero usage).
            if event.input_tokens:
                self.input_tokens = event.input_tokens
            if event.output_tokens:
                self.output_tokens = event.output_tokens
            if event.reasoning_tokens:
                self.reasoning_tokens = event.reasoning_tokens
            if event.cached_tokens:
                self.cached_tokens = event.cached_tokens
        elif type(event) is FinishPart:
            self.finish_reason = event.reason
        elif type(event) is StatePart:
            self.state = {**self.state, **event.data} if self.state else dict(event.data)

    def _segment(self, kind: str, text: str) -> None:
        layout = self._layout
        if layout and layout[-1][0] == kind:
            layout[-1][1] += len(text)
        elif text:
            layout.append([kind, len(text)])

    @property
    def text(self) -> str:
        """The answer text so far."""
        return _joined(self._text)

    @property
    def reasoning(self) -> str:
        """The reasoning text so far."""
        return _joined(self._reasoning)

    @property
    def layout(self) -> list[list[Any]] | None:
        """The order of the reasoning and the text, as the message's ``layout`` column
        keeps it: ``[[kind, length], ...]`` with kind ``reasoning``, ``summary`` or
        ``text``; None when it is the plain one (reasoning, if any, then text)."""
        kinds = [kind for kind, _ in self._layout]
        if kinds in ([], ["text"], ["reasoning"], ["reasoning", "text"]):
            return None
        return [list(segment) for segment in self._layout]

    @property
    def usage(self) -> Usage:
        return Usage.of(self)

    @property
    def has_tool_calls(self) -> bool:
        return bool(self.calls.calls)

    def finish_tool_calls(self, taken: Iterable[str] = ()) -> list[ToolCall]:
        """The tool calls, in order of first appearance, with their arguments parsed.

        A call whose arguments are not a JSON object gets ``{}`` and an entry in
        ``invalid``. Raises ``UpstreamError`` (code ``malformed_tool_call``) for a call
        without a name. A call without an id, with an id in ``taken`` (ids used earlier in
        the thread), or with the id of an earlier call of the answer, gets a generated one.
        """
        self.invalid = {}
        seen: set[str | None] = {None, *taken}
        calls = self.calls.calls
        for call in calls:
            if call.id in seen:
                call.id = None
            seen.add(call.id)
        return [_finish_call(call, self.invalid) for call in calls]


def _joined(pieces: list[str]) -> str:
    if len(pieces) > 1:
        pieces[:] = ["".join(pieces)]
    return pieces[0] if pieces else ""


#: How much of broken arguments the tool error quotes back to the model.
_QUOTED = 2000


def _finish_call(call: PendingCall, invalid: dict[str, str]) -> ToolCall:
    if not call.name:
        raise UpstreamError(
            "The model returned a tool call without a tool name.", code="malformed_tool_call"
        )
    call_id = call.id or f"call_{secrets.token_hex(12)}"
    raw = "".join(call.arguments)
    arguments: Any = {}
    problem = None
    if raw.strip():
        try:
            arguments = json.loads(raw)
        except ValueError as exc:
            problem = f"they are not valid JSON ({exc})"
        else:
            if not isinstance(arguments, dict):
                problem = f"they are a JSON {type(arguments).__name__}, not an object"
    if problem is not None:
        quoted = raw if len(raw) <= _QUOTED else raw[:_QUOTED] + "..."
        invalid[call_id] = (
            f"Error: the tool {call.name} was not run because its arguments could not be "
            f"read: {problem}. The arguments received were: {quoted}\n"
            f"Call {call.name} again with its arguments as one JSON object."
        )
        arguments = {}
    return ToolCall(id=call_id, name=call.name, arguments=arguments)
