"""Migration 0019 makes exactly the webhook tables of ``parley.store.tables``, on every engine."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect

from parley.store.db import Database
from tests.harness import FreshDatabase
from tests.store.test_migrations import _schema_diff

WEBHOOK_TABLES = {"webhook_endpoints", "webhook_deliveries", "webhook_attempts"}


async def test_migrations_make_the_webhook_tables_as_tables_py_has_them(tmp_path: Path) -> None:
    blank = FreshDatabase(tmp_path)
    db = Database(blank.url)
    try:
        await db.migrate()
        names = set(await db.read(lambda c: inspect(c).get_table_names()))
        diff = await db.read(_schema_diff)
        indexes = await db.read(
            lambda c: {i["name"] for i in inspect(c).get_indexes("webhook_deliveries")}
        )
    finally:
        await db.dispose()
        blank.drop()
    assert names >= WEBHOOK_TABLES
    assert diff == [], diff
    assert "ix_webhook_deliveries_status_next_attempt_at" in indexes
