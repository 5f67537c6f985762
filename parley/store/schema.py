"""The schema's revision (Alembic's): where the migrations are, which revision a database
is at, and bringing it to the newest (``Database.migrate``, one replica at a time)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy.engine import Connection

__all__ = ["MIGRATIONS", "alembic_config", "at_head", "migrate", "schema_revision"]

MIGRATIONS = Path(__file__).parent / "migrations"
#: PostgreSQL advisory lock key taken while migrating, so replicas migrate one at a time.
_MIGRATION_LOCK = 0x7061726C6579  # "parley"


def migrate(conn: Connection) -> None:
    """Bring the schema to the newest revision (idempotent), on PostgreSQL under an
    advisory lock, so that replicas starting together migrate one at a time."""
    if _at_head(conn):
        return  # the usual start: no need to load Alembic at all
    from alembic import command

    postgres = conn.dialect.name == "postgresql"
    if postgres:
        conn.exec_driver_sql(f"SELECT pg_advisory_lock({_MIGRATION_LOCK})")
        conn.commit()
    try:
        command.upgrade(alembic_config(conn), "head")
        conn.commit()
    finally:
        if postgres:
            conn.exec_driver_sql(f"SELECT pg_advisory_unlock({_MIGRATION_LOCK})")
            conn.commit()


def _at_head(conn: Connection) -> bool:
    from parley.store.migrations import HEAD

    with conn.begin():
        return schema_revision(conn) == HEAD


def alembic_config(connection: Connection | None = None) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def schema_revision(conn: Connection) -> str | None:
    """The database's schema revision (Alembic's), None for a database never migrated."""
    from sqlalchemy import inspect

    if not inspect(conn).has_table("alembic_version"):
        return None
    value = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
    return None if value is None else str(value)


def at_head(conn: Connection, *, seen: bool = False) -> bool:
    """Whether the schema is at the newest migration. Once ``seen`` there (migrations only
    move forward), a read of a row of the version table answers that the database does
    (not a bare ``SELECT 1``: SQLite reads its file then)."""
    if seen:
        conn.exec_driver_sql("SELECT 1 FROM alembic_version").scalar()
        return True
    from parley.store.migrations import HEAD

    return schema_revision(conn) == HEAD
