"""What one stored stream costs a deployment: two ``parley serve`` replicas on PostgreSQL and
Redis, clients spread over both at real token pacing, and per stream the replicas' CPU,
PostgreSQL's CPU, transactions, rows and bytes, and Redis's commands and bytes.

    .venv/bin/python bench/capacity.py [--clients 50] [--streams 600] [--gap-ms 20]
        [--chunks 22,88] [--database-url postgresql://postgres@127.0.0.1:5432/postgres]
        [--redis-url redis://127.0.0.1:6379/14]

Two chunk counts separate what a stream costs once (the claim, the run, the messages) from
what each chunk costs (relaying it, its events, its share of the checkpoints):
``cost(n) = fixed + n * per_chunk``. ``docs/scaling.md`` builds its capacity model from the
printed table. The PostgreSQL and Redis numbers are the servers' own counters
(``pg_stat_database`` of the bench's database, ``pg_database_size``, the WAL position;
Redis ``INFO``), so run it on a machine where nothing else uses them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson
import psycopg
import redis
from compare_servers import tree_cpu
from loadclient import Target, drive, open_connections, parley_event, problem_counts, spread
from procs import BenchDatabase, Cores, Parley, Upstream, cpu_seconds


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=50, help="concurrent clients per replica")
    p.add_argument("--streams", type=int, default=600, help="streams per replica and phase")
    p.add_argument("--gap-ms", type=float, default=20.0, help="chunk gap")
    p.add_argument("--chunks", default="22,88", help="content chunks per stream, one phase each")
    p.add_argument("--rounds", type=int, default=3, help="rounds of every phase (median shown)")
    p.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    p.add_argument(
        "--followers",
        action="store_true",
        help="also a phase where each stream of the first chunk count has a follower on the "
        "other replica (GET /v1/runs/{id}/events): the Redis fan-out",
    )
    p.add_argument(
        "--wal-by-table",
        action="store_true",
        help="after each chunk count's rounds, its last round's WAL per stream by table and "
        "index, and how much of it is full-page images (PostgreSQL's pg_walinspect "
        "extension, created in the --database-url database)",
    )
    return p.parse_args(argv)


def processes_named(name: str) -> list[int]:
    """The pids of the processes whose command is ``name`` (PostgreSQL's backends, Redis)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == name:
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def cpu_of(name: str) -> float:
    total = 0.0
    for pid in processes_named(name):
        try:
            total += cpu_seconds(pid)
        except OSError:
            continue
    return total


class Counters:
    """The counters a phase reads before and after."""

    def __init__(self, pg_url: str, database: str, redis_url: str) -> None:
        self.pg = psycopg.connect(pg_url, autocommit=True)
        self.database = database
        self.redis = redis.Redis.from_url(redis_url)

    def read(self, replicas: list[int]) -> dict[str, float]:
        row = self.pg.execute(
            "SELECT xact_commit, tup_inserted, tup_updated, tup_deleted, tup_fetched,"
            " pg_database_size(datname), pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')"
            " FROM pg_stat_database WHERE datname = %s",
            (self.database,),
        ).fetchone()
        assert row is not None
        stats = self.redis.info("stats")
        commands = self.redis.info("commandstats")
        published = sum(
            v["calls"] for k, v in commands.items() if k.split("|")[0] in ("cmdstat_publish",)
        )
        self.lsn = str(self.pg.execute("SELECT pg_current_wal_lsn()").fetchone()[0])  # type: ignore[index]
        return {
            "replica CPU ms": sum(tree_cpu(pid) for pid in replicas) * 1000,
            "PostgreSQL CPU ms": cpu_of("postgres") * 1000,
            "Redis CPU ms": cpu_of("redis-server") * 1000,
            "PostgreSQL commits": row[0],
            "rows inserted": row[1],
            "rows updated": row[2],
            "rows deleted": row[3],
            "rows read": row[4],
            "database bytes": row[5],
            "WAL bytes": float(row[6]),
            "Redis commands": stats["total_commands_processed"],
            "Redis PUBLISH": published,
            "Redis bytes in": stats["total_net_input_bytes"],
            "Redis bytes out": stats["total_net_output_bytes"],
        }

    def wal_by_relation(self, start: str, end: str, pg_url: str) -> dict[str, tuple[float, float]]:
        """The WAL from ``start`` to ``end`` by the relation its records change: ``name ->
        (bytes, of them full-page images)``. Records that change no relation (commits) are
        ``(other)``."""
        self.pg.execute("CREATE EXTENSION IF NOT EXISTS pg_walinspect")
        rows = self.pg.execute(
            "SELECT record_length, fpi_length, block_ref FROM pg_get_wal_records_info(%s, %s)",
            (start, end),
        ).fetchall()
        with psycopg.connect(pg_url, dbname=self.database, autocommit=True) as conn:
            query = "SELECT pg_relation_filenode(oid), relname FROM pg_class"
            names: dict[int, str] = {int(n): str(r) for n, r in conn.execute(query) if n}
        sizes: dict[str, list[float]] = {}
        for length, fpi, refs in rows:
            node = re.search(r"rel \d+/\d+/(\d+)", refs or "")
            name = names.get(int(node.group(1)), "(catalog)") if node else "(other)"
            entry = sizes.setdefault(name, [0.0, 0.0])
            entry[0] += length
            entry[1] += fpi
        return {k: (v[0], v[1]) for k, v in sizes.items()}

    def close(self) -> None:
        self.pg.close()
        self.redis.close()


async def assistant(base_url: str, key: str, model: str) -> str:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        made = await http.post(
            "/v1/assistants",
            json={"name": "capacity", "model": f"fake/{model}"},
            headers={"Authorization": f"Bearer {key}"},
        )
        made.raise_for_status()
        return str(made.json()["id"])


async def phase(
    replicas: list[Parley], key: str, assistant_id: str, args: argparse.Namespace, chunks: int
) -> float:
    """``args.streams`` streams on each replica at once, ``args.clients`` clients each: the
    wall seconds."""
    body = orjson.dumps({"assistant_id": assistant_id, "content": "hi"})
    auth = f"Bearer {key}"
    stagger = spread(chunks, args.gap_ms, args.clients)
    loads = []
    for replica in replicas:
        target = Target.post(
            f"replica {replica.port}",
            replica.port,
            "/v1/process",
            body,
            parley_event,
            Authorization=auth,
        )
        connections = await open_connections(replica.port, args.clients)
        loads.append(drive(connections, target, args.streams, stagger_s=stagger))
    results = await asyncio.gather(*loads)
    for load in results:
        if load.failures:
            raise RuntimeError(f"streams failed: {problem_counts(load.results)}")
    return max(load.wall for load in results)


async def followed_phase(
    replicas: list[Parley], key: str, assistant_id: str, args: argparse.Namespace
) -> float:
    """As ``phase``, but each stream also has a follower on the other replica, which reads
    the run's events live (through Redis) up to ``done``: the wall seconds."""
    body = orjson.dumps({"assistant_id": assistant_id, "content": "hi"})
    headers = {"Authorization": f"Bearer {key}"}
    failures: list[str] = []

    async def follow(http: httpx.AsyncClient, run_id: str) -> None:
        async with http.stream("GET", f"/v1/runs/{run_id}/events") as r:
            async for line in r.aiter_lines():
                if line == "event: done":
                    return
        failures.append(f"follower of {run_id} saw no done")

    async def client(home: httpx.AsyncClient, other: httpx.AsyncClient, count: int) -> None:
        for _ in range(count):
            follower: asyncio.Task[None] | None = None
            async with home.stream("POST", "/v1/process", content=body) as r:
                async for line in r.aiter_lines():
                    if follower is None and line.startswith("data: "):
                        run_id = orjson.loads(line[6:]).get("run_id")
                        if run_id:
                            follower = asyncio.create_task(follow(other, run_id))
            if follower is None:
                failures.append(f"stream without a run id (status {r.status_code})")
            else:
                await follower

    clients = [
        httpx.AsyncClient(base_url=r.base_url, headers=headers, timeout=60) for r in replicas
    ]
    try:
        started = time.perf_counter()
        per_client = max(1, args.streams // args.clients)
        await asyncio.gather(
            *(
                client(clients[i], clients[1 - i], per_client)
                for i in range(2)
                for _ in range(args.clients)
            )
        )
        wall = time.perf_counter() - started
    finally:
        for http in clients:
            await http.aclose()
    if failures:
        raise RuntimeError(f"{len(failures)} followed streams failed: {failures[:3]}")
    return wall


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    chunk_counts = [int(c) for c in args.chunks.split(",")]
    os.environ["PARLEY_REDIS_URL"] = args.redis_url
    redis.Redis.from_url(args.redis_url).flushdb()
    cores = Cores(None, None)
    with tempfile.TemporaryDirectory(prefix="parley-capacity-") as tmp:
        workdir = Path(tmp)
        db = BenchDatabase(workdir, args.database_url)
        upstream = Upstream(cores, max(chunk_counts))
        replicas = [
            Parley(database_url=db.url, workdir=workdir, upstream_url=upstream.url, cores=cores)
            for _ in range(2)
        ]
        counters: Counters | None = None
        try:
            key = replicas[0].create_user("capacity")
            for replica in replicas:
                replica.start()
            counters = Counters(args.database_url, str(db.pg_name), args.redis_url)
            table: dict[int, dict[str, float]] = {}
            for chunks in chunk_counts:
                model = f"text:{chunks}:{args.gap_ms:g}"
                bot = asyncio.run(assistant(replicas[0].base_url, key, model))
                asyncio.run(phase(replicas, key, bot, _warm(args), chunks))
                rounds = []
                for _ in range(args.rounds):
                    before = counters.read([r.pid for r in replicas])
                    before_lsn = counters.lsn
                    wall = asyncio.run(phase(replicas, key, bot, args, chunks))
                    after = counters.read([r.pid for r in replicas])
                    streams = 2 * args.streams
                    per = {k: (after[k] - before[k]) / streams for k in before}
                    per["streams/s"] = streams / wall
                    rounds.append(per)
                table[chunks] = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
                if args.wal_by_table:
                    wal = counters.wal_by_relation(before_lsn, counters.lsn, args.database_url)
                    _print_wal(wal, 2 * args.streams, chunks)
            _print(table, args)
            if args.followers:
                chunks = chunk_counts[0]
                bot = asyncio.run(
                    assistant(replicas[0].base_url, key, f"text:{chunks}:{args.gap_ms:g}")
                )
                rounds = []
                for _ in range(args.rounds):
                    before = counters.read([r.pid for r in replicas])
                    wall = asyncio.run(followed_phase(replicas, key, bot, args))
                    after = counters.read([r.pid for r in replicas])
                    streams = 2 * args.clients * max(1, args.streams // args.clients)
                    per = {k: (after[k] - before[k]) / streams for k in before}
                    per["streams/s"] = streams / wall
                    rounds.append(per)
                followed = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
                print(f"\nwith a follower on the other replica ({chunks} chunks), per stream:")
                print("| per stream | followed | unfollowed |\n|---|---|---|")
                for name, value in followed.items():
                    print(f"| {name} | {_fmt(value)} | {_fmt(table[chunks][name])} |")
        except Exception:
            for replica in replicas:
                print(f"--- replica {replica.port} log:\n{replica.log()}", file=sys.stderr)
            raise
        finally:
            if counters is not None:
                counters.close()
            for replica in replicas:
                replica.stop()
            upstream.stop()
            db.drop()
    return 0


def _warm(args: argparse.Namespace) -> argparse.Namespace:
    return argparse.Namespace(**{**vars(args), "streams": args.clients})


def _print(table: dict[int, dict[str, float]], args: argparse.Namespace) -> None:
    counts = sorted(table)
    print(
        f"per stream: 2 replicas x {args.clients} clients, chunks {args.gap_ms:g} ms apart, "
        f"{args.streams} streams per replica and round, median of {args.rounds} rounds"
    )
    header = "| per stream | " + " | ".join(f"{n} chunks" for n in counts)
    if len(counts) == 2:
        header += " | fixed | per chunk"
    print(header + " |")
    print("|---" * (len(counts) + 1 + (2 if len(counts) == 2 else 0)) + "|")
    for name in table[counts[0]]:
        values = [table[n][name] for n in counts]
        cells = [_fmt(v) for v in values]
        if len(counts) == 2 and name != "streams/s":
            (a, b), (va, vb) = counts, values
            slope = (vb - va) / (b - a)
            cells += [_fmt(va - a * slope), _fmt(slope)]
        elif len(counts) == 2:
            cells += ["", ""]
        print(f"| {name} | " + " | ".join(cells) + " |")


def _print_wal(wal: dict[str, tuple[float, float]], streams: int, chunks: int) -> None:
    total = sum(b for b, _ in wal.values())
    print(f"\nWAL per stream by relation, {chunks} chunks (the last round's {streams} streams):")
    print("| relation | bytes | of it, full-page images | share |\n|---|---:|---:|---:|")
    for name, (size, fpi) in sorted(wal.items(), key=lambda kv: -kv[1][0]):
        share = size / total if total else 0.0
        print(f"| {name} | {size / streams:,.0f} | {fpi / streams:,.0f} | {share:.0%} |")
    print(f"| all | {total / streams:,.0f} | {sum(f for _, f in wal.values()) / streams:,.0f} | |")


def _fmt(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 100 else f"{value:,.0f}"


if __name__ == "__main__":
    sys.exit(main())
