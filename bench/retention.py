"""What each stored stream adds to the database, before and after its event log is pruned.

    .venv/bin/python bench/retention.py [--streams 500] [--chunks 22] [--clients 10]
        [--database-url postgresql://postgres@127.0.0.1:5432/postgres]

Runs ``--streams`` streams (``POST /v1/process``, one new thread each: a user message, an
assistant message of ``--chunks`` chunks, a run and its event log) through a real
``parley serve`` on the fake upstream, on a fresh database (SQLite without
``--database-url``), then prunes every log with ``parley db prune --older-than 0s``. The
database is measured compacted (SQLite ``VACUUM``, PostgreSQL ``VACUUM FULL``) after a few
warm-up streams (their logs pruned), after the streams and after pruning; the table gives the growth per stream
in all, and of the event log (``run_events``) and of the rest. ``docs/scaling.md``
("Retention") quotes it.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import psycopg
from procs import BenchDatabase, Cores, Parley, Upstream
from sqlalchemy import make_url

WARM_UP = 5


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--streams", type=int, default=500, help="streams to store")
    p.add_argument("--chunks", type=int, default=22, help="text chunks per answer")
    p.add_argument("--clients", type=int, default=10, help="streams at once")
    p.add_argument("--database-url", help="a PostgreSQL server (default: a SQLite file)")
    return p.parse_args(argv)


async def streams(base_url: str, key: str, chunks: int, count: int, clients: int) -> None:
    """``count`` streams, ``clients`` at a time, each read to its ``done``."""
    auth = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=f"{base_url}/v1", headers=auth, timeout=60) as http:
        made = await http.post(
            "/assistants", json={"name": "retention", "model": f"fake/text:{chunks}:0"}
        )
        made.raise_for_status()
        body = {"assistant_id": made.json()["id"], "content": "How big is a stream?"}
        queue = iter(range(count))

        async def client() -> None:
            for _ in queue:
                async with http.stream("POST", "/process", json=body) as answer:
                    answer.raise_for_status()
                    text = (await answer.aread()).decode()
                if "event: done" not in text or '"status":"completed"' not in text:
                    raise RuntimeError(f"a stream did not complete: {text[-300:]!r}")

        await asyncio.gather(*(client() for _ in range(clients)))


def measure(url: str) -> dict[str, int]:
    """Bytes of the compacted database: ``total``, ``run_events`` (with its index) and
    ``rest``."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        with sqlite3.connect(str(parsed.database)) as conn:
            conn.execute("VACUUM")
            rows = conn.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name").fetchall()
        sizes = {str(name): int(size) for name, size in rows}
    else:
        dsn = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("VACUUM FULL")
            rows = conn.execute(
                "SELECT relname, pg_total_relation_size(oid) FROM pg_class "
                "WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace"
            ).fetchall()
        sizes = {str(name): int(size) for name, size in rows}
    events = sum(v for k, v in sizes.items() if "run_events" in k)
    total = sum(sizes.values())
    return {"total": total, "run_events": events, "rest": total - events}


def prune(server: Parley) -> str:
    done = subprocess.run(
        [*server._parley(), "db", "prune", "--older-than", "0s"],
        env=server.env,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    return done.stdout.strip()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cores = Cores(None, None)
    with tempfile.TemporaryDirectory(prefix="parley-retention-") as tmp:
        workdir = Path(tmp)
        db = BenchDatabase(workdir, args.database_url)
        kind = db.kind
        upstream = Upstream(cores, args.chunks)
        server = Parley(
            database_url=db.url, workdir=workdir, upstream_url=upstream.url, cores=cores
        )
        server.env["PARLEY_EVENT_RETENTION_HOURS"] = "0"  # the server itself keeps every log
        try:
            key = server.create_user("retention")
            server.start()
            asyncio.run(streams(server.base_url, key, args.chunks, WARM_UP, 1))
            prune(server)  # the warm-up's logs: the base holds none
            base = measure(db.url)
            asyncio.run(streams(server.base_url, key, args.chunks, args.streams, args.clients))
            stored = measure(db.url)
            said = prune(server)
            pruned = measure(db.url)
        except Exception:
            print(server.log(), file=sys.stderr)
            raise
        finally:
            server.stop()
            upstream.stop()
            db.drop()
    n = args.streams
    print(f"{kind}, {n} streams of {args.chunks} chunks; {said}")
    print("| bytes per stream | total | event log | the rest |\n|---|---|---|---|")
    for name, sizes in (("stored", stored), ("after pruning", pruned)):
        per = {k: (sizes[k] - base[k]) / n for k in base}
        print(f"| {name} | {per['total']:,.0f} | {per['run_events']:,.0f} | {per['rest']:,.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
