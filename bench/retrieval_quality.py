"""Retrieval quality on the known-answer set (``bench/known_answers.py``): recall@1,
recall@5 and the mean reciprocal rank of the answering passage, for lexical, vector and
hybrid search, on SQLite (FTS5, sqlite-vec) and PostgreSQL with pgvector (``pgserver``).

    .venv/bin/python bench/retrieval_quality.py [--databases sqlite,pgvector]
                                                [--chunk-tokens 100] [--overlap 20]
                                                [--embedding-model PROVIDER/MODEL
                                                 --config parley.toml]

The documents are chunked as a vector store chunks them (``static``, ``--chunk-tokens`` and
``--overlap``) and embedded with the offline default, the demo's lexical hashing embedding
(``demo/embed``, 256 dimensions): the numbers say what Parley does with no embedding
model configured. ``--embedding-model`` embeds through a configured provider instead
(``openai/text-embedding-3-small`` with ``OPENAI_API_KEY`` set, ``ollama/nomic-embed-text``,
...), to see what a real embedding model adds. A hit is a result from the right file whose text holds the answer's
phrase. The questions come in two kinds: in the passage's own words, and in other words.

Prints a table, writes JSON to ``bench/results/retrieval_quality.json``.
"""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path += [str(ROOT), str(BENCH)]

import argparse  # noqa: E402
import asyncio  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

from known_answers import DOCUMENTS, QUESTIONS  # noqa: E402
from report import markdown_table, text_table, write_json  # noqa: E402
from search import Pgvector, add_files  # noqa: E402

from parley.config import Settings  # noqa: E402
from parley.providers.registry import ProviderRegistry  # noqa: E402
from parley.retrieval import chunk, index  # noqa: E402
from parley.store import users  # noqa: E402
from parley.store.db import Database, new_id  # noqa: E402

MODES = ("lexical", "vector", "hybrid")
HEADER = ("database", "mode", "questions", "recall@1", "recall@5", "MRR")
STORE = "vs_known_answers"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--databases", default="sqlite,pgvector")
    p.add_argument("--chunk-tokens", type=int, default=100)
    p.add_argument("--overlap", type=int, default=20)
    p.add_argument("--embedding-model", default="demo/embed")
    p.add_argument("--config", type=Path, help="a Parley config file naming the provider")
    p.add_argument("--output", type=Path, default=BENCH / "results" / "retrieval_quality.json")
    return p.parse_args(argv)


class Embeddings:
    """Vectors from ``model`` through the providers of ``config`` (as a vector store gets
    them), kept per text."""

    def __init__(self, model: str, config: Path | None) -> None:
        self.model = model
        self.registry = ProviderRegistry(Settings(config=config))
        self.seen: dict[str, list[float]] = {}

    async def __call__(self, texts: list[str]) -> list[list[float]]:
        missing = [t for t in dict.fromkeys(texts) if t not in self.seen]
        if missing:
            result = await self.registry.embed(self.model, missing)
            self.seen.update(zip(missing, result.vectors, strict=True))
        return [self.seen[t] for t in texts]


def _add(
    conn: Any,
    *,
    user_id: str,
    filename: str,
    pieces: list[Any],
    vectors: list[list[float]],
) -> None:
    file_id = new_id("file")
    add_files(conn, user_id, {file_id: filename})
    index.add_chunks(
        conn,
        user_id=user_id,
        vector_store_id=STORE,
        file_id=file_id,
        chunks=pieces,
        embeddings=vectors,
        attributes={},
    )


async def load(db: Database, embeddings: Embeddings, *, tokens: int, overlap: int) -> str:
    """The documents in one store of a new user; returns the user's id."""
    user = (await db.write(users.create_user, name="quality")).id
    for filename, text in DOCUMENTS.items():
        pieces = chunk(text, max_tokens=tokens, overlap=overlap)
        vectors = await embeddings([p.text for p in pieces])
        await db.write(_add, user_id=user, filename=filename, pieces=pieces, vectors=vectors)
    return user


