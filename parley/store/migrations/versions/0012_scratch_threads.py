"""Scratch threads: those of ``store: false`` responses, hidden from every read and deleted
once let go

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

SCRATCH = "scratch_until IS NOT NULL"


def upgrade() -> None:
    with op.batch_alter_table("threads") as batch:
        batch.add_column(sa.Column("scratch_until", sa.Float(), nullable=True))
    op.create_index(
        "ix_threads_scratch_until",
        "threads",
        ["scratch_until"],
        unique=False,
        sqlite_where=sa.text(SCRATCH),
        postgresql_where=sa.text(SCRATCH),
    )


def downgrade() -> None:
    op.drop_index("ix_threads_scratch_until", table_name="threads")
    with op.batch_alter_table("threads") as batch:
        batch.drop_column("scratch_until")
