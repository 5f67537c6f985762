"""The Responses API's stream against Parley's native one: the same answer streamed as
``POST /v1/responses`` (``"stream": true``) and as ``POST /v1/process``, side by side in one
run, same server, same fake upstream.

    .venv/bin/python bench/responses.py [--quick] [--rounds 6] [--gaps 0,20] [--clients 50]

Starts the fake upstream and ``parley serve`` as ``bench/run.py`` does (server pinned to one
CPU, load client and upstream to the other, a fresh database), checks one whole stream of
each face, then for each chunk gap measures, per face: time to the first text event
(``content.delta`` natively, ``response.output_text.delta`` on the Responses face) at 1
client and at N clients, and the server's CPU per stream (the kernel's CPU clock of the
process). Prints one table with both faces, the differences and ratios and a pass/FAIL
against the issue's targets, and a markdown copy; counts failed streams (exit 1 when any
fails); writes JSON to ``bench/results/responses.json``. The checks of the whole streams are
in ``bench/stream_checks.py``. See ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import orjson
from loadclient import (
    Connection,
    StreamResult,
    Target,
    drive,
    drive_mixed,
    open_connections,
    parley_event,
    problem_counts,
    responses_event,
    spread,
    stream_once,
)
from procs import BENCH, BenchDatabase, Cores, cpu_clock
from report import (
    Row,
    clients_text,
    ms,
    percentile,
    report_stream_errors,
    report_text,
    verdict,
    write_json,
)
from run import (
    ServerBench,
    add_server_options,
    print_server_log,
    run_loop,
    run_measurement,
    serving,
    timed_rounds,
)
from stream_checks import native_problems, responses_problems, sdk_remarks, sse_frames

from parley.testing.fake_upstream import expected_text

FACES = ("native", "responses")

#: Each face's path, and how the load client reads its events.
_ROUTES = {"native": ("/v1/process", parley_event), "responses": ("/v1/responses", responses_event)}

#: The issue's targets for the Responses face, relative to the native stream.
TARGETS = {"added_first_delta_p50_ms": 1.0, "cpu_ratio": 1.3}

HEADER = (
    "metric",
    "native /v1/process",
    "Responses /v1/responses",
    "added / ratio",
    "target",
    "result",
)

# ---------------------------------------------------------------------------- settings


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/responses.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a smoke run of about 20 s")
    p.add_argument(
        "--rounds", type=int, default=6, help="rounds of every phase (face order flips each)"
    )
    p.add_argument("--chunks", type=int, default=22, help="content chunks per stream")
    p.add_argument("--gaps", default="0,20", help="chunk gaps in ms, comma-separated")
    p.add_argument("--clients", type=int, default=50, help="concurrent clients, N-client phase")
    p.add_argument(
        "--seconds-1",
        type=float,
        default=8.0,
        help="about this long per face per round at 1 client (sets the stream count per gap)",
    )
    p.add_argument(
        "--streams-1-max", type=int, default=300, help="at most this many streams at 1 client"
    )
    p.add_argument(
        "--waves", type=int, default=6, help="N-client phase: N x this many streams per face"
    )
    p.add_argument("--warmup", type=int, default=30, help="untimed streams per face and gap")
    add_server_options(p, "responses.json")
    args = p.parse_args(argv)
    args.gaps = [float(g) for g in args.gaps.split(",") if g.strip()]
    if args.quick:
        args.rounds, args.seconds_1, args.streams_1_max = 2, 1.0, 40
        args.clients, args.waves, args.warmup = 20, 2, 10
    if args.output is None:
        name = "responses-quick.json" if args.quick else "responses.json"
        args.output = BENCH / "results" / name
    return args


def streams_1(args: argparse.Namespace, gap_ms: float) -> int:
    """Sequential streams per face per round at one client, for a chunk gap."""
    chunks, seconds, most = int(args.chunks), float(args.seconds_1), int(args.streams_1_max)
    return max(5, min(most, round(seconds / (0.003 + chunks * gap_ms / 1000))))


def _phases(args: argparse.Namespace) -> list[tuple[float, str, int, int]]:
    """(gap, label, clients, streams per face per round) of every phase, in running order."""
    phases = []
    for gap in args.gaps:
        phases.append((gap, "c1", 1, streams_1(args, gap)))
        phases.append((gap, "cN", args.clients, args.clients * args.waves))
        phases.append((gap, "mix", args.clients, args.clients * args.waves))
    return phases


def _key(gap: float, label: str) -> str:
    return f"{gap:g}ms/{label}"


# ---------------------------------------------------------------------------- phases


class Bench(ServerBench[float]):
    """By chunk gap, the two faces' prepared requests."""

    async def prepare(self) -> dict[str, Any]:
        """Per gap: both faces' requests, and one whole stream of each checked (the same
        request upstream, the events and the text); then a warm-up. Answers each checked
        stream's size and what the ``openai`` package's models say; raises when a stream is
        wrong."""
        text, problems, answers = expected_text(self.args.chunks), [], []
        checked: dict[str, Any] = {}
        async with httpx.AsyncClient(base_url=self.parley.base_url, timeout=60) as http:
            http.headers.update(
                {"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"}
            )
            for gap in self.args.gaps:
                bodies = await self._bodies(http, gap)
                self.targets[gap] = {face: self._target(face, b) for face, b in bodies.items()}
                await self.upstream_call("POST", "/_reset")
                streams = {face: await _whole(http, face, b) for face, b in bodies.items()}
                problems += native_problems(streams["native"], text)
                problems += responses_problems(streams["responses"], text, self.args.chunks)
                sent = await self.upstream_call("GET", "/_requests")
                if len(sent) != 2 or sent[0] != sent[1]:
                    problems.append(f"the faces' upstream requests differ: {sent}")
                answers.append(streams["responses"])
                checked[f"{gap:g}ms"] = {
                    face: {"bytes": len(b), "events": len(sse_frames(b))}
                    for face, b in streams.items()
                }
        checked["openai_sdk"] = sdk_remarks(answers)
        if problems:
            raise RuntimeError("wrong streams:\n" + "\n".join(problems))
        for by_face in self.targets.values():
            for target in by_face.values():
                await self.warm(target)
        await self.upstream_call("POST", "/_reset")
        return checked

    async def _bodies(self, http: httpx.AsyncClient, gap: float) -> dict[str, bytes]:
        """Each face's request body for ``fake/text:CHUNKS:GAP``; natively through a new
        assistant on that model."""
        model = f"fake/text:{self.args.chunks}:{gap:g}"
        made = await http.post("/v1/assistants", json={"name": f"bench-{gap:g}ms", "model": model})
        made.raise_for_status()
        return {
            "native": orjson.dumps({"assistant_id": made.json()["id"], "content": "hi"}),
            "responses": orjson.dumps({"model": model, "input": "hi", "stream": True}),
        }

    def _target(self, face: str, body: bytes) -> Target:
        path, classify = _ROUTES[face]
        return Target.post(
            face,
            self.parley.port,
            path,
            body,
            classify,
            needs_final=face == "responses",  # response.completed before [DONE]
            Authorization=f"Bearer {self.key}",
        )

    async def idle_cpu(self, seconds: float) -> float:
        """The idle server's CPU, in ms per second of wall time."""
        cpu0, wall0 = cpu_clock(self.parley.pid), time.perf_counter()
        await asyncio.sleep(seconds)
        cpu, wall = cpu_clock(self.parley.pid) - cpu0, time.perf_counter() - wall0
        return cpu * 1000 / wall

    async def alternating(self, gap: float, count: int, number: int) -> dict[str, Any]:
        """``count`` streams of each face from one client, one stream at a time, the faces
        alternating stream by stream (native, responses, responses, native, ...; round
        ``number`` decides which face opens), each stream's server CPU measured alone."""
        pid, targets = self.parley.pid, self.targets[gap]
        connections = {face: await Connection.open(targets[face].port) for face in FACES}
        results: dict[str, list[StreamResult]] = {face: [] for face in FACES}
        cpu: dict[str, list[float]] = {face: [] for face in FACES}
        wall: dict[str, list[float]] = {face: [] for face in FACES}
        own0, cpu_all0, wall0 = time.process_time(), cpu_clock(pid), time.perf_counter()
        for i in range(count):
            for face in FACES if (i + number) % 2 == 0 else FACES[::-1]:
                cpu0, started = cpu_clock(pid), time.perf_counter()
                connections[face], result = await stream_once(connections[face], targets[face])
                await asyncio.sleep(_SETTLE_S)
                cpu[face].append((cpu_clock(pid) - cpu0) * 1000)
                wall[face].append((time.perf_counter() - started) * 1000)
                results[face].append(result)
        own, cpu_all = time.process_time() - own0, cpu_clock(pid) - cpu_all0
        wall_all = time.perf_counter() - wall0
        for connection in connections.values():
            await connection.close()
        await self.upstream_call("POST", "/_reset")
        measured: dict[str, Any] = {
            face: _measured(results[face], cpu[face], wall[face], own / 2, wall_all / 2)
            for face in FACES
        }
        measured["per_stream_share_of_cpu"] = sum(map(sum, cpu.values())) / 1000 / cpu_all
        return measured

    async def phase(self, gap: float, face: str, clients: int, total: int) -> dict[str, Any]:
        """``total`` streams of one face from ``clients`` keep-alive connections, their starts
        spread over one stream's length; the server's CPU over the whole phase."""
        target, pid = self.targets[gap][face], self.parley.pid
        connections = await open_connections(target.port, clients)
        stagger = spread(self.args.chunks, gap, clients)
        cpu0, own0 = cpu_clock(pid), time.process_time()
        load = await drive(connections, target, total, stagger_s=stagger)
        cpu, own = cpu_clock(pid) - cpu0, time.process_time() - own0
        await self.upstream_call("POST", "/_reset")
        per_stream, wall = cpu * 1000 / total, load.wall * 1000 / total
        return _measured(load.results, [per_stream], [wall], own, load.wall)

    async def mixed(self, gap: float, clients: int, total: int) -> dict[str, Any]:
        """``total`` streams of each face from ``clients`` keep-alive connections at once,
        each connection alternating the faces stream by stream, starts spread as in
        ``phase``: both faces meet the same load. No CPU per face (they share the phase)."""
        targets = self.targets[gap]
        connections = await open_connections(targets["native"].port, clients)
        stagger = spread(self.args.chunks, gap, clients)
        own0 = time.process_time()
        loads = await drive_mixed(
            connections, [targets[f] for f in FACES], total, stagger_s=stagger
        )
        own = (time.process_time() - own0) / len(FACES)
        await self.upstream_call("POST", "/_reset")
        return {
            face: _measured(load.results, [], [], own, load.wall) for face, load in loads.items()
        }

    async def one_round(self, number: int) -> dict[str, Any]:
        """Every phase: at 1 client the faces alternate stream by stream; at N clients they
        run back to back, which one first flipping every round ("cN", for each face's CPU
        and throughput), and then together ("mix", for the time to the first delta under
        the same load)."""
        faces = FACES if number % 2 == 0 else FACES[::-1]
        measured: dict[str, Any] = {}
        for gap, label, clients, total in _phases(self.args):
            if clients == 1:
                measured[_key(gap, label)] = await self.alternating(gap, total, number)
            elif label == "mix":
                measured[_key(gap, label)] = await self.mixed(gap, clients, total)
            else:
                measured[_key(gap, label)] = {
                    face: await self.phase(gap, face, clients, total) for face in faces
                }
        return measured


