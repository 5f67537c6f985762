"""The terminal display, through its public interface, on capture consoles.

A "terminal" here is a ``Console`` writing to a ``StringIO`` with ``force_terminal`` and
``force_interactive``: it receives exactly the bytes a real terminal would, live-region
cursor moves included. ``frame(view, out)`` draws one frame now and returns its bytes.
"""

from __future__ import annotations

import asyncio
import io
import re
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from rich.console import Console
from rich.json import JSON
from rich.markdown import Markdown
from rich.syntax import Syntax
from rich.text import Text

from parley.events import UsageEvent
from parley.terminal.display import StreamView, clean
from parley.terminal.rendering import render_answer

OSC_TITLE = "\x1b]0;pwned\x07"
CSI_MOVE = "\x1b[10;20H"
BEL = "\x07"
HOSTILE = f"safe{OSC_TITLE} text{CSI_MOVE} and a bell{BEL}."


@pytest.fixture(autouse=True)
def _terminal_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TERM", "xterm-256color")
    for name in ("NO_COLOR", "TTY_INTERACTIVE", "TTY_COMPATIBLE", "FORCE_COLOR"):
        monkeypatch.delenv(name, raising=False)
    yield
    leaked = [t for t in threading.enumerate() if t.name == "parley-frames"]
    assert not leaked, "a frame clock outlived its view"


def terminal(width: int = 60, height: int = 20) -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    console = Console(
        file=out,
        width=width,
        height=height,
        force_terminal=True,
        force_interactive=True,
        color_system="standard",
    )
    return console, out


def final_only(width: int = 60) -> tuple[Console, io.StringIO]:
    """A console that shows no live region: only what is printed for good."""
    out = io.StringIO()
    return Console(file=out, width=width, height=20, color_system=None), out


def frame(view: StreamView, out: io.StringIO) -> str:
    start = len(out.getvalue())
    view.refresh()
    return out.getvalue()[start:]


def wait_for(condition: Callable[[], bool], timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def render(renderable: object, width: int = 60) -> str:
    console = Console(width=width, record=True, file=io.StringIO(), color_system=None)
    console.print(renderable)
    return console.export_text()


# ----------------------------------------------------------------------------- clean


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (f"a{OSC_TITLE}b", "ab"),
        ("a\x1b]2;title\x1b\\b", "ab"),  # OSC ended by ST
        (f"up{CSI_MOVE}here\x1b[2J\x1b[31mred\x1b[0m", "upherered"),
        ("\x9b5Aeight-bit CSI", "eight-bit CSI"),
        ("bell\x07 back\x08space", "bell backspace"),
        ("over\rwrite", "overwrite"),
        ("keep\n\ttabs and lines\r\n", "keep\n\ttabs and lines\n"),
        ("\x1bPdcs payload\x1b\\after", "after"),
        ("c1\x85\x9d0;t\x9c!", "c1!"),
        ("\x1b]0;unterminated title", "0;unterminated title"),  # nothing after is swallowed
        ("lone escape\x1b", "lone escape"),
        ("déjà vu — ünïcode ✓ 漢字", "déjà vu — ünïcode ✓ 漢字"),
    ],
)
def test_clean_neutralises_control_sequences(raw: str, expected: str) -> None:
    assert clean(raw) == expected


def test_clean_returns_clean_text_as_is() -> None:
    text = "plain words\nwith\ttabs"
    assert clean(text) is text


# -------------------------------------------------------------------- final rendering


def test_render_answer_pretty_prints_json() -> None:
    rendered = render_answer('{"city":"Paris","days":[1,2]}')
    assert isinstance(rendered, JSON)
    assert '  "city": "Paris",' in render(rendered)


def test_render_answer_shows_a_fenced_block_as_code_in_its_language() -> None:
    rendered = render_answer('```rust\nfn main() {\n    println!("hi");\n}\n```\n')
    assert isinstance(rendered, Syntax)
    assert rendered.lexer is not None and rendered.lexer.name == "Rust"
    assert "```" not in render(rendered)


