"""Retrieval quality on the known-answer set (``bench/known_answers.py``): recall@1,
recall@5 and the mean reciprocal rank of the answering passage, for lexical, vector and
hybrid search, on SQLite (FTS5, sqlite-vec) and PostgreSQL with pgvector (``pgserver``).
With ``--beir DIR``, on a public benchmark in BEIR's format instead: nDCG@10 and recall@10.

    .venv/bin/python bench/retrieval_quality.py [--databases sqlite,pgvector]
                                                [--chunk-tokens 100] [--overlap 20]
                                                [--embedding-model PROVIDER/MODEL
                                                 --config parley.toml]
    .venv/bin/python bench/retrieval_quality.py --beir path/to/scifact [--split test]

The documents are chunked as a vector store chunks them (``static``, ``--chunk-tokens`` and
``--overlap``) and embedded with the offline default, the demo's lexical hashing embedding
(``demo/embed``, 256 dimensions): the numbers say what Parley does with no embedding
model configured. ``--embedding-model`` embeds through a configured provider instead
(``openai/text-embedding-3-small`` with ``OPENAI_API_KEY`` set, ``ollama/nomic-embed-text``,
...), to see what a real embedding model adds. A hit is a result from the right file whose text holds the answer's
phrase. The questions come in two kinds: in the passage's own words, and in other words.

``--beir DIR`` reads a dataset in BEIR's format (``bench/beir_data.py``: corpus.jsonl,
queries.jsonl, qrels/test.tsv; SciFact, NFCorpus, FiQA, ArguAna... as BEIR publishes them).
Each document (title and text) becomes one file of a store, chunked as above (200 tokens, 40
overlapping: about 740 characters of English, which mostly fit all-MiniLM-L6-v2's window of
256 word pieces, so that a chunk's vector is one window's, as a document's is in MTEB, not an
average of windows) and embedded with ``local/all-minilm-l6-v2`` unless ``--embedding-model`` says otherwise. Each
query is searched as ``file_search`` searches (50 chunks); its ranking is the files of those
chunks, each once, in order, the query's own id left out (as BEIR and MTEB do, for ArguAna),
cut at 10. nDCG@10 and recall@10 are averaged over the split's queries, and printed next to
the model's published scores on the same dataset (``beir_data.PUBLISHED``) where there are some.

Prints a table, writes JSON to ``bench/results/retrieval_quality.json``.
"""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path += [str(ROOT), str(BENCH)]

import argparse  # noqa: E402
import array  # noqa: E402
import asyncio  # noqa: E402
import dataclasses  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from typing import Any  # noqa: E402

import beir_data  # noqa: E402
from known_answers import DOCUMENTS, QUESTIONS  # noqa: E402
from report import markdown_table, text_table, write_json  # noqa: E402
from search import Pgvector, add_files  # noqa: E402

from parley.config import Settings  # noqa: E402
from parley.providers.registry import ProviderRegistry  # noqa: E402
from parley.retrieval import Chunk, chunk  # noqa: E402
from parley.store import index, users  # noqa: E402
from parley.store.db import Database, new_id  # noqa: E402

