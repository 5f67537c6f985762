"""A new turn writes fewer index entries: the sweeps find active runs through the unique
index of a thread's active run (the index of their status goes), and the indexes of a run's
assistant and a message's run hold only the rows that have one; the sweep of unnamed file
bytes reads the first pieces by age

Revision ID: 0022
Revises: 0021
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

_ACTIVE = sa.text("status IN ('queued', 'in_progress', 'action_required')")
_FIRST_PIECE = sa.text("seq = 0")


def upgrade() -> None:
    op.drop_index("ix_runs_active_status", table_name="runs")
    _partial("ix_runs_assistant_id", "runs", "assistant_id")
    _partial("ix_messages_run_id", "messages", "run_id")
    op.create_index(
        "ix_file_data_first_pieces",
        "file_data",
        ["created_at"],
        sqlite_where=_FIRST_PIECE,
        postgresql_where=_FIRST_PIECE,
    )


def downgrade() -> None:
    op.drop_index("ix_file_data_first_pieces", table_name="file_data")
    op.drop_index("ix_messages_run_id", table_name="messages")
    op.create_index("ix_messages_run_id", "messages", ["run_id"])
    op.drop_index("ix_runs_assistant_id", table_name="runs")
    op.create_index("ix_runs_assistant_id", "runs", ["assistant_id"])
    op.create_index(
        "ix_runs_active_status", "runs", ["status"], sqlite_where=_ACTIVE, postgresql_where=_ACTIVE
    )


def _partial(name: str, table: str, column: str) -> None:
    """The index of ``column`` again, of the rows where it is set alone."""
    where = sa.text(f"{column} IS NOT NULL")
    op.drop_index(name, table_name=table)
    op.create_index(name, table, [column], sqlite_where=where, postgresql_where=where)
