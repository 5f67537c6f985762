"""Assistants: a model, instructions, tools and parameters, owned by a user."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, insert, update
from sqlalchemy.engine import Connection

from parley.errors import NotFound
from parley.store import driver
from parley.store.db import new_id, now
from parley.store.pagination import ListQuery, fetch_page
from parley.store.records import Assistant
from parley.store.tables import assistants


def create_assistant(
    conn: Connection,
    *,
    user_id: str,
    name: str,
    model: str,
    instructions: str | None,
    tools: list[dict[str, Any]],
    parameters: dict[str, Any],
    metadata: dict[str, Any],
    description: str | None = None,
    options: dict[str, Any] | None = None,
) -> Assistant:
    """A new assistant (``name`` empty when it has none)."""
    row = Assistant(
        id=new_id("asst"),
        user_id=user_id,
        name=name,
        model=model,
        instructions=instructions,
        tools=tools,
        parameters=parameters,
        metadata=metadata,
        created_at=now(),
        description=description,
        options=options,
    )
    conn.execute(insert(assistants).values(**row.values()))
    return row


def get_assistant(conn: Connection, *, user_id: str, assistant_id: str) -> Assistant:
    # Every native first turn reads it in its claim: the driver's read (``store.driver``).
    row = driver.first_row(conn, assistants, "id = ? AND user_id = ?", (assistant_id, user_id))
    if row is None:
        raise NotFound(f"No assistant with id {assistant_id}.", code="assistant_not_found")
    return Assistant.of(row)


def list_assistants(
    conn: Connection,
    *,
    user_id: str,
    page: ListQuery,
) -> tuple[list[Assistant], bool]:
    rows, more = fetch_page(
        conn,
        assistants,
        where=assistants.c.user_id == user_id,
        sort_column="created_at",
        page=page,
    )
    return [Assistant.from_row(r) for r in rows], more


def update_assistant(
    conn: Connection, *, user_id: str, assistant_id: str, fields: dict[str, Any]
) -> Assistant:
    get_assistant(conn, user_id=user_id, assistant_id=assistant_id)
    if fields:
        conn.execute(update(assistants).where(assistants.c.id == assistant_id).values(**fields))
    return get_assistant(conn, user_id=user_id, assistant_id=assistant_id)


def delete_assistant(conn: Connection, *, user_id: str, assistant_id: str) -> None:
    result = conn.execute(
        delete(assistants).where(assistants.c.id == assistant_id, assistants.c.user_id == user_id)
    )
    if result.rowcount == 0:
        raise NotFound(f"No assistant with id {assistant_id}.", code="assistant_not_found")
