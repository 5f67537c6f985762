"""Cursor pagination shared by every list: ``limit``, ``after`` and ``before`` (ids) and
``order``; a cursor that names no item of the list is ``cursor_not_found`` on every list."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import ColumnElement, Table, and_, or_, select
from sqlalchemy.engine import Connection

from parley.errors import InvalidRequest

Order = Literal["asc", "desc"]


@dataclass(frozen=True, slots=True)
class ListQuery:
    """Which page of a list to read: at most ``limit`` items in ``order``, after the item
    whose id is ``after``, or with ``before``, the last ones before that item."""

    limit: int
    order: Order
    after: str | None = None
    before: str | None = None


def cursor_not_found(name: str, cursor: str) -> InvalidRequest:
    """The 400 of a cursor (``name``: ``after`` or ``before``) that names no item of the
    list, the same on every list of every face."""
    return InvalidRequest(
        f"Invalid '{name}': no item with id {cursor!r} in this list.",
        code="invalid_value",
        param=name,
    )


def fetch_page(
    conn: Connection,
    table: Table,
    *,
    where: ColumnElement[bool],
    sort_column: str,
    page: ListQuery,
) -> tuple[list[Any], bool]:
    """Rows of ``table`` matching ``where``, sorted by ``(sort_column, id)`` in the page's
    ``order``: the first ``limit`` after the row whose id is ``after``, or with ``before``,
    the last ``limit`` before that row (both ids must name rows that match ``where``). The
    flag says whether more rows lie beyond the page, on the side it was read towards."""
    sort = table.c[sort_column]
    ident = table.c.id
    query = select(table).where(where)
    ascending = page.order == "asc"
    for name, cursor_id in (("after", page.after), ("before", page.before)):
        if cursor_id is None:
            continue
        cursor = (conn.execute(select(sort).where(where, ident == cursor_id))).scalar_one_or_none()
        if cursor is None:
            raise cursor_not_found(name, cursor_id)
        if ascending == (name == "after"):
            query = query.where(or_(sort > cursor, and_(sort == cursor, ident > cursor_id)))
        else:
            query = query.where(or_(sort < cursor, and_(sort == cursor, ident < cursor_id)))
    if ascending == (page.before is None):  # the direction rows are read in
        query = query.order_by(sort.asc(), ident.asc())
    else:
        query = query.order_by(sort.desc(), ident.desc())
    rows = list((conn.execute(query.limit(page.limit + 1))).all())
    found = rows[: page.limit]
    if page.before is not None:
        found.reverse()
    return found, len(rows) > page.limit
