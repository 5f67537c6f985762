"""The chat page of ``parley web`` in a real headless Chromium, measured with the browser's clock.

    .venv/bin/python bench/web_browser.py [--runs 20] [--tokens 10000] [--strict]

Starts the fake upstream and ``parley serve`` (fresh SQLite database, as ``bench/run.py``
does), the Flask app (``parley.web.create_app``) in werkzeug's threaded server in this
process, and Chromium (``PARLEY_CHROMIUM`` or ``/usr/bin/chromium``) through Playwright.
``--pin`` (two CPUs or more, and ``taskset``) runs the servers on the first CPU and
Chromium on the second; on a two-CPU machine that squeezes all of Chromium's processes onto
one core, so it is off by default.

1. **First token**: ``--runs`` answers of ``fake/text:22:5``, each in a new thread. The page
   records (``window.__parleyTimings``, wall-clock milliseconds) when it parsed the first
   ``content.delta`` event, when the frame that put it in the DOM ran, and when that frame was
   painted (a message posted from the frame callback arrives after the paint). The Flask
   app's own moment of emitting that event is taken from its ``encode_event`` (wrapped
   here; same machine, same wall clock). Median and p95; target: visible ≤ 50 ms after the
   first server event.
2. **10,000 tokens**: one answer of ``fake/text:N:0`` (one long paragraph: the unfinished
   Markdown tail is the whole answer) and one of N Markdown chunks (headings, paragraphs,
   lists, code blocks: a file the fake upstream replays, ``fake/replay:PATH``, no gap).
   Both arrive as one burst, far faster than a model writes. While the answer streams and
   renders, the page's main thread is watched (``PerformanceObserver`` long tasks ≥ 50 ms,
   the longest gap between animation frames) and a key is pressed in the composer every
   100 ms: "key → painted" is from the key event's timestamp to the paint of the frame
   after it. Total = Enter to the whole answer on screen (the answer's
   ``data-state="done"``). Targets: no main-thread task over 50 ms, every key painted
   within 100 ms.

Prints a markdown table (for ``bench/README.md``) and writes JSON to
``bench/results/web_browser.json``. ``--strict`` makes a missed target exit 1.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import secrets
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from procs import BENCH, BenchDatabase, Cores, Parley, Upstream
from report import percentile

FIRST_TOKEN_TARGET_MS = 50.0
LONG_TASK_TARGET_MS = 50.0
KEY_TARGET_MS = 100.0
DEFAULT_CHROMIUM = "/usr/bin/chromium"

#: Watches the main thread from before the message is sent to the end of the answer.
PROBE = """() => {
  const probe = { longTasks: [], maxFrameGap: 0, last: 0, running: true, keys: [] };
  window.__probe = probe;
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) probe.longTasks.push(entry.duration);
  }).observe({ type: "longtask" });
  const tick = (t) => {
    if (probe.last) probe.maxFrameGap = Math.max(probe.maxFrameGap, t - probe.last);
    probe.last = t;
    if (probe.running) requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
  new MutationObserver(() => {
    const done = document.querySelector('[data-role="assistant"][data-state="done"]');
    if (done && !probe.settledAt) probe.settledAt = performance.now();
  }).observe(document.querySelector('[data-testid="messages"]'), {
    attributes: true, attributeFilter: ["data-state"], subtree: true,
  });
  const composer = document.querySelector('[data-testid="composer"]');
  composer.addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      probe.enterAt = event.timeStamp;
      return;
    }
    const pressed = performance.timeOrigin + event.timeStamp;
    requestAnimationFrame(() => {
      const channel = new MessageChannel();
      channel.port1.onmessage = () => {
        probe.keys.push(performance.timeOrigin + performance.now() - pressed);
      };
      channel.port2.postMessage(null);
    });
  });
}"""

STOP_PROBE = """() => {
  const probe = window.__probe;
  probe.running = false;
  return {
    longTasks: probe.longTasks, maxFrameGap: probe.maxFrameGap, keys: probe.keys,
    totalMs: probe.settledAt - probe.enterAt,
  };
}"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/web_browser.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=20, help="answers timed for the first token")
    p.add_argument("--tokens", type=int, default=10_000, help="tokens of the long answers")
    p.add_argument("--chromium", default=os.environ.get("PARLEY_CHROMIUM") or DEFAULT_CHROMIUM)
    p.add_argument("--rounds", type=int, default=3, help="rounds of each long answer")
    p.add_argument("--pin", action="store_true", help="servers on one CPU, Chromium on another")
    p.add_argument("--output", type=Path, default=BENCH / "results" / "web_browser.json")
    p.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    return p.parse_args(argv)