#: Wait after each stream at 1 client before reading the server's CPU clock, so the work the
#: server does after the last byte (closing the response) counts for the stream that caused it.
_SETTLE_S = 0.002


def _measured(
    results: list[StreamResult], cpu_ms: list[float], wall_ms: list[float], own: float, wall: float
) -> dict[str, Any]:
    """One face's numbers in one phase of a round. ``cpu_ms`` / ``wall_ms``: the server's
    CPU and the wall time per stream, one sample per stream (1 client) or the phase's mean
    (N clients); ``own``: the load client's CPU seconds; ``wall``: the phase's seconds."""
    good = [r for r in results if r.ok]
    return {
        "streams": len(results),
        "failures": len(results) - len(good),
        "problems": problem_counts(results),
        "content_events_min": min((r.content_events for r in good), default=0),
        "wall_s": wall,
        "streams_per_s": len(results) / wall,
        "client_cpu_ms_per_stream": own * 1000 / len(results),
        "cpu_ms": [round(v, 4) for v in cpu_ms],
        "wall_ms": [round(v, 3) for v in wall_ms],
        "first_delta_ms": [round(r.ttfc * 1000, 4) for r in good],
        "head_ms": [round(r.to_head * 1000, 4) for r in good],
        "stream_ms": [round(r.duration * 1000, 3) for r in good],
    }


