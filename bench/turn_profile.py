"""Where a stored turn's CPU goes, per chunk, against a chat completion on the same server.

One ``parley serve`` (pinned as the other benches pin it, on a fresh database) streams the
same 22-chunk answer both ways: as a chat completion (``POST /v1/chat/completions``,
nothing stored) and as a stored turn (``POST /v1/process``). For each client count
(``--clients``, default 1 and 50) and face, two phases of the same streams:

- **unprofiled**: each thread's CPU time from ``/proc/PID/task/TID/schedstat`` (the
  kernel's nanosecond run time of the thread) before and after, ÷ streams: the event loop
  (the main thread), the database threads (``parley-db-*``), the rest;
- **profiled**: cProfile on the event loop's thread CPU clock (``bench/profiled.py``,
  switched on for the phase alone), each function's own time ÷ streams ÷ chunks, summed by
  the layer its code lives in (the profiler slows every call, so these are shares, not
  times).

It prints, per client count, the thread table and the layer table (chat, stored, and the
difference in µs per chunk), then the functions whose own time differs most.

    .venv/bin/python bench/turn_profile.py [--clients 1,50] [--gap-ms 20] [--streams 40]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import pstats
import shutil
import signal
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.loadclient import (
    Target,
    drive,
    open_connections,
    parley_event,
    problem_counts,
    spread,
)
from bench.procs import BenchDatabase, Cores, Parley, Upstream
from bench.run import run_loop

_TICK = os.sysconf("SC_CLK_TCK")

#: Where a function's code lives, by the first matching piece of its file's path.
LAYERS = (
    ("parley/engine/", "engine (turn, channel, checkpoints)"),
    ("parley/store/", "store (Parley's statements)"),
    ("sqlalchemy/", "SQLAlchemy"),
    ("parley/server/", "server (faces, SSE, limits)"),
    ("parley/providers/", "provider adapter"),
    ("parley/", "other Parley"),
    ("aiohttp/", "aiohttp (upstream client)"),
    ("uvicorn/", "uvicorn, Starlette, FastAPI"),
    ("starlette/", "uvicorn, Starlette, FastAPI"),
    ("fastapi/", "uvicorn, Starlette, FastAPI"),
    ("pydantic", "pydantic"),
    ("asyncio/", "asyncio"),
    ("concurrent/", "asyncio"),
    ("threading.py", "asyncio"),
)


def layer(path: str, name: str) -> str:
    if path == "~":  # a built-in
        return "built-ins (C: socket writes, JSON, locks, …)"
    for piece, label in LAYERS:
        if piece in path:
            return label
    return "other Python"


def thread_times(pid: int) -> dict[str, float]:
    """CPU seconds so far of each thread of ``pid``, summed by role; and of each role, the
    system (kernel) part, from the 10 ms ticks of ``/proc/PID/task/TID/stat``."""
    out: dict[str, float] = defaultdict(float)
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            ran = int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0])
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except OSError:
            continue
        role = "event loop" if tid == str(pid) else "database (the other threads)"
        out[role] += ran / 1e9
        out[f"{role}: kernel"] += int(stat[stat.rindex(")") + 2 :].split()[12]) / _TICK
    return out


def by_layer(stats: pstats.Stats, streams: int, chunks: int) -> dict[str, float]:
    """Own time of every function, summed by layer: µs per chunk."""
    out: dict[str, float] = defaultdict(float)
    raw: Any = stats.stats  # type: ignore[attr-defined]
    for (path, _, name), (_, _, tottime, _, _) in raw.items():
        out[layer(path, name)] += tottime * 1e6 / streams / chunks
    return out


def jobs(stats: pstats.Stats, streams: int) -> dict[str, float]:
    """The database threads' jobs (what ``Database._run`` called in its transaction, and
    the transaction's begin and commit), each with all it called: ms per stream."""
    out: dict[str, float] = {}
    raw: Any = stats.stats  # type: ignore[attr-defined]
    for (path, line, name), (_, _, _, cumtime, callers) in raw.items():
        if any(c[0].endswith("store/db.py") and c[2] == "_run" for c in callers):
            where = f"{Path(path).parent.name}/{Path(path).name}:{line} {name}"
            out[where] = out.get(where, 0.0) + cumtime * 1e3 / streams
    return out


def by_function(stats: pstats.Stats, streams: int, chunks: int) -> dict[str, float]:
    out: dict[str, float] = {}
    raw: Any = stats.stats  # type: ignore[attr-defined]
    for (path, line, name), (_, _, tottime, _, _) in raw.items():
        where = name if path == "~" else f"{Path(path).parent.name}/{Path(path).name}:{line} {name}"
        out[where] = out.get(where, 0.0) + tottime * 1e6 / streams / chunks
    return out