# ------------------------------------------------------------------------- the harness


class EmitClock:
    """Wall-clock milliseconds at which the Flask app emitted each ``content.delta`` event."""

    def __init__(self) -> None:
        self.content: list[float] = []
        self._lock = threading.Lock()

    def install(self) -> None:
        from parley.events import ContentDelta
        from parley.web import exchange

        encode = exchange.encode_event

        def timed(event: Any, seq: int | None = None) -> bytes:
            frame = encode(event, seq)
            if isinstance(event, ContentDelta):
                with self._lock:
                    self.content.append(time.time() * 1000)
            return frame

        exchange.encode_event = timed  # type: ignore[assignment]

    def take(self) -> list[float]:
        with self._lock:
            taken, self.content = self.content, []
        return taken


def describe_pinning(cores: Cores) -> str:
    """``cores.server``: the servers and this process (the web app); ``cores.client``:
    Chromium."""
    if cores.server is None:
        return "not pinned to CPUs"
    return (
        f"Parley, fake upstream and web app on CPU {cores.server}; Chromium on CPU {cores.client}"
    )


@contextmanager
def running_stack(workdir: Path, pinning: Cores) -> Iterator[str]:
    """Fake upstream, ``parley serve`` and the web app; yields the web app's URL."""
    from parley.web import create_app
    from parley.web.app import close_app
    from parley.web.server import WebServer

    cores = Cores(pinning.server, pinning.server)  # all of them on the servers' CPU
    if pinning.server is not None:
        os.sched_setaffinity(0, {pinning.server})  # the web app's threads inherit it
    upstream = Upstream(cores, chunks=22)
    database = BenchDatabase(workdir, None)
    parley = Parley(
        database_url=database.url, workdir=workdir, upstream_url=upstream.url, cores=cores
    )
    app = None
    web = None
    try:
        key = parley.create_user("bench-web")
        parley.start()
        app = create_app(base_url=parley.base_url, api_key=key, secret_key=secrets.token_hex(32))
        web = WebServer(app, "127.0.0.1", 0).start_in_thread()
        yield web.url
    finally:
        if web is not None:
            web.stop()
        if app is not None:
            close_app(app)
        parley.stop()
        upstream.stop()
        database.drop()


@contextmanager
def chromium(path: str, pinning: Cores) -> Iterator[Any]:
    """Headless Chromium; its processes inherit the affinity of this thread at launch."""
    from playwright.sync_api import sync_playwright

    before = os.sched_getaffinity(0)
    if pinning.client is not None:
        os.sched_setaffinity(0, {pinning.client})
    try:
        playwright = sync_playwright().start()  # the driver, then Chromium, inherit it
    finally:
        os.sched_setaffinity(0, before)
    try:
        browser = playwright.chromium.launch(
            executable_path=path, args=["--no-sandbox"], headless=True
        )
        try:
            yield browser
        finally:
            browser.close()
    finally:
        playwright.stop()


class Page:
    def __init__(self, browser: Any, url: str, model: str) -> None:
        from playwright.sync_api import expect

        self.expect = expect
        self.context = browser.new_context()
        self.page = self.context.new_page()
        self.page.goto(f"{url}/?model={model}")
        expect(self.page.locator("body[data-ready=true]")).to_be_attached()
        self.composer = self.page.get_by_test_id("composer")

    def new_thread(self) -> None:
        self.page.get_by_test_id("new-thread").click()

    def send(self, text: str) -> None:
        self.composer.fill(text)
        self.composer.press("Enter")

    def settled(self) -> bool:
        """The answer is all on screen."""
        found = self.page.locator('[data-role="assistant"][data-state="done"]').count()
        return bool(found)

    def wait_done(self, timeout_ms: float = 120_000) -> None:
        """The Send button is back and the answer is all on screen."""
        self.expect(self.page.get_by_test_id("send")).to_be_visible(timeout=timeout_ms)
        answer = self.page.locator('[data-testid="message"][data-role="assistant"]').last
        self.expect(answer).to_have_attribute("data-state", "done", timeout=timeout_ms)

    def timings(self) -> list[dict[str, Any]]:
        return list(self.page.evaluate("window.__parleyTimings"))

    def close(self) -> None:
        self.context.close()


