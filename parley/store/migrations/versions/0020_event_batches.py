"""The event log's rows hold several events each: ``run_events.first_seq`` and ``packed``

Revision ID: 0020
Revises: 0019
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # NULL: a row of one event, as every row was before (``seq``, ``type``, ``data``).
    op.add_column("run_events", sa.Column("first_seq", sa.Integer(), nullable=True))
    op.add_column("run_events", sa.Column("packed", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    op.drop_column("run_events", "packed")
    op.drop_column("run_events", "first_seq")
