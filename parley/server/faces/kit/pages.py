"""One page of a list, OpenAI's way: ``data``, ``first_id``, ``last_id``, ``has_more``."""

from __future__ import annotations

from typing import Any

from parley.errors import InvalidRequest


def page(
    items: list[dict[str, Any]],
    *,
    limit: int,
    order: str,
    after: str | None,
    before: str | None,
) -> dict[str, Any]:
    """A page of a list of items, OpenAI's way: ``data``, ``first_id``, ``last_id``,
    ``has_more``; ``after`` / ``before`` are item ids of the list."""
    ordered = items if order == "asc" else list(reversed(items))
    ids = [item["id"] for item in ordered]
    start, end = 0, len(ordered)
    for name, cursor in (("after", after), ("before", before)):
        if cursor is None:
            continue
        if cursor not in ids:
            raise InvalidRequest(
                f"Invalid '{name}': no item with id {cursor!r} in this list.",
                code="invalid_value",
                param=name,
            )
        if name == "after":
            start = ids.index(cursor) + 1
        else:
            end = ids.index(cursor)
    window = ordered[start:end]
    data = window[:limit] if before is None else window[-limit:]
    return list_object(data, has_more=len(window) > limit)


def list_object(data: list[dict[str, Any]], *, has_more: bool = False) -> dict[str, Any]:
    """Items as OpenAI's list object."""
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": has_more,
    }
