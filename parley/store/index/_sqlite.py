"""The index on SQLite: FTS5 for words (``chunks_fts``, kept by the triggers of migration
0015) and sqlite-vec for vectors, one ``vec0`` table per vector length, made when vectors
of that length first come, with a trigger that drops a chunk's vector with its row.

A ``vec0`` table is partitioned by store and holds each vector twice: its signs as bits,
which the nearest-neighbour scan reads (48 bytes for 384 dimensions), and the float32
vector, by which the scan's candidates are ranked again by exact cosine distance. The
scan reads every vector of the store; its cost grows with its k (``OVERSAMPLE``).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Sequence

from sqlalchemy import Connection, select, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.elements import ColumnElement

from parley.store.tables import chunks

#: How many scan candidates a vector query ranks again exactly, per candidate it wants
#: (they are twice the results asked for: four per result). sqlite-vec's scan costs about
#: in proportion to its k: it picks each block's nearest k in k passes over the block.
OVERSAMPLE = 2
#: How many of the best word matches, per result wanted, are checked against the search's
#: conditions before all of them are.
LEXICAL_SHORTLIST = 4
_MAX_K = 4096  # sqlite-vec's largest k
_NAMED = sqlite.dialect(paramstyle="named")
_WORD = re.compile(r"\w+", re.UNICODE)
#: Words left out of a query: they are in most chunks, and ORing them in costs a scan of
#: nearly every row for no help to the ranking (PostgreSQL's ``english`` drops them too).
_STOPWORDS = (
    "a about above after again against all am an and any are as at be because been before"
    " being below between both but by can could did do does doing down during each few for"
    " from further had has have having he her here hers herself him himself his how i if in"
    " into is it its itself just me more most my myself no nor not now of off on once only"
    " or other our ours ourselves out over own same she should so some such than that the"
    " their theirs them themselves then there these they this those through to too under"
    " until up very was we were what when where which while who whom why will with would"
    " you your yours yourself yourselves"
)
STOPWORDS = frozenset(_STOPWORDS.split())


def vectors_available(conn: Connection) -> bool:
    known = conn.info.get("parley_vectors")
    if known is None:
        try:
            conn.exec_driver_sql("SELECT vec_version()")
        except DBAPIError:  # no such function: sqlite-vec is not loaded
            known = False
        else:
            known = True
        conn.info["parley_vectors"] = known
    return bool(known)


def _table(dim: int) -> str:
    return f"chunks_vec_{int(dim)}"


def ensure_dimension(conn: Connection, dim: int) -> None:
    """The ``vec0`` table for vectors of ``dim`` floats, and its delete trigger."""
    table = _table(dim)
    conn.exec_driver_sql(
        f"CREATE VIRTUAL TABLE IF NOT EXISTS {table} USING vec0("
        f"vector_store_id text partition key, embedding bit[{_padded(dim)}], +exact blob)"
    )
    conn.exec_driver_sql(
        f"CREATE TRIGGER IF NOT EXISTS {table}_delete AFTER DELETE ON chunks"
        f" WHEN old.embedding_dim = {int(dim)} BEGIN"
        f" DELETE FROM {table} WHERE rowid = old.id; END"
    )


def _floats(vector: Sequence[float]) -> bytes:
    return struct.pack(f"{len(vector)}f", *vector)


def _padded(dim: int) -> int:
    return -(-dim // 8) * 8


def _bits(vector: Sequence[float]) -> bytes:
    """The vector's signs (1: above 0), eight to a byte, padded with 0s to a whole byte."""
    out = bytearray(_padded(len(vector)) // 8)
    for i, value in enumerate(vector):
        if value > 0:
            out[i >> 3] |= 1 << (i & 7)
    return bytes(out)


def store_embeddings(
    conn: Connection, ids: Sequence[int], store_id: str, embeddings: Sequence[Sequence[float]]
) -> None:
    dim = len(embeddings[0])
    ensure_dimension(conn, dim)
    conn.exec_driver_sql(
        f"INSERT INTO {_table(dim)}(rowid, vector_store_id, embedding, exact)"
        " VALUES (?, ?, vec_bit(?), ?)",
        [(i, store_id, _bits(e), _floats(e)) for i, e in zip(ids, embeddings, strict=True)],
    )


def drop_embeddings(conn: Connection, ids: Sequence[int]) -> None:
    """Remove the vectors of the chunks ``ids`` (their rows stay), from the table of
    each length they have."""
    dims = conn.execute(
        select(chunks.c.embedding_dim)
        .where(chunks.c.id.in_(ids), chunks.c.embedding_dim.is_not(None))
        .distinct()
    ).scalars()
    for dim in list(dims):
        conn.exec_driver_sql(
            f"DELETE FROM {_table(dim)} WHERE rowid IN ({','.join('?' * len(ids))})",
            tuple(ids),
        )


def match_expression(queries: Sequence[str]) -> str | None:
    """An FTS5 query: any of the queries' words (each quoted, so nothing in them is FTS5
    syntax), without stop words unless nothing else is left."""
    words = [w.lower() for q in queries for w in _WORD.findall(q)]
    kept = [w for w in words if w not in STOPWORDS] or words
    unique = list(dict.fromkeys(kept))
    if not unique:
        return None
    return " OR ".join('"' + w.replace('"', '""') + '"' for w in unique)


def lexical(
    conn: Connection, queries: Sequence[str], where: ColumnElement[bool], limit: int
) -> list[tuple[int, float]]:
    """The best ``limit`` chunks by BM25, with their BM25 (higher is better). The best
    ``LEXICAL_SHORTLIST`` times ``limit`` matches of the whole index are checked against
    ``where`` first; only when too few of them pass are all the matches checked. Either
    way the result is the same (BM25 does not depend on ``where``), the first far cheaper
    for a query with a common word: each match checked is a row looked up."""
    expression = match_expression(queries)
    if expression is None:
        return []
    found = _lexical(conn, expression, where, limit, LEXICAL_SHORTLIST * limit)
    if len(found) < limit:
        found = _lexical(conn, expression, where, limit, None)
    return found


def _lexical(
    conn: Connection,
    expression: str,
    where: ColumnElement[bool],
    limit: int,
    shortlist: int | None,
) -> list[tuple[int, float]]:
    # The matches first, then their chunks by rowid (CROSS JOIN keeps that order): else
    # SQLite may walk the user's chunks by ``ix_chunks_user_id`` and look each up in the
    # matches, or run the full-text query once for each.
    condition = where.compile(dialect=_NAMED, compile_kwargs={"render_postcompile": True})
    matches = (
        "SELECT rowid AS chunk_id, bm25(chunks_fts) AS bm25 FROM chunks_fts"
        " WHERE chunks_fts MATCH :fts_match"
    )
    if shortlist is not None:
        matches += f" ORDER BY bm25(chunks_fts) LIMIT {int(shortlist)}"
    statement = text(
        f"SELECT chunks.id, hits.bm25 FROM ({matches}) AS hits"
        f" CROSS JOIN chunks ON chunks.id = hits.chunk_id WHERE {condition}"
        " ORDER BY hits.bm25 LIMIT :fts_limit"
    ).bindparams(fts_match=expression, fts_limit=limit, **condition.params)
    return [(row[0], -float(row[1])) for row in conn.execute(statement)]


def nearest(
    conn: Connection,
    embedding: Sequence[float],
    store_ids: Sequence[str],
    where: ColumnElement[bool],
    limit: int,
) -> list[tuple[int, float]]:
    """The ``limit`` chunks nearest ``embedding`` among those ``where`` allows, with their
    cosine similarity: a scan of each store's bits for candidates, ranked again exactly,
    then checked against ``where`` (the user, the filters)."""
    dim = len(embedding)
    exists = conn.exec_driver_sql(
        "SELECT 1 FROM sqlite_master WHERE name = ?", (_table(dim),)
    ).scalar()
    if exists is None:
        return []
    query = _floats(embedding)
    k = min(_MAX_K, OVERSAMPLE * limit)
    found: list[tuple[int, float]] = []
    for store_id in store_ids:
        rows = conn.exec_driver_sql(
            f"WITH candidates AS (SELECT rowid, exact FROM {_table(dim)}"
            " WHERE embedding MATCH vec_bit(?) AND k = ? AND vector_store_id = ?)"
            " SELECT rowid, vec_distance_cosine(exact, ?) AS distance FROM candidates"
            " ORDER BY distance LIMIT ?",
            (_bits(embedding), k, store_id, query, k),
        )
        found += [(int(r[0]), 1.0 - float(r[1])) for r in rows]
    if not found:
        return []
    allowed = set(
        conn.execute(
            select(chunks.c.id).where(chunks.c.id.in_([i for i, _ in found]), where)
        ).scalars()
    )
    found = sorted((f for f in found if f[0] in allowed), key=lambda f: -f[1])
    return found[:limit]
