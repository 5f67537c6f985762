"""Where an exchange is shown: the ``ChatOutput`` implementations.

* ``TerminalOutput``: the seed's display manager. A ``StreamView`` shows the answer while
  it streams (live region in a terminal, or plain text to stdout with the rest on stderr in
  a pipe), each tool call as ``▸ name(args)`` then ``✓``/``✗`` with a preview of its
  result, and at the end the final rendering, elapsed time and token usage. The view is
  ``suspended()`` while a confirmation question waits (its live region would draw over it);
  tool results that come in meanwhile are shown once it is answered. The calls the server
  runs itself (``hosted_tool`` events) show through their cards (``hosted_cards``): an MCP
  call as ``⚙ server · name {args}`` then the same ``✓``/``✗`` line, a listing as
  ``listed 3 tools of server``; a code interpreter call as its code (a highlighted block),
  then its logs, ``[figure: PATH]`` lines, the files it wrote and its error.
* ``JsonOutput``: ``parley ask --json``: every event as one JSON line, plus the client's
  own ``tool.start`` / ``tool.result`` lines. The data is kept as sent, but no control
  character is written raw: JSON escapes the C0 range, ``escape_controls_in_json`` the rest.

``key_asker`` asks a yes/no/always question and takes one key for the answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TextIO

from rich.console import Console
from rich.text import Text

from parley.controls import clean, escape_controls_in_json
from parley.events import (
    ActionItem,
    ContentDelta,
    Event,
    HostedToolEvent,
    ReasoningDelta,
    ToolResultEvent,
    ToolStartEvent,
)
from parley.terminal import hosted_cards
from parley.terminal.display import INTERRUPTED, StreamView, wants_plain
from parley.terminal.keys import TypedAhead, is_terminal, read_choice
from parley.terminal.lines import shown_name
from parley.terminal.turns import Answer, ExchangeResult, ToolRecord
from parley.types import Usage

__all__ = [
    "ANSWER_KEYS",
    "Asker",
    "JsonOutput",
    "TerminalOutput",
    "key_asker",
    "parse_answer",
]

#: Asks one question, answers what the user answered (a word or a line; ``parse_answer``
#: reads it).
Asker = Callable[[str], Awaitable[str]]

_ARGUMENTS_SHOWN = 300
#: The keys that answer a confirmation (their capitals too); Enter or Ctrl+D answers no.
ANSWER_KEYS: dict[str, Answer] = {"y": "yes", "n": "no", "a": "always"}


def parse_answer(text: str) -> Answer:
    """``y``/``yes`` -> yes, ``a``/``always`` -> always, anything else -> no."""
    word = text.strip().lower()
    if word in ("y", "yes"):
        return "yes"
    if word in ("a", "always"):
        return "always"
    return "no"


def question(name: str, arguments: Mapping[str, Any], *, server: str | None = None) -> str:
    """The one confirmation question, answered with one key (``ANSWER_KEYS``), for the
    client's own tools and for a call the Parley server runs on an MCP ``server`` once
    approved (hosted MCP): ``Run echo {"text": "hi"}? [y]es / [n]o / [a]lways for this
    tool: ``, or ``Run echo on tests with {"text": "hi"}? ...``. Names and arguments come
    from the model and the MCP servers: the names are shown on one line (``shown_name``),
    the arguments cleaned and cut."""
    shown = json.dumps(dict(arguments), ensure_ascii=False, separators=(", ", ": "), default=str)
    if len(shown) > _ARGUMENTS_SHOWN:
        shown = shown[: _ARGUMENTS_SHOWN - 1] + "…"
    where = "" if server is None else f" on {shown_name(server)} with"
    return f"Run {shown_name(name)}{where} {clean(shown)}? [y]es / [n]o / [a]lways for this tool: "


async def _ask(asker: Asker | None, text: str) -> Answer:
    """The user's answer to the question ``text`` (no, without an ``asker``)."""
    if asker is None:
        return "no"
    return parse_answer(await asker(text))


