"""Disabled users, expiring keys and daily token budgets; which runs' event logs were
pruned

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

UNPRUNED = "completed_at IS NOT NULL AND events_pruned_at IS NULL"


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("disabled_at", sa.Float(), nullable=True))
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("expires_at", sa.Float(), nullable=True))
        batch.add_column(sa.Column("daily_token_budget", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("events_pruned_at", sa.Float(), nullable=True))
    op.create_index(
        "ix_runs_unpruned_completed_at",
        "runs",
        ["completed_at"],
        unique=False,
        sqlite_where=sa.text(UNPRUNED),
        postgresql_where=sa.text(UNPRUNED),
    )


def downgrade() -> None:
    op.drop_index("ix_runs_unpruned_completed_at", table_name="runs")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("events_pruned_at")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("daily_token_budget")
        batch.drop_column("expires_at")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("disabled_at")
