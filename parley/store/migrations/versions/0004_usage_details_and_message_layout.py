"""usage details of a run (reasoning and cached tokens); the order of a message's parts;
when a run paused for tool outputs

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(
            sa.Column("reasoning_tokens", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(
            sa.Column("cached_tokens", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("paused_at", sa.Float(), nullable=True))
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("layout", _json(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("layout")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("paused_at")
        batch.drop_column("cached_tokens")
        batch.drop_column("reasoning_tokens")
