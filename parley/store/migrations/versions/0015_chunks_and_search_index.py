"""Chunks of the files in vector stores, and their words and vectors indexes

On SQLite, an FTS5 table over the chunks' text kept in step by triggers (the sqlite-vec
tables, one per vector dimension, are made when vectors of that length first come:
``parley.store.index``). On PostgreSQL, a generated ``tsv`` column with a GIN index,
and, where the ``vector`` extension (pgvector) can be created, an ``embedding`` column
(its HNSW indexes, one per dimension, are made as for SQLite). Without the extension the
migration still passes, and search is lexical only.

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

log = logging.getLogger("parley.store")

_SQLITE_FTS = [
    "CREATE VIRTUAL TABLE chunks_fts USING fts5(text, content='chunks', content_rowid='id',"
    " tokenize='porter unicode61 remove_diacritics 2')",
    "CREATE TRIGGER chunks_fts_insert AFTER INSERT ON chunks BEGIN"
    " INSERT INTO chunks_fts(rowid, text) VALUES (new.id, new.text); END",
    "CREATE TRIGGER chunks_fts_delete AFTER DELETE ON chunks BEGIN"
    " INSERT INTO chunks_fts(chunks_fts, rowid, text) VALUES ('delete', old.id, old.text); END",
    "CREATE TRIGGER chunks_fts_update AFTER UPDATE OF text ON chunks BEGIN"
    " INSERT INTO chunks_fts(chunks_fts, rowid, text) VALUES ('delete', old.id, old.text);"
    " INSERT INTO chunks_fts(rowid, text) VALUES (new.id, new.text); END",
]


def upgrade() -> None:
    op.create_table(
        "chunks",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("user_id", sa.String(40), nullable=False),
        sa.Column("vector_store_id", sa.String(40), nullable=False),
        sa.Column("file_id", sa.String(40), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("tokens", sa.Integer(), nullable=False),
        sa.Column("char_start", sa.Integer(), nullable=False),
        sa.Column("char_end", sa.Integer(), nullable=False),
        sa.Column(
            "attributes",
            sa.JSON().with_variant(postgresql.JSONB(), "postgresql"),
            nullable=False,
        ),
        sa.Column("embedding_dim", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_chunks_user_id_users", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["file_id"], ["files.id"], name="fk_chunks_file_id_files", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_chunks"),
    )
    op.create_index(
        "ix_chunks_vector_store_id_file_id_seq", "chunks", ["vector_store_id", "file_id", "seq"]
    )
    op.create_index("ix_chunks_file_id", "chunks", ["file_id"])
    op.create_index("ix_chunks_user_id", "chunks", ["user_id"])
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for statement in _SQLITE_FTS:
            op.execute(statement)
        return
    op.execute(
        "ALTER TABLE chunks ADD COLUMN tsv tsvector"
        " GENERATED ALWAYS AS (to_tsvector('english', text)) STORED"
    )
    op.execute("CREATE INDEX ix_chunks_tsv ON chunks USING gin (tsv)")
    _add_vectors(bind)


def _add_vectors(bind: sa.Connection) -> None:
    """The ``embedding`` column, where pgvector is there to create (a failed CREATE
    EXTENSION, say for want of the right, is undone alone, in its savepoint)."""
    available = bind.exec_driver_sql(
        "SELECT 1 FROM pg_available_extensions WHERE name = 'vector'"
    ).scalar()
    if not available:
        log.warning("PostgreSQL has no pgvector (extension 'vector'): search is lexical only")
        return
    savepoint = bind.begin_nested()
    try:
        bind.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS vector")
    except sa.exc.DBAPIError as exc:
        savepoint.rollback()
        log.warning("could not create pgvector (%s): search is lexical only", exc.orig)
        return
    savepoint.commit()
    bind.exec_driver_sql("ALTER TABLE chunks ADD COLUMN embedding vector")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        names = bind.exec_driver_sql(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'chunks_vec_%'"
            " AND sql LIKE 'CREATE VIRTUAL TABLE%'"
        ).scalars()
        for name in list(names):
            op.execute(f'DROP TABLE "{name}"')
        op.execute("DROP TABLE chunks_fts")
    op.drop_table("chunks")