def key_asker(
    *,
    stdin: TextIO | None = None,
    out: TextIO | None = None,
    typed_ahead: TypedAhead | None = None,
) -> Asker:
    """An ``Asker`` that takes one key from the terminal on ``stdin`` (default: sys.stdin):
    ``y``, ``n`` or ``a`` (capitals too), Enter or Ctrl+D for no; other keys are ignored.
    The question and the answer, as a word, go to ``out`` (default: sys.stdout; stderr for
    ``parley ask``, whose stdout is the answer). Keys typed after the answer stay in the
    terminal for the next prompt (``keys.read_choice``), and keys typed before the question
    go to ``typed_ahead``, for that prompt too. Ctrl+C stays a signal: the
    exchange's handler stops it, and the call is not run. Without a terminal on ``stdin``,
    the answer is a line read from it."""

    async def ask(text: str) -> str:
        source = stdin if stdin is not None else sys.stdin
        sink = out if out is not None else sys.stdout

        def show() -> None:
            sink.write(text)
            sink.flush()

        answer: Answer = "no"
        try:
            if is_terminal(source.fileno()):
                answer = await read_choice(
                    source.fileno(), ANSWER_KEYS, "no", ready=show, typed_ahead=typed_ahead
                )
            else:
                show()
                answer = parse_answer(await asyncio.to_thread(source.readline))
        finally:  # cancelled (Ctrl+C) included: the call does not run
            sink.write(answer + "\n")
            sink.flush()
        return answer

    return ask


class TerminalOutput:
    """Shows an exchange on a console through ``StreamView`` segments.

    ``plain``: None picks plain mode when ``console`` is not an interactive terminal;
    ``err_console`` then gets reasoning, tool lines, notes and errors. ``asker`` answers
    confirmation questions; without one, ``can_confirm`` is False.
    """

    def __init__(
        self,
        console: Console,
        *,
        err_console: Console | None = None,
        plain: bool | None = None,
        asker: Asker | None = None,
        show_reasoning: bool = True,
    ) -> None:
        self.console = console
        self.plain = wants_plain(console) if plain is None else plain
        if self.plain and err_console is None:
            err_console = Console(stderr=True)
        self._err_console = err_console
        self._asker = asker
        self._show_reasoning = show_reasoning
        self._view: StreamView | None = None
        self._status = "Thinking…"
        self._asking = False
        self._held: list[tuple[ActionItem, ToolRecord]] = []
        self._held_hosted: list[HostedToolEvent] = []
        self._notices: list[tuple[str, bool]] = []

    @property
    def can_confirm(self) -> bool:
        return self._asker is not None

    @property
    def view(self) -> StreamView | None:
        """The view showing the exchange now, if any."""
        return self._view

    def _ensure_view(self) -> StreamView:
        if self._view is None:
            self._view = StreamView(
                self.console,
                plain=self.plain,
                err_console=self._err_console,
                show_reasoning=self._show_reasoning,
            )
            self._view.start(self._status)
        return self._view

    def _errors(self) -> Console:
        return self._err_console if self.plain and self._err_console else self.console

    # -------------------------------------------------------------- ChatOutput

    def begin(self) -> None:
        self._status = "Thinking…"
        self._ensure_view()

    def turn_started(self, turn: int) -> None:
        self._status = "Thinking…"
        if self._view is not None:
            self._view.set_status(self._status)

    def event(self, event: Event) -> None:
        if isinstance(event, ContentDelta):
            self._ensure_view().add_text(event.text)
        elif isinstance(event, ReasoningDelta):
            self._ensure_view().add_reasoning(event.text)
        elif isinstance(event, HostedToolEvent):
            self._hosted(event)

    def _hosted(self, event: HostedToolEvent) -> None:
        """A tool the server runs: its item through its card (``hosted_cards``), as its
        call starts and once it has ended. Held while a question waits."""
        if self._asking:
            self._held_hosted.append(event)
            return
        view = self._ensure_view()
        status = hosted_cards.show(view, event.item, done=event.phase == "done")
        if status is not None:
            self._status = status
            view.set_status(status)

    def tool_calls(self, actions: Sequence[ActionItem]) -> None:
        view = self._ensure_view()
        for action in actions:
            view.tool_call(action.name, action.arguments)
        self._status = "Running tools…"
        view.set_status(self._status)

    def tool_started(self, action: ActionItem) -> None:
        pass  # the call's line is printed with the manifest

    def tool_finished(self, action: ActionItem, record: ToolRecord) -> None:
        if self._asking:  # not while a question waits on the screen
            self._held.append((action, record))
            return
        if record.kind == "approved":
            return  # the server runs it: its line comes with the next turn's events
        self._ensure_view().tool_result(record.name, not record.is_error, record.text)

    async def confirm(self, name: str, arguments: Mapping[str, Any]) -> Answer:
        return await self.ask(question(name, arguments))

    async def ask(self, text: str) -> Answer:
        self._asking = True
        try:
            with self._view.suspended() if self._view else contextlib.nullcontext():
                answer = await _ask(self._asker, text)
        finally:
            self._asking = False
        held, self._held = self._held, []
        for action, record in held:
            self.tool_finished(action, record)
        held_hosted, self._held_hosted = self._held_hosted, []
        for event in held_hosted:
            self._hosted(event)
        return answer

    def notice(self, text: str, *, error: bool = False) -> None:
        if self._view is not None:  # printed once the view is done
            self._notices.append((text, error))
        else:
            self._print_notice(text, error)

    def finished(self, result: ExchangeResult) -> None:
        view = self._ensure_view()
        usage = None
        if result.input_tokens or result.output_tokens:
            usage = Usage(input_tokens=result.input_tokens, output_tokens=result.output_tokens)
        cancelled = ", run cancelled" if result.status == "cancelled" else ""
        if result.stopped == "interrupted":
            view.interrupt(f"{INTERRUPTED}{cancelled}")
        elif result.stopped == "timeout":
            note = f"{result.note} — partial answer kept{cancelled}"
            view.finish(usage=usage, elapsed=result.elapsed, note=note)
        else:
            view.finish(usage=usage, elapsed=result.elapsed)
        self._view = None
        if result.error_message:
            self._print_notice(f"{result.error_message} ({result.error_code})", True)
        notices, self._notices = self._notices, []
        for text, error in notices:
            self._print_notice(text, error)

    def _print_notice(self, text: str, error: bool) -> None:
        line = Text(("✗ " if error else "") + clean(text), style="red" if error else "dim")
        self._errors().print(line, soft_wrap=True, highlight=False)