def test_render_answer_recognises_unfenced_code() -> None:
    rendered = render_answer("import os\n\ndef home() -> str:\n    return os.environ['HOME']\n")
    assert isinstance(rendered, Syntax)
    assert rendered.lexer is not None and rendered.lexer.name == "Python"


def test_render_answer_renders_a_markdown_table() -> None:
    text = "Results:\n\n| name | score |\n|------|------:|\n| ada | 10 |\n| bob | 7 |\n"
    rendered = render_answer(text)
    assert isinstance(rendered, Markdown)
    shown = render(rendered)
    assert "|------|" not in shown
    assert any("ada" in line and "10" in line and "|" not in line for line in shown.splitlines())


def test_render_answer_keeps_prose_and_mixed_answers_apart_from_code() -> None:
    prose = "The answer is yes.\nIt works because the loop ends when the list is empty."
    assert isinstance(render_answer(prose), Text)
    mixed = "Use this:\n\n```python\nprint(1)\n```\n\nThen run it.\n"
    assert isinstance(render_answer(mixed), Markdown)
    assert isinstance(render_answer("Two fences:\n```\na\n```\n```\nb\n```"), Markdown)


def test_render_answer_cleans_its_input() -> None:
    for text in (HOSTILE, f"# Title\n\n{HOSTILE}", f'{{"k": "{CSI_MOVE}"}}'):
        console = Console(file=io.StringIO(), width=60, force_terminal=True)
        console.print(render_answer(text))
        shown = console.file.getvalue()  # type: ignore[attr-defined]
        assert "pwned" not in shown and CSI_MOVE not in shown and BEL not in shown


# ------------------------------------------------------------------ streaming frames


def test_streamed_text_shows_in_frames_before_finish() -> None:
    console, out = terminal()
    with StreamView(console) as view:
        view.start()
        view.add_text("Hello ")
        assert wait_for(lambda: "Hello" in out.getvalue()), "the clock drew no frame"
        view.add_text("progressive **world**")
        assert wait_for(lambda: "progressive" in out.getvalue())
        assert view.is_live and view.frames >= 2
        view.finish()
    assert not view.is_live


def test_deltas_are_appended_not_rendered_per_call() -> None:
    console, out = terminal()
    with StreamView(console, frames_per_second=0.01) as view:  # the clock stays asleep
        view.start()
        before, size = view.frames, len(out.getvalue())
        for _ in range(5000):
            view.add_text("tok ")
        assert view.frames - before <= 5  # the clock draws, not the producer
        assert len(out.getvalue()) == size  # nothing reaches the terminal until a frame
        assert "tok tok" in frame(view, out)
    assert view.text == "tok " * 5000


def test_spinner_with_elapsed_seconds_until_the_first_token() -> None:
    console, out = terminal()
    with StreamView(console) as view:
        view.start(status="Thinking…")
        shown = frame(view, out)
        assert re.search(r"Thinking… \d+\.\ds", shown), shown
        view.add_text("First token")
        shown = frame(view, out)
        assert "First token" in shown and "Thinking…" not in shown


def test_a_long_answer_draws_only_the_tail_that_fits() -> None:
    console, out = terminal(width=60, height=12)
    with StreamView(console) as view:
        view.start()
        for i in range(500):
            view.add_text(f"line {i} of a long answer\n\n")
        shown = frame(view, out)
        assert "line 499 of" in shown and "line 300 of" not in shown
        drawn = shown.rsplit("\x1b[2K", 1)[-1]
        assert drawn.count("\n") < 12


def test_a_code_block_that_scrolled_away_still_renders_as_code() -> None:
    console, out = terminal(width=60, height=12)
    with StreamView(console) as view:
        view.start()
        view.add_text("Here:\n\n```python\n")
        for i in range(200):
            view.add_text(f"# step {i}\nx = {i}\n")
        shown = frame(view, out)
        assert "# step 199" in shown  # as code; Markdown would make it a heading


def test_reasoning_shows_dimmed_above_the_text_its_last_lines_only() -> None:
    console, out = terminal()
    with StreamView(console, preview_lines=3) as view:
        view.start()
        for i in range(10):
            view.add_reasoning(f"thought {i}\n")
        view.add_text("The answer.")
        shown = frame(view, out)
        assert "thought 9" in shown and "thought 7" in shown and "thought 6" not in shown
        assert shown.index("thought 9") < shown.index("The answer.")
        assert "\x1b[2;3m" in shown  # dim italic


