"""Checkpoint updates stay on their page: ``runs`` and ``messages`` keep room on each page
(PostgreSQL's ``fillfactor``), and the index on a run's status holds only active runs

Revision ID: 0021
Revises: 0020
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

_ACTIVE = sa.text("status IN ('queued', 'in_progress', 'action_required')")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # Pages written from now on keep the room; existing ones fill as before.
        op.execute("ALTER TABLE runs SET (fillfactor = 70)")
        op.execute("ALTER TABLE messages SET (fillfactor = 70)")
    op.drop_index("ix_runs_status", table_name="runs")
    op.create_index(
        "ix_runs_active_status",
        "runs",
        ["status"],
        sqlite_where=_ACTIVE,
        postgresql_where=_ACTIVE,
    )


def downgrade() -> None:
    op.drop_index("ix_runs_active_status", table_name="runs")
    op.create_index("ix_runs_status", "runs", ["status"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE runs RESET (fillfactor)")
        op.execute("ALTER TABLE messages RESET (fillfactor)")
