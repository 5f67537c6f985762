"""Parley's local model against the same llama-server called directly, side by side.

    .venv/bin/python bench/local_model.py [--rounds 5] [--requests 6] [--threads 1] [--strict]
    .venv/bin/python bench/local_model.py --tiny       # every measure, small: about a minute

A real ``parley serve`` on a fresh SQLite file, its config ``[providers.local] kind =
"local"`` and ``PARLEY_LOCAL_MODEL_START=true``: it starts llama.cpp's ``llama-server``
(the packaged SmolLM2-135M-Instruct) on a loopback port with a secret in the child's
environment. The bench finds that child under the server in ``/proc`` (its ``--port`` and
its ``LLAMA_API_KEY``, which the owner of both processes may read) and calls it directly
too: the same model server and slots. Every measure runs in ``--rounds`` rounds, in one run;
the medians (and p90s) are over all the rounds' requests.

- **Streaming chat**: ``POST /v1/chat/completions`` with ``stream`` and the usage, the
  same prompts, ``max_tokens``, temperature 0 and seed on both sides. One client:
  ``--requests`` each side a round, the sides taking turns request by request. Two
  clients at once (the server's 2 slots): ``--requests`` from each, one side's block
  then the other's. Time to first token: from sending the request to the first chunk
  with text. Output tokens/s: the answer's tokens after the first
  (``usage.completion_tokens`` - 1) over the time from the first chunk with text to the
  last. The model paces the tokens itself: real token pacing, not a fake's.
- **Constrained tool calls**: one function tool, ``tool_choice`` ``required``, through
  Parley's Chat Completions and Responses (not streamed): the time to the answer that
  holds the call. For reference, the request Parley sends the model for it (its
  ``response_format`` json_schema and instruction, built by ``parley.providers.constrained``
  and the Chat Completions adapter's ``request_body``), sent to llama-server directly and
  read to its end. The three take turns request by request.
- **Embedding**: ``--files`` text files of ``--pages`` pages uploaded (``/v1/files``), then
  attached to a new vector store as one file batch (its embedding model is the default,
  ``local/all-minilm-l6-v2``); from the batch's creation until its files are
  ``completed`` (read from the server's SQLite file every 20 ms, which costs the server
  nothing): the chunks the store holds (read from the SQLite file, each with
  its 384-number vector) per second. Against the model alone:
  ``parley.providers.minilm.shared().embed`` in this process on the same chunk texts (the
  bench checks they are the store's), a call per file as ingestion makes them.

Where sides run in blocks, their order turns from round to round, so that the machine's
drift reaches both alike. The direct side opens a new connection for each request, as
Parley does to its model server. Nothing is pinned to a CPU: the model server is Parley's
child and would inherit a CPU set given to Parley.

Targets (issue 59): first token through Parley ≤ 1.05x direct, tokens/s ≥ 0.97x direct,
passages/s through ingestion ≥ 0.8x the model alone. Prints a table, writes JSON to
``--output`` (``bench/results/local_model.json``); a failed request exits 1, a missed
target only with ``--strict``. Needs ``parley local setup`` (or ``PARLEY_LLAMA_SERVER``).
"""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path += [str(ROOT)]

import argparse  # noqa: E402
import asyncio  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Awaitable, Callable, Mapping  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from functools import partial  # noqa: E402
from time import perf_counter  # noqa: E402
from typing import Any  # noqa: E402

import httpx  # noqa: E402
from local_model_requests import (  # noqa: E402
    CHAT_MODEL,
    SEED,
    Failed,
    Sample,
    Side,
    chat_clients,
    chat_tool_call,
    chunked,
    direct_tool_call,
    embed_alone,
    ingest,
    pages_of,
    responses_tool_call,
    stored_chunks,
    story_prompts,
    stream_chat,
    tokens_per_s,
)
from procs import Cores, Program, create_user  # noqa: E402
from report import markdown_table, percentile, text_table, write_json  # noqa: E402

from parley.config import ProviderConfig  # noqa: E402
from parley.providers.local_models import server_spec  # noqa: E402

