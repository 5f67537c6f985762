"""How one assistant answer looks in the terminal: while it streams, and once it is done.

``StreamView`` is a pure consumer: the chat loop hands it what the run's events carry
(``add_text``, ``add_reasoning``, ``tool_call``, ``tool_result``, then ``finish``) and it
draws; ``terminal.rendering.render_answer`` gives the final rendering of the whole answer
(JSON, code, Markdown or plain text), ``terminal.tail`` the live region's view of it.
Everything a model or a tool wrote passes through ``clean`` (``parley.controls``) first, so
neither can move the cursor, retitle the window or change colours.

The frame clock
---------------
Producers never render: ``add_text`` and ``add_reasoning`` append the delta to a list and
return (O(1)). A daemon thread, the frame clock, wakes 12 times a second and redraws a
``rich.live.Live`` region (built with ``auto_refresh=False``): the last lines of the
reasoning, dimmed, and above all the *tail* of the answer rendered as Markdown, only as
many source lines as the terminal can show, so a frame costs the same at the first
paragraph and at the hundredth (a code block whose opening fence scrolled away is reopened
so the tail still renders as code). Until the first token, the region is a spinner with the
elapsed seconds. A thread rather than an asyncio task, so the same view works from sync
code (``parley ask``) and from a coroutine (``parley chat``) and keeps drawing while the
producer is busy; the cost is that ``finish`` joins the thread (at most one frame's
render). A lock orders the clock's redraws against the lines printed above the region; the
producer's appends take no lock. Call one view from one thread (or one event loop).

Each tool call closes the current *segment*: what streamed so far is printed in its final
form above the live region, then the ``▸ name(args)`` line, so the region only ever holds
the text since the last tool call.

``suspended()`` takes the region off the screen for a while (a confirmation question): the
segment so far is printed for good, and the region starts again after the block.

Exit paths: ``finish`` and ``interrupt`` stop the region, then print the final rendering;
the view is a context manager whose exit always stops the region (an exception or
``KeyboardInterrupt`` included), so no spinner outlives its answer.

Plain mode (``plain=True``, or automatically when the console is not an interactive
terminal, as in ``parley ask … | less``): no live region; the answer is written straight
through as it arrives, reasoning and tool lines go to a second console on stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import Any, Protocol

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.markdown import Markdown
from rich.spinner import Spinner
from rich.text import Text

from parley.controls import clean
from parley.terminal.lines import call_arguments, shorten, shown_name
from parley.terminal.rendering import CODE_THEME, render_answer
from parley.terminal.tail import AnswerTail, LastLines

__all__ = ["StreamView", "TokenCounts", "clean", "wants_plain"]

FRAMES_PER_SECOND = 12.0
INTERRUPTED = "interrupted — partial answer kept"

# --------------------------------------------------------------------- live pieces


class TokenCounts(Protocol):
    """Token counts, as ``parley.types.Usage`` and ``parley.events.UsageEvent`` carry them."""

    @property
    def input_tokens(self) -> int: ...

    @property
    def output_tokens(self) -> int: ...


# ---------------------------------------------------------------------- StreamView


def wants_plain(console: Console) -> bool:
    """Whether ``console`` cannot hold a live region (not an interactive, capable terminal)."""
    return not (console.is_terminal and console.is_interactive and not console.is_dumb_terminal)


class StreamView:
    """One assistant answer on ``console``: live while it streams, final when done.

    ``plain=None`` chooses plain mode when the console is not an interactive terminal.
    ``err_console`` (plain mode only; default stderr) takes reasoning, tool lines and the
    footer. Reasoning longer than ``fold_lines`` lines is folded to its first
    ``fold_lines`` in the final rendering; while streaming, its last ``preview_lines``
    show."""

    def __init__(
        self,
        console: Console | None = None,
        *,
        plain: bool | None = None,
        err_console: Console | None = None,
        show_reasoning: bool = True,
        preview_lines: int = 3,
        fold_lines: int = 4,
        frames_per_second: float = FRAMES_PER_SECOND,
    ) -> None:
        self.console = console if console is not None else Console()
        self.plain = wants_plain(self.console) if plain is None else plain
        self._err = err_console
        self._show_reasoning = show_reasoning
        self._preview_lines = preview_lines
        self._fold_lines = fold_lines
        self._interval = 1.0 / frames_per_second
        self._answer = AnswerTail()
        self._reasoning = AnswerTail()
        self._done_text: list[str] = []
        self._done_reasoning: list[str] = []
        self._status = "Thinking…"
        self._pending_tools: list[str] = []
        self._started_at: float | None = None
        self._closed = False
        self._frames = 0
        self._lock = threading.RLock()
        self._live: Live | None = None
        self._clock: threading.Thread | None = None
        self._stopping = threading.Event()
        self._spinner = Spinner("dots", style="cyan")
        self._out_at_line_start = True  # plain mode: where stdout's cursor is
        self._err_at_line_start = True
        #: Whether a tool, search or code line was shown (the answer's text is counted apart).
        self._lines_shown = False

    # ------------------------------------------------------------------ state

    @property
    def text(self) -> str:
        """The answer so far, as received (all segments)."""
        return "".join(self._done_text) + "".join(self._answer.parts)

    @property
    def reasoning(self) -> str:
        return "".join(self._done_reasoning) + "".join(self._reasoning.parts)

    @property
    def is_live(self) -> bool:
        """Whether the live region (and its frame clock) is running."""
        return self._live is not None

    @property
    def frames(self) -> int:
        """Frames the clock has drawn so far."""
        return self._frames

    @property
    def elapsed(self) -> float:
        return 0.0 if self._started_at is None else time.monotonic() - self._started_at

    @property
    def _has_output(self) -> bool:
        """Whether the turn showed anything: text, reasoning, or a tool's line."""
        return self._lines_shown or bool(self.text or self.reasoning)

    # -------------------------------------------------------------- streaming

    def start(self, status: str = "Thinking…") -> None:
        """Start the clock and show ``status`` with a spinner until the first token."""
        self._status = status
        if self._started_at is None:
            self._started_at = time.monotonic()
        if self.plain or self._closed or self._live is not None:
            return
        with self._lock:
            self._stopping.clear()
            live = Live(
                console=self.console,
                auto_refresh=False,
                transient=True,
                redirect_stdout=False,
                redirect_stderr=False,
                vertical_overflow="crop",
                get_renderable=self._frame,
            )
            live.start(refresh=True)
            self._live = live
        self._clock = threading.Thread(target=self._tick, name="parley-frames", daemon=True)
        self._clock.start()

    def set_status(self, status: str) -> None:
        """The words next to the spinner (shown while no text has arrived)."""
        self._status = status

    def add_text(self, delta: str) -> None:
        if not delta:
            return
        self._answer.parts.append(delta)
        if self.plain:
            self._write_through(delta)

    def add_reasoning(self, delta: str) -> None:
        if not delta:
            return
        self._reasoning.parts.append(delta)
        if self.plain and self._show_reasoning:
            self._err_write(Text(clean(delta), style="dim italic"), end="")

    def tool_call(self, name: str, arguments: Mapping[str, Any] | str | None = None) -> None:
        """Close the text so far and show ``▸ name(args…)``."""
        shown = shown_name(name)
        limit = max(16, self.console.width - len(shown) - 4)
        line = Text.assemble(
            ("▸ ", "cyan"), (shown, "bold"), "(", (call_arguments(arguments, limit), "dim"), ")"
        )
        self.open_call(name, line)

    def open_call(self, name: str, line: Text) -> None:
        """Close the text so far and show ``line``, the start of a call named ``name``
        (a hosted tool's card: ``terminal.hosted_cards``): the spinner names it until its
        ``tool_result``."""
        self._commit()
        with self._lock:
            self._pending_tools.append(name)
        self.print_line(line)

    def hosted_note(self, text: str) -> None:
        """A dim side line about a hosted tool (``listed 3 tools of tests``)."""
        self._commit()
        self.print_line(Text(shorten(text, max(16, self.console.width - 2)), style="dim"))

    def tool_result(self, name: str, ok: bool, text: str = "") -> None:
        """Show ``✓ name  preview`` (or a red ``✗`` line for an error)."""
        with self._lock:
            if name in self._pending_tools:
                self._pending_tools.remove(name)
        shown = shown_name(name)
        preview = shorten(text, max(16, self.console.width - len(shown) - 4))
        if ok:
            line = Text.assemble(("✓ ", "green"), (shown, "bold"), "  ", (preview, "dim"))
        else:
            line = Text.assemble(("✗ ", "bold red"), (shown, "bold red"), "  ", (preview, "red"))
        self.print_line(line)

    @contextlib.contextmanager
    def suspended(self) -> Iterator[None]:
        """Stop the live region while the block runs (a question asked on the same terminal,
        which the region would draw over): what streamed so far is printed in its final form
        first, and the region comes back after the block."""
        self._stop_live()
        self._commit()
        try:
            yield
        finally:
            self.start(self._status)

    def refresh(self) -> None:
        """Draw a frame now (the clock does it on its own)."""
        with self._lock:
            if self._live is not None:
                self._live.refresh()
                self._frames += 1

    # ----------------------------------------------------------------- ending

    def finish(
        self,
        usage: TokenCounts | None = None,
        elapsed: float | None = None,
        note: str | None = None,
    ) -> None:
        """Stop the live region and print the final rendering, then the footer."""
        self._close(usage=usage, elapsed=elapsed, note=note, footer=True)

    def interrupt(self, note: str = INTERRUPTED) -> None:
        """Stop at once; keep and print what arrived, then ``note``."""
        self._close(usage=None, elapsed=None, note=note, footer=True)

    def __enter__(self) -> StreamView:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.finish()
        elif issubclass(exc_type, KeyboardInterrupt | asyncio.CancelledError):
            self.interrupt()
        else:  # keep what arrived; the caller reports the error
            self._close(usage=None, elapsed=None, note=None, footer=False)

    def _close(
        self, *, usage: TokenCounts | None, elapsed: float | None, note: str | None, footer: bool
    ) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._stop_live()
        finally:
            self._pending_tools.clear()
            self._commit()
            if footer:
                self._footer(usage, self.elapsed if elapsed is None else elapsed, note)

    def _stop_live(self) -> None:
        self._stopping.set()
        clock, self._clock = self._clock, None
        try:
            if clock is not None and clock is not threading.current_thread():
                clock.join()  # at most one frame; a second Ctrl+C here still stops the region
        finally:
            with self._lock:
                live, self._live = self._live, None
                if live is not None:
                    live.stop()

    def _footer(self, usage: TokenCounts | None, elapsed: float, note: str | None) -> None:
        """``note · 2.5s · 1,200 in / 34 out tokens``, each part when there is one. The
        time is of an answer: a turn that showed nothing (a provider's error, before the
        first token) gets none, so its error is the first thing said."""
        line = Text()
        if note:
            line.append(clean(note), style="yellow")
        bits = []
        if elapsed > 0 and self._has_output:
            bits.append(f"{elapsed:.1f}s")
        if usage is not None:
            bits.append(f"{usage.input_tokens:,} in / {usage.output_tokens:,} out tokens")
        if bits:
            line.append((" · " if note else "") + " · ".join(bits), style="dim")
        if line:
            self.print_line(line)

    # ---------------------------------------------------------------- drawing

    def _tick(self) -> None:
        """The frame clock (its own thread)."""
        while not self._stopping.wait(self._interval):
            with self._lock:
                if self._live is None or self._stopping.is_set():
                    return
                try:
                    self._live.refresh()
                except OSError:  # the terminal went away: stop drawing, keep the answer
                    return
                self._frames += 1

    def _frame(self) -> RenderableType:
        """What the live region shows now (called by ``Live.refresh``, under the lock)."""
        width, height = self.console.size
        room = max(3, height - 2)
        items: list[RenderableType] = []
        if self._show_reasoning and self._reasoning.parts:
            lines = self._preview_lines
            thought = self._reasoning.tail(lines, lines * width, reopen=False)
            items.append(LastLines(Text(clean(thought).strip(), style="dim italic"), lines))
            room = max(1, room - lines)
        if self._answer.parts:
            source = clean(self._answer.tail(room, room * width))
            items.append(LastLines(Markdown(source, code_theme=CODE_THEME), room))
        pending = list(self._pending_tools)
        if not self._answer.parts or pending:
            status = self._status
            if pending:
                what = shown_name(pending[0]) if len(pending) == 1 else f"{len(pending)} tools"
                status = f"Running {what}…"
            self._spinner.update(text=Text(f"{status} {self.elapsed:.1f}s", style="dim"))
            items.append(self._spinner)
        return Group(*items)

    def _commit(self) -> None:
        """Print the current segment in its final form and start a new one."""
        text = "".join(self._answer.parts)
        reasoning = "".join(self._reasoning.parts)
        with self._lock:
            self._answer, self._reasoning = AnswerTail(), AnswerTail()
        self._done_text.append(text)
        self._done_reasoning.append(reasoning)
        if self.plain:
            if not self._out_at_line_start:
                self._write_out("\n")
            if not self._err_at_line_start:
                self._err_write(Text(""))
            return
        with self._lock:
            if self._live is not None:
                self._live.refresh()  # the region drops what is printed for good below
            if self._show_reasoning and reasoning.strip():
                self.console.print(self._folded(reasoning))
            if text.strip():
                self.console.print(render_answer(text))

    def _folded(self, reasoning: str) -> Text:
        text = Text(clean(reasoning).strip(), style="dim italic")
        lines = text.wrap(self.console, self.console.width)
        if len(lines) <= self._fold_lines + 1:  # folding one line away saves nothing
            return text
        shown = Text("\n").join(lines[: self._fold_lines])
        shown.append(f"\n… {len(lines) - self._fold_lines} more lines", style="dim")
        return shown

    def print_line(self, line: Text) -> None:
        """Print one line above the region (in plain mode, on stderr)."""
        self._lines_shown = True
        if self.plain:
            if not self._err_at_line_start:
                self._err_write(Text(""))
            self._err_write(line)
            return
        with self._lock:
            if self._live is not None:
                self._live.refresh()  # redrawn below the line: show the current state
            self.console.print(line, no_wrap=True, overflow="ellipsis")

    def print_block(self, block: RenderableType) -> None:
        """Print a block of several lines above the region (in plain mode, on stderr)."""
        self._lines_shown = True
        if self.plain:
            if not self._err_at_line_start:
                self._err_write(Text(""))
            if self._err is None:
                self._err = Console(stderr=True)
            self._err.print(block, soft_wrap=True, highlight=False)
            self._err_at_line_start = True
            return
        with self._lock:
            if self._live is not None:
                self._live.refresh()
            self.console.print(block, highlight=False)

    # ------------------------------------------------------------ plain mode

    def _write_through(self, delta: str) -> None:
        if not self._err_at_line_start:
            self._err_write(Text(""))
        self._write_out(clean(delta))

    def _write_out(self, text: str) -> None:
        if not text:
            return
        out = self.console.file
        out.write(text)
        out.flush()
        self._out_at_line_start = text.endswith("\n")

    def _err_write(self, text: Text, end: str = "\n") -> None:
        if self._err is None:
            self._err = Console(stderr=True)
        if not text and not end:
            return
        self._err.print(text, end=end, soft_wrap=True, highlight=False)
        self._err_at_line_start = bool(end) or text.plain.endswith("\n")
