"""Search latency at scale: p50 and p95 of ``parley.store.index.search`` over
100,000 chunks, on SQLite (FTS5, sqlite-vec) and on PostgreSQL with pgvector (the
``pgserver`` wheel's own server).

    .venv/bin/python bench/search.py [--chunks 100000] [--dim 384] [--queries 200]
                                     [--rounds 1] [--databases sqlite,pgvector]

Generates ``--chunks`` chunks of about 100 tokens (75 words drawn, Zipf-like, from a
vocabulary of 20,000 made-up words) in files of 100 chunks, all in one store of one user,
with random ``--dim``-dimensional vectors (0: none), then times ``--queries`` searches of 3
to 6 words (and a random query vector) through ``Database.read``, as the server does:
lexical, vectors only, and hybrid; 10 results each. ``--rounds N`` times N rounds of new
queries on the same loaded database and reports the median of the rounds' p50s and p95s
(each round's are in the JSON): on a shared machine one round can catch another process's
burst, and loading 100,000 chunks again for each run takes minutes. 384 dimensions are
all-MiniLM-L6-v2's, the local embedding model's; ``--dim 256`` gives the demo's.

On PostgreSQL the chunks are loaded by COPY, the vectors' HNSW index is made once at the
end, then VACUUM ANALYZE runs, as autovacuum soon would; the server gets ``shared_buffers``
of 1 GB. SQLite loads through ``index.add_chunks``, as ingestion does.

Prints a table (with the machine's load average before and after: the times of a loaded
machine are not a quiet one's) and each search's CPU time in this process, the mean (on
SQLite all of the search's work, which waiting for a CPU does not count, though a busy
machine still slows it; on PostgreSQL the client's part only), writes JSON to ``bench/results/search.json``. Targets: p50
≤ 20 ms and p95 ≤ 60 ms.
"""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path += [str(ROOT)]

import argparse  # noqa: E402
import asyncio  # noqa: E402
import bisect  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import secrets  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from typing import Any  # noqa: E402

from report import markdown_table, percentile, text_table, write_json  # noqa: E402
from sqlalchemy import insert, make_url  # noqa: E402

from parley.retrieval import Chunk  # noqa: E402
from parley.store import index, users  # noqa: E402
from parley.store.db import Database, new_id, now  # noqa: E402
from parley.store.index import _postgres  # noqa: E402
from parley.store.tables import files  # noqa: E402

TARGET_P50, TARGET_P95 = 20.0, 60.0
WORDS_PER_CHUNK = 75
CHUNKS_PER_FILE = 100
VOCABULARY = 20_000
#: Files added in one transaction while loading.
FILES_PER_WRITE = 20
STORE = "vs_bench"
SHARED_BUFFERS = "1GB"
HEADER = ("database", "mode", "chunks", "load s", "p50 ms", "p95 ms", "cpu ms", "target")
MODES = ("lexical", "vector", "hybrid")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--chunks", type=int, default=100_000)
    p.add_argument("--dim", type=int, default=384, help="vector length; 0: no vectors")
    p.add_argument("--queries", type=int, default=200, help="per mode and round")
    p.add_argument("--rounds", type=int, default=1, help="rounds of queries, medians reported")
    p.add_argument("--databases", default="sqlite,pgvector")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--output", type=Path, default=BENCH / "results" / "search.json")
    args = p.parse_args(argv)
    if args.chunks < 1 or args.queries < 1 or args.rounds < 1 or args.dim < 0:
        p.error("--chunks, --queries and --rounds must be at least 1, --dim at least 0")
    return args


class Words:
    """Made-up words with Zipf-like frequencies (rank r drawn in proportion to 1/r)."""

    def __init__(self, rng: random.Random) -> None:
        syllables = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]
        seen: set[str] = set()
        while len(seen) < VOCABULARY:
            seen.add("".join(rng.choices(syllables, k=rng.randint(2, 4))))
        self.words = sorted(seen)
        rng.shuffle(self.words)
        weights = list(itertools.accumulate(1.0 / r for r in range(1, VOCABULARY + 1)))
        self._cumulative = weights
        self._rng = rng

    def draw(self, count: int) -> list[str]:
        top = self._cumulative[-1]
        return [
            self.words[bisect.bisect(self._cumulative, self._rng.random() * top)]
            for _ in range(count)
        ]