#: The targets of issue 59: Parley ÷ direct (the model alone for embedding).
TTFT_TARGET = 1.05
TOKENS_TARGET = 0.97
EMBED_TARGET = 0.8
HEADER = ("measure", "direct", "through Parley", "ratio", "target", "result")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5, help="rounds of every measure")
    p.add_argument("--requests", type=int, default=6, help="chat streams per side, client, round")
    p.add_argument("--max-tokens", type=int, default=96, help="max_tokens of a chat stream")
    p.add_argument("--tool-calls", type=int, default=6, help="tool calls per side and round")
    p.add_argument("--tool-max-tokens", type=int, default=64, help="max_tokens of a tool call")
    p.add_argument("--files", type=int, default=4, help="files ingested per round")
    p.add_argument("--pages", type=int, default=10, help="pages of 3,000 characters a file")
    p.add_argument("--context-size", type=int, help="the local provider's context_size")
    p.add_argument("--threads", type=int, help="the local provider's threads")
    p.add_argument("--tiny", action="store_true", help="1 round of 2 of everything (a test's run)")
    p.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    p.add_argument("--output", type=Path, default=BENCH / "results" / "local_model.json")
    args = p.parse_args(argv)
    if args.tiny:
        args.rounds, args.requests, args.tool_calls, args.files, args.pages = 1, 2, 2, 2, 2
        args.max_tokens = min(args.max_tokens, 24)
    counts = ("rounds", "requests", "max_tokens", "tool_calls", "tool_max_tokens", "files", "pages")
    for name in counts:
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    for name in ("context_size", "threads"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


# ---------------------------------------------------------------------- the two servers


@dataclass(slots=True)
class Sides:
    """Where each side is reached: Parley's URL and key, the model server's and its."""

    parley: str
    key: str
    direct: str
    secret: str
    database: Path
    model_pid: int

    def direct_side(self, http: httpx.AsyncClient) -> Side:
        headers = {"Authorization": f"Bearer {self.secret}"}
        return Side("direct", http, self.direct, headers, CHAT_MODEL)

    def parley_side(self, http: httpx.AsyncClient) -> Side:
        headers = {"Authorization": f"Bearer {self.key}"}
        return Side("parley", http, self.parley, headers, f"local/{CHAT_MODEL}")


def start_parley(args: argparse.Namespace, workdir: Path) -> tuple[Program, Sides]:
    """``parley serve`` with the local provider, its model server up; both addresses."""
    database = workdir / "parley.db"
    config = workdir / "parley.toml"
    table = ["[providers.local]", 'kind = "local"']
    table += [f"{k} = {v}" for k in ("context_size", "threads") if (v := getattr(args, k))]
    config.write_text("\n".join(table) + "\n")
    env = {
        **os.environ,
        "PARLEY_DATABASE_URL": f"sqlite:///{database}",
        "PARLEY_CONFIG": str(config),
        "PARLEY_LOG_LEVEL": "warning",
        "PARLEY_LOCAL_MODEL_START": "true",
    }
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "PARLEY_EMBEDDING_MODEL"):
        env.pop(name, None)
    parley = [sys.executable, "-m", "parley.cli.main"]
    key = create_user(parley, env, "bench")
    log = workdir / "parley.log"
    server = Program("parley serve", [*parley, "serve"], "/healthz", Cores(None, None), log, env)
    server.start()
    try:
        pid, url, secret = model_server(server.pid)
        wait_healthy(url)
    except Exception:
        print(server.log(), file=sys.stderr)
        server.stop()
        raise
    sides = Sides(f"http://127.0.0.1:{server.port}", key, url, secret, database, pid)
    return server, sides


def model_server(parent: int, within: float = 120.0) -> tuple[int, str, str]:
    """The llama-server child of ``parent``: its pid, base URL and the key it wants, read
    from ``/proc`` (its command line and environment)."""
    deadline = time.monotonic() + within
    while True:
        children = [pid for pid in _children(parent) if _name(pid).startswith("llama-server")]
        if children:
            break
        if time.monotonic() > deadline:
            raise RuntimeError("parley serve started no llama-server")
        time.sleep(0.2)
    pid = children[0]
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    port = argv[argv.index(b"--port") + 1].decode()
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    secret = next(e for e in environ if e.startswith(b"LLAMA_API_KEY=")).partition(b"=")[2]
    return pid, f"http://127.0.0.1:{port}", secret.decode()