MODES = ("lexical", "vector", "hybrid")
HEADER = ("database", "mode", "questions", "recall@1", "recall@5", "MRR")
BEIR_HEADER = ("database", "mode", "queries", "nDCG@10", "recall@10")
STORE = "vs_known_answers"
#: What each mode asks of ``index.search``: words, vectors alone, or both (the default).
RANKING: dict[str, dict[str, Any] | None] = {
    "lexical": None,
    "vector": {"hybrid_search": {"embedding_weight": 1, "text_weight": 0}},
    "hybrid": None,
}
#: The defaults of the known-answer set and of a BEIR dataset: embedding model, chunk
#: tokens and overlap.
DEFAULTS = {"known answers": ("demo/embed", 100, 20), "beir": ("local/all-minilm-l6-v2", 200, 40)}
#: Documents embedded and written together while a BEIR corpus is indexed.
DOCUMENTS_PER_WRITE = 64


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--databases", default="sqlite,pgvector")
    p.add_argument("--chunk-tokens", type=int, help="100; with --beir 200")
    p.add_argument("--overlap", type=int, help="20; with --beir 40")
    p.add_argument("--embedding-model", help="demo/embed; with --beir local/all-minilm-l6-v2")
    p.add_argument("--config", type=Path, help="a Parley config file naming the provider")
    p.add_argument("--beir", type=Path, help="a dataset folder in BEIR's format")
    p.add_argument("--split", default="test", help="the BEIR qrels split (qrels/SPLIT.tsv)")
    p.add_argument("--name", help="the BEIR dataset's name (default: its folder's)")
    p.add_argument("--output", type=Path, default=BENCH / "results" / "retrieval_quality.json")
    args = p.parse_args(argv)
    model, tokens, overlap = DEFAULTS["beir" if args.beir else "known answers"]
    args.embedding_model = args.embedding_model or model
    args.chunk_tokens = args.chunk_tokens or tokens
    args.overlap = overlap if args.overlap is None else args.overlap
    return args


class Embeddings:
    """Vectors from ``model`` through the providers of ``config`` (as a vector store gets
    them), kept per text; a corpus's in ``kept``, as 32-bit floats, which the benches of
    each database share: the model embeds a corpus once however many databases are
    measured."""

    def __init__(
        self, model: str, config: Path | None, kept: dict[str, array.array[float]] | None = None
    ) -> None:
        self.model = model
        self.registry = ProviderRegistry(Settings(config=config))
        self.seen: dict[str, list[float]] = {}
        self.kept = {} if kept is None else kept

    async def __call__(self, texts: list[str]) -> list[list[float]]:
        missing = [t for t in dict.fromkeys(texts) if t not in self.seen]
        if missing:
            result = await self.registry.embed(self.model, missing)
            self.seen.update(zip(missing, result.vectors, strict=True))
        return [self.seen[t] for t in texts]

    async def batched(self, texts: list[str], size: int = 256) -> list[list[float]]:
        """The vectors of ``texts``, those not kept yet ``size`` to a call of the model (a
        corpus's chunks at once would pass the most one request may embed). They are kept
        as 32-bit floats: a corpus's are hundreds of megabytes as Python floats."""
        missing = [t for t in dict.fromkeys(texts) if t not in self.kept]
        for start in range(0, len(missing), size):
            part = missing[start : start + size]
            result = await self.registry.embed(self.model, part)
            for text, vector in zip(part, result.vectors, strict=True):
                self.kept[text] = array.array("f", vector)
        return [self.kept[t].tolist() for t in texts]


#: A file to index: its id, its name, its chunks and their vectors.
Indexed = tuple[str, str, list[Chunk], list[list[float]]]


def _add(conn: Any, *, user_id: str, batch: list[Indexed]) -> None:
    add_files(conn, user_id, {file_id: filename for file_id, filename, _, _ in batch})
    for file_id, _, pieces, vectors in batch:
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
        batch = [(new_id("file"), filename, pieces, vectors)]
        await db.write(_add, user_id=user, batch=batch)
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
                ranking_options=RANKING[mode],
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


# ------------------------------------------------------------------- a BEIR dataset


async def load_beir(
    db: Database, embeddings: Embeddings, dataset: beir_data.Dataset, args: argparse.Namespace
) -> tuple[str, dict[str, str]]:
    """Each document of ``dataset`` as a file of one store of a new user, chunked and
    embedded; the user's id, and the document id of each file id."""
    user = (await db.write(users.create_user, name="quality")).id
    documents = list(dataset.documents.values())
    files: dict[str, str] = {}
    for start in range(0, len(documents), DOCUMENTS_PER_WRITE):
        batch: list[Indexed] = []
        for document in documents[start : start + DOCUMENTS_PER_WRITE]:
            pieces = chunk(document.content, max_tokens=args.chunk_tokens, overlap=args.overlap)
            if pieces:  # a document with no text has nothing to find
                file_id = new_id("file")
                files[file_id] = document.id
                batch.append((file_id, document.id, pieces, []))
        if batch:
            await db.write(_add, user_id=user, batch=await _embedded(batch, embeddings))
        _progress(min(start + DOCUMENTS_PER_WRITE, len(documents)), len(documents))
    return user, files


