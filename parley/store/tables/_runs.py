"""Users and their API keys, assistants, threads, runs with their messages, actions and
event logs, and what requests keep: idempotent answers, usage per key, calls' state."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from parley.store.tables._columns import UPDATED_FILLFACTOR, Content, Json, Name, metadata

#: The longest tool name and tool-call id stored.
TOOL_FIELD_LENGTH = 128
#: The longest hosted item id a message is found by (``messages.item_id``): the server's
#: own are 29 characters, OpenAI's about 55; a longer one a client gives back is kept in
#: the item, not found by it.
ITEM_ID_LENGTH = 128

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

#: A scratch thread (a ``store: false`` response's, ``SCRATCH_THREAD_SQL``), and a thread
#: anyone may see.
SCRATCH_THREAD = threads.c.scratch_until.is_not(None)
VISIBLE_THREAD = threads.c.scratch_until.is_(None)

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
