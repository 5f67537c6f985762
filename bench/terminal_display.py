"""How many answer deltas a second the terminal display takes, into a real terminal.

    .venv/bin/python bench/terminal_display.py [--deltas 50000] [--rounds 3] [--strict]

Opens a pseudo-terminal (``os.openpty``, window set to ``--width`` x ``--height``), drains
its master side on a reader thread (as a terminal emulator would) and writes one answer of
``--deltas`` small deltas (3-6 characters of a Markdown answer: paragraphs, lists, a table,
code blocks) through ``parley.terminal.display.StreamView`` on the slave side, as fast as
the loop can call it. Three modes:

* **live**: the live region (frame clock at 12 Hz, Markdown tail), text deltas only;
* **live + reasoning**: the same, every second delta a reasoning delta;
* **plain**: ``plain=True`` (``parley ask`` in a pipe), every delta written and flushed.

Per mode and round: chunks/s = deltas ÷ (``start`` → ``finish`` returned, the final
rendering of the whole answer included); "stream only" = deltas ÷ the time until the last
delta was accepted; "finish" = the time ``finish`` took (the final Markdown rendering of
the whole answer). Then, with the whole answer still in the view, the time one frame takes
to draw (median of 20 ``refresh`` calls) is measured against the same after the first few
lines: the frame cost must not grow with the answer. The median round is shown. The target
(≥ 10,000 chunks/s in every mode) is reported; ``--strict`` makes a miss exit 1.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import platform
import statistics
import struct
import sys
import termios
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from rich.console import Console

from parley.terminal.display import StreamView

TARGET = 10_000.0


@dataclass
class Round:
    total_s: float
    stream_s: float
    finish_s: float
    frame_first_ms: float
    frame_last_ms: float


class Pty:
    """A pseudo-terminal whose master side is drained by a thread."""

    def __init__(self, width: int, height: int) -> None:
        self.master, self.slave = os.openpty()
        winsize = struct.pack("HHHH", height, width, 0, 0)
        fcntl.ioctl(self.slave, termios.TIOCSWINSZ, winsize)
        self.file = os.fdopen(self.slave, "w", encoding="utf-8", buffering=1 << 16)
        self.received = 0
        self._reader = threading.Thread(target=self._drain, name="pty-reader", daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        while True:
            try:
                data = os.read(self.master, 1 << 16)
            except OSError:  # the slave side closed
                return
            if not data:
                return
            self.received += len(data)

    def close(self) -> None:
        self.file.close()
        self._reader.join(timeout=5)
        os.close(self.master)


def answer_deltas(count: int) -> list[str]:
    """``count`` deltas of 3-6 characters cut from a long Markdown answer."""
    section = (
        "## Section {n}\n\n"
        "The service keeps **one** connection per client and retries with `backoff`; "
        "each retry waits a little longer than the one before it.\n\n"
        "- first, read the configuration\n- then open the pool\n- finally serve\n\n"
        "| step | time |\n|------|-----:|\n| read | 2 ms |\n| open | 9 ms |\n\n"
        "```python\ndef retry(call, attempts={n}):\n    for i in range(attempts):\n"
        "        if call():\n            return True\n    return False\n```\n\n"
    )
    deltas: list[str] = []
    n = 0
    while len(deltas) < count:
        text = section.format(n=n)
        i = 0
        while i < len(text) and len(deltas) < count:
            size = 3 + (i * 7 + n) % 4
            deltas.append(text[i : i + size])
            i += size
        n += 1
    return deltas


def frame_ms(view: StreamView) -> float:
    samples = []
    for _ in range(20):
        start = time.perf_counter()
        view.refresh()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def run_round(pty: Pty, args: argparse.Namespace, mode: str, deltas: list[str]) -> Round:
    console = Console(
        file=pty.file,
        width=args.width,
        height=args.height,
        force_terminal=True,
        force_interactive=True,
    )
    plain = mode == "plain"
    err = Console(file=pty.file, width=args.width, force_terminal=True) if plain else None
    view = StreamView(console, plain=plain, err_console=err)
    add_text = view.add_text
    add_reasoning = view.add_reasoning
    reasoning = mode == "live + reasoning"
    first_ms = 0.0
    start = time.perf_counter()
    view.start()
    for i, delta in enumerate(deltas):
        if reasoning and i % 2:
            add_reasoning(delta)
        else:
            add_text(delta)
        if i == 200 and not plain:
            paused = time.perf_counter()
            first_ms = frame_ms(view)
            start += time.perf_counter() - paused  # not part of the stream's time
    streamed = time.perf_counter()
    last_ms = 0.0 if plain else frame_ms(view)
    finish_start = time.perf_counter()
    view.finish()
    end = time.perf_counter()
    stream_s = streamed - start
    finish_s = end - finish_start
    return Round(stream_s + finish_s, stream_s, finish_s, first_ms, last_ms)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="bench/terminal_display.py", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--deltas", type=int, default=50_000, help="deltas per answer")
    p.add_argument("--rounds", type=int, default=3, help="rounds (the median is shown)")
    p.add_argument("--width", type=int, default=100, help="terminal columns")
    p.add_argument("--height", type=int, default=40, help="terminal rows")
    p.add_argument("--strict", action="store_true", help="exit 1 when a mode misses the target")
    return p.parse_args(argv)


def median_round(rounds: list[Round], key: Callable[[Round], float]) -> Round:
    return sorted(rounds, key=key)[len(rounds) // 2]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if os.environ.get("TERM", "dumb") in ("", "dumb", "unknown"):
        os.environ["TERM"] = "xterm-256color"  # a pty is a capable terminal
    deltas = answer_deltas(args.deltas)
    chars = sum(map(len, deltas))
    modes = ("live", "live + reasoning", "plain")
    results: dict[str, list[Round]] = {mode: [] for mode in modes}
    pty = Pty(args.width, args.height)
    try:
        run_round(pty, args, "live", deltas[:2000])  # warm-up: imports, regexes, lexers
        for _ in range(args.rounds):
            for mode in modes:
                results[mode].append(run_round(pty, args, mode, deltas))
    finally:
        received = pty.received
        pty.close()

    print(
        "| mode | deltas | chunks/s | stream only | finish | one frame, 200 deltas in "
        f"| one frame, {args.deltas:,} in | target | result |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    missed = False
    for mode in modes:
        r = median_round(results[mode], key=lambda r: r.total_s)
        rate = args.deltas / r.total_s
        missed |= rate < TARGET
        first = "—" if mode == "plain" else f"{r.frame_first_ms:.1f} ms"
        last = "—" if mode == "plain" else f"{r.frame_last_ms:.1f} ms"
        print(
            f"| {mode} | {args.deltas:,} | {rate:,.0f} | {args.deltas / r.stream_s:,.0f} "
            f"| {r.finish_s * 1000:.0f} ms | {first} | {last} "
            f"| ≥ {TARGET:,.0f} | {'pass' if rate >= TARGET else 'miss'} |"
        )
    print()
    print(
        f"{platform.processor() or platform.machine()}, Python {platform.python_version()}; "
        f"pty {args.width}x{args.height}; answer {chars:,} characters; "
        f"{args.rounds} round(s), median shown; {received:,} bytes reached the terminal."
    )
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
