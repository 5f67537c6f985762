"""The database schema, as SQLAlchemy Core tables on one ``metadata``. Migrations create
exactly this.

    _columns    the column types (content stores U+0000 as U+FFFD), the JSON codec, metadata
    _runs       users, keys, assistants, threads, runs, messages, actions, event logs, and
                what requests keep (idempotency keys, usage per key, calls' state)
    _files      files and their bytes, uploads, containers and their files
    _search     vector stores, their files and batches, and the chunks search finds
    _webhooks   webhook endpoints, deliveries and attempts

Callers import every name from here (``from parley.store.tables import runs``).
"""

from __future__ import annotations

from parley.store.tables._columns import (
    NUL,
    REPLACEMENT,
    UPDATED_FILLFACTOR,
    Content,
    Json,
    JsonType,
    Name,
    json_text,
    json_value,
    metadata,
    without_nul,
)
from parley.store.tables._files import (
    EXPIRING_FILE_SQL,
    FIRST_PIECE_SQL,
    PENDING_UPLOAD_SQL,
    container_files,
    containers,
    file_data,
    files,
    upload_parts,
    uploads,
)
from parley.store.tables._runs import (
    ACTIVE_RUN_SQL,
    ITEM_ID_LENGTH,
    SCRATCH_THREAD,
    SCRATCH_THREAD_SQL,
    TOOL_FIELD_LENGTH,
    UNPRUNED_RUN_SQL,
    VISIBLE_THREAD,
    actions,
    api_keys,
    assistants,
    call_states,
    idempotency_keys,
    key_usage,
    messages,
    run_events,
    runs,
    threads,
    users,
)
from parley.store.tables._search import (
    INGESTING_SQL,
    SEARCH_INDEX_COLUMNS,
    SEARCH_INDEX_TABLES,
    chunks,
    search_index_object,
    vector_store_file_batches,
    vector_store_files,
    vector_stores,
)
from parley.store.tables._webhooks import (
    webhook_attempts,
    webhook_deliveries,
    webhook_endpoints,
)

__all__ = [
    "ACTIVE_RUN_SQL",
    "EXPIRING_FILE_SQL",
    "FIRST_PIECE_SQL",
    "INGESTING_SQL",
    "ITEM_ID_LENGTH",
    "NUL",
    "PENDING_UPLOAD_SQL",
    "REPLACEMENT",
    "SCRATCH_THREAD",
    "SCRATCH_THREAD_SQL",
    "SEARCH_INDEX_COLUMNS",
    "SEARCH_INDEX_TABLES",
    "TOOL_FIELD_LENGTH",
    "UNPRUNED_RUN_SQL",
    "UPDATED_FILLFACTOR",
    "VISIBLE_THREAD",
    "Content",
    "Json",
    "JsonType",
    "Name",
    "actions",
    "api_keys",
    "assistants",
    "call_states",
    "chunks",
    "container_files",
    "containers",
    "file_data",
    "files",
    "idempotency_keys",
    "json_text",
    "json_value",
    "key_usage",
    "messages",
    "metadata",
    "run_events",
    "runs",
    "search_index_object",
    "threads",
    "upload_parts",
    "uploads",
    "users",
    "vector_store_file_batches",
    "vector_store_files",
    "vector_stores",
    "webhook_attempts",
    "webhook_deliveries",
    "webhook_endpoints",
    "without_nul",
]
