"""The chunk index of vector stores, and search over it.

Data functions over a SQLAlchemy ``Connection``, run on a database thread as the store's
are (``parley.store.db``)::

    await db.write(index.add_chunks, user_id=u, vector_store_id=vs, file_id=f,
                   chunks=chunk(text), embeddings=vectors, attributes={"year": 2024})
    results = await db.read(index.search, user_id=u, vector_store_ids=[vs],
                            query="how do owls hunt", query_embeddings=[vector])

Words are found by SQLite's FTS5 or PostgreSQL's full-text search, vectors by sqlite-vec
or pgvector (``_sqlite``, ``_postgres``); without the vector extension search is lexical
only. Ranking fuses the two lists by reciprocal rank with the request's weights
(``docs/retrieval.md``, "Search and ranking").
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.sql.elements import ColumnElement

from parley.errors import InvalidRequest
from parley.store.chunks import Chunk
from parley.store.db import now
from parley.store.index import _postgres, _sqlite
from parley.store.index._filters import (
    Comparison,
    Compound,
    Filter,
    compile_filter,
    parse_filter,
)
from parley.store.tables import chunks as chunk_rows
from parley.store.tables import files

__all__ = [
    "Comparison",
    "Compound",
    "Filter",
    "RankingOptions",
    "SearchResult",
    "add_chunks",
    "delete_file_chunks",
    "delete_store_chunks",
    "parse_filter",
    "parse_ranking_options",
    "replace_embeddings",
    "search",
    "set_file_attributes",
    "vectors_available",
]

log = logging.getLogger("parley.retrieval")

#: Reciprocal rank fusion's constant: a list's item at rank r (from 1) counts 1/(k + r).
RRF_K = 60
MAX_RESULTS = 50
#: How many candidates each list brings to the fusion, at the least.
MIN_CANDIDATES = 50
MIN_VECTOR_CANDIDATES = 20
Ranker = Literal["auto", "default-2024-11-15", "none"]
RANKERS: tuple[Ranker, ...] = ("auto", "default-2024-11-15", "none")
AttributeValue = str | int | float | bool


@dataclass(frozen=True, slots=True)
class RankingOptions:
    """A search's ``ranking_options``. Every ranker ranks the same way here (there is no
    re-ranking model): the names are accepted for OpenAI's clients."""

    ranker: Ranker = "auto"
    score_threshold: float = 0.0
    embedding_weight: float = 1.0
    text_weight: float = 1.0


@dataclass(frozen=True, slots=True)
class SearchResult:
    """One chunk found: its score (0 to 1, higher is better), its file, the file's
    attributes in the store, and its text with its place in the file's text."""

    score: float
    vector_store_id: str
    file_id: str
    filename: str
    attributes: dict[str, AttributeValue]
    chunk_index: int
    text: str
    start: int
    end: int


def parse_ranking_options(raw: Any, param: str = "ranking_options") -> RankingOptions:
    """``ranking_options`` from its JSON form (``hybrid_search`` holds the weights);
    ``InvalidRequest`` (400) naming the field at fault."""
    if raw is None:
        return RankingOptions()
    if not isinstance(raw, Mapping):
        raise _bad(f"'{param}' must be an object.", param)
    unknown = sorted(set(raw) - {"ranker", "score_threshold", "hybrid_search"})
    if unknown:
        raise _bad(f"Unknown field '{param}.{unknown[0]}'.", f"{param}.{unknown[0]}")
    ranker = raw.get("ranker", "auto")
    if ranker not in RANKERS:
        allowed = ", ".join(repr(r) for r in RANKERS)
        raise _bad(f"'{param}.ranker' must be one of {allowed}.", f"{param}.ranker")
    threshold = _number(raw.get("score_threshold", 0.0), f"{param}.score_threshold", 1.0)
    hybrid = raw.get("hybrid_search")
    weights = {"embedding_weight": 1.0, "text_weight": 1.0}
    if hybrid is not None:
        where = f"{param}.hybrid_search"
        if not isinstance(hybrid, Mapping):
            raise _bad(f"'{where}' must be an object.", where)
        unknown = sorted(set(hybrid) - set(weights))
        if unknown:
            raise _bad(f"Unknown field '{where}.{unknown[0]}'.", f"{where}.{unknown[0]}")
        for name in weights:
            if name in hybrid:
                weights[name] = _number(hybrid[name], f"{where}.{name}", None)
        if weights["embedding_weight"] + weights["text_weight"] <= 0:
            raise _bad(f"'{where}' needs a weight above 0.", where)
    return RankingOptions(ranker, threshold, **weights)


def _number(value: Any, param: str, most: float | None) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
        or (most is not None and value > most)
    ):
        bounds = f"between 0 and {most:g}" if most is not None else "0 or more"
        raise _bad(f"'{param}' must be a number {bounds}.", param)
    return float(value)


def _bad(message: str, param: str) -> InvalidRequest:
    return InvalidRequest(message, param=param)