async def _whole(http: httpx.AsyncClient, face: str, body: bytes) -> bytes:
    """One whole stream of a face, read with ``httpx``, for the checks."""
    path = _ROUTES[face][0]
    answer = await http.post(path, content=body)
    if answer.status_code != 200:
        raise RuntimeError(f"{path}: {answer.status_code} {answer.text[:300]}")
    return answer.content


async def _run(bench: Bench) -> tuple[list[dict[str, Any]], dict[str, Any], list[float]]:
    """The rounds, what the checked streams were like, and the idle server's CPU (ms per s)
    before and after the rounds."""
    checked = await bench.prepare()
    idle_s = 0.5 if bench.args.quick else 2.0
    idle = [await bench.idle_cpu(idle_s)]
    rounds = await timed_rounds(bench.args.rounds, bench.one_round)
    idle.append(await bench.idle_cpu(idle_s))
    return rounds, checked, idle


# ---------------------------------------------------------------------------- summary


def summarise(rounds: list[dict[str, Any]], idle_ms_per_s: float) -> dict[str, Any]:
    """Per phase and face: first-delta and whole-stream percentiles over all rounds' streams;
    the median of the server's CPU per stream (over all streams at 1 client, over rounds at
    N clients), also less the idle server's CPU for the same wall time; the median ratio of
    the paired samples (two streams back to back; the two faces' runs in one round); median
    streams/s; failures, with their reasons."""
    summary: dict[str, Any] = {}
    for phase in rounds[0]:
        summary[phase] = {
            face: _face_summary([r[phase][face] for r in rounds], idle_ms_per_s) for face in FACES
        }
        pairs = [
            b / a
            for r in rounds
            for a, b in zip(
                r[phase]["native"]["cpu_ms"], r[phase]["responses"]["cpu_ms"], strict=True
            )
            if a > 0
        ]
        native, responses = summary[phase]["native"], summary[phase]["responses"]
        if not pairs:  # faces mixed in one phase: no CPU of each
            continue
        summary[phase]["cpu_ratio"] = percentile(pairs, 0.5)
        summary[phase]["cpu_ratio_iqr"] = [percentile(pairs, 0.25), percentile(pairs, 0.75)]
        summary[phase]["cpu_ratio_pairs"] = len(pairs)
        summary[phase]["cpu_net_ratio"] = (
            responses["cpu_net_ms_per_stream"] / native["cpu_net_ms_per_stream"]
        )
        shares = [r[phase].get("per_stream_share_of_cpu") for r in rounds]
        if None not in shares:
            summary[phase]["per_stream_share_of_cpu"] = statistics.median(shares)
    return summary


