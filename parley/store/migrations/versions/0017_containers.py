"""Containers of the code interpreter, and their files

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "containers",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(40), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("memory_limit", sa.String(8), nullable=False),
        sa.Column("expires_after_minutes", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("last_active_at", sa.Float(), nullable=False),
        sa.Column("origin", sa.String(8), nullable=False),
        sa.Column("thread_id", sa.String(40), nullable=True),
        sa.Column("home", sa.String(200), nullable=True),
        sa.Column("key_hash", sa.String(64), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_containers_user_id_users", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_containers"),
    )
    op.create_index("ix_containers_user_id_created_at", "containers", ["user_id", "created_at"])
    op.create_index(
        "ix_containers_status_last_active_at", "containers", ["status", "last_active_at"]
    )
    op.create_index("ix_containers_thread_id", "containers", ["thread_id"])
    op.create_table(
        "container_files",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("container_id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(40), nullable=False),
        sa.Column("path", sa.String(1024), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("storage", sa.String(16), nullable=False),
        sa.Column("storage_key", sa.String(64), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["container_id"],
            ["containers.id"],
            name="fk_container_files_container_id_containers",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_container_files_user_id_users", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_container_files"),
        sa.UniqueConstraint("container_id", "path", name="uq_container_files_container_id_path"),
    )
    op.create_index(
        "ix_container_files_container_id_created_at",
        "container_files",
        ["container_id", "created_at"],
    )
    op.create_index("ix_container_files_storage_key", "container_files", ["storage_key"])


def downgrade() -> None:
    op.drop_table("container_files")
    op.drop_table("containers")
