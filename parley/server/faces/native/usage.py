"""Token usage: ``GET /v1/usage`` adds up the calls and tokens counted per API key
(``engine.usage``, ``store.usage``), filtered and grouped.

Admins see everyone's usage; anyone else sees only their own: with no ``user_id`` the report
is of the caller, and another user's ``user_id`` answers 403 (a filter that silently gave
one's own usage instead would read as the other user's). A key is named by its id; another
user's key answers 404, as an unknown one does.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from parley.errors import InvalidRequest, PermissionDenied
from parley.server.deps import CurrentUser, Svc
from parley.server.faces.native import reads
from parley.server.openapi import errors
from parley.store import usage as usage_store
from parley.store.usage import UsageFilter, UsageLine

router = APIRouter(tags=["usage"])

#: Lines a report gives at most per page.
MAX_LINES = 1000


class UsageLinePublic(BaseModel):
    """One group's calls and tokens. The fields the report is not grouped by are null;
    ``total_tokens`` is input plus output tokens (what a key's daily budget counts)."""

    day: str | None
    user_id: str | None
    api_key_id: str | None
    model: str | None
    face: str | None
    requests: int
    input_tokens: int
    output_tokens: int
    reasoning_tokens: int
    cached_tokens: int
    total_tokens: int

    @classmethod
    def of(cls, line: UsageLine) -> UsageLinePublic:
        return cls.model_validate(line, from_attributes=True)  # total_tokens: its property


class UsageReportPublic(BaseModel):
    """A page of a usage report, and the totals of the whole report (every page)."""

    object: str = "usage.report"
    group_by: list[str]
    data: list[UsageLinePublic]
    totals: UsageLinePublic
    has_more: bool


@router.get("/usage", responses=errors(400, 403, 404))
async def usage_report(
    user: CurrentUser,
    svc: Svc,
    start_date: Annotated[str | None, Query(description="First UTC day, YYYY-MM-DD.")] = None,
    end_date: Annotated[str | None, Query(description="Last UTC day, YYYY-MM-DD.")] = None,
    user_id: Annotated[str | None, Query(max_length=64)] = None,
    api_key_id: Annotated[str | None, Query(max_length=64)] = None,
    model: Annotated[str | None, Query(max_length=256)] = None,
    group_by: Annotated[
        str, Query(description="Comma-separated: any of day, user, key, model, face.")
    ] = "",
    limit: Annotated[int, Query(ge=1, le=MAX_LINES)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> UsageReportPublic:
    """The calls and tokens of every face (runs, Assistants, Responses, Chat Completions)
    per UTC day, user, API key, model or face, as ``group_by`` asks; none: one line."""
    since = _day(start_date, "start_date")
    until = _day(end_date, "end_date")
    if since and until and since > until:
        raise InvalidRequest(
            "start_date is after end_date.", code="invalid_date_range", param="start_date"
        )
    try:
        groups = usage_store.parse_groups(group_by)
    except ValueError as exc:
        raise InvalidRequest(f"Invalid group_by: {exc}.", code="invalid_group_by") from exc
    if user_id is not None and user_id != user.id and not user.is_admin:
        raise PermissionDenied("Only an admin sees other users' usage.", code="admin_only")
    where = UsageFilter(since, until, user_id if user.is_admin else user.id, None, model)
    lines, totals = await svc.db.read(
        reads.usage_report,
        caller=user,
        key_id=api_key_id,
        where=where,
        groups=groups,
        limit=limit,
        offset=offset,
    )
    return UsageReportPublic(
        group_by=list(groups),
        data=[UsageLinePublic.of(line) for line in lines[:limit]],
        totals=UsageLinePublic.of(totals),
        has_more=len(lines) > limit,
    )


def _day(value: str | None, name: str) -> str | None:
    if value is None:
        return None
    try:
        return usage_store.parse_day(value)
    except ValueError as exc:
        raise InvalidRequest(f"Invalid {name}: {exc}.", code="invalid_date", param=name) from exc
