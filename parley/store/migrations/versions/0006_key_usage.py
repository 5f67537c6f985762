"""key usage and call states: tokens used through each API key, per day, model and face;
what a provider wants back with the tool calls of a stateless call

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "key_usage",
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("user_id", sa.String(length=40), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=256), nullable=False),
        sa.Column("face", sa.String(length=32), nullable=False),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("reasoning_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cached_tokens", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_key_usage_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("day", "key_hash", "model", "face", name=op.f("pk_key_usage")),
    )
    op.create_index(op.f("ix_key_usage_user_id_day"), "key_usage", ["user_id", "day"], unique=False)
    op.create_table(
        "call_states",
        sa.Column("user_id", sa.String(length=40), nullable=False),
        sa.Column("token", sa.String(length=32), nullable=False),
        sa.Column(
            "state",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_call_states_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "token", name=op.f("pk_call_states")),
    )
    op.create_index(op.f("ix_call_states_created_at"), "call_states", ["created_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_call_states_created_at"), table_name="call_states")
    op.drop_table("call_states")
    op.drop_index(op.f("ix_key_usage_user_id_day"), table_name="key_usage")
    op.drop_table("key_usage")