def vectors_available(conn: Connection) -> bool:
    """Whether this database can store and search vectors (sqlite-vec loaded, or the
    pgvector column there)."""
    return bool(_dialect(conn).vectors_available(conn))


def _dialect(conn: Connection) -> Any:
    return _sqlite if conn.dialect.name == "sqlite" else _postgres


def add_chunks(
    conn: Connection,
    *,
    user_id: str,
    vector_store_id: str,
    file_id: str,
    chunks: Sequence[Chunk] = (),
    embeddings: Sequence[Sequence[float]] | None = None,
    attributes: Mapping[str, AttributeValue] | None = None,
) -> list[int]:
    """Index a file's chunks in a store, with their embeddings if given (one per chunk,
    all of one length); the ids of the rows made. Without the vector extension the
    embeddings are left out (logged once): search finds the chunks by their words."""
    if not chunks:
        return []
    if embeddings is not None:
        _check_embeddings(embeddings, len(chunks))
        if not vectors_available(conn):
            _warn_no_vectors()
            embeddings = None
    dim = len(embeddings[0]) if embeddings else None
    created = now()
    rows = [
        {
            "user_id": user_id,
            "vector_store_id": vector_store_id,
            "file_id": file_id,
            "seq": c.index,
            "text": c.text,
            "tokens": c.tokens,
            "char_start": c.start,
            "char_end": c.end,
            "attributes": dict(attributes or {}),
            "embedding_dim": dim,
            "created_at": created,
        }
        for c in chunks
    ]
    statement = insert(chunk_rows).returning(chunk_rows.c.id, sort_by_parameter_order=True)
    ids = [int(i) for i in conn.execute(statement, rows).scalars()]
    if embeddings:
        _dialect(conn).store_embeddings(conn, ids, vector_store_id, embeddings)
    return ids


def replace_embeddings(
    conn: Connection,
    *,
    vector_store_id: str,
    ids: Sequence[int],
    embeddings: Sequence[Sequence[float]],
) -> None:
    """Give the store's chunks ``ids`` these embeddings (one per id, all of one length) in
    place of those they have, of whatever length (re-embedding a store with another
    model). Needs the vector extension (``vectors_available``)."""
    if not ids:
        return
    _check_embeddings(embeddings, len(ids))
    dialect = _dialect(conn)
    dialect.drop_embeddings(conn, ids)
    conn.execute(
        update(chunk_rows)
        .where(chunk_rows.c.id.in_(ids), chunk_rows.c.vector_store_id == vector_store_id)
        .values(embedding_dim=len(embeddings[0]))
    )
    dialect.store_embeddings(conn, ids, vector_store_id, embeddings)


def _check_embeddings(embeddings: Sequence[Sequence[float]], count: int) -> None:
    if len(embeddings) != count:
        raise ValueError(f"{len(embeddings)} embeddings for {count} chunks")
    lengths = {len(e) for e in embeddings}
    if len(lengths) != 1 or 0 in lengths:
        raise ValueError("the embeddings must all have one length, above 0")


_warned = False


def _warn_no_vectors() -> None:
    global _warned
    if not _warned:
        _warned = True
        log.warning(
            "this database has no vector extension (sqlite-vec, pgvector): embeddings are"
            " not stored and search is lexical only"
        )


def delete_file_chunks(
    conn: Connection, *, file_id: str, vector_store_id: str | None = None
) -> int:
    """Remove a file's chunks from one store, or from every store (None); how many."""
    statement = delete(chunk_rows).where(chunk_rows.c.file_id == file_id)
    if vector_store_id is not None:
        statement = statement.where(chunk_rows.c.vector_store_id == vector_store_id)
    return conn.execute(statement).rowcount


def delete_store_chunks(conn: Connection, *, vector_store_id: str) -> int:
    """Remove every chunk of a store; how many."""
    statement = delete(chunk_rows).where(chunk_rows.c.vector_store_id == vector_store_id)
    return conn.execute(statement).rowcount


def set_file_attributes(
    conn: Connection,
    *,
    vector_store_id: str,
    file_id: str,
    attributes: Mapping[str, AttributeValue],
) -> int:
    """Give a file's chunks in a store new attributes; how many chunks."""
    statement = (
        update(chunk_rows)
        .where(chunk_rows.c.vector_store_id == vector_store_id, chunk_rows.c.file_id == file_id)
        .values(attributes=dict(attributes))
    )
    return conn.execute(statement).rowcount


