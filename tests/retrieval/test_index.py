"""The chunk index (``parley.store.index``): what adding and deleting leave in the
words and vectors indexes, on every database, and search without a vector extension."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from sqlalchemy import Connection, delete, text

from parley.retrieval import Chunk, chunk
from parley.store import index
from parley.store.db import Database
from parley.store.tables import files
from tests.retrieval.conftest import make_file, make_user
from tests.retrieval.test_search import DOCUMENTS, embed, find, load


def _words(conn: Connection, word: str) -> int:
    """How many chunks the words index finds for ``word``, whatever their owner."""
    if conn.dialect.name == "sqlite":
        sql = "SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH :w"
    else:
        sql = "SELECT count(*) FROM chunks WHERE tsv @@ plainto_tsquery('english', :w)"
    return int(conn.execute(text(sql), {"w": word}).scalar_one())


def _vectors(conn: Connection) -> int:
    if conn.dialect.name == "sqlite":
        tables = conn.exec_driver_sql(
            "SELECT name FROM sqlite_master WHERE name LIKE 'chunks_vec_%'"
            " AND sql LIKE 'CREATE VIRTUAL TABLE%'"
        ).scalars()
        return sum(
            int(conn.exec_driver_sql(f"SELECT count(*) FROM {t}").scalar_one()) for t in tables
        )
    sql = "SELECT count(*) FROM chunks WHERE embedding IS NOT NULL"
    return int(conn.exec_driver_sql(sql).scalar_one())


def _fts_intact(conn: Connection) -> None:
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("INSERT INTO chunks_fts(chunks_fts) VALUES ('integrity-check')")


async def test_deleting_a_files_chunks_empties_both_indexes(vector_db: Database) -> None:
    corpus = await load(vector_db)
    assert await vector_db.read(_words, "castling") == 1
    assert await vector_db.read(_vectors) == len(DOCUMENTS)
    chess = corpus.file_ids["chess.txt"]
    removed = await vector_db.write(index.delete_file_chunks, file_id=chess)
    assert removed == 1
    assert await vector_db.read(_words, "castling") == 0
    assert await vector_db.read(_vectors) == len(DOCUMENTS) - 1
    await vector_db.write(_fts_intact)
    results = await find(
        vector_db, corpus, "castling king rook", query_embeddings=[embed(DOCUMENTS["chess.txt"])]
    )
    assert chess not in {r.file_id for r in results}


async def test_deleting_the_file_row_cascades_to_both_indexes(vector_db: Database) -> None:
    corpus = await load(vector_db)
    owls = corpus.file_ids["owls.txt"]
    await vector_db.write(lambda c: c.execute(delete(files).where(files.c.id == owls)))
    assert await vector_db.read(_words, "owls") == 0
    assert await vector_db.read(_vectors) == len(DOCUMENTS) - 1
    await vector_db.write(_fts_intact)


async def test_deleting_from_one_store_keeps_the_others(index_db: Database) -> None:
    first = await load(index_db, store_id="vs_one", embeddings=False)
    user = first.user_id
    chess = first.file_ids["chess.txt"]
    pieces = chunk(DOCUMENTS["chess.txt"], max_tokens=100, overlap=0)
    await index_db.write(
        index.add_chunks, user_id=user, vector_store_id="vs_two", file_id=chess, chunks=pieces
    )
    assert await index_db.read(_words, "castling") == 2
    removed = await index_db.write(
        index.delete_file_chunks, file_id=chess, vector_store_id="vs_one"
    )
    assert removed == 1
    assert await index_db.read(_words, "castling") == 1
    two = await index_db.read(
        index.search, user_id=user, vector_store_ids=["vs_one", "vs_two"], query="castling"
    )
    assert [(r.vector_store_id, r.file_id) for r in two] == [("vs_two", chess)]
    assert await index_db.write(index.delete_store_chunks, vector_store_id="vs_one") == (
        len(DOCUMENTS) - 1
    )
    assert await index_db.read(_words, "volcanoes") == 0
    assert await index_db.read(_words, "castling") == 1
    await index_db.write(_fts_intact)


async def test_a_file_in_many_chunks_keeps_their_order_and_offsets(index_db: Database) -> None:
    user = await make_user(index_db)
    file_id = await make_file(index_db, user, "long.txt")
    body = " ".join(f"Sentence {i} talks about topic{i} at length." for i in range(120))
    pieces = chunk(body, max_tokens=100, overlap=20)
    assert len(pieces) > 3
    ids = await index_db.write(
        index.add_chunks, user_id=user, vector_store_id="vs_l", file_id=file_id, chunks=pieces
    )
    assert len(ids) == len(pieces) == len(set(ids))
    [hit] = await index_db.read(
        index.search, user_id=user, vector_store_ids=["vs_l"], query="topic97", max_num_results=1
    )
    assert "topic97" in hit.text
    assert body[hit.start : hit.end] == hit.text
    assert pieces[hit.chunk_index].text == hit.text


async def test_embeddings_must_match_the_chunks(vector_db: Database) -> None:
    user = await make_user(vector_db)
    file_id = await make_file(vector_db, user, "a.txt")
    pieces = chunk("One short text.", max_tokens=100, overlap=0)
    common: dict[str, Any] = {"user_id": user, "vector_store_id": "vs", "file_id": file_id}
    with pytest.raises(ValueError, match="embeddings for"):
        await vector_db.write(index.add_chunks, **common, chunks=pieces, embeddings=[])
    with pytest.raises(ValueError, match="one length"):
        await vector_db.write(index.add_chunks, **common, chunks=pieces, embeddings=[[]])
    assert await vector_db.write(index.add_chunks, **common, chunks=[]) == []


async def test_vectors_of_two_lengths_are_searched_apart(vector_db: Database) -> None:
    corpus = await load(vector_db, documents={"tea.txt": DOCUMENTS["tea.txt"]})
    file_id = await make_file(vector_db, corpus.user_id, "short.txt")
    pieces = chunk("A tiny vector world.", max_tokens=100, overlap=0)
    await vector_db.write(
        index.add_chunks,
        user_id=corpus.user_id,
        vector_store_id=corpus.store_id,
        file_id=file_id,
        chunks=pieces,
        embeddings=[[1.0, 0.0, 0.0, 0.0]],
    )
    short = await find(
        vector_db,
        corpus,
        "zzyzx",
        query_embeddings=[[0.9, 0.1, 0.0, 0.0]],
        ranking_options={"hybrid_search": {"embedding_weight": 1, "text_weight": 0}},
    )
    assert [r.filename for r in short] == ["short.txt"]
    long = await find(vector_db, corpus, "zzyzx", query_embeddings=[embed("green tea")])
    assert [r.filename for r in long] == ["tea.txt"]


async def test_pgvector_search_uses_the_hnsw_index(
    pgvector_server: str, tmp_path: Any, request: pytest.FixtureRequest
) -> None:
    from tests.retrieval.conftest import open_database

    db, scratch = await open_database("pgvector", tmp_path, request)
    try:
        await load(db)
        indexes = await db.read(
            lambda c: set(
                c.exec_driver_sql(
                    "SELECT indexname FROM pg_indexes WHERE tablename = 'chunks'"
                ).scalars()
            )
        )
        assert {"ix_chunks_tsv", "ix_chunks_embedding_384"} <= indexes
        vector = "[" + ",".join(str(v) for v in embed("owls")) + "]"

        def plan(conn: Connection) -> str:
            conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
            rows = conn.execute(
                text(
                    "EXPLAIN SELECT id FROM chunks WHERE embedding_dim = 384"
                    " ORDER BY (embedding::vector(384)) <=> CAST(:q AS vector(384)) LIMIT 5"
                ),
                {"q": vector},
            )
            return "\n".join(str(r[0]) for r in rows)

        assert "ix_chunks_embedding_384" in await db.read(plan)
    finally:
        await db.dispose()
        scratch.drop()


async def test_without_pgvector_search_is_lexical(
    tmp_path: Any, request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> None:
    """The plain PostgreSQL has no pgvector: the migration passed, embeddings are left out
    with a warning, and a search with a query embedding answers by words."""
    from tests.retrieval.conftest import open_database

    db, scratch = await open_database("postgres", tmp_path, request)
    try:
        assert await db.read(index.vectors_available) is False
        index_module: Any = index
        index_module._warned = False
        with caplog.at_level(logging.WARNING, logger="parley.retrieval"):
            corpus = await load(db)
        assert "search is lexical only" in caplog.text
        question = "What causes spring tides?"
        results = await find(db, corpus, question, query_embeddings=[embed(question)])
        assert results[0].filename == "tides.txt"
        assert results[0].score == 1.0
    finally:
        await db.dispose()
        scratch.drop()


def _lines(text: str, count: int) -> list[Chunk]:
    return [Chunk(i, text, i * 100, i * 100 + len(text), 4) for i in range(count)]


async def test_a_users_word_matches_are_found_behind_anothers_better_ones(
    index_db: Database,
) -> None:
    """The word search checks the best matches of the whole index first: when another
    user's chunks fill them (in a store of the same id), it looks at every match."""
    other = await make_user(index_db, "other")
    crowd = await make_file(index_db, other, "crowd.txt")
    await index_db.write(
        index.add_chunks,
        user_id=other,
        vector_store_id="vs_docs",
        file_id=crowd,
        chunks=_lines("owls owls owls", 5 * index._sqlite.LEXICAL_SHORTLIST * 50),
    )
    corpus = await load(index_db, embeddings=False)
    results = await find(index_db, corpus, "owls")
    assert [r.filename for r in results] == ["owls.txt"]


