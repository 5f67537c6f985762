"""The database schema, as SQLAlchemy Core tables. Migrations create exactly this.

Every column that holds content (text, names and JSON from a model, a tool or a client)
stores U+0000 as U+FFFD, on every database: PostgreSQL can hold NUL in neither text nor
JSONB, and such a string must be stored the same way wherever it lands. Ids, statuses and
the event log's JSON text (whose NULs are escapes) are plain columns: they are bound on the
hot path, and a NUL in an id never gets this far (``server.limits``).
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator, TypeEngine

NUL, REPLACEMENT = "\x00", "\ufffd"


def without_nul(value: Any) -> Any:
    """``value`` (a string, or JSON data) with U+0000 in its strings replaced by U+FFFD."""
    if isinstance(value, str):
        return value.replace(NUL, REPLACEMENT) if NUL in value else value
    if isinstance(value, dict):
        return {without_nul(k): without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_nul(v) for v in value]
    return value


class Name(TypeDecorator[str]):
    """``VARCHAR(n)`` of content: U+0000 is stored as U+FFFD."""

    impl = String
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return value.replace(NUL, REPLACEMENT) if value and NUL in value else value


class Content(Name):
    """``TEXT`` of content: U+0000 is stored as U+FFFD."""

    impl = Text
    cache_ok = True  # not inherited: without it, no statement with such a column is cached


_ESCAPED_NUL = b"\\u0000"


def json_text(value: Any) -> str:
    """The JSON text a JSON column stores (the engines' ``json_serializer``): orjson's,
    with U+0000 in strings as U+FFFD. A NUL in a string is always escaped in the text, so
    only a value whose text holds that escape is walked; a value orjson cannot write
    (an integer past 64 bits) falls back to the standard library's."""
    if value is None:  # most of a new message's JSON columns
        return "null"
    try:
        text = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:
        return json.dumps(without_nul(value), ensure_ascii=False)
    if _ESCAPED_NUL in text:
        text = orjson.dumps(without_nul(value), option=orjson.OPT_NON_STR_KEYS)
    return text.decode()


def json_value(text: str | bytes) -> Any:
    """A JSON column's value from its text (the engines' ``json_deserializer``); text
    orjson refuses (a NaN or a huge integer stored by an older version) is read by the
    standard library."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


class _Json(TypeDecorator[Any]):
    """JSON (JSONB on PostgreSQL) whose strings store U+0000 as U+FFFD: the engines write
    it with ``json_text``."""

    impl = JSON
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        return dialect.type_descriptor(JSONB() if dialect.name == "postgresql" else JSON())


metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

Json = _Json()

#: The longest tool name and tool-call id stored.
TOOL_FIELD_LENGTH = 128
#: The longest hosted item id a message is found by (``messages.item_id``): the server's
#: own are 29 characters, OpenAI's about 55; a longer one a client gives back is kept in
#: the item, not found by it.
ITEM_ID_LENGTH = 128

#: How full PostgreSQL packs the pages of the tables a running turn updates at every
#: heartbeat or checkpoint (``runs``: its lease; ``messages``: the text so far). The room
#: left lets an update put the row's new version on its own page, with no new index
#: entries (a heap-only tuple); at 100, most updates move the row and write an entry in
#: every index of the table.
UPDATED_FILLFACTOR = 70
ACTIVE_RUN_SQL = "status IN ('queued', 'in_progress', 'action_required')"
UNPRUNED_RUN_SQL = "completed_at IS NOT NULL AND events_pruned_at IS NULL"
SCRATCH_THREAD_SQL = "scratch_until IS NOT NULL"

users = Table(
    "users",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", Name(200), nullable=False),
    Column("is_admin", Boolean, nullable=False, default=False),
    Column("created_at", Float, nullable=False),
    #: When an admin disabled the user: none of its keys authenticates until enabled again.
    Column("disabled_at", Float),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("user_id", String(40), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("prefix", String(20), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("last_used_at", Float),
    Column("revoked_at", Float),
    #: When the key stops authenticating by itself (none: never).
    Column("expires_at", Float),
    #: Input plus output tokens the key may use per UTC day, every face and replica
    #: together (``server.usage``); none: no budget.
    Column("daily_token_budget", BigInteger),
    Index(None, "user_id"),
)

assistants = Table(
    "assistants",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("user_id", String(40), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    #: Empty for an assistant given no name.
    Column("name", Name(256), nullable=False),
    Column("model", Name(256), nullable=False),
    Column("instructions", Content),
    Column("tools", Json, nullable=False),
    Column("parameters", Json, nullable=False),
    Column("metadata", Json, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("description", Content),
    #: ``ModelOptions`` of its runs' model calls (``response_format``, ``reasoning_effort``).
    Column("options", Json),
    Index(None, "user_id", "created_at"),
)

threads = Table(
    "threads",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("user_id", String(40), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("metadata", Json, nullable=False),
    Column("message_count", Integer, nullable=False, default=0),
    Column("created_at", Float, nullable=False),
    #: Bumped by every change to a message already stored (an edit, a deletion), so that
    #: a history kept from its messages (``engine.history``) is known to be out of date.
    Column("context_version", Integer, nullable=False, server_default="0"),
    #: Set on the scratch thread of a ``store: false`` response: hidden from every read,
    #: and deleted once it is held no more (the time its holder, a connection or request
    #: of a live server, last renewed it for; 0 when let go) and no run of it is in
    #: progress. NULL: a thread like any other.
    Column("scratch_until", Float),
    #: The files the thread gives the code interpreter: its
    #: ``tool_resources.code_interpreter.file_ids`` and the files its messages attach for it
    #: (the Assistants API's); each run's auto container starts with them. NULL: none.
    Column("code_file_ids", Json),
    Index(None, "user_id", "created_at"),
    # The sweep looks only at the few scratch threads.
    Index(
        "ix_threads_scratch_until",
        "scratch_until",
        sqlite_where=text(SCRATCH_THREAD_SQL),
        postgresql_where=text(SCRATCH_THREAD_SQL),
    ),
)

runs = Table(
    "runs",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("user_id", String(40), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("thread_id", String(40), ForeignKey("threads.id", ondelete="CASCADE"), nullable=False),
    Column("assistant_id", String(40), ForeignKey("assistants.id", ondelete="SET NULL")),
    Column("model", Name(256), nullable=False),
    Column("instructions", Content),
    Column("tools", Json, nullable=False),
    Column("parameters", Json, nullable=False),
    Column("status", String(20), nullable=False),
    Column("input_tokens", Integer, nullable=False, default=0),
    Column("output_tokens", Integer, nullable=False, default=0),
    #: Of the output tokens, those the model spent reasoning; of the input, those read
    #: from the provider's prompt cache (both 0 where the provider does not say).
    Column("reasoning_tokens", Integer, nullable=False, default=0, server_default="0"),
    Column("cached_tokens", Integer, nullable=False, default=0, server_default="0"),
    Column("error_code", String(64)),
    Column("error_message", Content),
    Column("last_seq", Integer, nullable=False, default=0),
    Column("created_at", Float, nullable=False),
    Column("started_at", Float),
    Column("completed_at", Float),
    #: When the run's turn paused for tool outputs; cleared when they start its next turn.
    Column("paused_at", Float),
    Column("expires_at", Float),
    Column("lease_owner", String(64)),
    Column("lease_expires_at", Float),
    #: The client's own key-value pairs (Responses and Assistants ``metadata``).
    Column("metadata", Json),
    #: ``ModelOptions`` of the run's model calls (tool choice, output format, reasoning).
    Column("options", Json),
    #: What a protocol face keeps of the request that made the run, to answer it back
    #: (the Responses API's ``store``, ``previous_response_id``, ``text``, ...).
    Column("request", Json),
    #: The thread's messages its last model call left out to fit the model's context
    #: window or the run's ``truncation`` (``engine.context``); None before its first call.
    Column("dropped_messages", Integer),
    #: When the run's event log was pruned (``store.retention``); none: it is whole.
    Column("events_pruned_at", Float),
    Index(None, "user_id", "created_at"),
    Index(None, "thread_id", "created_at"),
    # Most runs have no assistant (every Responses and chat turn): they write no entry.
    Index(
        "ix_runs_assistant_id",
        "assistant_id",
        sqlite_where=text("assistant_id IS NOT NULL"),
        postgresql_where=text("assistant_id IS NOT NULL"),
    ),
    # Pruning finds the ended runs whose event logs are still there, oldest first.
    Index(
        "ix_runs_unpruned_completed_at",
        "completed_at",
        sqlite_where=text(UNPRUNED_RUN_SQL),
        postgresql_where=text(UNPRUNED_RUN_SQL),
    ),
    # At most one active run per thread, enforced by the database itself. Partial, so that
    # a run that ends leaves it; the sweeps find the few queued, in_progress and
    # action_required runs through it too (their reads carry its condition word for word,
    # ``store.runs.ACTIVE``, which SQLite needs to use it).
    Index(
        "uq_runs_active_thread",
        "thread_id",
        unique=True,
        sqlite_where=text(ACTIVE_RUN_SQL),
        postgresql_where=text(ACTIVE_RUN_SQL),
    ),
    postgresql_with={"fillfactor": UPDATED_FILLFACTOR},
)

messages = Table(
    "messages",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("user_id", String(40), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("thread_id", String(40), ForeignKey("threads.id", ondelete="CASCADE"), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("role", String(16), nullable=False),
    Column("content", Content, nullable=False),
    Column("reasoning", Content),
    Column("tool_calls", Json),
    Column("tool_call_id", Name(TOOL_FIELD_LENGTH)),
    Column("run_id", String(40), ForeignKey("runs.id", ondelete="SET NULL")),
    #: Images given with a user message: ``[{"url": ...}]`` (``data:`` or ``http(s):``).
    Column("images", Json),
    #: What the provider needs back on the next turn (thinking signatures, reasoning
    #: items): ``{"provider": NAME, ...}``, written by the adapter via ``StatePart``.
    Column("provider_state", Json),
    #: An assistant message's phase, as a client gave it: ``commentary`` or ``final_answer``.
    Column("phase", String(32)),
    #: The order of an assistant message's reasoning and text when it is not simply the
    #: reasoning, then the text: ``[[kind, length], ...]`` with kind ``reasoning``,
    #: ``summary`` or ``text`` and the length in characters of ``reasoning`` or
    #: ``content`` that segment takes. NULL: one reasoning segment, then the text.
    Column("layout", Json),
    Column("created_at", Float, nullable=False),
    #: The client's own key-value pairs (Assistants ``metadata``).
    Column("metadata", Json),
    #: The tokens of the model call that wrote an assistant message, as ``types.Usage``
    #: (``input_tokens``, ``output_tokens``, ``reasoning_tokens``, ``cached_tokens``),
    #: written when the call ends. NULL for every other message, for one whose call has
    #: not ended, and for one no model call wrote (a run that ended before calling it).
    Column("usage", Json),
    #: A hosted tool's item, as the run's output shows it (``engine.hosted``): an MCP
    #: server's tool list (``mcp_list_tools``), a call the server ran (``mcp_call``, on the
    #: ``tool`` message of its result), an approval given (``mcp_approval_response``). NULL
    #: for every other message.
    Column("item", Json),
    #: The ``id`` of ``item`` (up to ``ITEM_ID_LENGTH`` characters), by which a request's
    #: ``item_reference`` finds it. NULL for every other message.
    Column("item_id", String(ITEM_ID_LENGTH)),
    UniqueConstraint("thread_id", "seq"),
    # The messages a run wrote; the user's own (no run) write no entry.
    Index(
        "ix_messages_run_id",
        "run_id",
        sqlite_where=text("run_id IS NOT NULL"),
        postgresql_where=text("run_id IS NOT NULL"),
    ),
    # The messages that hold a hosted tool's item, by its id.
    Index(
        "ix_messages_item_id",
        "item_id",
        sqlite_where=text("item_id IS NOT NULL"),
        postgresql_where=text("item_id IS NOT NULL"),
    ),
    postgresql_with={"fillfactor": UPDATED_FILLFACTOR},
)

actions = Table(
    "actions",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("run_id", String(40), ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("tool_call_id", Name(TOOL_FIELD_LENGTH), nullable=False),
    #: Order of the call in the model's answer.
    Column("position", Integer, nullable=False),
    Column("name", Name(TOOL_FIELD_LENGTH), nullable=False),
    Column("arguments", Json, nullable=False),
    Column("status", String(16), nullable=False),
    Column("output", Content),
    Column("created_at", Float, nullable=False),
    Column("completed_at", Float),
    #: NULL: a call of a client's tool, answered with its output. ``approval``: a call of a
    #: hosted tool the server runs once the client approves it (``engine.hosted``).
    Column("kind", String(16)),
    UniqueConstraint("run_id", "tool_call_id"),
)

#: A run's event log. A row holds the events a write logged together (a checkpoint's, the
#: turn's end): ``seq`` is the last one's number, ``first_seq`` the first's, ``type``
#: ``batch``, ``data`` empty and ``packed`` the events packed and compressed
#: (``runs.pack``). A row written before batches holds one event: ``first_seq`` NULL, its
#: own ``type``, and its JSON as ``data``.
run_events = Table(
    "run_events",
    metadata,
    Column("run_id", String(40), ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("type", String(32), nullable=False),
    # The events' JSON text exactly as sent on the wire, so a replay re-encodes nothing.
    Column("data", Text, nullable=False),
    Column("first_seq", Integer),
    Column("packed", LargeBinary),
)

#: What a creating request sent with an ``Idempotency-Key`` made, so that its retries get
#: the same answer (``server.idempotency``); kept 24 hours. The primary key lets one of two
#: requests with the same user and key in, on every replica. A row with neither an answer
#: (``status_code``) nor a stream (``stream_after``) is a claim whose request still runs.
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("user_id", String(40), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(255), primary_key=True),
    #: The request the key came with: its method, path (with the query), and the SHA-256
    #: of its body.
    Column("method", String(16), nullable=False),
    Column("path", Text, nullable=False),
    Column("body_hash", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    #: The run the request started, once it has started one.
    Column("run_id", String(40)),
    #: A JSON answer: its status and its body as sent.
    Column("status_code", Integer),
    Column("body", Text),
    #: A streamed answer: the run's events after this sequence number, and its headers.
    Column("stream_after", Integer),
    Column("headers", Json),
    Index(None, "created_at"),
)

#: Tokens used through each API key, per UTC day, model and face (the API that made the
#: calls, e.g. ``chat.completions``): one row each, its primary key, that every call adds
#: to (``store.usage``). For calls that leave no run to count them.
key_usage = Table(
    "key_usage",
    metadata,
    #: The UTC day of the calls: ``YYYY-MM-DD``.
    Column("day", String(10), primary_key=True),
    Column("user_id", String(40), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    #: ``api_keys.key_hash`` of the key the calls came with.
    Column("key_hash", String(64), primary_key=True),
    Column("model", Name(256), primary_key=True),
    Column("face", String(32), primary_key=True),
    Column("requests", Integer, nullable=False, default=0),
    Column("input_tokens", BigInteger, nullable=False, default=0),
    Column("output_tokens", BigInteger, nullable=False, default=0),
    Column("reasoning_tokens", BigInteger, nullable=False, default=0),
    Column("cached_tokens", BigInteger, nullable=False, default=0),
    Index(None, "user_id", "day"),
)

#: What a provider wants back with the tool calls of a call that stored nothing else (a
#: chat completion): its ``StatePart`` data, under the token the calls' ids carry
#: (``store.call_states``).
call_states = Table(
    "call_states",
    metadata,
    Column("user_id", String(40), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("token", String(32), primary_key=True),
    Column("state", Json, nullable=False),
    Column("created_at", Float, nullable=False),
    Index(None, "created_at"),
)

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

#: Webhook endpoints (``/v1/webhooks``): where a user's run-end events are POSTed, signed
#: with the endpoint's secret (``parley.webhooks``).
webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    #: ``wh_`` and 24 hex digits.
    Column("id", String(40), primary_key=True),
    Column("user_id", String(40), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("url", String(2048), nullable=False),
    #: The event types it is subscribed to (``response.completed``, ``thread.run.failed``, ...).
    Column("events", Json, nullable=False),
    Column("description", Name(512)),
    #: ``whsec_`` and the base64 of 32 random bytes: the HMAC key of its signatures.
    Column("secret", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Index(None, "user_id", "created_at"),
)

#: The outbox: one row per event and endpoint, written in the transaction that ended the
#: run, then sent (and retried) by the delivery worker of any replica.
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    #: ``whd_`` and 24 hex digits.
    Column("id", String(40), primary_key=True),
    Column(
        "endpoint_id",
        String(40),
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("user_id", String(40), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    #: ``evt_`` and 24 hex digits: the payload's ``id`` and the ``webhook-id`` header.
    Column("event_id", String(40), nullable=False),
    Column("event_type", String(64), nullable=False),
    #: The JSON body, fixed when the event was written: every attempt sends the same bytes.
    Column("payload", Text, nullable=False),
    #: ``pending``, ``delivered`` or ``failed``.
    Column("status", String(16), nullable=False),
    #: Attempts made (claims taken) so far.
    Column("attempts", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
    #: When a worker may take it next: a retry's time, or the end of a worker's claim.
    Column("next_attempt_at", Float),
    #: Whose claim it is while an attempt is under way.
    Column("lease_owner", String(64)),
    #: After this no retry is scheduled: the delivery ends ``failed``. None: its
    #: ``created_at`` plus the server's ``webhook_retry_hours`` (a replay sets it).
    Column("retry_until", Float),
    Column("last_status_code", Integer),
    Column("last_error", String(512)),
    Column("delivered_at", Float),
    Index(None, "endpoint_id", "created_at"),
    # Workers look for pending deliveries that are due.
    Index(None, "status", "next_attempt_at"),
)

#: Each attempt of a delivery: when, the HTTP status or the error, and how long it took.
webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column(
        "delivery_id",
        String(40),
        ForeignKey("webhook_deliveries.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("number", Integer, primary_key=True),
    Column("at", Float, nullable=False),
    Column("status_code", Integer),
    Column("error", String(512)),
    Column("duration_ms", Float, nullable=False),
)