def search(
    conn: Connection,
    *,
    user_id: str,
    vector_store_ids: Sequence[str],
    query: str | Sequence[str],
    query_embeddings: Sequence[Sequence[float]] | None = None,
    filters: Filter | Mapping[str, Any] | None = None,
    max_num_results: int = 10,
    ranking_options: RankingOptions | Mapping[str, Any] | None = None,
) -> list[SearchResult]:
    """The user's chunks in the named stores that best answer ``query`` (a string, or
    several), best first. ``query_embeddings`` (one vector per query, or one for all)
    adds the vector search; without it, or without the vector extension, or with an
    ``embedding_weight`` of 0, the search is lexical; with a ``text_weight`` of 0 it is by
    vectors alone."""
    queries = _queries(query)
    if (
        isinstance(max_num_results, bool)
        or not isinstance(max_num_results, int)
        or not (1 <= max_num_results <= MAX_RESULTS)
    ):
        raise _bad(
            f"'max_num_results' must be an integer from 1 to {MAX_RESULTS}.", "max_num_results"
        )
    if filters is not None and not isinstance(filters, Comparison | Compound):
        filters = parse_filter(filters)
    options = (
        ranking_options
        if isinstance(ranking_options, RankingOptions)
        else parse_ranking_options(ranking_options)
    )
    stores = list(dict.fromkeys(vector_store_ids))
    if not stores:
        return []
    where = _where(conn, user_id, stores, filters)
    dialect = _dialect(conn)
    pool = max(MIN_CANDIDATES, 2 * max_num_results)
    vector_pool = max(MIN_VECTOR_CANDIDATES, 2 * max_num_results)

    vector_lists: list[list[tuple[int, float]]] = []
    if query_embeddings and options.embedding_weight > 0:
        if vectors_available(conn):
            for embedding in query_embeddings:
                vector_lists.append(dialect.nearest(conn, embedding, stores, where, vector_pool))
        else:
            _warn_no_vectors()
    use_text = options.text_weight > 0 or not vector_lists
    text_list = dialect.lexical(conn, queries, where, pool) if use_text else []

    scored = _fuse(text_list, vector_lists, options)
    kept = [(i, s) for i, s in scored if s >= options.score_threshold][:max_num_results]
    return _results(conn, kept)


def _queries(query: str | Sequence[str]) -> list[str]:
    queries = [query] if isinstance(query, str) else list(query)
    if not queries or not all(isinstance(q, str) for q in queries):
        raise _bad("'query' must be a string or a non-empty array of strings.", "query")
    if not any(q.strip() for q in queries):
        raise _bad("'query' must not be empty.", "query")
    return queries


def _where(
    conn: Connection, user_id: str, stores: list[str], filters: Filter | None
) -> ColumnElement[bool]:
    condition = (chunk_rows.c.user_id == user_id) & chunk_rows.c.vector_store_id.in_(stores)
    if filters is not None:
        condition = condition & compile_filter(filters, chunk_rows.c.attributes, conn.dialect.name)
    return condition


def _fuse(
    text_list: list[tuple[int, float]],
    vector_lists: list[list[tuple[int, float]]],
    options: RankingOptions,
) -> list[tuple[int, float]]:
    """Each chunk's score, best first. One list: its own scores (cosine similarity, or
    the text score over the best one's). Both kinds: weighted reciprocal rank fusion, over
    the most a chunk could get (first in every list), so that 1 is the best there is."""
    if not vector_lists:
        best = max((s for _, s in text_list), default=0.0)
        return [(i, s / best if best > 0 else 0.0) for i, s in text_list]
    if not text_list and len(vector_lists) == 1:
        return [(i, min(1.0, max(0.0, s))) for i, s in vector_lists[0]]
    weighted = [(options.text_weight, text_list)] if text_list else []
    share = options.embedding_weight / len(vector_lists)
    weighted += [(share, found) for found in vector_lists]
    total: dict[int, float] = {}
    for weight, found in weighted:
        for rank, (chunk_id, _) in enumerate(found, start=1):
            total[chunk_id] = total.get(chunk_id, 0.0) + weight / (RRF_K + rank)
    most = sum(weight for weight, _ in weighted) / (RRF_K + 1)
    if most <= 0:
        return []
    return sorted(((i, min(1.0, s / most)) for i, s in total.items()), key=lambda r: -r[1])


def _results(conn: Connection, kept: list[tuple[int, float]]) -> list[SearchResult]:
    if not kept:
        return []
    statement = (
        select(
            chunk_rows.c.id,
            chunk_rows.c.vector_store_id,
            chunk_rows.c.file_id,
            files.c.filename,
            chunk_rows.c.attributes,
            chunk_rows.c.seq,
            chunk_rows.c.text,
            chunk_rows.c.char_start,
            chunk_rows.c.char_end,
        )
        .select_from(chunk_rows.join(files, files.c.id == chunk_rows.c.file_id))
        .where(chunk_rows.c.id.in_([i for i, _ in kept]))
    )
    rows = {row.id: row for row in conn.execute(statement)}
    return [
        SearchResult(
            score=score,
            vector_store_id=row.vector_store_id,
            file_id=row.file_id,
            filename=row.filename,
            attributes=dict(row.attributes or {}),
            chunk_index=row.seq,
            text=row.text,
            start=row.char_start,
            end=row.char_end,
        )
        for chunk_id, score in kept
        if (row := rows.get(chunk_id)) is not None
    ]