class Profiler:
    def __init__(self, args: argparse.Namespace, parley: Parley, key: str, out: Path) -> None:
        self.args, self.parley, self.key, self.out = args, parley, key, out
        self.targets: dict[str, Target] = {}

    async def prepare(self) -> None:
        model = f"text:{self.args.chunks}:{self.args.gap_ms:g}"
        auth = f"Bearer {self.key}"
        async with httpx.AsyncClient(base_url=self.parley.base_url, timeout=30) as http:
            made = await http.post(
                "/v1/assistants",
                json={"name": "profile", "model": f"fake/{model}"},
                headers={"Authorization": auth},
            )
            made.raise_for_status()
        stored = orjson.dumps({"assistant_id": made.json()["id"], "content": "hi"})
        chat = {
            "model": f"fake/{model}",
            "messages": [{"role": "user", "content": "hi"}],
            "stream": True,
        }
        port = self.parley.port
        self.targets["stored"] = Target.post(
            "stored", port, "/v1/process", stored, parley_event, Authorization=auth
        )
        self.targets["chat"] = Target.post(
            "chat",
            port,
            "/v1/chat/completions",
            orjson.dumps(chat),
            _chat_event,
            Authorization=auth,
        )
        for target in self.targets.values():
            await self._drive(target, 10, 20)

    async def _drive(self, target: Target, clients: int, total: int) -> None:
        connections = await open_connections(target.port, clients)
        stagger = spread(self.args.chunks, self.args.gap_ms, clients)
        load = await drive(connections, target, total, stagger_s=stagger)
        if load.failures:
            raise RuntimeError(f"{target.name}: {problem_counts(load.results)}")

    async def phase(self, face: str, clients: int) -> dict[str, Any]:
        total = self.args.streams * max(1, clients // 10) if clients > 1 else self.args.streams
        target, pid = self.targets[face], self.parley.pid
        # A wave of each face first, untimed: the first phase after start-up otherwise
        # pays for the server's warming (its caches, the allocator's first arenas).
        await self._drive(target, clients, 2 * clients)
        before = thread_times(pid)
        await self._drive(target, clients, total)
        after = thread_times(pid)
        threads = {k: (after[k] - before.get(k, 0.0)) * 1e3 / total for k in after}
        os.kill(pid, signal.SIGUSR1)
        await asyncio.sleep(0.2)
        await self._drive(target, clients, total)
        os.kill(pid, signal.SIGUSR2)
        await asyncio.sleep(0.5)
        return self._read(face, clients, total, threads)

    def _read(
        self, face: str, clients: int, total: int, threads: dict[str, float]
    ) -> dict[str, Any]:
        """The phase's profiles, read (and kept, with ``--keep``)."""
        stats = pstats.Stats(str(self.out))
        if self.args.keep:
            self.args.keep.mkdir(parents=True, exist_ok=True)
            for path in (self.out, Path(f"{self.out}.db")):
                if path.exists():
                    shutil.copy(path, self.args.keep / f"{face}-{clients}{''.join(path.suffixes)}")
        self.out.unlink()
        db_out = Path(f"{self.out}.db")
        db_stats = pstats.Stats(str(db_out)) if db_out.exists() else None
        db_out.unlink(missing_ok=True)
        chunks = self.args.chunks
        return {
            "streams": total,
            "threads_ms": threads,
            "layers_us": by_layer(stats, total, chunks),
            "functions_us": by_function(stats, total, chunks),
            "db_layers_us": by_layer(db_stats, total, chunks) if db_stats else {},
            "db_functions_us": by_function(db_stats, total, chunks) if db_stats else {},
            "db_jobs_ms": jobs(db_stats, total) if db_stats else {},
        }


def _chat_event(event: bytes) -> int:
    from bench.loadclient import CONTENT, DONE, OTHER

    if event == b"data: [DONE]":
        return DONE
    return CONTENT if b'"content":"' in event else OTHER


def report(clients: int, faces: dict[str, dict[str, Any]], top: int) -> str:
    chat, stored = faces["chat"], faces["stored"]
    lines = [
        f"\n### {clients} client(s)\n",
        "| thread, CPU ms per stream | chat | stored | stored - chat |",
    ]
    lines.append("|---|---:|---:|---:|")
    roles = sorted(set(chat["threads_ms"]) | set(stored["threads_ms"]))
    for role in [*roles, "all"]:
        a, b = (
            sum(v for k, v in face["threads_ms"].items() if ":" not in k)
            if role == "all"
            else face["threads_ms"].get(role, 0)
            for face in (chat, stored)
        )
        lines.append(f"| {role} | {a:.2f} | {b:.2f} | {b - a:+.2f} |")
    for key, what in (("layers_us", "event loop"), ("db_layers_us", "database threads")):
        lines += ["", f"| {what}, profiled, µs per chunk | chat | stored | stored - chat |"]
        lines.append("|---|---:|---:|---:|")
        ca, sa = chat[key], stored[key]
        for name in sorted(set(ca) | set(sa), key=lambda n: ca.get(n, 0) - sa.get(n, 0)):
            a, b = ca.get(name, 0.0), sa.get(name, 0.0)
            lines.append(f"| {name} | {a:.1f} | {b:.1f} | {b - a:+.1f} |")
        a, b = sum(ca.values()), sum(sa.values())
        lines.append(f"| all | {a:.1f} | {b:.1f} | {b - a:+.1f} |")
    lines += ["", "| database jobs, profiled, ms per stream | chat | stored |", "|---|---:|---:|"]
    ja, jb = chat["db_jobs_ms"], stored["db_jobs_ms"]
    for name in sorted(set(ja) | set(jb), key=lambda n: -jb.get(n, 0.0)):
        lines.append(f"| {name} | {ja.get(name, 0.0):.3f} | {jb.get(name, 0.0):.3f} |")
    for key, what in (("functions_us", "event loop"), ("db_functions_us", "database threads")):
        lines += [
            "",
            f"{what}: the functions whose own time differs most (µs per chunk, "
            f"stored - chat), top {top}:",
            "",
        ]
        fa, fb = chat[key], stored[key]
        diff = {k: fb.get(k, 0.0) - fa.get(k, 0.0) for k in set(fa) | set(fb)}
        for name, value in sorted(diff.items(), key=lambda kv: -abs(kv[1]))[:top]:
            lines.append(f"- {value:+7.2f}  {name}")
    return "\n".join(lines)


async def _measure(profiler: Profiler, clients: list[int]) -> dict[int, dict[str, Any]]:
    await profiler.prepare()
    results: dict[int, dict[str, Any]] = {}
    for n in clients:
        results[n] = {face: await profiler.phase(face, n) for face in ("chat", "stored")}
    return results


@contextlib.contextmanager
def switched_server(
    cores: Cores,
    chunks: int,
    database_url: str | None,
    out_name: str,
    wrapper: str = "profiled.py",
) -> Iterator[tuple[Parley, str, Path]]:
    """A fake upstream of ``chunks``-chunk answers and ``parley serve`` on a fresh database
    (SQLite, or one on the PostgreSQL server of ``database_url``), under ``wrapper``
    (switched by signals: ``Parley.start``); yields the server, a user's API key, and the
    file the wrapper writes. Everything is stopped and dropped after."""
    with tempfile.TemporaryDirectory(prefix="parley-profile-") as tmp:
        workdir = Path(tmp)
        db = BenchDatabase(workdir, database_url)
        try:
            upstream = Upstream(cores, chunks)
            parley = Parley(
                database_url=db.url, workdir=workdir, upstream_url=upstream.url, cores=cores
            )
            out = workdir / out_name
            try:
                parley.start()
                key = parley.create_user("bench")
                parley.stop()
                parley.start(profile=out, switched=True, wrapper=wrapper)
                yield parley, key, out
            finally:
                parley.stop()
                upstream.stop()
        finally:
            db.drop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", default="1,50", help="client counts, comma-separated")
    p.add_argument("--gap-ms", type=float, default=20.0, help="ms between chunks")
    p.add_argument("--chunks", type=int, default=22)
    p.add_argument(
        "--streams",
        type=int,
        default=40,
        help="streams per phase at 1 client (at N clients: this x N/10)",
    )
    p.add_argument("--top", type=int, default=25, help="functions listed")
    p.add_argument("--database-url", help="bench PostgreSQL: a fresh database on this server")
    p.add_argument("--no-pin", action="store_true")
    p.add_argument(
        "--keep",
        type=Path,
        help="keep the profiles in this folder "
        "(FACE-CLIENTS.prof: the event loop; .prof.db: the database threads)",
    )
    args = p.parse_args(argv)
    cores = Cores.pick(not args.no_pin)
    cores.pin_self()
    clients = [int(c) for c in args.clients.split(",")]
    with switched_server(cores, args.chunks, args.database_url, "loop.prof") as (parley, key, out):
        time.sleep(0.5)
        results = run_loop(_measure(Profiler(args, parley, key, out), clients))
    print(
        f"# Per chunk: {args.chunks} chunks {args.gap_ms:g} ms apart; "
        f"{'SQLite' if not args.database_url else 'PostgreSQL'}; {cores.describe()}"
    )
    for n, faces in results.items():
        print(report(n, faces, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