def test_reasoning_deltas_are_shown_once() -> None:
    console, out = terminal()
    deltas = [f"step {i} " if i % 5 else f"step {i}\n" for i in range(40)]
    with StreamView(console, preview_lines=50) as view:
        view.start()
        for delta in deltas:
            view.add_reasoning(delta)
            shown = frame(view, out)
            assert shown.count("step 0 ") <= 1
        assert frame(view, out).count("step 39") == 1
        assert view.reasoning == "".join(deltas)
    final, final_out = final_only()
    view = StreamView(final, plain=False, fold_lines=100)
    for delta in deltas:
        view.add_reasoning(delta)
    view.add_text("done")
    view.finish()
    printed = final_out.getvalue()
    for i in range(40):
        assert printed.count(f"step {i} ") + printed.count(f"step {i}\n") == 1


def test_long_reasoning_is_folded_in_the_final_rendering() -> None:
    console, out = final_only()
    view = StreamView(console, plain=False, fold_lines=4)
    view.add_reasoning("".join(f"idea {i}\n" for i in range(12)))
    view.add_text("Answer.")
    view.finish()
    printed = out.getvalue()
    assert "idea 0" in printed and "idea 3" in printed
    assert "idea 4" not in printed and "idea 11" not in printed
    assert "… 8 more lines" in printed
    assert printed.index("idea 0") < printed.index("Answer.")


def test_short_reasoning_is_not_folded() -> None:
    console, out = final_only()
    view = StreamView(console, plain=False)
    view.add_reasoning("one\ntwo\n")
    view.add_text("Yes.")
    view.finish()
    assert "one\ntwo" in out.getvalue() and "more lines" not in out.getvalue()


# ------------------------------------------------------------------------ tool lines


def test_tool_call_and_result_lines() -> None:
    console, out = terminal(width=70)
    with StreamView(console) as view:
        view.start()
        view.add_text("Let me look.")
        view.tool_call("search", {"query": "weather in Paris", "limit": 3, "blob": "x" * 300})
        view.tool_result("search", True, "Sunny,\n  21 °C\n" + "more " * 100)
        view.tool_call("fetch", '{"url": "http://example.test"}')
        view.tool_result("fetch", False, "connection refused")
        view.add_text("It is sunny.")
    printed = out.getvalue()
    assert "\x1b[1;31m✗" in printed and "\x1b[31mconnection refused" in printed  # red
    shown = clean(printed.replace("\r", "\n"))  # the visible characters, line by line
    call = next(line for line in shown.splitlines() if "▸" in line)
    assert call.startswith('▸ search(query="weather in Paris", limit=3, blob="xxx')
    assert call.endswith("…)") and len(call) <= 70
    assert "✓ search  Sunny, 21 °C more" in shown
    assert '▸ fetch(url="http://example.test")' in shown
    assert printed.index("Let me look.") < printed.index("▸") < printed.rindex("It is sunny.")


def test_escape_sequences_from_model_and_tools_never_reach_the_terminal() -> None:
    console, out = terminal()
    with StreamView(console) as view:
        view.start()
        view.add_reasoning(f"thinking {HOSTILE}\n")
        for piece in HOSTILE:  # split mid-sequence on purpose
            view.add_text(piece)
        frame(view, out)
        view.tool_call(f"tool{BEL}", {"arg": HOSTILE})
        view.tool_result("tool", False, HOSTILE)
        view.add_text(f"\n# Heading {OSC_TITLE}\n\n{CSI_MOVE}")
        frame(view, out)
        view.finish(note=f"note {BEL}")
    printed = out.getvalue()
    assert "\x1b]0;" not in printed and "pwned" not in printed
    assert CSI_MOVE not in printed and "\x1b[2J" not in printed
    assert BEL not in printed


