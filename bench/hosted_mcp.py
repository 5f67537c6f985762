"""What hosted MCP costs Parley itself: the time around one MCP call, less the MCP server's.

    .venv/bin/python bench/hosted_mcp.py [--conversations 50] [--turns 4] [--clients 4] [--strict]

A real ``parley serve`` (SQLite, ``PARLEY_MCP_ALLOW_URLS=127.0.0.1``) pinned to one CPU; in
this process, on the other CPU: the fake upstream (model ``fake/auto:1``: it calls the first
tool it is offered, then answers the tool's result), the test MCP server
(``tests/terminal/mcp_server.py``, its ``echo`` tool, streamable HTTP) and the client.

Per response, with timestamps taken in this process (one monotonic clock):

- **hosted MCP**: ``POST /v1/responses`` with an ``mcp`` tool (``require_approval: never``).
  Parley's own time = from the end of the model's first stream (its tool call) to the
  arrival of the second upstream request (the tool's result back to the model), less the
  time the MCP server spent handling the POSTs it got in between (an ASGI wrapper times
  each one; the tool entry's ``headers`` tag each request with its response).
  Conversations of ``--turns`` responses (``previous_response_id``): the first lists the
  tools, the next ones must not (``tools/list`` requests on them are counted: must be 0).
- **client function tool** (the baseline): the same round trip with a function tool the
  client runs: the response ends with its ``function_call``, the client sends the output
  at once with ``previous_response_id``. Parley's time = the same interval, less the
  client's own time between reading the first answer and sending the second request.
- **direct MCP call** (the floor): ``parley.mcp.client`` from this process, a new session
  and one call, and a call on an open session, less the MCP server's time.

The two Parley sides alternate response by response, sequentially (1 client), then with
``--clients`` at once. Prints a table (p50/p90 and ratios), writes JSON to
``bench/results/hosted_mcp.json``; a failed response, or a ``tools/list`` on a response that
follows a listing, exits 1; a missed 3 ms target exits 1 only with ``--strict``.
"""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path += [str(ROOT)]

import argparse  # noqa: E402
import asyncio  # noqa: E402
import contextlib  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from time import perf_counter  # noqa: E402
from typing import Any  # noqa: E402

import orjson  # noqa: E402
import uvicorn  # noqa: E402
from procs import BenchDatabase, Cores, Parley, cpu_clock, free_port  # noqa: E402
from report import markdown_table, percentile, text_table, write_json  # noqa: E402
from starlette.types import ASGIApp, Message, Receive, Scope, Send  # noqa: E402

from parley.mcp.client import Bounds, ServerTarget, open_session  # noqa: E402
from parley.testing.fake_upstream import FakeUpstream, tool_results_text  # noqa: E402
from tests.terminal.mcp_server import TOOLS, build_server, http_app  # noqa: E402

MODEL = "fake/auto:1"
TARGET_MS = 3.0
TAG_HEADER = "x-bench-tag"
ECHO_SCHEMA = TOOLS["echo"].input_schema
#: What the ``auto`` model calls ``echo`` with, and so what the tool answers.
ECHOED = "text 0"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--conversations", type=int, default=50, help="conversations per side")
    p.add_argument("--turns", type=int, default=4, help="responses per conversation")
    p.add_argument("--clients", type=int, default=4, help="clients at once, second phase")
    p.add_argument("--floor-calls", type=int, default=200, help="direct MCP calls")
    p.add_argument("--warmup", type=int, default=3, help="conversations per side, not counted")
    p.add_argument("--no-pin", action="store_true", help="do not pin to CPUs")
    p.add_argument("--strict", action="store_true", help="exit 1 when the target is missed")
    p.add_argument("--output", type=Path, default=BENCH / "results" / "hosted_mcp.json")
    p.add_argument("--profile", type=Path, help="run the server under cProfile, written here")
    return p.parse_args(argv)


# --------------------------------------------------------------------- timed servers


@dataclass(frozen=True, slots=True)
class Upcall:
    """One chat request the fake upstream answered: the user text it continues (the tag of
    its response), whether it ends with a tool result, and when it arrived and ended."""

    tag: str
    after_tool: bool
    arrived: float
    ended: float