def _face_summary(measured: list[dict[str, Any]], idle_ms_per_s: float) -> dict[str, Any]:
    """One face in one phase, from its numbers in every round."""
    firsts = [v for m in measured for v in m["first_delta_ms"]]
    whole = [v for m in measured for v in m["stream_ms"]]
    heads = [v for m in measured for v in m["head_ms"]]
    cpu = [v for m in measured for v in m["cpu_ms"]]
    wall = [v for m in measured for v in m["wall_ms"]]
    return {
        "streams": sum(m["streams"] for m in measured),
        "failures": sum(m["failures"] for m in measured),
        "problems": dict(sum((Counter(m["problems"]) for m in measured), Counter[str]())),
        "content_events_min": min(m["content_events_min"] for m in measured),
        "first_delta_p50_ms": percentile(firsts, 0.5),
        "first_delta_p95_ms": percentile(firsts, 0.95),
        "head_p50_ms": percentile(heads, 0.5),
        "stream_p50_ms": percentile(whole, 0.5),
        "cpu_ms_per_stream": statistics.median(cpu) if cpu else None,
        "cpu_net_ms_per_stream": statistics.median(
            c - idle_ms_per_s * w / 1000 for c, w in zip(cpu, wall, strict=True)
        )
        if cpu
        else None,
        "client_cpu_ms_per_stream": statistics.median(
            m["client_cpu_ms_per_stream"] for m in measured
        ),
        "streams_per_s": statistics.median(m["streams_per_s"] for m in measured),
    }


