"""Blank database → exactly the schema of ``parley.store.tables``, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from parley.store.db import Database
from parley.store.tables import metadata, search_index_object
from tests.harness import FreshDatabase

EXPECTED_TABLES = {
    "alembic_version",
    "users",
    "api_keys",
    "assistants",
    "threads",
    "messages",
    "runs",
    "actions",
    "run_events",
    "idempotency_keys",
    "key_usage",
    "call_states",
    "files",
    "file_data",
    "uploads",
    "upload_parts",
    "chunks",
    "vector_stores",
    "vector_store_files",
    "vector_store_file_batches",
    "containers",
    "container_files",
    "webhook_endpoints",
    "webhook_deliveries",
    "webhook_attempts",
}


@pytest.fixture
def blank(tmp_path: Path) -> Any:
    db = FreshDatabase(tmp_path)
    yield db
    db.drop()


def _schema_diff(sync_conn: Any) -> list[Any]:
    # The search index's own tables and columns are not in the metadata (``chunks``).
    def include_name(name: str | None, type_: str, parents: dict[str, str | None]) -> bool:
        return not search_index_object(name, type_, parents.get("table_name"))

    opts = {"compare_type": True, "include_name": include_name}
    ctx = MigrationContext.configure(sync_conn, opts=opts)
    return list(compare_metadata(ctx, metadata))


def _snapshot(sync_conn: Any) -> dict[str, Any]:
    insp = inspect(sync_conn)
    return {
        table: {
            "columns": [
                (c["name"], str(c["type"]), c["nullable"]) for c in insp.get_columns(table)
            ],
            "indexes": sorted(
                [
                    (i["name"], tuple(i["column_names"]), bool(i["unique"]))
                    for i in insp.get_indexes(table)
                ]
                + [
                    (u["name"], tuple(u["column_names"]), True)
                    for u in insp.get_unique_constraints(table)
                ]
            ),
            "fks": sorted(
                (tuple(f["constrained_columns"]), f["referred_table"], f["options"].get("ondelete"))
                for f in insp.get_foreign_keys(table)
            ),
        }
        for table in insp.get_table_names()
    }


async def test_blank_database_migrates_to_exactly_the_tables(blank: Any) -> None:
    db = Database(blank.url)
    try:
        await db.migrate()
        names = await db.read(lambda c: inspect(c).get_table_names())
        tables = {name for name in names if not search_index_object(name, "table")}
        diff = await db.read(_schema_diff)
        snapshot = await db.read(_snapshot)
    finally:
        await db.dispose()
    assert tables == EXPECTED_TABLES
    assert diff == [], f"migrations and parley.store.tables disagree on {blank.kind}: {diff}"
    # Every foreign key used in queries is indexed (or leads a unique/primary key).
    indexed = {
        (table, cols[0]) for table, info in snapshot.items() for _, cols, _ in info["indexes"]
    }
    for table, column in [
        ("api_keys", "user_id"),
        ("assistants", "user_id"),
        ("threads", "user_id"),
        ("runs", "user_id"),
        ("runs", "thread_id"),
        ("runs", "assistant_id"),
        ("messages", "run_id"),
        ("messages", "thread_id"),
        ("actions", "run_id"),
    ]:
        assert (table, column) in indexed, f"{table}.{column} has no index"
    assert any(
        cols == ("thread_id", "seq") and unique
        for _, cols, unique in snapshot["messages"]["indexes"]
    ), "messages are not unique by (thread_id, seq)"
    # An assistant message keeps the tokens of its model call (0008); other messages none.
    columns = {name: nullable for name, _, nullable in snapshot["messages"]["columns"]}
    assert columns.get("usage") is True, columns
    # A run keeps how many messages its last model call left out (0009).
    columns = {name: nullable for name, _, nullable in snapshot["runs"]["columns"]}
    assert columns.get("dropped_messages") is True, columns
    # A thread counts the changes to its stored messages (0010).
    columns = {name: nullable for name, _, nullable in snapshot["threads"]["columns"]}
    assert columns.get("context_version") is False, columns
    # Disabled users, expiring keys with budgets, pruned event logs (0011).
    columns = {name: nullable for name, _, nullable in snapshot["users"]["columns"]}
    assert columns.get("disabled_at") is True, columns
    columns = {name: nullable for name, _, nullable in snapshot["api_keys"]["columns"]}
    assert columns.get("expires_at") is True and columns.get("daily_token_budget") is True
    columns = {name: nullable for name, _, nullable in snapshot["runs"]["columns"]}
    assert columns.get("events_pruned_at") is True, columns
    # Scratch threads of store: false responses, and the index their sweep reads (0012).
    columns = {name: nullable for name, _, nullable in snapshot["threads"]["columns"]}
    assert columns.get("scratch_until") is True, columns
    assert ("ix_threads_scratch_until", ("scratch_until",), False) in snapshot["threads"][
        "indexes"
    ], snapshot["threads"]["indexes"]


async def test_messages_stored_before_their_usage_existed_have_none(blank: Any) -> None:
    """0008 adds ``messages.usage`` to a database that holds messages: theirs is NULL, and
    the end of a model call writes it."""
    from alembic import command
    from sqlalchemy import text

    from parley.store import threads, users
    from parley.store.schema import alembic_config

    db = Database(blank.url)
    try:
        await db.write(lambda c: command.upgrade(alembic_config(c), "0007"))

        def old_message(conn: Any) -> tuple[str, str]:
            user = users.create_user(conn, name="before")
            thread = threads.create_thread(conn, user_id=user.id, metadata={}, message_count=1)
            conn.execute(
                text(
                    "INSERT INTO messages (id, user_id, thread_id, seq, role, content, "
                    "created_at) VALUES ('msg_old', :user, :thread, 1, 'assistant', 'Hi', 0)"
                ),
                {"user": user.id, "thread": thread.id},
            )
            return user.id, "msg_old"

        user_id, message_id = await db.write(old_message)
        await db.migrate()
        read = await db.read(
            lambda c: threads.get_message(c, user_id=user_id, message_id=message_id)
        )
        assert read.usage is None and read.content == "Hi"
        tokens = {"input_tokens": 7, "output_tokens": 3, "reasoning_tokens": 1, "cached_tokens": 2}
        await db.write(
            lambda c: threads.save_message_text(
                c, message_id=message_id, content="Hi", reasoning=None, usage=tokens
            )
        )
        read = await db.read(
            lambda c: threads.get_message(c, user_id=user_id, message_id=message_id)
        )
        assert read.usage == tokens
    finally:
        await db.dispose()


async def test_hosted_items_stored_before_0023_are_found_by_their_id(blank: Any) -> None:
    """0023 fills ``messages.item_id`` from the items already stored: a tool list stored
    before it is found by its id (``item_messages``); a message without an item (JSON
    null), or whose item's id is too long to keep, has none."""
    from alembic import command
    from sqlalchemy import select, text

    from parley.store import threads, users
    from parley.store.schema import alembic_config
    from parley.store.tables import messages

    listed = {"type": "mcp_list_tools", "id": "mcpl_old", "server_label": "s", "tools": []}
    long = {"type": "mcp_call", "id": "mcp_" + "x" * 200, "server_label": "s"}
    db = Database(blank.url)
    try:
        await db.write(lambda c: command.upgrade(alembic_config(c), "0022"))

        def old_messages(conn: Any) -> str:
            user = users.create_user(conn, name="before")
            thread = threads.create_thread(conn, user_id=user.id, metadata={}, message_count=3)
            for seq, item in enumerate([listed, None, long], start=1):
                conn.execute(
                    text(
                        "INSERT INTO messages (id, user_id, thread_id, seq, role, content, "
                        "created_at, item) VALUES (:id, :user, :thread, :seq, 'assistant', '', "
                        "0, :item)"
                    ),
                    {
                        "id": f"msg_old{seq}",
                        "user": user.id,
                        "thread": thread.id,
                        "seq": seq,
                        "item": json.dumps(item),
                    },
                )
            return user.id

        user_id = await db.write(old_messages)
        await db.migrate()
        found = await db.read(
            lambda c: threads.item_messages(c, user_id=user_id, item_ids=["mcpl_old"])
        )
        assert [(m.id, m.item) for m in found.values()] == [("msg_old1", listed)]
        ids = await db.read(
            lambda c: dict(c.execute(select(messages.c.id, messages.c.item_id)).all())
        )
        assert ids == {"msg_old1": "mcpl_old", "msg_old2": None, "msg_old3": None}
    finally:
        await db.dispose()


