"""Vector stores, their files and file batches, and the chunks that search finds."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    text,
)

from parley.store.tables._columns import Content, Json, Name, metadata

#: The chunks of the files in vector stores, the rows that search finds
#: (``parley.store.index``). The words and vectors indexes live beside this table,
#: outside this metadata (``SEARCH_INDEX_TABLES``, ``search_index_object``): on SQLite an
#: FTS5 table (migration 0015) and a sqlite-vec table per vector dimension; on PostgreSQL a
#: generated ``tsv`` column with its GIN index, and an ``embedding`` column (pgvector) with
#: an HNSW index per dimension.
chunks = Table(
    "chunks",
    metadata,
    # An integer key: SQLite's rowid, which the FTS5 and sqlite-vec rows are keyed on.
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("user_id", String(40), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("vector_store_id", String(40), nullable=False),
    Column("file_id", String(40), ForeignKey("files.id", ondelete="CASCADE"), nullable=False),
    #: The chunk's place in its file, from 0.
    Column("seq", Integer, nullable=False),
    Column("text", Content, nullable=False),
    Column("tokens", Integer, nullable=False),
    #: Where the chunk's text lies in the file's extracted text, in characters.
    Column("char_start", Integer, nullable=False),
    Column("char_end", Integer, nullable=False),
    #: The file's attributes in the store (what search filters look at), on each chunk.
    Column("attributes", Json, nullable=False),
    #: The length of the chunk's embedding; none: it has none.
    Column("embedding_dim", Integer),
    Column("created_at", Float, nullable=False),
    Index(None, "vector_store_id", "file_id", "seq"),
    Index(None, "file_id"),
    Index(None, "user_id"),
)

#: Tables and columns of the search index that this metadata leaves out (see ``chunks``).
SEARCH_INDEX_TABLES = ("chunks_fts", "chunks_vec_")
SEARCH_INDEX_COLUMNS = ("tsv", "embedding")


def search_index_object(name: str | None, type_: str, parent: str | None = None) -> bool:
    """Whether a reflected object is part of the search index (not compared to this
    metadata): Alembic's ``include_name`` says the opposite."""
    if name is None:
        return False
    if type_ == "table":
        return name.startswith(SEARCH_INDEX_TABLES)
    if type_ == "column":
        return parent == "chunks" and name in SEARCH_INDEX_COLUMNS
    if type_ == "index":
        return name.startswith(("ix_chunks_tsv", "ix_chunks_embedding"))
    return False


#: Vector stores (``/v1/vector_stores``): named sets of files whose chunks search finds
#: (``chunks.vector_store_id``). Their status, ``file_counts`` and ``usage_bytes`` are read
#: from ``vector_store_files``.
vector_stores = Table(
    "vector_stores",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("user_id", String(40), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("name", Name(256)),
    #: What the store is for, as its creator wrote it (``description``).
    Column("description", Name(512)),
    Column("metadata", Json, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("last_active_at", Float, nullable=False),
    #: Days after ``last_active_at`` the store expires (its ``expires_after``, anchor
    #: ``last_active_at``); none: kept until deleted.
    Column("expires_after_days", Integer),
    #: When it expires (``last_active_at`` plus the days), kept in step on every use.
    Column("expires_at", Float),
    #: The embedding model (``provider/model``) its chunks were embedded with; none: the
    #: store is searched by words only.
    Column("embedding_model", String(200)),
    #: The thread whose ``attachments`` made it (Assistants v2), if one did.
    Column("thread_id", String(40)),
    Index(None, "user_id", "created_at"),
    Index(
        "ix_vector_stores_expiring",
        "expires_at",
        sqlite_where=text("expires_at IS NOT NULL"),
        postgresql_where=text("expires_at IS NOT NULL"),
    ),
)

INGESTING_SQL = "status = 'in_progress'"

#: A file in a vector store, and the work of indexing it: ``in_progress`` until a worker of
#: any replica has read, chunked and embedded it (``lease_until`` says how long its claim
#: holds), then ``completed``, ``failed`` (with ``last_error``) or ``cancelled``.
vector_store_files = Table(
    "vector_store_files",
    metadata,
    Column(
        "vector_store_id",
        String(40),
        ForeignKey("vector_stores.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("file_id", String(40), ForeignKey("files.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", String(40), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("status", String(16), nullable=False),
    #: ``{"code", "message"}`` once ``failed``.
    Column("last_error", Json),
    Column("attributes", Json, nullable=False),
    #: The ``chunking_strategy`` it was attached with, as OpenAI shows it.
    Column("chunking_strategy", Json, nullable=False),
    #: The bytes its chunks (text and vectors) take in the index.
    Column("usage_bytes", BigInteger, nullable=False),
    #: The file batch that attached it, if one did.
    Column("batch_id", String(40)),
    #: The claim of the worker indexing it: who and until when (renewed while it works).
    Column("lease_owner", String(64)),
    Column("lease_until", Float),
    #: Claims made so far: a file whose worker died twice ends ``failed``.
    Column("attempts", Integer, nullable=False),
    #: The SHA-256 of the API key that attached it: its embedding tokens count there.
    Column("key_hash", String(64)),
    Index(None, "vector_store_id", "created_at"),
    Index(None, "file_id"),
    Index(None, "batch_id"),
    Index(
        "ix_vector_store_files_ingesting",
        "lease_until",
        sqlite_where=text(INGESTING_SQL),
        postgresql_where=text(INGESTING_SQL),
    ),
)

#: File batches (``/v1/vector_stores/{id}/file_batches``): their counts are read from the
#: files that name them.
vector_store_file_batches = Table(
    "vector_store_file_batches",
    metadata,
    Column("id", String(40), primary_key=True),
    Column(
        "vector_store_id",
        String(40),
        ForeignKey("vector_stores.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("user_id", String(40), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", Float, nullable=False),
    #: ``in_progress`` (its files' own statuses say more), or ``cancelled``.
    Column("status", String(16), nullable=False),
    Index(None, "vector_store_id", "created_at"),
)