def _who(clients: int, gap: float, label: str = "c1") -> str:
    how = {"cN": ", one face at a time", "mix": ", faces mixed"}.get(label, "")
    return f"{clients_text(clients)}, {gap:g} ms gap{how}"


def build_rows(args: argparse.Namespace, summary: dict[str, Any]) -> list[Row]:
    """Per phase: first delta p50 / p95, response headers p50, server CPU per stream, then
    whole-stream time (1 client) or streams/s (N clients); a last row counts the failed
    streams. The first-delta target is judged where both faces meet the same load: at 1
    client (alternating) and at N clients mixed; with one face at a time, the N-client
    first delta is the queue of a server running only that face, shown without one."""
    rows: list[Row] = []
    limit_ms, limit_ratio = TARGETS["added_first_delta_p50_ms"], TARGETS["cpu_ratio"]
    for gap, label, clients, _ in _phases(args):
        s = summary[_key(gap, label)]
        native, resp, who = s["native"], s["responses"], _who(clients, gap, label)
        for q in ("p50", "p95"):
            a, b = native[f"first_delta_{q}_ms"], resp[f"first_delta_{q}_ms"]
            row = Row(f"first text delta, {q} ({who})", ms(a), ms(b), f"{b - a:+.2f} ms")
            if q == "p50" and label != "cN":
                row.target, row.verdict = f"≤ +{limit_ms:g} ms", verdict(b - a <= limit_ms)
            rows.append(row)
        a, b = native["head_p50_ms"], resp["head_p50_ms"]
        rows.append(Row(f"response headers, p50 ({who})", ms(a), ms(b), f"{b - a:+.2f} ms"))
        if label == "mix":
            continue
        a, b = native["cpu_ms_per_stream"], resp["cpu_ms_per_stream"]
        ratio, (low, high) = s["cpu_ratio"], s["cpu_ratio_iqr"]
        rows.append(
            Row(
                f"server CPU per stream ({who})",
                ms(a),
                ms(b),
                f"{ratio:.2f}x ({low:.2f}-{high:.2f})",
                f"≤ {limit_ratio:g}x",
                verdict(ratio <= limit_ratio),
            )
        )
        if clients > 1:
            a, b = native["streams_per_s"], resp["streams_per_s"]
            rows.append(Row(f"streams/s ({who})", f"{a:.0f}", f"{b:.0f}", f"{b / a:.2f}x"))
        else:
            a, b = native["stream_p50_ms"], resp["stream_p50_ms"]
            rows.append(Row(f"whole stream, p50 ({who})", ms(a), ms(b), f"{b - a:+.2f} ms"))
    failed = {f: sum(summary[p][f]["failures"] for p in summary) for f in FACES}
    total = {f: sum(summary[p][f]["streams"] for p in summary) for f in FACES}
    rows.append(
        Row(
            "failed streams (all phases)",
            f"{failed['native']} of {total['native']}",
            f"{failed['responses']} of {total['responses']}",
            "—",
            "0",
            verdict(not any(failed.values())),
        )
    )
    return rows


