"""Files and their bytes, uploads in parts, containers and their files."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    UniqueConstraint,
    text,
)

from parley.store.tables._columns import Name, metadata

EXPIRING_FILE_SQL = "expires_at IS NOT NULL"
#: A key's first piece of bytes (``file_data``); written as is in the reads that use its
#: index, as a database plans a partial index only for the condition it can see.
FIRST_PIECE_SQL = "seq = 0"
PENDING_UPLOAD_SQL = "status = 'pending'"

#: Uploaded files (``/v1/files``): their names and sizes; their bytes live where
#: ``storage`` says, under ``storage_key`` (``parley.files.storage``).
files = Table(
    "files",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("user_id", String(40), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    #: The name the client gave, without its directory parts (never used as a path).
    Column("filename", Name(255), nullable=False),
    Column("purpose", String(32), nullable=False),
    Column("bytes", BigInteger, nullable=False),
    Column("created_at", Float, nullable=False),
    #: When the file is deleted by itself (its ``expires_after``); none: kept until deleted.
    Column("expires_at", Float),
    #: The SHA-256 of its bytes, in hex.
    Column("sha256", String(64), nullable=False),
    #: The media type the client gave with it, if any.
    Column("mime_type", Name(255)),
    #: ``local`` (a file in a directory) or ``database`` (rows of ``file_data``).
    Column("storage", String(16), nullable=False),
    Column("storage_key", String(64), nullable=False),
    Index(None, "user_id", "created_at"),
    Index(None, "user_id", "purpose", "created_at"),
    # The sweep of bytes no row names looks keys up.
    Index(None, "storage_key"),
    # The expiry sweep looks only at the files that expire.
    Index(
        "ix_files_expiring",
        "expires_at",
        sqlite_where=text(EXPIRING_FILE_SQL),
        postgresql_where=text(EXPIRING_FILE_SQL),
    ),
)

#: Bytes kept in the database (``storage`` ``database``), in pieces of at most 1 MiB so
#: that no one value is huge: the bytes under a key are its rows in ``seq`` order.
file_data = Table(
    "file_data",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("data", LargeBinary, nullable=False),
    #: When the piece was written: pieces no file or part names are swept once old.
    Column("created_at", Float, nullable=False),
    # The sweep of unnamed bytes looks at each key's first piece by age, not at every piece
    # (whose blob SQLite would walk to reach ``created_at``).
    Index(
        "ix_file_data_first_pieces",
        "created_at",
        sqlite_where=text(FIRST_PIECE_SQL),
        postgresql_where=text(FIRST_PIECE_SQL),
    ),
)

#: Uploads in parts (``/v1/uploads``): a file declared by name and size, whose parts come
#: one request each; completing it makes the file.
uploads = Table(
    "uploads",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("user_id", String(40), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("filename", Name(255), nullable=False),
    Column("purpose", String(32), nullable=False),
    #: The size declared when it was created; the parts must add up to it.
    Column("bytes", BigInteger, nullable=False),
    Column("mime_type", Name(255), nullable=False),
    #: ``pending``, ``completed``, ``cancelled`` or ``expired``.
    Column("status", String(16), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    #: Seconds after its creation the completed file expires (its ``expires_after``).
    Column("file_expires_after", Integer),
    #: The file its completion made.
    Column("file_id", String(40), ForeignKey("files.id", ondelete="SET NULL")),
    Index(None, "user_id", "created_at"),
    # The expiry sweep looks only at pending uploads.
    Index(
        "ix_uploads_pending_expires_at",
        "expires_at",
        sqlite_where=text(PENDING_UPLOAD_SQL),
        postgresql_where=text(PENDING_UPLOAD_SQL),
    ),
)

upload_parts = Table(
    "upload_parts",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("upload_id", String(40), ForeignKey("uploads.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("bytes", BigInteger, nullable=False),
    Column("storage", String(16), nullable=False),
    Column("storage_key", String(64), nullable=False),
    Index(None, "upload_id"),
    Index(None, "storage_key"),
)


#: Containers (``/v1/containers``): where the ``code_interpreter`` tool runs a user's Python
#: (``parley.sandbox``), with the files it sees under ``/mnt/data``. A container expires
#: ``expires_after_minutes`` after its ``last_active_at`` (its files' rows and bytes go; the
#: row stays, ``expired``); a deleted one is removed.
containers = Table(
    "containers",
    metadata,
    #: ``cntr_`` and 48 hex digits, as OpenAI's.
    Column("id", String(64), primary_key=True),
    Column("user_id", String(40), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("name", Name(256), nullable=False),
    #: ``running`` or ``expired``.
    Column("status", String(16), nullable=False),
    #: ``1g``, ``4g``, ``16g`` or ``64g``.
    Column("memory_limit", String(8), nullable=False),
    #: Minutes after ``last_active_at`` it expires (OpenAI's ``expires_after``).
    Column("expires_after_minutes", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("last_active_at", Float, nullable=False),
    #: ``api`` (made through ``/v1/containers``) or ``auto`` (made by a ``code_interpreter``
    #: tool whose ``container`` is ``{"type": "auto"}``).
    Column("origin", String(8), nullable=False),
    #: The thread an ``auto`` container serves.
    Column("thread_id", String(40)),
    #: The server node that runs its Python now, if one does.
    Column("home", String(200)),
    #: The SHA-256 of the API key that made it, whose usage counts it.
    Column("key_hash", String(64)),
    Index(None, "user_id", "created_at"),
    # The expiry sweep reads the running containers by their last use.
    Index(None, "status", "last_active_at"),
    Index(None, "thread_id"),
)

#: The files of a container, at their paths under ``/mnt/data`` (one per path); their bytes
#: are where ``storage`` says, under ``storage_key`` (``parley.files.storage``).
container_files = Table(
    "container_files",
    metadata,
    #: ``cfile_`` and 48 hex digits.
    Column("id", String(64), primary_key=True),
    Column(
        "container_id",
        String(64),
        ForeignKey("containers.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("user_id", String(40), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    #: Absolute: ``/mnt/data/...``.
    Column("path", Name(1024), nullable=False),
    #: ``user`` (uploaded or copied from a file) or ``assistant`` (written by the model's code).
    Column("source", String(16), nullable=False),
    Column("bytes", BigInteger, nullable=False),
    Column("storage", String(16), nullable=False),
    Column("storage_key", String(64), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    UniqueConstraint("container_id", "path"),
    Index(None, "container_id", "created_at"),
    # The sweep of bytes no row names looks keys up.
    Index(None, "storage_key"),
)