class TimedUpstream(FakeUpstream):
    """The fake upstream, timing each chat request from its arrival to its last byte."""

    def __init__(self) -> None:
        super().__init__()
        self.upcalls: list[Upcall] = []

    async def _chat(self, body: dict[str, Any], conn: Any, headers: dict[str, str]) -> bool:
        arrived = perf_counter()
        try:
            return await super()._chat(body, conn, headers)
        finally:
            messages = body.get("messages") or [{}]
            users = [m for m in messages if m.get("role") == "user"]
            tag = str(users[-1].get("content")) if users else ""
            after_tool = messages[-1].get("role") == "tool"
            self.upcalls.append(Upcall(tag, after_tool, arrived, perf_counter()))


@dataclass(frozen=True, slots=True)
class Span:
    """One HTTP request the MCP server handled: its tag, method, JSON-RPC method, and from
    its arrival to its response's last byte."""

    tag: str
    method: str
    rpc: str
    started: float
    ended: float


@dataclass(slots=True)
class TimedApp:
    """An ASGI app wrapped to time each HTTP request it handles (``spans``)."""

    app: ASGIApp
    spans: list[Span] = field(default_factory=list)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = perf_counter()
        headers = dict(scope["headers"])
        tag = headers.get(TAG_HEADER.encode(), b"").decode()
        body = bytearray()
        ended = 0.0

        async def receiving() -> Message:
            message = await receive()
            body.extend(message.get("body", b""))
            return message

        async def sending(message: Message) -> None:
            nonlocal ended
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                ended = perf_counter()

        try:
            await self.app(scope, receiving, sending)
        finally:
            self.spans.append(
                Span(tag, scope["method"], _rpc(bytes(body)), started, ended or perf_counter())
            )


def _rpc(body: bytes) -> str:
    try:
        message = orjson.loads(body)
    except orjson.JSONDecodeError:
        return ""
    return str(message.get("method") or "") if isinstance(message, dict) else "(batch)"


@contextlib.contextmanager
def mcp_server() -> Iterator[tuple[str, TimedApp]]:
    """The test MCP server over streamable HTTP, timed, served by uvicorn in a thread: its
    ``/mcp`` URL and the timing wrapper."""
    app = TimedApp(http_app(build_server("bench", list(TOOLS.values()), 1000)))
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=0.3
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="mcp-server", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the MCP server did not start")
            time.sleep(0.01)
        yield f"http://127.0.0.1:{port}/mcp", app
    finally:
        server.should_exit = True
        thread.join(10)


# ------------------------------------------------------------------------ the client


class Client:
    """One keep-alive HTTP/1.1 connection to Parley posting JSON to ``/v1/responses``: raw
    asyncio, so its own time between two requests is known to the write."""

    def __init__(self, port: int, key: str) -> None:
        self.port = port
        self.key = key
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def open(self) -> Client:
        self._reader, self._writer = await asyncio.open_connection("127.0.0.1", self.port)
        return self

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()

    def request(self, body: dict[str, Any]) -> bytes:
        payload = orjson.dumps(body)
        head = (
            f"POST /v1/responses HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {self.key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
        )
        return head.encode() + payload

    async def send(self, request: bytes) -> tuple[dict[str, Any], float, float]:
        """Send prepared bytes; the response, when they were written and when its last byte
        was read."""
        assert self._reader is not None and self._writer is not None
        sent = perf_counter()
        self._writer.write(request)
        head = await self._reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        data = await self._reader.readexactly(length)
        done = perf_counter()
        answer = orjson.loads(data)
        if status != 200 or answer.get("status") != "completed":
            raise RuntimeError(f"HTTP {status}: {data[:600]!r}")
        return answer, sent, done


@dataclass(slots=True)
class Done:
    """One measured response: its side, tag, turn in its conversation, the client's own
    time inside the measured interval (baseline), and Parley's server CPU for it (1 client)."""

    side: str
    tag: str
    turn: int
    think: float = 0.0
    cpu: float | None = None
    #: Hosted MCP: the model's call → the first MCP request, the last MCP answer → the next
    #: model request (ms), and the MCP requests in between.
    legs: dict[str, Any] = field(default_factory=dict)