def test_the_spinner_shows_a_running_tool_s_name_cleaned() -> None:
    console, out = terminal(width=80)
    with StreamView(console) as view:
        view.start()
        view.tool_call(f"tool{OSC_TITLE}\x1b[2J\x9b31m[bold]", {})
        shown = frame(view, out)
    assert "Running tool[bold]…" in clean(shown)
    printed = out.getvalue()
    assert "\x1b]0;" not in printed and "\x1b[2J" not in printed and "\x9b" not in printed


def test_json_answers_are_cleaned_after_decoding() -> None:
    """JSON escapes are controls again once decoded (rich writes C1 characters as they are)."""
    console, out = terminal()
    console.print(render_answer('{"k": "\\u009b2J \\u001b]0;pwned\\u0007 \\u009d0;t\\u009c"}'))
    printed = out.getvalue()
    assert "\x9b" not in printed and "\x9d" not in printed and "pwned" not in printed


def test_plain_mode_neutralises_escape_sequences_too() -> None:
    out, err = io.StringIO(), io.StringIO()
    view = StreamView(Console(file=out), err_console=Console(file=err), plain=True)
    view.add_reasoning(HOSTILE)
    view.add_text(HOSTILE)
    view.tool_call("t", {"a": HOSTILE})
    view.tool_result("t", True, HOSTILE)
    view.finish()
    for stream in (out.getvalue(), err.getvalue()):
        assert "\x1b" not in stream and BEL not in stream and "pwned" not in stream


# ------------------------------------------------------------------------ stopping


def assert_stopped(view: StreamView, out: io.StringIO) -> None:
    assert not view.is_live
    assert out.getvalue().count("\x1b[?25l") == out.getvalue().count("\x1b[?25h")  # cursor back
    frames, size = view.frames, len(out.getvalue())
    time.sleep(0.3)  # more than three frame intervals
    assert view.frames == frames and len(out.getvalue()) == size, "still drawing"


def test_finish_stops_the_live_region_and_prints_the_answer_with_a_footer() -> None:
    console, out = terminal()
    view = StreamView(console)
    view.start()
    view.add_text("| a | b |\n|---|---|\n| 1 | 2 |\n")
    assert wait_for(lambda: view.frames > 0)
    view.finish(usage=UsageEvent(input_tokens=1200, output_tokens=34), elapsed=2.5)
    assert_stopped(view, out)
    tail = out.getvalue().rsplit("\x1b[?25h", 1)[-1]
    assert "1,200 in / 34 out tokens" in tail and "2.5s" in tail
    assert "a" in tail and "|---|" not in tail
    view.finish()  # a second call does nothing
    assert out.getvalue().rsplit("\x1b[?25h", 1)[-1] == tail


def test_interrupt_stops_at_once_and_keeps_the_partial_answer() -> None:
    console, out = terminal()
    view = StreamView(console)
    view.start()
    view.add_text("The first half of an ans")
    view.interrupt()
    assert_stopped(view, out)
    tail = out.getvalue().rsplit("\x1b[?25h", 1)[-1]
    assert "The first half of an ans" in tail
    assert "interrupted — partial answer kept" in tail


def test_an_exception_in_the_block_stops_the_live_region() -> None:
    console, out = terminal()
    with pytest.raises(RuntimeError, match="stream broke"), StreamView(console) as view:
        view.start()
        view.add_text("partial")
        raise RuntimeError("stream broke")
    assert_stopped(view, out)
    assert "partial" in out.getvalue().rsplit("\x1b[?25h", 1)[-1]


def test_ctrl_c_in_the_block_stops_the_live_region_and_says_so() -> None:
    console, out = terminal()
    with pytest.raises(KeyboardInterrupt), StreamView(console) as view:
        view.start()
        view.add_text("partial")
        raise KeyboardInterrupt
    assert_stopped(view, out)
    tail = out.getvalue().rsplit("\x1b[?25h", 1)[-1]
    assert "partial" in tail and "interrupted" in tail


