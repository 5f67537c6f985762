"""Alembic environment: runs on the connection Parley hands it (see ``store.db``)."""

from __future__ import annotations

from alembic import context

from parley.store.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("Parley migrations run through parley.store.db.Database.migrate()")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    transaction_per_migration=True,
)
with context.begin_transaction():
    context.run_migrations()
