"""One page of a list, the same on every face: OpenAI's list object (``data``,
``first_id``, ``last_id``, ``has_more``), read from the store (``store.pagination``) or cut
from a list already in hand (``window``). A cursor that names no item of the list is the
one error ``store.pagination.cursor_not_found``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel

from parley.store.pagination import ListQuery, cursor_not_found

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """A page of a list: its items, the ids of the first and the last, and whether more
    follow on the side it was read towards."""

    object: Literal["list"] = "list"
    data: list[T]
    first_id: str | None
    last_id: str | None
    has_more: bool

    @classmethod
    def of(cls, items: list[T], has_more: bool = False) -> Page[T]:
        return cls(
            data=items,
            first_id=item_id(items[0]) if items else None,
            last_id=item_id(items[-1]) if items else None,
            has_more=has_more,
        )


def item_id(item: Any) -> str:
    """An item's id: a resource's ``id``, or a JSON object's ``"id"``."""
    return str(item["id"] if isinstance(item, Mapping) else item.id)


def window(items: list[T], query: ListQuery) -> Page[T]:
    """The page ``query`` asks for of ``items`` (every item of the list, oldest first):
    ``after`` / ``before`` are ids of the list's items."""
    ordered = items if query.order == "asc" else items[::-1]
    ids = [item_id(item) for item in ordered]
    start, end = 0, len(ordered)
    if query.after is not None:
        start = _index(ids, "after", query.after) + 1
    if query.before is not None:
        end = _index(ids, "before", query.before)
    cut = ordered[start:end]
    data = cut[: query.limit] if query.before is None else cut[-query.limit :]
    return Page.of(data, has_more=len(cut) > query.limit)


def _index(ids: list[str], name: str, cursor: str) -> int:
    try:
        return ids.index(cursor)
    except ValueError:
        raise cursor_not_found(name, cursor) from None