def _vector(rng: random.Random, dim: int) -> list[float]:
    values = [rng.gauss(0.0, 1.0) for _ in range(dim)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


async def load(
    db: Database, args: argparse.Namespace, rng: random.Random, *, bulk: bool
) -> tuple[str, Words]:
    """The chunks, ``FILES_PER_WRITE`` files to a transaction: through ``index.add_chunks``
    (as ingestion adds them), or, ``bulk`` on PostgreSQL, by COPY, with the vectors' HNSW
    index made once at the end (as after a restore), which is many times faster."""
    words = Words(rng)
    user = (await db.write(users.create_user, name="bench")).id
    batch: list[tuple[str, list[Chunk], list[list[float]] | None]] = []
    for first in range(0, args.chunks, CHUNKS_PER_FILE):
        count = min(CHUNKS_PER_FILE, args.chunks - first)
        pieces, offset = [], 0
        for i in range(count):
            text = " ".join(words.draw(WORDS_PER_CHUNK)).capitalize() + "."
            pieces.append(Chunk(i, text, offset, offset + len(text), 100))
            offset += len(text) + 1
        vectors = [_vector(rng, args.dim) for _ in pieces] if args.dim else None
        batch.append((new_id("file"), pieces, vectors))
        if len(batch) == FILES_PER_WRITE or first + count >= args.chunks:
            await db.write(_copy if bulk else _add, user_id=user, batch=batch)
            batch = []
    if bulk and args.dim:
        await db.write(_index_vectors, dim=args.dim)
    return user, words


def add_files(conn: Any, user_id: str, names: dict[str, str]) -> None:
    """Rows for files whose bytes the bench never reads: ``names`` by file id."""
    conn.execute(
        insert(files),
        [
            {
                "id": file_id,
                "user_id": user_id,
                "filename": filename,
                "purpose": "assistants",
                "bytes": 1,
                "created_at": now(),
                "sha256": "0" * 64,
                "mime_type": "text/plain",
                "storage": "database",
                "storage_key": secrets.token_hex(16),
            }
            for file_id, filename in names.items()
        ],
    )


def _add(conn: Any, *, user_id: str, batch: list[Any]) -> None:
    add_files(conn, user_id, {file_id: f"{file_id}.txt" for file_id, _, _ in batch})
    for file_id, pieces, vectors in batch:
        index.add_chunks(
            conn,
            user_id=user_id,
            vector_store_id=STORE,
            file_id=file_id,
            chunks=pieces,
            embeddings=vectors,
            attributes={"part": file_id[-1]},
        )


_COPY = (
    "COPY chunks (user_id, vector_store_id, file_id, seq, text, tokens, char_start,"
    " char_end, attributes, embedding_dim, created_at, embedding) FROM STDIN"
)


def _copy(conn: Any, *, user_id: str, batch: list[Any]) -> None:
    add_files(conn, user_id, {file_id: f"{file_id}.txt" for file_id, _, _ in batch})
    created = now()
    with conn.connection.driver_connection.cursor() as cursor, cursor.copy(_COPY) as copy:
        for file_id, pieces, vectors in batch:
            attributes = json.dumps({"part": file_id[-1]})
            for n, c in enumerate(pieces):
                vector = "[" + ",".join(map(repr, vectors[n])) + "]" if vectors else None
                dim = len(vectors[n]) if vectors else None
                where = (c.index, c.text, c.tokens, c.start, c.end)
                copy.write_row((user_id, STORE, file_id, *where, attributes, dim, created, vector))


def _index_vectors(conn: Any, *, dim: int) -> None:
    conn.exec_driver_sql("SET LOCAL maintenance_work_mem = '1GB'")
    _postgres.ensure_dimension(conn, dim)


async def measure(
    db: Database, user: str, words: Words, args: argparse.Namespace, rng: random.Random
) -> dict[str, dict[str, float]]:
    # Query words from the middle of the vocabulary, as questions' content words are.
    queries = [
        " ".join(words.words[rng.randint(20, 5000)] for _ in range(rng.randint(3, 6)))
        for _ in range(args.queries)
    ]
    vectors = [_vector(rng, args.dim) for _ in queries] if args.dim else []
    modes = MODES if args.dim else ("lexical",)
    results: dict[str, dict[str, float]] = {}
    for mode in modes:
        options = {
            "lexical": None,
            "vector": {"hybrid_search": {"embedding_weight": 1, "text_weight": 0}},
            "hybrid": None,
        }[mode]
        timings, found = [], 0
        cpu = time.process_time()
        for n, query in enumerate(queries):
            embedding = [vectors[n]] if mode != "lexical" else None
            start = time.perf_counter()
            hits = await db.read(
                index.search,
                user_id=user,
                vector_store_ids=[STORE],
                query=query,
                query_embeddings=embedding,
                ranking_options=options,
            )
            timings.append((time.perf_counter() - start) * 1000)
            found += len(hits)
        cpu = time.process_time() - cpu
        results[mode] = {
            "p50_ms": round(percentile(timings, 0.50), 2),
            "p95_ms": round(percentile(timings, 0.95), 2),
            "cpu_ms": round(cpu * 1000 / len(queries), 2),
            "mean_results": round(found / len(queries), 1),
        }
    return results


class Pgvector:
    """A PostgreSQL with pgvector from the ``pgserver`` wheel, in a scratch directory, with
    ``shared_buffers`` of ``SHARED_BUFFERS``."""

    def __enter__(self) -> str:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pgserver
            from pgserver._commands import pg_ctl

            self.data = Path(tempfile.mkdtemp(prefix="parley-bench-pg-"))
            self.server = pgserver.get_server(self.data, cleanup_mode="stop")
            # As a server is set up: the wheel's 128 MB hold less than the vectors' index.
            self.server.psql(f"ALTER SYSTEM SET shared_buffers = '{SHARED_BUFFERS}'")
            restart = ["-w", "restart", "-m", "fast"]
            pg_ctl(restart, pgdata=self.data, user=self.server.system_user, timeout=60)
        return str(self.server.get_uri())

    def __exit__(self, *_: object) -> None:
        from pgserver._commands import pg_ctl

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # Stopped here: the wheel's cleanup knows only the server before the restart.
            stop = ["-w", "stop", "-m", "fast"]
            pg_ctl(stop, pgdata=self.data, user=self.server.system_user, timeout=60)
            self.server.cleanup()
        shutil.rmtree(self.data, ignore_errors=True)


def _vacuum(db: Database) -> None:
    """VACUUM ANALYZE, as autovacuum does soon after a load: the statistics, and the words'
    GIN index's pending entries merged into it (a search reads them all until then)."""
    import psycopg

    url = make_url(db.url).set(drivername="postgresql").render_as_string(False)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE chunks")


async def bench_one(kind: str, url: str, args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    db = Database(url)
    try:
        await db.migrate()
        start = time.perf_counter()
        user, words = await load(db, args, rng, bulk=kind != "sqlite")
        if kind != "sqlite":
            await asyncio.to_thread(_vacuum, db)
        loaded = time.perf_counter() - start
        rounds = [await measure(db, user, words, args, rng) for _ in range(args.rounds)]
    finally:
        await db.dispose()
    return {"load_s": round(loaded, 1), "modes": _medians(rounds), "rounds": rounds}


def _medians(rounds: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Per mode, the median over the rounds of each value (the round itself with one)."""
    return {
        mode: {
            key: round(statistics.median(r[mode][key] for r in rounds), 2)
            for key in rounds[0][mode]
        }
        for mode in rounds[0]
    }


def _load_average() -> str:
    """The machine's load average over the last minute, as the notes give it."""
    return f"{os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else "?"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    kinds = [k.strip() for k in args.databases.split(",") if k.strip()]
    measured: dict[str, Any] = {}
    load_before = _load_average()
    with tempfile.TemporaryDirectory(prefix="parley-bench-search-") as tmp:
        for kind in kinds:
            if kind == "sqlite":
                measured[kind] = asyncio.run(bench_one(kind, f"sqlite:///{tmp}/bench.db", args))
            elif kind == "pgvector":
                with Pgvector() as url:
                    measured[kind] = asyncio.run(bench_one(kind, url, args))
            else:
                raise SystemExit(f"unknown database {kind!r}: sqlite or pgvector")
    rows = []
    missed = []
    for kind, m in measured.items():
        for mode, r in m["modes"].items():
            ok = r["p50_ms"] <= TARGET_P50 and r["p95_ms"] <= TARGET_P95
            if not ok:
                missed.append(f"{kind} {mode}")
            rows.append(
                (
                    kind,
                    mode,
                    f"{args.chunks:,}",
                    f"{m['load_s']:.0f}",
                    f"{r['p50_ms']:.1f}",
                    f"{r['p95_ms']:.1f}",
                    f"{r['cpu_ms']:.1f}",
                    "met" if ok else "missed",
                )
            )
    command = "bench/search.py " + " ".join(sys.argv[1:] if argv is None else argv)
    rounds = f", the median of {args.rounds} rounds" if args.rounds > 1 else ""
    notes = (
        f"{args.chunks:,} chunks of ~100 tokens in one store, vectors of {args.dim} "
        f"dimensions (random), {args.queries} queries of 3 to 6 words per mode{rounds}, 10 "
        f"results; through Database.read. PostgreSQL: loaded by COPY, HNSW index made after,"
        f" VACUUM ANALYZE, shared_buffers {SHARED_BUFFERS}. Targets: p50 ≤ {TARGET_P50:.0f} ms,"
        f" p95 ≤ {TARGET_P95:.0f} ms. Load average (1 min): {load_before} before,"
        f" {_load_average()} after."
    )
    print(text_table(rows, HEADER))
    print(f"\n{notes}\n\nCommand: `{command.strip()}` ({time.strftime('%Y-%m-%d %H:%M %Z')})\n")
    print(markdown_table(rows, HEADER))
    write_json(
        args.output,
        {
            "command": command,
            "notes": notes,
            "targets_ms": {"p50": TARGET_P50, "p95": TARGET_P95},
            "results": measured,
        },
    )
    if missed:
        print(f"\nmissed the targets: {', '.join(missed)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