class JsonOutput:
    """``parley ask --json``: one JSON object per line on ``out``; notes on ``err``."""

    def __init__(self, out: TextIO, err: TextIO, *, asker: Asker | None = None) -> None:
        self._out = out
        self._err = err
        self._asker = asker

    @property
    def can_confirm(self) -> bool:
        return self._asker is not None

    def _line(self, data: str) -> None:
        self._out.write(escape_controls_in_json(data) + "\n")
        self._out.flush()

    def _object(self, data: Mapping[str, Any]) -> None:
        self._line(json.dumps(data, ensure_ascii=False, default=str))

    def begin(self) -> None:
        pass

    def turn_started(self, turn: int) -> None:
        pass

    def event(self, event: Event) -> None:
        self._line(event.model_dump_json())

    def tool_calls(self, actions: Sequence[ActionItem]) -> None:
        pass  # the tool_calls event is the manifest

    def tool_started(self, action: ActionItem) -> None:
        started = ToolStartEvent(
            tool_call_id=action.tool_call_id, name=action.name, arguments=action.arguments
        )
        self._line(started.model_dump_json())

    def tool_finished(self, action: ActionItem, record: ToolRecord) -> None:
        finished = ToolResultEvent(
            tool_call_id=record.tool_call_id,
            name=record.name,
            output=record.output,
            is_error=record.is_error,
        )
        self._line(finished.model_dump_json())

    async def confirm(self, name: str, arguments: Mapping[str, Any]) -> Answer:
        return await _ask(self._asker, question(name, arguments))

    async def ask(self, text: str) -> Answer:
        return await _ask(self._asker, text)

    def notice(self, text: str, *, error: bool = False) -> None:
        self._err.write(clean(text) + "\n")
        self._err.flush()

    def finished(self, result: ExchangeResult) -> None:
        if result.stopped is not None:
            message = "interrupted" if result.stopped == "interrupted" else result.note
            self._object({"type": "error", "code": result.stopped, "message": message})
        elif result.raised:  # a request failed: no error event tells it
            code, message = result.error_code, result.error_message
            self._object({"type": "error", "code": code, "message": message})