class Runner:
    """Conversations on each side, sequential or at once, and what they measured."""

    def __init__(self, port: int, key: str, mcp_url: str, pid: int | None, turns: int) -> None:
        self.port, self.key, self.mcp_url, self.pid, self.turns = port, key, mcp_url, pid, turns
        self.done: list[Done] = []
        self.failures: list[str] = []

    def _cpu(self) -> float:
        return cpu_clock(self.pid) if self.pid else 0.0

    async def conversation(self, client: Client, name: str, side: str, cpu: bool) -> None:
        previous: str | None = None
        for turn in range(self.turns):
            tag = f"{name}-{side}-{turn}"
            try:
                before = self._cpu()
                if side == "mcp":
                    previous, done = await self._mcp(client, tag, turn, previous)
                else:
                    previous, done = await self._function(client, tag, turn, previous)
                if cpu and self.pid:
                    done.cpu = self._cpu() - before
                self.done.append(done)
            except (RuntimeError, KeyError, ValueError, AssertionError) as exc:
                self.failures.append(f"{tag}: {exc}")
                return

    async def _mcp(
        self, client: Client, tag: str, turn: int, previous: str | None
    ) -> tuple[str, Done]:
        tool = {
            "type": "mcp",
            "server_label": "bench",
            "server_url": self.mcp_url,
            "allowed_tools": ["echo"],
            "require_approval": "never",
            # One tag per conversation: the same headers each turn, so the server keeps
            # the session open between them (``engine.hosted.sessions``).
            "headers": {TAG_HEADER: conversation_of(tag)},
        }
        body: dict[str, Any] = {"model": MODEL, "input": tag, "tools": [tool]}
        if previous:
            body["previous_response_id"] = previous
        answer, _, _ = await client.send(client.request(body))
        kinds = [item["type"] for item in answer["output"]]
        expected = ["mcp_call", "message"] if turn else ["mcp_list_tools", "mcp_call", "message"]
        if kinds != expected:
            raise RuntimeError(f"output {kinds}, expected {expected}")
        call, message = answer["output"][-2:]
        if call["output"] != ECHOED or call["status"] != "completed":
            raise RuntimeError(f"the call gave {call!r}")
        if message["content"][0]["text"] != tool_results_text([("echo", ECHOED)]):
            raise RuntimeError(f"the answer was {message!r}")
        return str(answer["id"]), Done("mcp", tag, turn)

    async def _function(
        self, client: Client, tag: str, turn: int, previous: str | None
    ) -> tuple[str, Done]:
        tool = {"type": "function", "name": "echo", "parameters": ECHO_SCHEMA}
        body: dict[str, Any] = {"model": MODEL, "input": tag, "tools": [tool]}
        if previous:
            body["previous_response_id"] = previous
        first, _, read = await client.send(client.request(body))
        call = first["output"][-1]
        if call["type"] != "function_call" or orjson.loads(call["arguments"]) != {"text": ECHOED}:
            raise RuntimeError(f"expected a function_call, got {first['output']!r}")
        reply = {
            "model": MODEL,
            "previous_response_id": first["id"],
            "input": [
                {"type": "function_call_output", "call_id": call["call_id"], "output": ECHOED}
            ],
            "tools": [tool],
        }
        request = client.request(reply)
        answer, sent, _ = await client.send(request)
        message = answer["output"][-1]
        if message["content"][0]["text"] != tool_results_text([("echo", ECHOED)]):
            raise RuntimeError(f"the answer was {message!r}")
        return str(answer["id"]), Done("function", tag, turn, think=sent - read)

    async def phase(self, name: str, conversations: int, clients: int, cpu: bool) -> None:
        """``conversations`` per side, the sides alternating, from ``clients`` at once."""
        sides = ("mcp", "function")
        # The side that goes first flips every conversation.
        queue = iter((n, side) for n in range(conversations) for side in sides[:: 1 - 2 * (n % 2)])

        async def worker() -> None:
            client = await Client(self.port, self.key).open()
            try:
                for number, side in queue:
                    await self.conversation(client, f"{name}{number}", side, cpu)
            finally:
                await client.close()

        await asyncio.gather(*(worker() for _ in range(clients)))


