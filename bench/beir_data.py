"""A retrieval benchmark in BEIR's format (Thakur et al., 2021), and its two scores, nDCG@10
and recall@10: what ``bench/retrieval_quality.py --beir DIR`` reads and reports.

A dataset is a folder of three parts, as BEIR's own datasets (SciFact, NFCorpus, FiQA,
ArguAna...) are published::

    corpus.jsonl        one document a line: {"_id": ..., "title": ..., "text": ...}
    queries.jsonl       one query a line:    {"_id": ..., "text": ...}
    qrels/<split>.tsv   a header line, then  query-id <TAB> corpus-id <TAB> score

The queries scored are those the split judges (a line of its qrels names them); a judgement
of 0 says "not relevant", as in the datasets. Scores are computed as ``trec_eval`` computes
them (and so BEIR and MTEB, through ``pytrec_eval``): the gain of a document is its
judgement, discounted by log2(rank + 1); a query with nothing relevant scores 0.

Anything malformed (a missing part, a line that is not JSON, an id given twice, a judgement
of a query or document the dataset lacks) is a ``DatasetError`` naming the file and line.

No package of the registries this project can reach ships one of BEIR's datasets
(``bench/README.md``, "Retrieval quality on public data"): bring one as BEIR publishes it.
``tests/retrieval/beir_format_sample`` is a format sample for the tests, not a benchmark.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: How far down a ranking the scores look.
CUTOFF = 10


class DatasetError(ValueError):
    """A dataset folder that is not in BEIR's format; the message names where."""


@dataclass(frozen=True, slots=True)
class Document:
    id: str
    title: str
    text: str

    @property
    def content(self) -> str:
        """The text a search indexes: the title, then the body (BEIR's models embed both)."""
        return f"{self.title}\n\n{self.text}" if self.title.strip() else self.text


@dataclass(frozen=True, slots=True)
class Dataset:
    """One split of a dataset: its documents, the queries it judges and their judgements
    (``qrels[query id][document id]``, 0 for not relevant)."""

    name: str
    split: str
    documents: dict[str, Document]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]


@dataclass(frozen=True, slots=True)
class Published:
    """A model's published scores on a dataset's test split, and where they come from."""

    model: str
    ndcg_at_10: float
    recall_at_10: float
    source: str


_MTEB = (
    "MTEB (Muennighoff et al., 2022), the paper's results for all-MiniLM-L6-v2: "
    "embeddings-benchmark/mtebpaper on GitHub, results/all-MiniLM-L6-v2/{task}.json "
    "(mteb 0.0.2; whole documents, title and text, exact cosine search)"
)

#: all-MiniLM-L6-v2's published scores on BEIR datasets' test splits, by the dataset's
#: BEIR name (its folder's name).
PUBLISHED: dict[str, Published] = {
    "scifact": Published("all-MiniLM-L6-v2", 0.64508, 0.78333, _MTEB.format(task="SciFact")),
    "nfcorpus": Published("all-MiniLM-L6-v2", 0.31594, 0.15499, _MTEB.format(task="NFCorpus")),
    "fiqa": Published("all-MiniLM-L6-v2", 0.36867, 0.44131, _MTEB.format(task="FiQA2018")),
    "arguana": Published("all-MiniLM-L6-v2", 0.50167, 0.7909, _MTEB.format(task="ArguAna")),
}
#: The model ids (after ``provider/``) that are all-MiniLM-L6-v2.
MINILM_IDS = frozenset({"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"})


def published(embedding_model: str, dataset: str) -> Published | None:
    """The published scores of ``embedding_model`` (``provider/model-id``) on ``dataset``
    (its BEIR name), if there are some to compare with."""
    if embedding_model.split("/", 1)[-1].lower() not in MINILM_IDS:
        return None
    return PUBLISHED.get(dataset.lower())


# ---------------------------------------------------------------------------- loading