def _children(parent: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2 :].split()[1]) == parent:
                found.append(int(entry.name))
    return found


def _name(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat[stat.index("(") + 1 : stat.rindex(")")]


def wait_healthy(url: str, within: float = 120.0) -> None:
    """Until llama-server's ``/health`` answers 200 (the model loaded)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"llama-server at {url} did not load its model in {within:g} s")


# ----------------------------------------------------------------------------- rounds


@dataclass(slots=True)
class Measured:
    """Every request's values, by measure and side."""

    values: dict[str, dict[str, list[Sample]]] = field(default_factory=dict)

    def add(self, measure: str, side: str, samples: list[Sample]) -> None:
        self.values.setdefault(measure, {}).setdefault(side, []).extend(samples)


Phase = Callable[[], Awaitable[list[Sample]]]
Call = Callable[[Side, int, argparse.Namespace], Awaitable[Sample]]


async def in_turn(measure: str, phases: Mapping[str, Phase], flip: bool, m: Measured) -> None:
    """Each side's phase, one after the other, in the round's order."""
    order = list(phases.items())
    for name, phase in reversed(order) if flip else order:
        began = perf_counter()
        m.add(measure, name, await phase())
        print(f"  {measure}, {name}: {perf_counter() - began:.1f} s", file=sys.stderr)


async def alternating(
    measure: str,
    calls: list[tuple[str, Call, Side]],
    args: argparse.Namespace,
    count: int,
    start: int,
    m: Measured,
) -> None:
    """``count`` requests of each side, request by request, the sides' order turning by
    one each time (the drift of a busy machine reaches every side alike)."""
    began = perf_counter()
    for n in range(count):
        turn = (n + start) % len(calls)
        for name, call, side in calls[turn:] + calls[:turn]:
            m.add(measure, name, [await call(side, n, args)])
    print(f"  {measure}: {perf_counter() - began:.1f} s", file=sys.stderr)


async def run_round(
    sides: Sides, direct: Side, parley: Side, number: int, args: argparse.Namespace, m: Measured
) -> None:
    """One round of every measure: one client's streams and the tool calls request by
    request, two clients' streams and the embedding in blocks; the sides' order turns
    from round to round."""
    prompts = story_prompts()

    async def streamed(side: Side, n: int, a: argparse.Namespace) -> Sample:
        return await stream_chat(side, prompts[(number + n) % len(prompts)], a)

    one: list[tuple[str, Call, Side]] = [("direct", streamed, direct), ("parley", streamed, parley)]
    await alternating("chat_c1", one, args, args.requests, number, m)
    flip = number % 2 == 1
    # Half of one client's answer (this round's, both sides'): the second client's head start.
    stagger = statistics.median(x["ttft"] + x["decode"] for x in _round(m, "chat_c1", args)) / 2
    two = {
        "direct": partial(chat_clients, direct, 2, stagger, args),
        "parley": partial(chat_clients, parley, 2, stagger, args),
    }
    await in_turn("chat_c2", two, flip, m)
    faces: list[tuple[str, Call, Side]] = [
        ("direct", direct_tool_call, direct),
        ("chat", chat_tool_call, parley),
        ("responses", responses_tool_call, parley),
    ]
    await alternating("tool_call", faces, args, args.tool_calls, number, m)
    rng = random.Random(number)
    files = [pages_of(rng, args.pages) for _ in range(args.files)]
    texts = chunked(files)
    passages = float(sum(len(t) for t in texts))

    async def ingested() -> list[Sample]:
        took, store_id = await ingest(parley, sides.database, files, f"round-{number}")
        if sorted(stored_chunks(sides.database, store_id)) != sorted(texts):
            raise Failed("the store's chunks are not the texts embedded in process")
        return [{"seconds": took, "passages": passages}]

    async def alone() -> list[Sample]:
        return [{"seconds": await embed_alone(texts), "passages": passages}]

    await in_turn("embedding", {"direct": alone, "parley": ingested}, flip, m)


def _round(m: Measured, measure: str, args: argparse.Namespace) -> list[Sample]:
    """The samples of ``measure`` this round added (``--requests`` per side)."""
    return [x for samples in m.values[measure].values() for x in samples[-args.requests :]]


async def warm_up(sides: Sides, direct: Side, parley: Side, args: argparse.Namespace) -> None:
    """One of each, not counted: the model server's first answers, the embedding model
    loaded in both processes, the server's first ingestion."""
    for side in (direct, parley):
        await stream_chat(side, story_prompts()[0], args)
    await direct_tool_call(direct, 0, args)
    await chat_tool_call(parley, 0, args)
    await responses_tool_call(parley, 0, args)
    await ingest(parley, sides.database, [pages_of(random.Random(-1), 1)], "warm-up")
    await embed_alone([["warm-up"]])


async def drive(sides: Sides, args: argparse.Namespace) -> Measured:
    """The warm-up, then the rounds. The direct side opens a new connection for each
    request, as Parley does to its model server (llama-server closes a connection after a
    stream without saying so); Parley's side keeps its connections."""
    measured = Measured()
    fresh = httpx.Limits(max_keepalive_connections=0)
    async with (
        httpx.AsyncClient(timeout=300, limits=fresh) as direct_http,
        httpx.AsyncClient(timeout=300) as parley_http,
    ):
        direct, parley = sides.direct_side(direct_http), sides.parley_side(parley_http)
        await warm_up(sides, direct, parley, args)
        for number in range(args.rounds):
            await run_round(sides, direct, parley, number, args, measured)
            print(f"round {number + 1} of {args.rounds} done", file=sys.stderr)
    return measured


# ----------------------------------------------------------------------------- report


def median(values: list[float]) -> float:
    return percentile(values, 0.5)


def summarise(measured: Measured) -> dict[str, dict[str, Any]]:
    """Each measure's medians (and p90s), ratios and verdicts, for the JSON and table."""
    v = measured.values
    out: dict[str, dict[str, Any]] = {}
    for clients in (1, 2):
        chat = v[f"chat_c{clients}"]
        ttft = {s: median([x["ttft"] * 1000 for x in chat[s]]) for s in ("direct", "parley")}
        out[f"ttft_ms_c{clients}"] = _compared(ttft, TTFT_TARGET, lower=True, n=len(chat["parley"]))
        pace = {
            s: median([r for x in chat[s] if (r := tokens_per_s(x)) is not None])
            for s in ("direct", "parley")
        }
        out[f"tokens_per_s_c{clients}"] = _compared(
            pace, TOKENS_TARGET, lower=False, n=len(chat["parley"])
        )
        out[f"output_tokens_c{clients}"] = {
            s: median([x["tokens"] for x in chat[s]]) for s in ("direct", "parley")
        }
    for side in ("direct", "chat", "responses"):
        calls = v["tool_call"][side]
        seconds = [x["seconds"] * 1000 for x in calls]
        out[f"tool_call_ms_{side}"] = {
            "p50": percentile(seconds, 0.5),
            "p90": percentile(seconds, 0.9),
            "n": len(calls),
            "calls": int(sum(x["called"] for x in calls)),
            "output_tokens": median([x["tokens"] for x in calls]),
        }
    rates = {
        s: sum(x["passages"] for x in v["embedding"][s])
        / sum(x["seconds"] for x in v["embedding"][s])
        for s in ("direct", "parley")
    }
    out["embedding_passages_per_s"] = _compared(
        rates,
        EMBED_TARGET,
        lower=False,
        n=int(sum(x["passages"] for x in v["embedding"]["parley"])),
    )
    return out


def _compared(values: dict[str, float], target: float, *, lower: bool, n: int) -> dict[str, Any]:
    ratio = values["parley"] / values["direct"] if values["direct"] else float("nan")
    met = ratio <= target if lower else ratio >= target
    return {**values, "ratio": ratio, "target": target, "lower": lower, "met": met, "n": n}


def rows(s: dict[str, dict[str, Any]]) -> list[tuple[str, ...]]:
    """The table: the chat rows, the tool calls', the embedding's."""
    out: list[tuple[str, ...]] = []
    for clients in (1, 2):
        who = f"{clients} client{'s' * (clients > 1)}"
        out.append(_judged(f"time to first token, median, {who}", s[f"ttft_ms_c{clients}"], " ms"))
        out.append(
            _judged(
                f"output tokens/s after the first, median, {who}", s[f"tokens_per_s_c{clients}"]
            )
        )
    direct = s["tool_call_ms_direct"]
    for face, name in (("chat", "Chat Completions"), ("responses", "Responses")):
        m = s[f"tool_call_ms_{face}"]
        for q in ("p50", "p90"):
            ratio = f"{m[q] / direct[q]:.3f}x" if direct[q] else "—"
            out.append(
                (
                    f"constrained tool call, {name}, {q}",
                    f"{direct[q]:.1f} ms",
                    f"{m[q]:.1f} ms",
                    ratio,
                    "—",
                    "—",
                )
            )
        made = (_made(direct), _made(m))
        out.append((f"calls made (output tokens, median), {name}", *made, "—", "—", "—"))
    embedding = s["embedding_passages_per_s"]
    out.append(_judged("embedding passages/s (direct: the model alone)", embedding))
    return out


def _made(m: dict[str, Any]) -> str:
    return f"{m['calls']} of {m['n']} ({m['output_tokens']:.0f})"


def _judged(name: str, m: dict[str, Any], unit: str = "") -> tuple[str, ...]:
    """A row of a measure with a target: both sides, their ratio and the verdict."""
    sign = "≤" if m["lower"] else "≥"
    return (
        name,
        f"{m['direct']:.1f}{unit}",
        f"{m['parley']:.1f}{unit}",
        f"{m['ratio']:.3f}x",
        f"{sign} {m['target']:g}x",
        "pass" if m["met"] else "FAIL",
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    spec = server_spec(ProviderConfig(kind="local"))
    if isinstance(spec, str):
        print(f"error: the local model cannot run here: {spec}", file=sys.stderr)
        return 2
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="parley-local-bench-") as tmp:
        server, sides = start_parley(args, Path(tmp))
        try:
            measured = asyncio.run(drive(sides, args))
            if model_server(server.pid)[0] != sides.model_pid:
                raise Failed("the model server was started again during the run")
        except Failed as exc:
            print(f"{server.log()}\nerror: a request failed: {exc}", file=sys.stderr)
            return 1
        finally:
            server.stop()
    summary = summarise(measured)
    command = "bench/local_model.py " + " ".join(sys.argv[1:] if argv is None else argv)
    notes = describe(args, summary, spec.binary, spec.model.name, load)
    date = time.strftime("%Y-%m-%d %H:%M %Z")
    table = rows(summary)
    print(text_table(table, HEADER))
    print(f"\n{notes}\n\nCommand: `{command.strip()}` ({date})\n")
    print(markdown_table(table, HEADER))
    results = {"command": command.strip(), "date": date, "notes": notes, "measures": summary}
    write_json(args.output, {**results, "requests": measured.values})
    met = all(m["met"] for m in summary.values() if "met" in m)
    return 1 if args.strict and not met else 0


def describe(
    args: argparse.Namespace, summary: dict[str, Any], binary: str, model: str, load: float
) -> str:
    """The notes under the table: what was sent, what served it, how busy the machine was."""
    chunks = summary["embedding_passages_per_s"]["n"]
    threads = f"{args.threads} thread(s)" if args.threads else "threads: the CPUs"
    return (
        f"{args.rounds} round(s); chat: {args.requests} streams per side and client a round, "
        f"max_tokens {args.max_tokens}, temperature 0, seed {SEED}; tool calls: "
        f"{args.tool_calls} per side a round, max_tokens {args.tool_max_tokens}; embedding: "
        f"{args.files} files of {args.pages} pages a round, {chunks} chunks in all. "
        f"Model server: {binary} ({threads}), {model}. "
        f"{len(os.sched_getaffinity(0))} CPUs, not pinned; load average before: {load:.2f}, "
        f"after: {os.getloadavg()[0]:.2f}."
    )


if __name__ == "__main__":
    sys.exit(main())
