"""The index on PostgreSQL: the generated ``tsv`` column (``english`` configuration) with
its GIN index for words, and pgvector's ``embedding`` column for vectors, with one partial
HNSW index (cosine) per vector length, made when vectors of that length first come: the
column takes vectors of any length, and an index needs one.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Text,
    bindparam,
    cast,
    func,
    literal,
    literal_column,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import TSQUERY, TSVECTOR
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import UserDefinedType

from parley.store.tables import chunks

log = logging.getLogger("parley.retrieval")

#: pgvector indexes vectors of at most this many dimensions; longer ones are searched
#: by a scan.
MAX_INDEXED = 2000


class _Vector(UserDefinedType[Any]):
    """pgvector's ``vector(n)``."""

    cache_ok = True

    def __init__(self, dim: int) -> None:
        self.dim = dim

    def get_col_spec(self, **_: Any) -> str:
        return f"vector({self.dim})"


def vectors_available(conn: Connection) -> bool:
    known = conn.info.get("parley_vectors")
    if known is None:
        found = conn.exec_driver_sql(
            "SELECT 1 FROM information_schema.columns"
            " WHERE table_name = 'chunks' AND column_name = 'embedding'"
            " AND table_schema = current_schema()"
        ).scalar()
        known = conn.info["parley_vectors"] = found is not None
    return bool(known)


def ensure_dimension(conn: Connection, dim: int) -> None:
    """The HNSW index of vectors of ``dim`` floats, made if missing. Looked up first: a
    CREATE INDEX, even one that finds the index there, waits for every transaction writing
    chunks. Two first ingestions of a length may race to make it: the loser's attempt is
    undone alone, in its savepoint."""
    name = f"ix_chunks_embedding_{int(dim)}"
    if dim > MAX_INDEXED or conn.exec_driver_sql(f"SELECT to_regclass('{name}')").scalar():
        return
    savepoint = conn.begin_nested()
    try:
        conn.exec_driver_sql(
            f"CREATE INDEX IF NOT EXISTS {name} ON chunks"
            f" USING hnsw ((embedding::vector({int(dim)})) vector_cosine_ops)"
            f" WHERE embedding_dim = {int(dim)}"
        )
    except DBAPIError:
        savepoint.rollback()
        log.info("the index %s was made meanwhile", name, exc_info=True)
    else:
        savepoint.commit()


def _vector(values: Sequence[float]) -> str:
    return "[" + ",".join(repr(float(v)) for v in values) + "]"


def store_embeddings(
    conn: Connection, ids: Sequence[int], store_id: str, embeddings: Sequence[Sequence[float]]
) -> None:
    ensure_dimension(conn, len(embeddings[0]))
    conn.execute(
        text("UPDATE chunks SET embedding = CAST(:embedding AS vector) WHERE id = :id"),
        [{"id": i, "embedding": _vector(e)} for i, e in zip(ids, embeddings, strict=True)],
    )


def drop_embeddings(conn: Connection, ids: Sequence[int]) -> None:
    """Nothing to do: ``store_embeddings`` overwrites a chunk's ``embedding`` column,
    whatever length it had."""


#: A word the statistics put in more chunks than this is common: the word search ranks
#: the chunks holding the query's other words, when they are enough, and no others.
COMMON_CHUNKS = 1000
#: How long the words' statistics are kept before they are read again, in seconds.
STATISTICS_TTL = 300.0


def lexical(
    conn: Connection, queries: Sequence[str], where: ColumnElement[bool], limit: int
) -> list[tuple[int, float]]:
    """The best ``limit`` chunks by ``ts_rank`` for any of the queries' words (their
    lexemes: stemmed, without stop words). When the table's statistics name some of the
    words common (in more than ``COMMON_CHUNKS`` chunks), only the chunks holding one of
    the rarer words are ranked (by all the words), unless they are fewer than ``limit``:
    each chunk ranked is a row read, and ``ts_rank`` does not weigh a common word down, so
    its chunks would cost the most and crowd out the rarer words' by repeating it."""
    lexemes = conn.execute(_LEXEMES, {"words": " ".join(queries)}).scalar() or []
    if not lexemes:
        return []
    anyword = _tsquery(lexemes)
    common = _common_words(conn)
    rare = [w for w in lexemes if w not in common]
    if rare and len(rare) < len(lexemes):
        found = _ranked(conn, anyword, _tsquery(rare), where, limit)
        if len(found) >= limit:
            return found
    return _ranked(conn, anyword, anyword, where, limit)


