"""run metadata, model options and the request as a protocol face received it; message phase

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("metadata", _json(), nullable=True))
        batch.add_column(sa.Column("options", _json(), nullable=True))
        batch.add_column(sa.Column("request", _json(), nullable=True))
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("phase", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("phase")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("request")
        batch.drop_column("options")
        batch.drop_column("metadata")