# ----------------------------------------------------------------------- measuring


def parley_times(
    runner: Runner, upcalls: list[Upcall], spans: list[Span], prefix: str
) -> dict[str, list[tuple[Done, float, float]]]:
    """Per side: Parley's own milliseconds per response of the phase ``prefix``."""
    by_tag: dict[str, list[Upcall]] = {}
    for upcall in upcalls:
        by_tag.setdefault(upcall.tag, []).append(upcall)
    posts: dict[str, list[Span]] = {}
    for span in spans:
        if span.method == "POST":
            posts.setdefault(span.tag, []).append(span)
    times: dict[str, list[tuple[Done, float, float]]] = {}
    for done in runner.done:
        if not done.tag.startswith(prefix):
            continue
        calls = by_tag.get(done.tag, [])
        model_call = [u for u in calls if not u.after_tool]
        answered = [u for u in calls if u.after_tool]
        if len(model_call) != 1 or len(answered) != 1:
            runner.failures.append(f"{done.tag}: upstream requests {calls!r}")
            continue
        start, end = model_call[0].ended, answered[0].arrived
        mine = posts.get(conversation_of(done.tag), [])
        inside = [s for s in mine if s.ended > start and s.started < end]
        server = _within(inside, start, end)
        own = (end - start - server - done.think) * 1000
        times.setdefault(done.side, []).append((done, own, server * 1000))
        if inside:
            done.legs = {
                "to_first_request": (min(s.started for s in inside) - start) * 1000,
                "after_last_answer": (end - max(s.ended for s in inside)) * 1000,
                "requests": [s.rpc for s in sorted(inside, key=lambda s: s.started)],
            }
    return times


def listings(spans: list[Span], prefix: str) -> dict[str, int]:
    """``tools/list`` requests on first responses of conversations and on the next ones:
    a conversation's first response lists once; every other listing is a next one's."""
    per: dict[str, int] = {}
    for span in spans:
        if span.rpc == "tools/list" and span.tag.startswith(prefix):
            per[span.tag] = per.get(span.tag, 0) + 1
    first = sum(min(n, 1) for n in per.values())
    return {"first": first, "next": sum(per.values()) - first}


def conversation_of(tag: str) -> str:
    """The conversation of a response's tag (``NAME-SIDE-TURN``): the MCP requests' tag."""
    return tag.rpartition("-")[0]


async def floor(url: str, app: TimedApp, calls: int) -> dict[str, list[float]]:
    """The direct MCP client's own milliseconds: a new session and one call (as a response
    that did not list makes), and one call on an open session (as one that did)."""
    bounds = Bounds()
    fresh: list[float] = []
    open_: list[float] = []
    for number in range(calls):
        tag = f"floor-{number}"
        target = ServerTarget("bench", url=url, headers={TAG_HEADER: tag})
        started = perf_counter()
        async with open_session(target, bounds) as session:
            assert not isinstance(session, str), session
            result = await session.call("echo", {"text": ECHOED})
            ended = perf_counter()
            assert result.output == ECHOED, result
            again = perf_counter()
            result = await session.call("echo", {"text": ECHOED})
            again_ended = perf_counter()
            assert result.output == ECHOED, result
        spans = [s for s in app.spans if s.tag == tag and s.method == "POST"]
        fresh.append((ended - started - _within(spans, started, ended)) * 1000)
        open_.append((again_ended - again - _within(spans, again, again_ended)) * 1000)
    return {"new session + call": fresh, "call, open session": open_}


def _within(spans: list[Span], start: float, end: float) -> float:
    return sum(max(0.0, min(s.ended, end) - max(s.started, start)) for s in spans)


# -------------------------------------------------------------------------- report


def quantiles(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50": percentile(values, 0.5),
        "p90": percentile(values, 0.9),
    }