_LEXEMES = text("SELECT tsvector_to_array(to_tsvector('english', :words))")


def _tsquery(lexemes: Sequence[str]) -> str:
    """Lexemes ORed, as tsquery text (each quoted: taken as it is, not parsed again)."""
    return " | ".join("'" + w.replace("\\", "\\\\").replace("'", "''") + "'" for w in lexemes)


def _ranked(
    conn: Connection, ranked: str, matched: str, where: ColumnElement[bool], limit: int
) -> list[tuple[int, float]]:
    tsv = literal_column("chunks.tsv", TSVECTOR)
    rank = func.ts_rank(tsv, cast(literal(ranked), TSQUERY))
    statement = (
        select(chunks.c.id, rank)
        .where(tsv.op("@@")(cast(literal(matched), TSQUERY)), where)
        .order_by(rank.desc())
        .limit(limit)
    )
    return [(row[0], float(row[1])) for row in conn.execute(statement)]


_STATISTICS = text(
    "SELECT s.word, s.share * greatest(c.reltuples, 0) FROM pg_class c,"
    " pg_stats p, unnest(p.most_common_elems::text::text[], p.most_common_elem_freqs)"
    " AS s(word, share) WHERE c.oid = 'chunks'::regclass AND p.schemaname = current_schema()"
    " AND p.tablename = 'chunks' AND p.attname = 'tsv' AND s.word IS NOT NULL"
)


#: Per engine (one database): when its common words are to be read again, and them.
_common: weakref.WeakKeyDictionary[Engine, tuple[float, frozenset[str]]] = (
    weakref.WeakKeyDictionary()
)


def _common_words(conn: Connection) -> frozenset[str]:
    """The words in more than ``COMMON_CHUNKS`` chunks by the statistics ANALYZE keeps of
    ``tsv`` (its most common lexemes and their shares of the rows), shared by the engine's
    connections and read again after ``STATISTICS_TTL`` seconds; none before the first
    ANALYZE. Two threads may both read them when they are due: either answer does."""
    kept = _common.get(conn.engine)
    if kept is not None and kept[0] > time.monotonic():
        return kept[1]
    common = frozenset(w for w, rows in conn.execute(_STATISTICS) if rows > COMMON_CHUNKS)
    _common[conn.engine] = (time.monotonic() + STATISTICS_TTL, common)
    return common


def nearest(
    conn: Connection,
    embedding: Sequence[float],
    store_ids: Sequence[str],
    where: ColumnElement[bool],
    limit: int,
) -> list[tuple[int, float]]:
    """The ``limit`` chunks nearest ``embedding`` among those ``where`` allows (it names
    the stores), with their cosine similarity, by the HNSW index of their length."""
    dim = len(embedding)
    vector = _Vector(dim)
    query = cast(bindparam("query_vector", _vector(embedding), type_=Text), vector)
    distance = cast(literal_column("chunks.embedding"), vector).op("<=>")(query)
    # HNSW finds ef_search candidates, then the other conditions keep some of them.
    conn.exec_driver_sql(f"SET LOCAL hnsw.ef_search = {max(40, min(1000, 4 * limit))}")
    statement = (
        select(chunks.c.id, distance)
        .where(chunks.c.embedding_dim == dim, where)
        .order_by(distance)
        .limit(limit)
    )
    del store_ids  # in ``where``
    return [(row[0], 1.0 - float(row[1])) for row in conn.execute(statement)]