def _rank(results: list[index.SearchResult], filename: str, phrase: str) -> int | None:
    """The rank (from 1) of the first result that answers, if any."""
    for rank, result in enumerate(results, 1):
        if result.filename == filename and phrase in result.text:
            return rank
    return None


async def measure(
    db: Database, user: str, embeddings: Embeddings
) -> dict[str, dict[str, dict[str, float]]]:
    """Per mode, per kind of question (``own words``, ``other words``, ``all``): recall@1,
    recall@5 and MRR over the top 10."""
    weights = {
        "lexical": None,
        "vector": {"hybrid_search": {"embedding_weight": 1, "text_weight": 0}},
        "hybrid": None,
    }
    out: dict[str, dict[str, dict[str, float]]] = {}
    for mode in MODES:
        ranks: dict[str, list[int | None]] = {"own words": [], "other words": [], "all": []}
        for question, filename, phrase, own in QUESTIONS:
            results = await db.read(
                index.search,
                user_id=user,
                vector_store_ids=[STORE],
                query=question,
                query_embeddings=None if mode == "lexical" else await embeddings([question]),
                ranking_options=weights[mode],
                max_num_results=10,
            )
            rank = _rank(results, filename, phrase)
            ranks["own words" if own else "other words"].append(rank)
            ranks["all"].append(rank)
        out[mode] = {kind: _scores(found) for kind, found in ranks.items()}
    return out


def _scores(ranks: list[int | None]) -> dict[str, float]:
    n = len(ranks) or 1
    return {
        "questions": len(ranks),
        "recall@1": round(sum(1 for r in ranks if r == 1) / n, 3),
        "recall@5": round(sum(1 for r in ranks if r is not None and r <= 5) / n, 3),
        "mrr": round(sum(1 / r for r in ranks if r is not None) / n, 3),
    }


async def bench_one(url: str, args: argparse.Namespace) -> dict[str, Any]:
    db = Database(url)
    embeddings = Embeddings(args.embedding_model, args.config)
    try:
        await db.migrate()
        user = await load(db, embeddings, tokens=args.chunk_tokens, overlap=args.overlap)
        return await measure(db, user, embeddings)
    finally:
        await embeddings.registry.aclose()
        await db.dispose()


def run(kinds: list[str], args: argparse.Namespace) -> dict[str, Any]:
    measured: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="parley-bench-quality-") as tmp:
        for kind in kinds:
            if kind == "sqlite":
                measured[kind] = asyncio.run(bench_one(f"sqlite:///{tmp}/quality.db", args))
            elif kind == "pgvector":
                with Pgvector() as url:
                    measured[kind] = asyncio.run(bench_one(url, args))
            else:
                raise SystemExit(f"unknown database {kind!r}: sqlite or pgvector")
    return measured


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    kinds = [k.strip() for k in args.databases.split(",") if k.strip()]
    measured = run(kinds, args)
    rows = []
    for kind, modes in measured.items():
        for mode, by_kind in modes.items():
            for questions, s in by_kind.items():
                rows.append(
                    (
                        kind,
                        f"{mode}, {questions}",
                        str(s["questions"]),
                        f"{s['recall@1']:.2f}",
                        f"{s['recall@5']:.2f}",
                        f"{s['mrr']:.2f}",
                    )
                )
    command = "bench/retrieval_quality.py " + " ".join(sys.argv[1:] if argv is None else argv)
    notes = (
        f"{len(DOCUMENTS)} documents, {len(QUESTIONS)} questions; chunks of "
        f"{args.chunk_tokens} tokens, {args.overlap} overlapping; the demo's hashing "
        "embedding (256 dimensions) for vectors."
    )
    print(text_table(rows, HEADER))
    print(f"\n{notes}\n\nCommand: `{command.strip()}` ({time.strftime('%Y-%m-%d %H:%M %Z')})\n")
    print(markdown_table(rows, HEADER))
    write_json(args.output, {"command": command, "notes": notes, "results": measured})
    return 0


if __name__ == "__main__":
    sys.exit(main())
