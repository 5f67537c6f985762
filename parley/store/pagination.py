"""Cursor pagination shared by every list: ``limit``, ``after`` (an id) and ``order``."""

from __future__ import annotations

from typing import Any, Literal

from sqlalchemy import ColumnElement, Table, and_, or_, select
from sqlalchemy.engine import Connection

from parley.errors import InvalidRequest

Order = Literal["asc", "desc"]


def fetch_page(
    conn: Connection,
    table: Table,
    *,
    where: ColumnElement[bool],
    sort_column: str,
    limit: int,
    after: str | None,
    order: Order,
) -> tuple[list[Any], bool]:
    """Rows of ``table`` matching ``where``, sorted by ``(sort_column, id)``, after the row
    whose id is ``after`` (which must itself match ``where``)."""
    sort = table.c[sort_column]
    ident = table.c.id
    query = select(table).where(where)
    if after is not None:
        cursor = (conn.execute(select(sort).where(where, ident == after))).scalar_one_or_none()
        if cursor is None:
            raise InvalidRequest(f"'after' names no item of this list: {after}", code="bad_cursor")
        if order == "asc":
            query = query.where(or_(sort > cursor, and_(sort == cursor, ident > after)))
        else:
            query = query.where(or_(sort < cursor, and_(sort == cursor, ident < after)))
    if order == "asc":
        query = query.order_by(sort.asc(), ident.asc())
    else:
        query = query.order_by(sort.desc(), ident.desc())
    rows = list((conn.execute(query.limit(limit + 1))).all())
    return rows[:limit], len(rows) > limit