def summarise(
    runner: Runner,
    upstream: TimedUpstream,
    app: TimedApp,
    phases: list[tuple[str, int]],
    floor_ms: dict[str, list[float]],
) -> dict[str, Any]:
    summary: dict[str, Any] = {"phases": {}, "floor": {}}
    for prefix, clients in phases:
        times = parley_times(runner, upstream.upcalls, app.spans, prefix)
        mcp = times.get("mcp", [])
        fn = times.get("function", [])
        phase: dict[str, Any] = {
            "clients": clients,
            "mcp": quantiles([t for _, t, _ in mcp]),
            "mcp_first": quantiles([t for d, t, _ in mcp if d.turn == 0]),
            "mcp_next": quantiles([t for d, t, _ in mcp if d.turn > 0]),
            "function": quantiles([t for _, t, _ in fn]),
            "mcp_server_ms": quantiles([s for _, _, s in mcp]),
            "client_think_ms": quantiles([d.think * 1000 for d, _, _ in fn]),
            "listings": listings(app.spans, prefix),
        }
        for key, which in (
            ("first", [d for d, _, _ in mcp if d.turn == 0 and d.legs]),
            ("next", [d for d, _, _ in mcp if d.turn > 0 and d.legs]),
        ):
            if which:
                phase[f"legs_{key}"] = {
                    "to_first_request_ms": statistics.median(
                        d.legs["to_first_request"] for d in which
                    ),
                    "after_last_answer_ms": statistics.median(
                        d.legs["after_last_answer"] for d in which
                    ),
                    "requests": " + ".join(which[0].legs["requests"]),
                }
        cpu_mcp = [d.cpu * 1000 for d, _, _ in mcp if d.cpu is not None]
        cpu_fn = [d.cpu * 1000 for d, _, _ in fn if d.cpu is not None]
        if cpu_mcp and cpu_fn:
            phase["cpu_mcp_ms"] = statistics.median(cpu_mcp)
            phase["cpu_function_ms"] = statistics.median(cpu_fn)
        summary["phases"][prefix] = phase
    for name, values in floor_ms.items():
        summary["floor"][name] = quantiles(values)
    first = summary["phases"][phases[0][0]]
    summary["target_ms"] = TARGET_MS
    summary["meets_target"] = first["mcp"]["p50"] <= TARGET_MS
    summary["next_listings"] = sum(p["listings"]["next"] for p in summary["phases"].values())
    return summary


def rows(summary: dict[str, Any]) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    for phase in summary["phases"].values():
        who = f"{phase['clients']} client{'s' * (phase['clients'] > 1)}"
        mcp, fn = phase["mcp"], phase["function"]
        for q in ("p50", "p90"):
            target = f"≤ {TARGET_MS:g} ms" if q == "p50" and phase["clients"] == 1 else "—"
            ok = "—"
            if target != "—":
                ok = "pass" if mcp[q] <= TARGET_MS else "FAIL"
            out.append(
                (
                    f"Parley's time around a call, {q}, {who} (n={mcp['n']}/{fn['n']})",
                    f"{mcp[q]:.2f} ms",
                    f"{fn[q]:.2f} ms",
                    f"{mcp[q] / fn[q]:.2f}x" if fn[q] > 0 else "—",
                    target,
                    ok,
                )
            )
        for label, key in (("listed in the turn", "mcp_first"), ("not listed", "mcp_next")):
            part = phase[key]
            out.append(
                (f"  of them: {label}, p50 (n={part['n']})", ms(part["p50"]), "—", "—", "—", "—")
            )
        for key, label in (("legs_first", "listed in the turn"), ("legs_next", "not listed")):
            if key in phase:
                legs = phase[key]
                out.append(
                    (
                        f"  {label}: model's call → first MCP request / last MCP answer → "
                        f"model, p50 ({legs['requests']})",
                        f"{legs['to_first_request_ms']:.2f} / {legs['after_last_answer_ms']:.2f} ms",
                        "—",
                        "—",
                        "—",
                        "—",
                    )
                )
        out.append(
            (
                f"MCP server's time (subtracted), p50, {who}",
                ms(phase["mcp_server_ms"]["p50"]),
                f"{phase['client_think_ms']['p50']:.2f} ms (client's)",
                "—",
                "—",
                "—",
            )
        )
        if "cpu_mcp_ms" in phase:
            out.append(
                (
                    f"Parley CPU per response, median, {who}",
                    ms(phase["cpu_mcp_ms"]),
                    f"{ms(phase['cpu_function_ms'])} (2 requests)",
                    f"{phase['cpu_mcp_ms'] / phase['cpu_function_ms']:.2f}x",
                    "—",
                    "—",
                )
            )
        listed = phase["listings"]
        out.append(
            (
                f"tools/list on the next responses of a conversation, {who}",
                f"{listed['next']} (first: {listed['first']})",
                "—",
                "—",
                "0",
                "pass" if listed["next"] == 0 else "FAIL",
            )
        )
    for name, values in summary["floor"].items():
        out.append(
            (
                f"floor: direct parley.mcp.client, {name}, p50 / p90",
                f"{values['p50']:.2f} / {values['p90']:.2f} ms",
                "—",
                "—",
                "—",
                "—",
            )
        )
    return out