def _notes(args: argparse.Namespace, env: dict[str, Any], summary: dict[str, Any]) -> str:
    counts = "; ".join(
        f"{gap:g} ms gap: {summary[_key(gap, 'c1')]['native']['streams']} sequential streams "
        f"and {summary[_key(gap, 'cN')]['native']['streams']} at {args.clients} clients"
        for gap in args.gaps
    )
    sizes = env["one_stream"][f"{args.gaps[0]:g}ms"]
    idle = env["idle_cpu_ms_per_s"]
    net = ", ".join(
        f"{summary[_key(gap, label)]['cpu_net_ratio']:.2f}x ({_who(clients, gap)})"
        for gap, label, clients, _ in _phases(args)
        if label != "mix"
    )
    share = ", ".join(
        f"{summary[_key(gap, 'c1')]['per_stream_share_of_cpu']:.0%} ({gap:g} ms gap)"
        for gap in args.gaps
    )
    client = max(summary[p][f]["client_cpu_ms_per_stream"] for p in summary for f in FACES)
    return (
        f"{env['cpu']}; Python {env['python']}; {env['database']}; {env['pinning']}; "
        f"load average before: {env['load_average_before']:.2f}, after: "
        f"{env['load_average_after']:.2f}; CPU steal during the run: {env['steal_share']:.1%}.\n"
        f"{args.rounds} round(s); {args.chunks} chunks per stream; per face, all rounds: "
        f"{counts}, and as many again with the faces mixed. At 1 client the faces alternate "
        f"stream by stream; at {args.clients} clients they run back to back (one face at a "
        f"time), the first flipping every round, and then together, each client alternating "
        f"the faces stream by stream (faces mixed); the clients start one after another over "
        f"one stream's length ({args.chunks} x the gap), so with a gap the streams arrive "
        f"spread out, not in waves. First text delta: "
        f"from writing the request to reading the first content.delta / "
        f"response.output_text.delta, percentiles over all rounds' streams. Server CPU: the "
        f"process's CPU clock (user + system, all threads, persistence included); at 1 client "
        f"per stream (read before the request and {_SETTLE_S * 1000:g} ms after the end of "
        f"the body; these cover {share} of the server's CPU over the phase), median stream; at "
        f"{args.clients} clients over the phase ÷ streams, median round. Ratio: the median of "
        f"paired ratios (two streams back to back; the faces' runs in one round), "
        f"interquartile range in brackets. The idle server uses {idle[0]:.2f} ms of CPU per "
        f"second before the rounds and {idle[1]:.2f} after; less that for the same wall "
        f"time, the medians' CPU ratios are {net}. Load client CPU: at most {client:.2f} ms "
        f"per stream. One stream's body: native {sizes['native']['bytes']} B in "
        f"{sizes['native']['events']} events, Responses {sizes['responses']['bytes']} B in "
        f"{sizes['responses']['events']} events (response.created, response.in_progress and "
        f"response.completed each carry the whole response object). {_sdk_note(env)}"
    )


def _sdk_note(env: dict[str, Any]) -> str:
    remarks = env["one_stream"].get("openai_sdk")
    if remarks is None:
        return "The openai package is not installed: the events were not checked with its models."
    if not remarks:
        return "Every event of the checked stream validates with the openai package's models."
    return "Strict validation with the openai package's models rejects: " + "; ".join(remarks)


# ------------------------------------------------------------------------- the run


def measure(
    args: argparse.Namespace, cores: Cores, db: BenchDatabase, workdir: Path
) -> tuple[list[dict[str, Any]], dict[str, Any], list[float]]:
    with serving(args, cores, workdir, db.url) as (upstream, parley, key, _):
        rounds, checked, idle = run_loop(_run(Bench(args, upstream, parley, key)))
        if any(r[p][f]["failures"] for r in rounds for p in r for f in FACES):
            print_server_log(parley)
    return rounds, checked, idle


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    (rounds, checked, idle), env = run_measurement(args, measure)
    env["load_average_after"] = os.getloadavg()[0]
    env["one_stream"], env["idle_cpu_ms_per_s"] = checked, idle
    summary = summarise(rounds, statistics.mean(idle))
    results = {"environment": env, "targets": TARGETS, "summary": summary, "rounds": rounds}
    write_json(args.output, results)
    rows = build_rows(args, summary)
    print(report_text(rows, _notes(args, env, summary), env, HEADER))
    print(f"results: {args.output}")
    if report_stream_errors(summary, FACES, args.chunks, "text deltas"):
        return 1
    missed = [r.metric for r in rows if r.verdict == "FAIL"]
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
