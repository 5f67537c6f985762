"""History length: what one streamed turn costs as its thread grows, with the model's context
window unknown (the whole thread is sent) and with a window that holds about 500 messages.

    .venv/bin/python bench/history.py [--sizes 10,500,1000,10000] [--turns 7] [--database-url URL]

Starts the fake upstream and ``parley serve`` as ``bench/run.py`` does (the server pinned to
one CPU, this process and the upstream to the other, a fresh SQLite file or, with
``--database-url``, a fresh PostgreSQL database). The config has two providers on that
upstream: ``fake``, whose model's window Parley does not know, and ``windowed``, whose
model has ``context_window`` set to hold about ``--window-messages`` of the thread's
messages. For each setting and each size, a thread of that many prior messages (user and
assistant in turn, 200-400 characters each) is written through the server's API: a
conversation (``POST /v1/conversations``), then responses in it (``POST /v1/responses``)
whose input carries up to 2,047 of the messages and whose answer is the next one.
Then ``--turns`` rounds: in each, one streamed turn (``POST /v1/process`` with the thread's
id) on every thread, the threads' order rotating every round. Per turn: time to the first
``content.delta`` and to the end of the body at the client, the server process's CPU (the
kernel's CPU clock of the process, from before the request until, after the end of the
body, the process has used no CPU for ``--quiet-ms``) and the messages of the request the
upstream received. Every turn adds its two messages to the thread. Prints a table of
medians with the targets of issue 13 and a markdown copy; writes JSON to
``bench/results/history.json`` (read by ``bench/plots.py``). See ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
from loadclient import Connection, Target, parley_event, stream_once
from procs import BENCH, BenchDatabase, Cores, Parley, Upstream, cpu_clock
from report import markdown_table, percentile, text_table, verdict, write_json
from run import (
    ServerBench,
    add_server_options,
    run_loop,
    run_measurement,
    serving,
    timed_rounds,
)

from parley.engine.context import answer_room, estimate
from parley.providers.base import ChatMessage
from parley.types import Role

#: The two settings: the provider each one's assistant uses, and its title.
SETTINGS = {"unknown": "fake", "window": "windowed"}
#: The targets issue 13 names: turn CPU of the largest thread over that of the thread of
#: about a window's messages, with the window; server CPU per message sent upstream.
TARGETS = {"window_cpu_ratio": 1.3, "cpu_us_per_message_sent": 5.0}
#: Items a response's input may hold (``parley.server.faces.responses.protocol.MAX_ITEMS``).
MAX_INPUT = 2048
#: The model that answers while a thread is built: its answers are about 250 characters.
BUILD_MODEL = "fake/text:40:0"
#: What the user says in every measured turn.
QUESTION = "Given everything above, what should we look at next, and why?"
_WORDS = (
    *("the", "a", "thread", "message", "model", "answer", "question", "server", "stream"),
    *("token", "window", "history", "turn", "context", "before", "after", "because", "which"),
    *("database", "request", "response", "assistant", "user", "about", "every", "should"),
    *("measure", "longer", "shorter", "first", "second", "result", "number", "value", "time"),
    *("we", "it", "is", "was", "and", "or", "but", "not", "with", "from", "into", "that"),
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/history.py", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--sizes",
        default="10,500,1000,10000",
        help="prior messages of each thread, comma-separated (the smallest is the baseline "
        "of the CPU per message sent)",
    )
    p.add_argument("--turns", type=int, default=7, help="measured turns per thread (medians)")
    p.add_argument(
        "--window-messages",
        type=int,
        default=500,
        help="messages the windowed model's context_window holds (0: only the unknown window)",
    )
    p.add_argument("--chunks", type=int, default=22, help="content chunks of each answer")
    p.add_argument("--gap-ms", type=float, default=0.0, help="ms between the answer's chunks")
    p.add_argument(
        "--chars", default="200,400", help="length range of a prior message, in characters"
    )
    p.add_argument("--warmup", type=int, default=3, help="untimed turns per setting first")
    p.add_argument(
        "--quiet-ms",
        type=float,
        default=3.0,
        help="a turn's server CPU is read once the server has used none for this long after "
        "the end of the body (at most 200 ms after it)",
    )
    p.add_argument("--seed", type=int, default=13, help="seed of the messages' text")
    p.add_argument(
        "--json", action="store_true", help="print the results as JSON instead of the table"
    )
    add_server_options(p, "history.json")
    args = p.parse_args(argv)
    args.sizes = sorted({int(n) for n in args.sizes.split(",") if n.strip()})
    low, _, high = args.chars.partition(",")
    args.chars = (int(low), int(high or low))
    if not args.sizes or args.sizes[0] < 0 or any(n % 2 for n in args.sizes):
        p.error("--sizes: even message counts, 0 or more (a thread ends with an answer)")
    if args.turns < 1 or not 1 <= args.chars[0] <= args.chars[1]:
        p.error("--turns must be 1 or more, --chars MIN,MAX with 1 <= MIN <= MAX")
    if args.output is None:
        args.output = BENCH / "results" / "history.json"
    return args


# --------------------------------------------------------------------------- threads


def prior_messages(count: int, chars: tuple[int, int], seed: int) -> list[tuple[str, str]]:
    """``count`` (role, text) pairs: user first, then assistant, in turn; each text words of
    a small vocabulary, between ``chars`` characters long. The same seed, the same texts."""
    rng = random.Random(seed)
    messages = []
    for number in range(count):
        target = rng.randint(*chars)
        words: list[str] = []
        length = -1
        while length < target:
            words.append(rng.choice(_WORDS))
            length += len(words[-1]) + 1
        text = " ".join(words)[:target].rstrip() + "."
        messages.append(("user" if number % 2 == 0 else "assistant", text))
    return messages


def window_tokens(messages: list[tuple[str, str]], held: int) -> int:
    """A context window that holds about ``held`` messages like ``messages`` and the turn's
    question, with the room Parley keeps for the answer; tokens estimated as the engine
    estimates them (``parley.engine.context``)."""
    costs = [estimate(ChatMessage(role=Role(role), content=text)) for role, text in messages]
    mean = statistics.fmean(costs) if costs else 0.0
    need = round(mean * held) + estimate(ChatMessage(role=Role.USER, content=QUESTION))
    tokens = need
    while tokens - answer_room(tokens) < need:
        tokens = need + answer_room(tokens)
    return tokens


def _item(role: str, text: str) -> dict[str, Any]:
    return {"type": "message", "role": role, "content": text}


async def build_thread(http: httpx.AsyncClient, count: int, messages: list[tuple[str, str]]) -> str:
    """A new conversation (a thread) of ``count`` messages (even), user and assistant in
    turn; answers its id. Written by responses in the conversation, each with up to
    ``MAX_INPUT - 1`` items of ``messages`` ending with a user message, whose answer
    (``BUILD_MODEL``) is the assistant message after it (the Conversations API's items
    endpoint takes 20 a call: 500 calls for 10,000 messages)."""
    made = await http.post("/v1/conversations", json={})
    made.raise_for_status()
    thread_id = str(made.json()["id"])
    done = 0
    while done < count:
        batch = min(count - done, MAX_INPUT) - 1  # odd: it ends with a user message
        items = [_item(*m) for m in messages[done : done + batch]]
        body = {"model": BUILD_MODEL, "conversation": thread_id, "input": items}
        answered = await http.post("/v1/responses", json=body)
        answered.raise_for_status()
        if answered.json().get("status") != "completed":
            raise RuntimeError(f"building a thread: response {answered.json().get('status')}")
        done += batch + 1
    return thread_id


# ------------------------------------------------------------------------- processes


def windowed_provider(upstream_url: str, model: str, window: int) -> str:
    """The config of the provider ``windowed``: the fake upstream again, its ``model`` given
    a context window of ``window`` tokens."""
    return (
        f'[providers.windowed]\nkind = "openai-chat"\nbase_url = "{upstream_url}/v1"\n'
        f'api_key = "sk-fake"\n\n[providers.windowed.models."{model}"]\n'
        f"context_window = {window}\n"
    )


def _model(args: argparse.Namespace) -> str:
    return f"text:{args.chunks}:{args.gap_ms:g}"


# --------------------------------------------------------------------------- turns


@dataclass(slots=True)
class Case:
    """One thread of one setting: its size, and the request of a turn on it."""

    setting: str
    prior: int
    thread_id: str
    target: Target
    turns: list[dict[str, Any]] = field(default_factory=list)


class HistoryBench(ServerBench[str]):
    """The threads of every setting and size, and one measured turn on a thread."""

    def __init__(
        self, args: argparse.Namespace, upstream: Upstream, parley: Parley, key: str
    ) -> None:
        super().__init__(args, upstream, parley, key)
        self.settings = [s for s in SETTINGS if s == "unknown" or args.window_messages > 0]
        self.cases: list[Case] = []
        self.warmups: list[Case] = []
        self.build: dict[str, Any] = {}
        self._connection: Connection | None = None

    async def prepare(self, messages: list[tuple[str, str]]) -> None:
        """An assistant per setting; every thread, written concurrently; the warm-up."""
        headers = {"Authorization": f"Bearer {self.key}"}
        async with httpx.AsyncClient(
            base_url=self.parley.base_url, headers=headers, timeout=120
        ) as http:
            assistants = {}
            for setting in self.settings:
                model = f"{SETTINGS[setting]}/{_model(self.args)}"
                made = await http.post(
                    "/v1/assistants", json={"name": f"history-{setting}", "model": model}
                )
                made.raise_for_status()
                assistants[setting] = made.json()["id"]
            plan = [(s, n) for s in self.settings for n in self.args.sizes]
            threads = [*plan, *((s, 2) for s in self.settings)]  # then the warm-up's
            started = time.perf_counter()
            ids = await asyncio.gather(*(build_thread(http, n, messages) for _, n in threads))
            self.build = {
                "seconds": time.perf_counter() - started,
                "messages": sum(n for _, n in threads),
                "threads": len(ids),
                "api": f"POST /v1/conversations, then POST /v1/responses in it with up to "
                f"{MAX_INPUT - 1} input items a call",
            }
        made_cases = [
            self._case(setting, prior, thread_id, assistants[setting])
            for (setting, prior), thread_id in zip(threads, ids, strict=True)
        ]
        self.cases, self.warmups = made_cases[: len(plan)], made_cases[len(plan) :]
        await self.upstream_call("POST", "/_reset")  # the requests of the building
        self._connection = await Connection.open(self.parley.port)
        for _ in range(self.args.warmup):
            for case in self.warmups:
                measured = await self.turn(case)
                if measured["problem"]:
                    raise RuntimeError(f"warm-up turn failed: {measured['problem']}")
        await self.upstream_call("POST", "/_reset")

    def _case(self, setting: str, prior: int, thread_id: str, assistant_id: str) -> Case:
        body = {"assistant_id": assistant_id, "thread_id": thread_id, "content": QUESTION}
        target = Target.post(
            f"{setting}/{prior}",
            self.parley.port,
            "/v1/process",
            orjson.dumps(body),
            parley_event,
            Authorization=f"Bearer {self.key}",
        )
        return Case(setting, prior, thread_id, target)

    async def turn(self, case: Case) -> dict[str, Any]:
        """One streamed turn on the case's thread: client times, the server's CPU, and
        what the upstream was sent."""
        assert self._connection is not None
        pid = self.parley.pid
        cpu0 = cpu_clock(pid)
        self._connection, result = await stream_once(self._connection, case.target, 300.0)
        cpu = await quiet_cpu(pid, self.args.quiet_ms / 1000) - cpu0
        requests = await self.upstream_call("GET", "/_requests")
        await self.upstream_call("POST", "/_reset")
        last = requests[-1] if requests else {}
        problem = result.problem
        if not problem and len(requests) != 1:
            problem = f"{len(requests)} upstream requests in one turn"
        if not problem and result.content_events < self.args.chunks:
            problem = f"{result.content_events} content events of {self.args.chunks}"
        return {
            "problem": problem,
            "ttft_ms": result.ttfc * 1000,
            "turn_ms": result.duration * 1000,
            "cpu_ms": cpu * 1000,
            "sent": len(last.get("messages") or ()),
            "request_kib": len(orjson.dumps(last)) / 1024,
        }

    async def one_round(self, number: int) -> None:
        """One turn per thread, the order rotating every round."""
        shift = number % len(self.cases)
        for case in self.cases[shift:] + self.cases[:shift]:
            case.turns.append(await self.turn(case))

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()


async def quiet_cpu(pid: int, still_s: float, limit_s: float = 0.2) -> float:
    """The process's CPU seconds once it has used none for ``still_s`` (work a turn leaves
    after its last byte counts), or after ``limit_s`` at the most."""
    deadline = asyncio.get_running_loop().time() + limit_s
    cpu = cpu_clock(pid)
    while True:
        await asyncio.sleep(still_s)
        now = cpu_clock(pid)
        if now == cpu or asyncio.get_running_loop().time() > deadline:
            return now
        cpu = now


async def _measure(bench: HistoryBench, messages: list[tuple[str, str]]) -> None:
    try:
        await bench.prepare(messages)
        print(
            f"{bench.build['threads']} threads, {bench.build['messages']:,} messages written in "
            f"{bench.build['seconds']:.1f} s",
            file=sys.stderr,
        )
        await timed_rounds(bench.args.turns, bench.one_round, file=sys.stderr)
    finally:
        await bench.close()


def measure(
    args: argparse.Namespace, cores: Cores, db: BenchDatabase, workdir: Path
) -> dict[str, Any]:
    messages = prior_messages(max(args.sizes), args.chars, args.seed)
    window = window_tokens(messages, args.window_messages)

    def config(upstream_url: str) -> str:
        return windowed_provider(upstream_url, _model(args), window)

    with serving(args, cores, workdir, db.url, config=config) as (upstream, parley, key, _):
        bench = HistoryBench(args, upstream, parley, key)
        run_loop(_measure(bench, messages))
    return {
        "window_tokens": window,
        "build": bench.build,
        "cases": [
            {"setting": c.setting, "prior": c.prior, "thread_id": c.thread_id, "turns": c.turns}
            for c in bench.cases
        ],
    }


# ---------------------------------------------------------------------------- summary


def summarise(args: argparse.Namespace, measured: dict[str, Any]) -> dict[str, Any]:
    """Per case: medians of its good turns; per setting, the CPU per message sent against
    the smallest thread; the targets' values."""
    rows: list[dict[str, Any]] = []
    for case in measured["cases"]:
        good = [t for t in case["turns"] if not t["problem"]]
        row: dict[str, Any] = {
            "setting": case["setting"],
            "prior": case["prior"],
            "turns": len(case["turns"]),
            "failures": len(case["turns"]) - len(good),
            "problems": sorted({t["problem"] for t in case["turns"] if t["problem"]}),
        }
        if good:
            row |= {
                "sent_p50": statistics.median(t["sent"] for t in good),
                "sent_first": good[0]["sent"],
                "ttft_p50_ms": percentile([t["ttft_ms"] for t in good], 0.5),
                "turn_p50_ms": percentile([t["turn_ms"] for t in good], 0.5),
                "cpu_p50_ms": percentile([t["cpu_ms"] for t in good], 0.5),
                "request_kib_p50": percentile([t["request_kib"] for t in good], 0.5),
            }
        rows.append(row)
    for setting in SETTINGS:
        mine = [r for r in rows if r["setting"] == setting and "cpu_p50_ms" in r]
        if not mine:
            continue
        base = min(mine, key=lambda r: r["prior"])
        for row in mine:
            more = row["sent_p50"] - base["sent_p50"]
            if row is not base and more > 0:
                row["cpu_us_per_message_sent"] = (
                    (row["cpu_p50_ms"] - base["cpu_p50_ms"]) * 1000 / more
                )
    return {"rows": rows, "targets": _target_values(args, rows)}