# -------------------------------------------------------------------------- the phases


def first_token(browser: Any, url: str, clock: EmitClock, runs: int) -> dict[str, Any]:
    page = Page(browser, url, "fake/text:22:5")
    emitted: list[float] = []
    try:
        for run in range(runs + 2):  # two warm-up answers
            page.new_thread()
            clock.take()
            page.send(f"first token {run}")
            page.wait_done()
            if run >= 2:
                emitted.append(clock.take()[0])
        timings = page.timings()[2:]
    finally:
        page.close()
    rows = []
    for timing, emit in zip(timings, emitted, strict=True):
        rows.append(
            {
                "parse_to_dom_ms": timing["firstRenderedAt"] - timing["firstEventAt"],
                "parse_to_painted_ms": timing["firstVisibleAt"] - timing["firstEventAt"],
                "emitted_to_parse_ms": timing["firstEventAt"] - emit,
                "emitted_to_painted_ms": timing["firstVisibleAt"] - emit,
            }
        )
    return {"runs": rows}


def markdown_chunks(tokens: int) -> list[str]:
    """``tokens`` word-sized chunks of Markdown: headings, paragraphs, lists, code blocks."""
    chunks: list[str] = []
    section = 0
    while len(chunks) < tokens:
        section += 1
        block = [
            f"## Section {section}",
            "",
            "Parley streams **every token** from the model to the page, and the page "
            "renders the answer as *Markdown* while it arrives, with `inline code` too.",
            "",
            "- the first point of the list",
            "- the second point, a little longer than the first",
            "",
            "```python",
            f"def section_{section}(x):",
            "    return x * 2",
            "```",
            "",
        ]
        chunks += re.findall(r"\S+\s*|\s+", "\n".join(block) + "\n")
    return chunks[:tokens]


