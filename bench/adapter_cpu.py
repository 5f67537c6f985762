"""CPU that the OpenAI Chat Completions adapter costs its process, per streamed answer.

    .venv/bin/python bench/adapter_cpu.py [--streams 2000] [--rounds 3] [--chunks 22]

Starts the fake upstream (``python -m parley.testing.fake_upstream``) as a subprocess, so
its work is not counted, then streams ``text:CHUNKS`` answers through
``OpenAIChatProvider`` in this process (uvloop when installed) and prints this process's
CPU time (user + system, ``time.process_time``) per stream: every round, and the median
of the rounds. Each stream is read to its end and checked (text, finish reason, usage);
a wrong one stops the run with exit status 1. With two CPUs or more, this process and the
upstream are pinned to different CPUs (``--no-pin`` turns that off).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any

from parley.events import FinishPart, TextPart, UsagePart
from parley.providers.base import ChatMessage, ModelRequest
from parley.providers.openai_chat import OpenAIChatProvider
from parley.testing.fake_upstream import expected_text
from parley.types import Role


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/adapter_cpu.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--streams", type=int, default=2000, help="streams per round")
    p.add_argument("--rounds", type=int, default=3, help="rounds (the median is printed)")
    p.add_argument("--chunks", type=int, default=22, help="content chunks per stream")
    p.add_argument("--concurrency", type=int, default=1, help="streams in flight at once")
    p.add_argument("--warmup", type=int, default=200, help="untimed streams first")
    p.add_argument("--no-uvloop", action="store_true", help="use the standard asyncio loop")
    p.add_argument("--no-pin", action="store_true", help="do not pin the processes to CPUs")
    return p.parse_args(argv)


def start_upstream(cpu: int | None) -> tuple[subprocess.Popen[str], str]:
    """The fake upstream process and its base URL, once it accepts connections."""
    command = [sys.executable, "-m", "parley.testing.fake_upstream", "--port", "0"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    if cpu is not None:
        os.sched_setaffinity(process.pid, {cpu})
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    if not line.startswith("listening on "):
        process.kill()
        raise SystemExit(f"the fake upstream did not start: {line!r}")
    return process, line.removeprefix("listening on ") + "/v1"


async def one_stream(provider: OpenAIChatProvider, request: ModelRequest, text: str) -> None:
    pieces: list[str] = []
    finished = usage = False
    async for event in provider.stream(request):
        if type(event) is TextPart:
            pieces.append(event.text)
        elif type(event) is FinishPart:
            finished = True
        elif type(event) is UsagePart:
            usage = True
    if "".join(pieces) != text or not (finished and usage):
        raise SystemExit("a stream came back wrong: the adapter or the upstream is broken")


async def run_streams(
    count: int, concurrency: int, stream: Callable[[], Coroutine[Any, Any, None]]
) -> None:
    remaining = count

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await stream()

    await asyncio.gather(*(worker() for _ in range(max(1, min(concurrency, count)))))


async def measure(base_url: str, args: argparse.Namespace) -> list[float]:
    """Milliseconds of CPU per stream, one number per round."""
    provider = OpenAIChatProvider(base_url)
    request = ModelRequest(
        model=f"text:{args.chunks}", messages=[ChatMessage(role=Role.USER, content="Hello")]
    )
    text = expected_text(args.chunks)

    def stream() -> Coroutine[Any, Any, None]:
        return one_stream(provider, request, text)

    try:
        await run_streams(args.warmup, args.concurrency, stream)
        rounds: list[float] = []
        for _ in range(args.rounds):
            start = time.process_time()
            await run_streams(args.streams, args.concurrency, stream)
            rounds.append((time.process_time() - start) * 1000 / args.streams)
        return rounds
    finally:
        await provider.aclose()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    cpus = sorted(os.sched_getaffinity(0))
    pin = not args.no_pin and len(cpus) >= 2
    if pin:
        os.sched_setaffinity(0, {cpus[0]})
    upstream, base_url = start_upstream(cpus[1] if pin else None)
    loop_factory = None
    if not args.no_uvloop:
        try:
            import uvloop

            loop_factory = uvloop.new_event_loop
        except ImportError:
            pass
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            rounds = runner.run(measure(base_url, args))
    finally:
        upstream.terminate()
        upstream.wait(timeout=10)
    loop_name = "uvloop" if loop_factory is not None else "asyncio"
    print(
        f"OpenAIChatProvider, {args.chunks}-chunk streams, {args.streams} per round, "
        f"concurrency {args.concurrency}, {loop_name}, "
        + (f"client on CPU {cpus[0]}, upstream on CPU {cpus[1]}" if pin else "not pinned")
    )
    print("rounds (ms CPU per stream): " + ", ".join(f"{r:.3f}" for r in rounds))
    print(f"client CPU per stream, median of {len(rounds)}: {statistics.median(rounds):.3f} ms")


if __name__ == "__main__":
    main()
