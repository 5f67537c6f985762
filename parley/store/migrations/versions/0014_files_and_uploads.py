"""Files: uploaded files, the bytes kept in the database for them, and uploads in parts

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

_EXPIRING = "expires_at IS NOT NULL"
_PENDING = "status = 'pending'"


def upgrade() -> None:
    op.create_table(
        "files",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("user_id", sa.String(40), nullable=False),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=True),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("mime_type", sa.String(255), nullable=True),
        sa.Column("storage", sa.String(16), nullable=False),
        sa.Column("storage_key", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_files_user_id_users", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_files"),
    )
    op.create_index("ix_files_user_id_created_at", "files", ["user_id", "created_at"])
    op.create_index(
        "ix_files_user_id_purpose_created_at", "files", ["user_id", "purpose", "created_at"]
    )
    op.create_index("ix_files_storage_key", "files", ["storage_key"])
    op.create_index(
        "ix_files_expiring",
        "files",
        ["expires_at"],
        sqlite_where=sa.text(_EXPIRING),
        postgresql_where=sa.text(_EXPIRING),
    )
    op.create_table(
        "file_data",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("key", "seq", name="pk_file_data"),
    )
    op.create_table(
        "uploads",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("user_id", sa.String(40), nullable=False),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("mime_type", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("file_expires_after", sa.Integer(), nullable=True),
        sa.Column("file_id", sa.String(40), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_uploads_user_id_users", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["file_id"], ["files.id"], name="fk_uploads_file_id_files", ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_uploads"),
    )
    op.create_index("ix_uploads_user_id_created_at", "uploads", ["user_id", "created_at"])
    op.create_index(
        "ix_uploads_pending_expires_at",
        "uploads",
        ["expires_at"],
        sqlite_where=sa.text(_PENDING),
        postgresql_where=sa.text(_PENDING),
    )
    op.create_table(
        "upload_parts",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("upload_id", sa.String(40), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("storage", sa.String(16), nullable=False),
        sa.Column("storage_key", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(
            ["upload_id"],
            ["uploads.id"],
            name="fk_upload_parts_upload_id_uploads",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_upload_parts"),
    )
    op.create_index("ix_upload_parts_upload_id", "upload_parts", ["upload_id"])
    op.create_index("ix_upload_parts_storage_key", "upload_parts", ["storage_key"])


def downgrade() -> None:
    op.drop_table("upload_parts")
    op.drop_table("uploads")
    op.drop_table("file_data")
    op.drop_table("files")
