"""A message that holds a hosted tool's item is found by the item's id (``item_reference``):
``messages.item_id``, filled for the items already stored, and a partial index of it

Revision ID: 0023
Revises: 0022
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

#: ``tables.ITEM_ID_LENGTH``, as this revision made it.
_LENGTH = 128
_SET = sa.text("item_id IS NOT NULL")
#: The ids of the items stored already, by dialect (a JSON null item has none).
_FILL = {
    "postgresql": (
        "UPDATE messages SET item_id = item ->> 'id' WHERE jsonb_typeof(item) = 'object' "
        f"AND jsonb_typeof(item -> 'id') = 'string' AND length(item ->> 'id') <= {_LENGTH}"
    ),
    "sqlite": (
        "UPDATE messages SET item_id = json_extract(item, '$.id') "
        "WHERE json_valid(item) AND json_type(item, '$.id') = 'text' "
        f"AND length(json_extract(item, '$.id')) <= {_LENGTH}"
    ),
}


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("item_id", sa.String(_LENGTH), nullable=True))
    op.execute(_FILL[op.get_bind().dialect.name])
    op.create_index(
        "ix_messages_item_id", "messages", ["item_id"], sqlite_where=_SET, postgresql_where=_SET
    )


def downgrade() -> None:
    op.drop_index("ix_messages_item_id", table_name="messages")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("item_id")