def load(folder: Path, split: str = "test", name: str | None = None) -> Dataset:
    """The ``split`` of the dataset in ``folder``; ``DatasetError`` if it is not BEIR's
    format. ``name`` defaults to the folder's name (BEIR's: ``scifact``, ``nfcorpus``...)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: no such folder (a BEIR dataset is a folder)")
    documents = _documents(folder / "corpus.jsonl")
    queries = _queries(folder / "queries.jsonl")
    qrels = _qrels(folder / "qrels" / f"{split}.tsv")
    for query_id, judged in qrels.items():
        if query_id not in queries:
            raise DatasetError(f"qrels/{split}.tsv judges query {query_id!r}, not in queries")
        missing = next((d for d in judged if d not in documents), None)
        if missing is not None:
            raise DatasetError(f"qrels/{split}.tsv judges document {missing!r}, not in corpus")
    return Dataset(
        name=name or folder.resolve().name,
        split=split,
        documents=documents,
        queries={q: queries[q] for q in qrels},
        qrels=qrels,
    )


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    if not path.is_file():
        raise DatasetError(f"{path}: missing (a BEIR dataset has {path.name} there)")
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if line.strip():
                yield number, line


def _records(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """Each line's object, with where it is (``file:line``) and its ``_id``."""
    for number, line in _lines(path):
        where = f"{path.name}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise DatasetError(f"{where}: not JSON ({error.msg})") from None
        if not isinstance(record, dict):
            raise DatasetError(f"{where}: not a JSON object")
        if not isinstance(record.get("_id"), str | int) or record["_id"] == "":
            raise DatasetError(f"{where}: no '_id'")
        for field in ("title", "text"):
            if not isinstance(record.get(field, ""), str):
                raise DatasetError(f"{where}: '{field}' is not a string")
        yield where, record


def _documents(path: Path) -> dict[str, Document]:
    documents: dict[str, Document] = {}
    for where, record in _records(path):
        document_id = str(record["_id"])
        if document_id in documents:
            raise DatasetError(f"{where}: document {document_id!r} is given twice")
        documents[document_id] = Document(
            document_id, record.get("title", ""), record.get("text", "")
        )
    return documents


def _queries(path: Path) -> dict[str, str]:
    queries: dict[str, str] = {}
    for where, record in _records(path):
        query_id, text = str(record["_id"]), record.get("text", "")
        if query_id in queries:
            raise DatasetError(f"{where}: query {query_id!r} is given twice")
        if not text.strip():
            raise DatasetError(f"{where}: query {query_id!r} has no text")
        queries[query_id] = text
    return queries


def _qrels(path: Path) -> dict[str, dict[str, int]]:
    """``qrels[query id][document id]``; the header line (its score not a number) skipped."""
    qrels: dict[str, dict[str, int]] = {}
    for n, (number, line) in enumerate(_lines(path)):
        where = f"qrels/{path.name}:{number}"
        fields = line.rstrip("\r\n").split("\t")
        if len(fields) != 3:
            raise DatasetError(f"{where}: {len(fields)} tab-separated fields, not 3")
        query_id, document_id, score = (f.strip() for f in fields)
        try:
            relevance = int(score)
        except ValueError:
            if n == 0:
                continue  # the header: query-id, corpus-id, score
            raise DatasetError(f"{where}: the score {score!r} is not an integer") from None
        judged = qrels.setdefault(query_id, {})
        if document_id in judged:
            raise DatasetError(f"{where}: {query_id!r} judges {document_id!r} twice")
        judged[document_id] = relevance
    if not qrels:
        raise DatasetError(f"qrels/{path.name}: no judgements")
    return qrels


# ---------------------------------------------------------------------------- scoring


def ndcg_at(ranked: Sequence[str], judged: Mapping[str, int], k: int = CUTOFF) -> float:
    """nDCG@k of one ranking (document ids, best first, each once): the gain of a document
    is its judgement, discounted by log2(rank + 1), over the best ranking there could be."""
    found = sum(_gain(judged.get(d, 0), rank) for rank, d in enumerate(ranked[:k], 1))
    best = sorted((g for g in judged.values() if g > 0), reverse=True)[:k]
    ideal = sum(_gain(g, rank) for rank, g in enumerate(best, 1))
    return found / ideal if ideal > 0 else 0.0


def _gain(relevance: int, rank: int) -> float:
    return relevance / math.log2(rank + 1) if relevance > 0 else 0.0


def recall_at(ranked: Sequence[str], judged: Mapping[str, int], k: int = CUTOFF) -> float:
    """The share of the relevant documents (judgement above 0) in the first k."""
    relevant = {d for d, g in judged.items() if g > 0}
    if not relevant:
        return 0.0
    return len(relevant.intersection(ranked[:k])) / len(relevant)