def test_suspended_takes_the_region_off_the_screen_and_brings_it_back() -> None:
    console, out = terminal()
    with StreamView(console) as view:
        view.start()
        view.add_text("Before the **question**.")
        view.tool_call("write", {"path": "a"})
        with view.suspended():
            assert not view.is_live
            size, frames = len(out.getvalue()), view.frames
            time.sleep(0.3)  # more than three frame intervals
            assert view.frames == frames and len(out.getvalue()) == size, "still drawing"
            console.print("Run write? ")  # what the question would show
        assert view.is_live
        view.tool_result("write", True, "ok")
        view.add_text("After.")
        view.finish(elapsed=1.5)
    shown = clean(out.getvalue())
    question = shown.index("Run write?")
    assert shown.index("question") < question < shown.index("✓ write  ok")
    assert shown.count("1.5s") == 1  # one footer, for the whole answer
    assert view.text == "Before the **question**.After."


async def test_the_clock_draws_while_a_coroutine_awaits_and_cancellation_stops_it() -> None:
    console, out = terminal()

    async def answer(view: StreamView) -> None:
        with view:
            view.start()
            for word in ("streamed ", "from ", "asyncio"):
                view.add_text(word)
                await asyncio.sleep(0.1)
            await asyncio.sleep(10)

    view = StreamView(console)
    task = asyncio.create_task(answer(view))
    for _ in range(300):  # the clock draws while this coroutine only awaits
        if "streamed from asyncio" in out.getvalue():
            break
        await asyncio.sleep(0.01)
    assert view.is_live and "streamed from asyncio" in out.getvalue()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert_stopped(view, out)
    assert "interrupted" in out.getvalue().rsplit("\x1b[?25h", 1)[-1]


# ------------------------------------------------------------------------ plain mode


def test_plain_mode_writes_text_through_as_it_arrives() -> None:
    out, err = io.StringIO(), io.StringIO()
    view = StreamView(Console(file=out), err_console=Console(file=err))
    assert view.plain  # not a terminal: chosen automatically
    view.start()
    view.add_reasoning("pondering")
    view.add_text("Hel")
    assert out.getvalue() == "Hel"
    view.add_text("lo **there**")
    assert out.getvalue() == "Hello **there**"  # as written: no rendering in a pipe
    view.tool_call("lookup", {"q": 1})
    view.tool_result("lookup", True, "found")
    view.add_text("Bye.")
    view.finish(usage=UsageEvent(input_tokens=5, output_tokens=7), elapsed=1.0)
    assert out.getvalue() == "Hello **there**\nBye.\n"
    assert err.getvalue() == (
        "pondering\n▸ lookup(q=1)\n✓ lookup  found\n1.0s · 5 in / 7 out tokens\n"
    )
    assert not view.is_live


def test_a_turn_that_showed_nothing_gets_no_time() -> None:
    """A provider's error before the first token: no ``1.5s`` line above the error, which
    the caller prints next; a note (an interrupt) is still said."""
    out, err = io.StringIO(), io.StringIO()
    view = StreamView(Console(file=out), err_console=Console(file=err))
    view.start()
    view.finish(elapsed=1.5)
    assert (out.getvalue(), err.getvalue()) == ("", "")

    view = StreamView(Console(file=out), err_console=Console(file=err))
    view.start()
    view.interrupt()
    assert err.getvalue() == "interrupted — partial answer kept\n"

    view = StreamView(Console(file=out), err_console=Console(file=err))
    view.tool_call("lookup", {"q": 1})  # a tool's line is output too
    view.finish(elapsed=1.5)
    assert err.getvalue().endswith("▸ lookup(q=1)\n1.5s\n")


def test_a_whole_answer_in_one_delta() -> None:
    """What ``--no-stream`` hands the view: the whole answer as one delta."""
    console, out = terminal()
    view = StreamView(console)
    view.start()
    view.add_text('{"ok": true}')
    view.finish(usage=UsageEvent(input_tokens=1, output_tokens=2))
    assert_stopped(view, out)
    assert '"ok": true' in Text.from_ansi(out.getvalue().rsplit("\x1b[?25h", 1)[-1]).plain

    out, err = io.StringIO(), io.StringIO()
    view = StreamView(Console(file=out), err_console=Console(file=err))
    view.add_reasoning("why")
    view.add_text("# Hi")
    view.finish()
    assert out.getvalue() == "# Hi\n" and err.getvalue().startswith("why\n")
