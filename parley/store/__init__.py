"""Persistence: tables, migrations and typed data functions (SQLite or PostgreSQL)."""

from parley.store.db import Database

__all__ = ["Database"]
