"""What a stored turn's claim costs on SQLite: the CPU of ``engine.transactions.claim_first``
(a native first turn on a new thread: the assistant's read, a thread, a run, the user's
message and the answer's empty one) on a database thread, each claim in a transaction of
its own, as a claim that runs alone does; and the pages its commit writes to the WAL, by
table and index.

    .venv/bin/python bench/claim_cost.py [--claims 3000] [--page-size 4096]

The claims run one after another on the server's own database thread (``store.db``'s
workers), the thread CPU clock read around each batch; the median of five batches is
reported, after a warm-up. The WAL's pages: the frames of ``--pages-of`` claims written
after a checkpoint emptied the WAL, named by the ``dbstat`` table of Python's own
``sqlite3`` (the driver Parley uses is built without it), as ``bench/retention.py`` reads
it.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import sqlite3
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from parley.engine import transactions as tx  # noqa: E402
from parley.store import assistants, users  # noqa: E402
from parley.store.db import Database, _Call  # noqa: E402

_WAL_HEADER, _FRAME_HEADER = 32, 24


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--claims", type=int, default=3000, help="claims measured (five batches)")
    p.add_argument("--page-size", type=int, default=None, help="a new database's page size")
    p.add_argument("--pages-of", type=int, default=20, help="claims whose WAL pages are read")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "claims.db"
        if args.page_size:  # set before the first table; kept by every table after it
            with sqlite3.connect(path) as conn:
                conn.executescript(
                    f"PRAGMA page_size={args.page_size}; CREATE TABLE x(a); DROP TABLE x;"
                )
        per_claim, pages = asyncio.run(_measure(path, args.claims, args.pages_of))
    batches = ", ".join(f"{t * 1e6:.0f}" for t in per_claim)
    print(f"claim_first, thread CPU per claim: median {statistics.median(per_claim) * 1e6:.0f} µs")
    print(f"  batches of {args.claims // 5}: {batches} µs")
    frames, by_name = pages
    print(f"WAL pages per claim: {frames:.1f}")
    for name, count in by_name.most_common():
        print(f"  {name}: {count / args.pages_of:.2f}")


async def _measure(
    path: Path, claims: int, pages_of: int
) -> tuple[list[float], tuple[float, collections.Counter[str]]]:
    db = Database(f"sqlite:///{path}")
    try:
        await db.migrate()
        user = await db.write(lambda c: users.create_user(c, name="claims"))
        bot = await db.write(
            lambda c: assistants.create_assistant(
                c,
                user_id=user.id,
                name="bench",
                model="demo",
                instructions="Answer briefly.",
                tools=[],
                parameters={},
                metadata={},
            )
        )
        lease = tx.Lease.of(None, 4.0)

        def claim(conn: Any) -> tx.Claim:
            return tx.claim_first(
                conn,
                user_id=user.id,
                assistant_id=bot.id,
                content="What is the capital of France?",
                thread_id=None,
                lease=lease,
                check_model=lambda _: None,
            )

        def batch(count: int) -> float:
            started = time.thread_time()
            for _ in range(count):
                db._run(_Call(claim, (), {}, read_only=False))
            return (time.thread_time() - started) / count

        def work(_: None) -> tuple[list[float], tuple[float, collections.Counter[str]]]:
            batch(300)  # warm-up: caches, the B-trees' first levels
            per_claim = [batch(claims // 5) for _ in range(5)]
            return per_claim, _wal_pages(db, path, lambda: batch(pages_of), pages_of)

        return await asyncio.wrap_future(db._workers.submit(work, None))
    finally:
        await db.dispose()


def _wal_pages(
    db: Database, path: Path, run: Any, count: int
) -> tuple[float, collections.Counter[str]]:
    """The WAL frames ``run()`` writes after a checkpoint emptied the WAL, per claim, and
    the tables and indexes they belong to."""
    driver = db._connection(False).connection.dbapi_connection
    assert driver is not None
    driver.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    run()
    wal = Path(f"{path}-wal").read_bytes()
    page_size = struct.unpack(">I", wal[8:12])[0]
    pages = [
        struct.unpack(">I", wal[at : at + 4])[0]
        for at in range(_WAL_HEADER, len(wal) - _FRAME_HEADER + 1, _FRAME_HEADER + page_size)
    ]
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        names = dict(conn.execute("SELECT pageno, name FROM dbstat").fetchall())
    return len(pages) / count, collections.Counter(names.get(p, "?") for p in pages)


if __name__ == "__main__":
    main()