async def _embedded(batch: list[Indexed], embeddings: Embeddings) -> list[Indexed]:
    """The files of ``batch`` with their chunks' vectors, the whole batch in few calls."""
    vectors = iter(await embeddings.batched([p.text for _, _, pieces, _ in batch for p in pieces]))
    return [(f, name, pieces, [next(vectors) for _ in pieces]) for f, name, pieces, _ in batch]


def _progress(done: int, total: int) -> None:
    if done == total or done % (DOCUMENTS_PER_WRITE * 16) == 0:
        print(f"indexed {done:,} of {total:,} documents", file=sys.stderr, flush=True)


def ranking(results: list[index.SearchResult], files: dict[str, str], query_id: str) -> list[str]:
    """The documents of a search's chunks, each once, best first, without the query's own
    id (a query that is itself a document of the corpus, as ArguAna's are), cut at 10."""
    seen: dict[str, None] = {}
    for result in results:
        document = files.get(result.file_id)
        if document is not None and document != query_id:
            seen.setdefault(document)
    return list(seen)[: beir_data.CUTOFF]


async def measure_beir(
    db: Database,
    user: str,
    files: dict[str, str],
    embeddings: Embeddings,
    dataset: beir_data.Dataset,
) -> dict[str, dict[str, Any]]:
    """Per mode: nDCG@10 and recall@10 averaged over the queries, and each query's."""
    query_ids = list(dataset.queries)
    vectors = await embeddings.batched([dataset.queries[q] for q in query_ids])
    out: dict[str, dict[str, Any]] = {}
    for mode in MODES:
        per_query: dict[str, dict[str, float]] = {}
        for query_id, vector in zip(query_ids, vectors, strict=True):
            results = await db.read(
                index.search,
                user_id=user,
                vector_store_ids=[STORE],
                query=dataset.queries[query_id],
                query_embeddings=None if mode == "lexical" else [vector],
                ranking_options=RANKING[mode],
                max_num_results=index.MAX_RESULTS,
            )
            ranked = ranking(results, files, query_id)
            judged = dataset.qrels[query_id]
            per_query[query_id] = {
                "ndcg@10": round(beir_data.ndcg_at(ranked, judged), 5),
                "recall@10": round(beir_data.recall_at(ranked, judged), 5),
            }
        out[mode] = {
            "queries": len(per_query),
            "ndcg@10": _mean(per_query, "ndcg@10"),
            "recall@10": _mean(per_query, "recall@10"),
            "per_query": per_query,
        }
    return out


def _mean(per_query: dict[str, dict[str, float]], key: str) -> float:
    return round(statistics.fmean(q[key] for q in per_query.values()), 4)


async def bench_beir_one(
    url: str,
    args: argparse.Namespace,
    dataset: beir_data.Dataset,
    kept: dict[str, array.array[float]],
) -> dict[str, Any]:
    db = Database(url)
    embeddings = Embeddings(args.embedding_model, args.config, kept)
    try:
        await db.migrate()
        start = time.perf_counter()
        user, files = await load_beir(db, embeddings, dataset, args)
        indexed = time.perf_counter() - start
        modes = await measure_beir(db, user, files, embeddings, dataset)
    finally:
        await embeddings.registry.aclose()
        await db.dispose()
    return {"index_s": round(indexed, 1), "modes": modes}


# ------------------------------------------------------------------------- running