def replay_file(path: Path, chunks: list[str]) -> Path:
    """An OpenAI Chat Completions SSE stream of ``chunks``, for ``fake/replay:PATH``."""

    def event(delta: dict[str, Any], finish: str | None = None) -> str:
        chunk = {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": "bench",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        return f"data: {json.dumps(chunk)}\n\n"

    with path.open("w") as out:
        out.write(event({"role": "assistant", "content": ""}))
        for piece in chunks:
            out.write(event({"content": piece}))
        out.write(event({}, "stop"))
        out.write("data: [DONE]\n\n")
    return path


def long_answer(browser: Any, url: str, model: str, message: str) -> dict[str, Any]:
    page = Page(browser, url, quote(model, safe=""))
    try:
        page.page.evaluate(PROBE)
        page.send(message)
        keys = 0
        while not page.settled():
            page.page.keyboard.press("x")
            keys += 1
            time.sleep(0.1)
        page.wait_done()
        probe = page.page.evaluate(STOP_PROBE)
        words = page.page.evaluate(
            """() => document.querySelector('[data-role="assistant"] [data-testid="content"]')
                 .textContent.split(/\\s+/).filter(Boolean).length"""
        )
    finally:
        page.close()
    return {
        "total_s": probe["totalMs"] / 1000,
        "long_tasks_ms": probe["longTasks"],
        "max_frame_gap_ms": probe["maxFrameGap"],
        "keys_ms": probe["keys"],
        "keys_pressed": keys,
        "words_rendered": words,
    }


def long_answers(browser: Any, url: str, model: str, message: str, rounds: int) -> dict[str, Any]:
    """``rounds`` answers: the median total, the worst task and frame gap, every key."""
    runs = [long_answer(browser, url, model, message) for _ in range(rounds)]
    return {
        "rounds": runs,
        "total_s": statistics.median(r["total_s"] for r in runs),
        "long_tasks_ms": [ms for r in runs for ms in r["long_tasks_ms"]],
        "max_frame_gap_ms": max(r["max_frame_gap_ms"] for r in runs),
        "keys_ms": [ms for r in runs for ms in r["keys_ms"]],
        "words_rendered": min(r["words_rendered"] for r in runs),
    }


# ----------------------------------------------------------------------------- report


def _ms(value: float) -> str:
    return f"{value:.1f} ms"


def _verdict(ok: bool) -> str:
    return "pass" if ok else "miss"


def report(results: dict[str, Any]) -> tuple[list[str], bool]:
    lines = [
        "| measure | median | p95 | max | target | result |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    missed = False
    runs = results["first_token"]["runs"]
    for key, label, target in (
        ("emitted_to_painted_ms", "first token: Flask app emitted → painted", True),
        ("parse_to_painted_ms", "first token: page parsed → painted", True),
        ("parse_to_dom_ms", "first token: page parsed → in the DOM", False),
        ("emitted_to_parse_ms", "first token: Flask app emitted → page parsed", False),
    ):
        values = [r[key] for r in runs]
        p95 = percentile(values, 0.95)
        ok = p95 <= FIRST_TOKEN_TARGET_MS
        missed |= target and not ok
        lines.append(
            f"| {label} ({len(values)} runs) | {_ms(statistics.median(values))} | {_ms(p95)} "
            f"| {_ms(max(values))} | {'≤ 50 ms' if target else '—'} "
            f"| {_verdict(ok) if target else '—'} |"
        )
    for name, run in results["long"].items():
        longest = max(run["long_tasks_ms"], default=0.0)
        tasks = len(run["long_tasks_ms"])
        keys = run["keys_ms"] or [float("nan")]
        ok_tasks = longest <= LONG_TASK_TARGET_MS
        ok_keys = max(keys) <= KEY_TARGET_MS
        missed |= not (ok_tasks and ok_keys)
        lines += [
            f"| {name}: Enter → all on screen ({run['words_rendered']:,} words; "
            f"median of {len(run['rounds'])}) "
            f"| {run['total_s']:.2f} s | — | — | — | — |",
            f"| {name}: longest main-thread task ({tasks} over 50 ms "
            f"in {len(run['rounds'])} answers) | — | — "
            f"| {_ms(longest) if tasks else 'none ≥ 50 ms'} | ≤ 50 ms | {_verdict(ok_tasks)} |",
            f"| {name}: longest gap between frames | — | — | {_ms(run['max_frame_gap_ms'])} "
            "| — | — |",
            f"| {name}: key → painted ({len(run['keys_ms'])} keys) "
            f"| {_ms(statistics.median(keys))} | {_ms(percentile(keys, 0.95))} "
            f"| {_ms(max(keys))} | ≤ 100 ms | {_verdict(ok_keys)} |",
        ]
    return lines, missed


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not Path(args.chromium).is_file():
        print(f"no Chromium at {args.chromium} (set PARLEY_CHROMIUM or --chromium)")
        return 2
    pinning = Cores.pick(args.pin)
    clock = EmitClock()
    clock.install()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="parley-bench-web-") as tmp:
        markdown = replay_file(Path(tmp) / "markdown.sse", markdown_chunks(args.tokens))
        with (
            running_stack(Path(tmp), pinning) as url,
            chromium(args.chromium, pinning) as browser,
        ):
            version = browser.version
            results: dict[str, Any] = {
                "first_token": first_token(browser, url, clock, args.runs),
                "long": {
                    f"{args.tokens:,} tokens, one paragraph": long_answers(
                        browser, url, f"fake/text:{args.tokens}:0", "a long answer", args.rounds
                    ),
                    f"{args.tokens:,} tokens, Markdown": long_answers(
                        browser, url, f"fake/replay:{markdown}", "a long answer", args.rounds
                    ),
                },
            }
    lines, missed = report(results)
    print("\n".join(lines))
    print()
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, Chromium {version} (headless); "
        f"{describe_pinning(pinning)}; load average before: {load:.2f}."
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    settings = {"runs": args.runs, "tokens": args.tokens, "chromium": version}
    args.output.write_text(json.dumps({"settings": settings, "results": results}, indent=2))
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
