"""Hosted tools: a message may carry a hosted tool's item (an MCP server's tool list, a call
the server ran, an approval asked or given), and an action may be an approval the run
waits for rather than a tool output

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("item", _json(), nullable=True))
    with op.batch_alter_table("actions") as batch:
        batch.add_column(sa.Column("kind", sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("actions") as batch:
        batch.drop_column("kind")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("item")
