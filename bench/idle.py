"""What an idle ``parley serve`` costs when its database holds a history: the CPU of its
event loop and of its other threads per second, on a fresh database and on one that holds
``--runs`` ended runs (each on a thread of its own), as a server that has been used for
months holds them.

    .venv/bin/python bench/idle.py [--runs 100000] [--seconds 20] [--settle 6]
        [--database-url postgresql://postgres@127.0.0.1:5432/postgres]

An idle server still sweeps: it asks when the next lease, wait for tool outputs or
scratch thread falls due, which files wait for indexing, which webhooks are due. Those
reads should look at the few active rows only, whatever the history; this measures that
they do. Each thread's CPU comes from ``/proc/PID/task/TID/schedstat`` (the kernel's
nanosecond run time) over ``--seconds``, after ``--settle`` seconds of start-up. On
PostgreSQL a read's work is the database server's, not Parley's: the rows it read per second
(``pg_stat_database``: rows returned by scans plus rows fetched by index) show it.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

import psycopg
import sqlalchemy as sa
from procs import BenchDatabase, Cores, Parley
from turn_profile import thread_times

from parley.store.tables import runs, threads, users

#: The roles ``turn_profile.thread_times`` sums each thread's run time by.
LOOP, OTHERS = "event loop", "database (the other threads)"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=100_000, help="ended runs in the history")
    p.add_argument("--seconds", type=float, default=20.0, help="the measured window")
    p.add_argument("--settle", type=float, default=6.0, help="seconds after start, unmeasured")
    p.add_argument("--database-url", default=None, help="a PostgreSQL server (default: SQLite)")
    return p.parse_args(argv)


def seed(url: str, count: int) -> None:
    """``count`` completed runs, each on a thread of its own, of the bench's user."""
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    rng = random.Random(1)
    with engine.begin() as conn:
        user = conn.execute(sa.select(users.c.id)).scalars().first()
        at = time.time() - 86400 * 30
        for start in range(0, count, 5000):
            batch = range(start, min(count, start + 5000))
            ids = [
                (f"thread_{rng.getrandbits(96):024x}", f"run_{rng.getrandbits(96):024x}")
                for _ in batch
            ]
            conn.execute(
                sa.insert(threads),
                [
                    {
                        "id": t,
                        "user_id": user,
                        "metadata": {},
                        "message_count": 0,
                        "created_at": at + i,
                    }
                    for i, (t, _) in zip(batch, ids, strict=True)
                ],
            )
            conn.execute(
                sa.insert(runs),
                [
                    {
                        "id": r,
                        "user_id": user,
                        "thread_id": t,
                        "model": "fake/bench",
                        "tools": [],
                        "parameters": {},
                        "status": "completed",
                        "created_at": at + i,
                        "started_at": at + i,
                        "completed_at": at + i + 1,
                        "last_seq": 24,
                    }
                    for i, (t, r) in zip(batch, ids, strict=True)
                ],
            )
    engine.dispose()


def rows_read(database: BenchDatabase, server_url: str | None) -> int:
    """The rows PostgreSQL's scans of the database returned and its index reads fetched so
    far (0 on SQLite)."""
    if server_url is None or database.pg_name is None:
        return 0
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute(
            "SELECT tup_returned + tup_fetched FROM pg_stat_database WHERE datname = %s",
            (database.pg_name,),
        ).fetchone()
    return int(row[0]) if row else 0


def idle_cost(
    server: Parley, database: BenchDatabase, server_url: str | None, settle: float, seconds: float
) -> tuple[float, float, float]:
    """The event loop's and the other threads' CPU, in ms per second of idle, and the rows
    PostgreSQL read per second."""
    server.start()
    try:
        time.sleep(settle)
        before, read_before = thread_times(server.pid), rows_read(database, server_url)
        time.sleep(seconds)
        # The statistics collector reports a backend's counts when its transaction ends
        # (within a second): wait for the last ones.
        after = thread_times(server.pid)
        time.sleep(1.0 if server_url else 0.0)
        read_after = rows_read(database, server_url)
    finally:
        server.stop()
    loop, others = (after[role] - before[role] for role in (LOOP, OTHERS))
    rows = (read_after - read_before) / seconds
    return loop * 1e3 / seconds, others * 1e3 / seconds, rows


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    cores = Cores.pick(True)
    kind = "PostgreSQL" if args.database_url else "SQLite"
    print(f"idle `parley serve` on {kind}, {args.seconds:g} s window; {cores.describe()}")
    print("| database | event loop, ms/s | other threads, ms/s | all, ms/s | rows read/s |")
    print("|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory(prefix="parley-idle-") as tmp:
        for label, count in (("fresh", 0), (f"{args.runs:,} ended runs", args.runs)):
            workdir = Path(tmp) / str(count)
            workdir.mkdir()
            database = BenchDatabase(workdir, args.database_url)
            try:
                server = Parley(
                    database_url=database.url,
                    workdir=workdir,
                    upstream_url="http://127.0.0.1:9",
                    cores=cores,
                )
                server.create_user("bench")
                if count:
                    seed(database.url, count)
                loop, others, rows = idle_cost(
                    server, database, args.database_url, args.settle, args.seconds
                )
            finally:
                database.drop()
                read = f"{rows:,.0f}" if args.database_url else "—"
                print(f"| {label} | {loop:.2f} | {others:.2f} | {loop + others:.2f} | {read} |")
                sys.stdout.flush()


if __name__ == "__main__":
    main()