@pytest.mark.parametrize("kind", ["pgvector", "postgres"])
async def test_postgres_ranks_the_rarer_words_chunks_when_a_word_is_common(
    kind: str, tmp_path: Any, request: pytest.FixtureRequest
) -> None:
    """A word the statistics put in more than ``COMMON_CHUNKS`` chunks: the chunks holding
    the query's rarer words are ranked, when there are enough of them; else all."""
    from tests.retrieval.conftest import open_database

    db, scratch = await open_database(kind, tmp_path, request)
    try:
        user = await make_user(db)
        file_id = await make_file(db, user, "sea.txt")
        common = index._postgres.COMMON_CHUNKS + 50
        pieces = [
            *_lines("tide tide tide tide", common),
            *[Chunk(common + i, "a moon", 0, 6, 2) for i in range(60)],
            *[Chunk(common + 60 + i, "one zebra", 0, 9, 2) for i in range(3)],
        ]
        await db.write(
            index.add_chunks, user_id=user, vector_store_id="vs_sea", file_id=file_id, chunks=pieces
        )
        await db.write(lambda c: c.exec_driver_sql("ANALYZE chunks"))

        async def texts(query: str) -> set[str]:
            found = await db.read(
                index.search, user_id=user, vector_store_ids=["vs_sea"], query=query
            )
            assert len(found) == 10
            return {r.text for r in found}

        # By ts_rank alone, four tides would beat one moon (it has no word frequencies).
        assert await texts("tide moon") == {"a moon"}
        assert "tide tide tide tide" in await texts("tide zebra")
    finally:
        await db.dispose()
        scratch.drop()