def _on_databases(kinds: list[str], bench: Any) -> dict[str, Any]:
    """``bench(url)`` on each database named (a new SQLite file, a new PostgreSQL)."""
    measured: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="parley-bench-quality-") as tmp:
        for n, kind in enumerate(kinds):
            if kind == "sqlite":
                measured[kind] = asyncio.run(bench(f"sqlite:///{tmp}/quality-{n}.db"))
            elif kind == "pgvector":
                with Pgvector() as url:
                    measured[kind] = asyncio.run(bench(url))
            else:
                raise SystemExit(f"unknown database {kind!r}: sqlite or pgvector")
    return measured


def run(kinds: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """The known-answer set on each database."""
    return _on_databases(kinds, lambda url: bench_one(url, args))


def run_beir(
    kinds: list[str], args: argparse.Namespace, dataset: beir_data.Dataset
) -> dict[str, Any]:
    """A BEIR dataset on each database, embedded once."""
    kept: dict[str, array.array[float]] = {}
    return _on_databases(kinds, lambda url: bench_beir_one(url, args, dataset, kept))


def _vectors_note(model: str) -> str:
    if model == "demo/embed":
        return "the demo's hashing embedding (demo/embed, 256 dimensions) for vectors"
    return f"vectors from {model}"


def _report(
    rows: Sequence[tuple[str, ...]], header: tuple[str, ...], notes: str, argv: list[str] | None
) -> str:
    command = "bench/retrieval_quality.py " + " ".join(sys.argv[1:] if argv is None else argv)
    print(text_table(rows, header))
    print(f"\n{notes}\n\nCommand: `{command.strip()}` ({time.strftime('%Y-%m-%d %H:%M %Z')})\n")
    print(markdown_table(rows, header))
    return command


def main_known_answers(args: argparse.Namespace, argv: list[str] | None) -> None:
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
    notes = (
        f"{len(DOCUMENTS)} documents, {len(QUESTIONS)} questions; chunks of "
        f"{args.chunk_tokens} tokens, {args.overlap} overlapping; "
        f"{_vectors_note(args.embedding_model)}."
    )
    command = _report(rows, HEADER, notes, argv)
    write_json(args.output, {"command": command, "notes": notes, "results": measured})


def main_beir(args: argparse.Namespace, argv: list[str] | None) -> None:
    try:
        dataset = beir_data.load(args.beir, args.split, args.name)
    except beir_data.DatasetError as error:
        raise SystemExit(f"--beir {args.beir}: {error}") from None
    kinds = [k.strip() for k in args.databases.split(",") if k.strip()]
    measured = run_beir(kinds, args, dataset)
    rows = [
        (kind, mode, str(s["queries"]), f"{s['ndcg@10']:.3f}", f"{s['recall@10']:.3f}")
        for kind, m in measured.items()
        for mode, s in m["modes"].items()
    ]
    reference = beir_data.published(args.embedding_model, dataset.name)
    notes = (
        f"{dataset.name} ({dataset.split}): {len(dataset.documents):,} documents, "
        f"{len(dataset.queries):,} queries judged; chunks of {args.chunk_tokens} tokens, "
        f"{args.overlap} overlapping; {_vectors_note(args.embedding_model)} (the corpus "
        "embedded once, for the first database); 10 documents from a search's 50 chunks."
    )
    if reference is not None:
        rows.append(
            (
                "published",
                f"vector, {reference.model}",
                str(len(dataset.queries)),
                f"{reference.ndcg_at_10:.3f}",
                f"{reference.recall_at_10:.3f}",
            )
        )
        notes += f" Published: {reference.source}."
    command = _report(rows, BEIR_HEADER, notes, argv)
    write_json(
        args.output,
        {
            "command": command,
            "notes": notes,
            "dataset": {"name": dataset.name, "split": dataset.split, "folder": str(args.beir)},
            "published": None if reference is None else dataclasses.asdict(reference),
            "results": measured,
        },
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.beir is not None:
        main_beir(args, argv)
    else:
        main_known_answers(args, argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
