"""Vector stores, their files (with the claim of the worker indexing each), and file batches

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

_EXPIRING = "expires_at IS NOT NULL"
_INGESTING = "status = 'in_progress'"


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "vector_stores",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("user_id", sa.String(40), nullable=False),
        sa.Column("name", sa.String(256), nullable=True),
        sa.Column("description", sa.String(512), nullable=True),
        sa.Column("metadata", _json(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("last_active_at", sa.Float(), nullable=False),
        sa.Column("expires_after_days", sa.Integer(), nullable=True),
        sa.Column("expires_at", sa.Float(), nullable=True),
        sa.Column("embedding_model", sa.String(200), nullable=True),
        sa.Column("thread_id", sa.String(40), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_vector_stores_user_id_users", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_vector_stores"),
    )
    op.create_index(
        "ix_vector_stores_user_id_created_at", "vector_stores", ["user_id", "created_at"]
    )
    op.create_index(
        "ix_vector_stores_expiring",
        "vector_stores",
        ["expires_at"],
        sqlite_where=sa.text(_EXPIRING),
        postgresql_where=sa.text(_EXPIRING),
    )
    op.create_table(
        "vector_store_files",
        sa.Column("vector_store_id", sa.String(40), nullable=False),
        sa.Column("file_id", sa.String(40), nullable=False),
        sa.Column("user_id", sa.String(40), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("last_error", _json(), nullable=True),
        sa.Column("attributes", _json(), nullable=False),
        sa.Column("chunking_strategy", _json(), nullable=False),
        sa.Column("usage_bytes", sa.BigInteger(), nullable=False),
        sa.Column("batch_id", sa.String(40), nullable=True),
        sa.Column("lease_owner", sa.String(64), nullable=True),
        sa.Column("lease_until", sa.Float(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=True),
        sa.ForeignKeyConstraint(
            ["vector_store_id"],
            ["vector_stores.id"],
            name="fk_vector_store_files_vector_store_id_vector_stores",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["file_id"],
            ["files.id"],
            name="fk_vector_store_files_file_id_files",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name="fk_vector_store_files_user_id_users",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("vector_store_id", "file_id", name="pk_vector_store_files"),
    )
    op.create_index(
        "ix_vector_store_files_vector_store_id_created_at",
        "vector_store_files",
        ["vector_store_id", "created_at"],
    )
    op.create_index("ix_vector_store_files_file_id", "vector_store_files", ["file_id"])
    op.create_index("ix_vector_store_files_batch_id", "vector_store_files", ["batch_id"])
    op.create_index(
        "ix_vector_store_files_ingesting",
        "vector_store_files",
        ["lease_until"],
        sqlite_where=sa.text(_INGESTING),
        postgresql_where=sa.text(_INGESTING),
    )
    op.create_table(
        "vector_store_file_batches",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("vector_store_id", sa.String(40), nullable=False),
        sa.Column("user_id", sa.String(40), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.ForeignKeyConstraint(
            ["vector_store_id"],
            ["vector_stores.id"],
            name="fk_vector_store_file_batches_vector_store_id_vector_stores",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name="fk_vector_store_file_batches_user_id_users",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_vector_store_file_batches"),
    )
    op.create_index(
        "ix_vector_store_file_batches_vector_store_id_created_at",
        "vector_store_file_batches",
        ["vector_store_id", "created_at"],
    )


def downgrade() -> None:
    op.drop_table("vector_store_file_batches")
    op.drop_table("vector_store_files")
    op.drop_table("vector_stores")