async def test_migrate_is_idempotent_and_keeps_data(blank: Any) -> None:
    from parley.store import users

    db = Database(blank.url)
    try:
        await db.migrate()
        await db.write(lambda c: users.create_user(c, name="kept"))
        await db.migrate()
        assert await db.read(users.count_users) == 1
    finally:
        await db.dispose()


async def test_one_active_run_per_thread_is_enforced_by_the_database(blank: Any) -> None:
    from parley.errors import Conflict
    from parley.store import runs, threads, users

    db = Database(blank.url)
    try:
        await db.migrate()

        def first_run(conn: Any) -> dict[str, Any]:
            user = users.create_user(conn, name="u")
            thread = threads.create_thread(conn, user_id=user.id, metadata={})
            args = dict(
                user_id=user.id,
                thread_id=thread.id,
                assistant_id=None,
                model="demo/x",
                instructions=None,
                tools=[],
                parameters={},
            )
            runs.create_run(conn, **args)
            return args

        args = await db.write(first_run)
        # No check in Python here: the unique index refuses it, reported as thread_busy.
        with pytest.raises(Conflict) as refused:
            await db.write(lambda c: runs.create_run(c, **args))
        assert refused.value.code == "thread_busy"
    finally:
        await db.dispose()


def test_head_constant_matches_the_revision_files() -> None:
    from alembic.script import ScriptDirectory

    from parley.store.migrations import HEAD
    from parley.store.schema import alembic_config

    assert ScriptDirectory.from_config(alembic_config()).get_current_head() == HEAD