def ms(value: float) -> str:
    return f"{value:.2f} ms"


HEADER = ("measure", "hosted MCP", "client function tool", "ratio", "target", "result")


# --------------------------------------------------------------------------- main


async def _drive(
    args: argparse.Namespace,
    server: Parley,
    key: str,
    url: str,
    app: TimedApp,
    upstream: TimedUpstream,
) -> tuple[Runner, dict[str, list[float]]]:
    runner = Runner(server.port, key, url, server.pid, args.turns)
    if args.warmup:
        await runner.phase("w", args.warmup, 1, cpu=False)
    await runner.phase("s", args.conversations, 1, cpu=True)
    if args.clients > 1:
        await runner.phase("c", args.conversations, args.clients, cpu=False)
    floor_ms = await floor(url, app, args.floor_calls)
    return runner, floor_ms


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cores = Cores.pick(not args.no_pin)
    cores.pin_self()  # before any thread starts: they inherit it
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="parley-mcp-bench-") as tmp:
        workdir = Path(tmp)
        db = BenchDatabase(workdir, None)
        with TimedUpstream() as upstream, mcp_server() as (url, app):
            server = Parley(
                database_url=db.url, workdir=workdir, upstream_url=upstream.url, cores=cores
            )
            server.env["PARLEY_MCP_ALLOW_URLS"] = "127.0.0.1"
            try:
                key = server.create_user("bench")
                server.start(profile=args.profile)
                runner, floor_ms = asyncio.run(_drive(args, server, key, url, app, upstream))
            except Exception:
                print(server.log(), file=sys.stderr)
                raise
            finally:
                server.stop()
                db.drop()
    phases = [("s", 1)] + ([("c", args.clients)] if args.clients > 1 else [])
    summary = summarise(runner, upstream, app, phases, floor_ms)
    table = rows(summary)
    command = "bench/hosted_mcp.py " + " ".join(sys.argv[1:] if argv is None else argv)
    notes = (
        f"{cores.describe()} (MCP server and client share it with the fake upstream); "
        f"load average before: {load:.2f}; {args.conversations} conversations of "
        f"{args.turns} responses per side and phase, model {MODEL}, non-streaming."
    )
    print(text_table(table, HEADER))
    print(
        f"\n{notes}\n\nMarkdown:\n\nCommand: `{command.strip()}` "
        f"({time.strftime('%Y-%m-%d %H:%M %Z')})\n"
    )
    print(markdown_table(table, HEADER))
    write_json(
        args.output,
        {"command": command, "notes": notes, "summary": summary, "failures": runner.failures},
    )
    if runner.failures:
        print(f"error: {len(runner.failures)} failed: {runner.failures[:5]}", file=sys.stderr)
        return 1
    if summary["next_listings"]:
        print("error: responses after a listing listed the tools again", file=sys.stderr)
        return 1
    if args.strict and not summary["meets_target"]:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