def _target_values(args: argparse.Namespace, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The issue's two numbers, where this run measured them: the windowed turn's CPU on
    the largest thread over that on the thread of ``--window-messages``; the CPU per
    message sent on the largest thread with the window unknown."""
    by = {(r["setting"], r["prior"]): r for r in rows}
    largest, held = max(args.sizes), args.window_messages
    values: dict[str, Any] = {}
    top, at_window = by.get(("window", largest)), by.get(("window", held))
    if top and at_window and largest > held and "cpu_p50_ms" in top and "cpu_p50_ms" in at_window:
        values["window_cpu_ratio"] = {
            "value": top["cpu_p50_ms"] / at_window["cpu_p50_ms"],
            "of": [largest, held],
        }
    whole = by.get(("unknown", largest))
    if whole and "cpu_us_per_message_sent" in whole:
        values["cpu_us_per_message_sent"] = {
            "value": whole["cpu_us_per_message_sent"],
            "of": [min(args.sizes), largest],
        }
    return values


def setting_title(setting: str, window_messages: int) -> str:
    return "unknown (all sent)" if setting == "unknown" else f"~{window_messages:,} messages"


HEADER = (
    "window",
    "prior messages",
    "messages sent",
    "TTFT p50",
    "whole turn p50",
    "turn CPU p50",
    "CPU per message sent",
)


def table_rows(args: argparse.Namespace, summary: dict[str, Any]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for row in summary["rows"]:
        title = setting_title(row["setting"], args.window_messages)
        if "cpu_p50_ms" not in row:
            rows.append((title, f"{row['prior']:,}", "failed", "—", "—", "—", "—"))
            continue
        per = row.get("cpu_us_per_message_sent")
        rows.append(
            (
                title,
                f"{row['prior']:,}",
                f"{row['sent_p50']:,.0f}",
                f"{row['ttft_p50_ms']:.2f} ms",
                f"{row['turn_p50_ms']:.2f} ms",
                f"{row['cpu_p50_ms']:.2f} ms",
                "—" if per is None else f"{per:.2f} µs",
            )
        )
    return rows


def target_lines(summary: dict[str, Any]) -> list[tuple[str, bool]]:
    """Each target this run measured: a line saying it, and whether it was met."""
    lines = []
    for name, measured in summary["targets"].items():
        value, limit = measured["value"], TARGETS[name]
        if name == "window_cpu_ratio":
            big, held = measured["of"]
            text = (
                f"turn CPU, {big:,} prior messages ÷ {held:,}, window ~{held:,} messages: "
                f"{value:.2f}x (target ≤ {limit:g}x)"
            )
        else:
            small, big = measured["of"]
            text = (
                f"server CPU per message sent upstream, window unknown, {small:,} → {big:,} "
                f"prior messages: {value:.2f} µs (target ≤ {limit:g} µs)"
            )
        lines.append((f"{text}: {verdict(value <= limit)}", value <= limit))
    return lines


def _notes(args: argparse.Namespace, env: dict[str, Any], results: dict[str, Any]) -> str:
    build = results["build"]
    return (
        f"{env['cpu']}; Python {env['python']}; {env['database']}; {env['pinning']}; "
        f"load average before: {env['load_average_before']:.2f}, after: "
        f"{env['load_average_after']:.2f}; CPU steal during the run: {env['steal_share']:.1%}.\n"
        f"{args.turns} turn(s) per thread, one per thread per round, the order rotating; "
        f"medians shown. Prior messages: user and assistant in turn, "
        f"{args.chars[0]}-{args.chars[1]} characters each, written through the API "
        f"({build['api']}: {build['messages']:,} messages in {build['threads']} threads, "
        f"{build['seconds']:.1f} s); each measured turn adds two (the k-th turn of a thread of "
        f"N sees N + 2k). Each answer: {args.chunks} chunks {args.gap_ms:g} ms apart. Window "
        f"~{args.window_messages:,} messages: context_window = {results['window_tokens']:,} "
        f"tokens (the engine's estimate: characters ÷ 4 + 4 per message; "
        f"less the room kept for the answer). Messages sent: in the request the upstream "
        f"received. TTFT: writing the request to reading the first content.delta; whole "
        f"turn: to the end of the body. Turn CPU: user + system time of the server process "
        f"(its CPU clock), from before the request until it has used none for "
        f"{args.quiet_ms:g} ms after the end of the body. CPU per message sent: "
        f"(turn CPU(N) - turn CPU(smallest)) ÷ (sent(N) - sent(smallest)), same window setting."
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    measured, env = run_measurement(args, measure)
    env["load_average_after"] = os.getloadavg()[0]
    results: dict[str, Any] = {
        "environment": env,
        "targets": TARGETS,
        "window_messages": args.window_messages,
        **measured,
    }
    results["summary"] = summary = summarise(args, measured)
    write_json(args.output, results)
    rows = table_rows(args, summary)
    notes = _notes(args, env, results)
    targets = target_lines(summary)
    verdicts = "\n".join(line for line, _ in targets)
    if args.json:
        print(orjson.dumps(results, option=orjson.OPT_INDENT_2).decode())
    else:
        print(f"{text_table(rows, HEADER)}\n\n{verdicts}\n\n{notes}\n")
        print(f"Markdown (for bench/README.md):\n\nCommand: `{env['command']}` ({env['date']})\n")
        print(f"{markdown_table(rows, HEADER)}\n\n{verdicts}\n\n{notes}\n")
        print(f"results: {args.output}")
    failed = {
        f"{r['setting']}/{r['prior']}": r["problems"] for r in summary["rows"] if r["failures"]
    }
    if failed:
        print(f"error: failed turns: {failed}", file=sys.stderr)
        return 1
    return 1 if args.strict and not all(ok for _, ok in targets) else 0


if __name__ == "__main__":
    sys.exit(main())
