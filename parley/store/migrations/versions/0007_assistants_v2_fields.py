"""Assistants v2 fields: an assistant's description and model options; a message's metadata

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("assistants") as batch:
        batch.add_column(sa.Column("description", sa.Text(), nullable=True))
        batch.add_column(sa.Column("options", _json(), nullable=True))
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("metadata", _json(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("metadata")
    with op.batch_alter_table("assistants") as batch:
        batch.drop_column("options")
        batch.drop_column("description")
