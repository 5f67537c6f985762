"""``parley usage``: the token usage report of ``GET /v1/usage``, read from the database
directly (``store.usage``), as a table or as JSON.

Only ``argparse`` is imported at the top: the parser is built on every ``parley`` command.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from parley.config import Settings
    from parley.store.usage import UsageLine

#: The columns of the table after the groups', and their headings.
_COUNTS = (
    ("requests", "requests"),
    ("input_tokens", "input"),
    ("output_tokens", "output"),
    ("reasoning_tokens", "reasoning"),
    ("cached_tokens", "cached"),
    ("total_tokens", "total"),
)
_GROUP_FIELDS = {"day": "day", "user": "user_id", "key": "api_key_id", "model": "model"}


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``usage`` to the ``parley`` subcommands; the caller adds the database options."""
    usage = subparsers.add_parser(
        "usage",
        help="tokens used per day, user, API key and model",
        description="Add up the calls and tokens counted per API key (every face: runs, "
        "Assistants, Responses, Chat Completions), read from the database directly. Days "
        "are UTC.",
    )
    usage.add_argument("--since", type=_day, metavar="YYYY-MM-DD", help="first day")
    usage.add_argument("--until", type=_day, metavar="YYYY-MM-DD", help="last day")
    usage.add_argument("--user", metavar="USER_ID", help="only this user's usage")
    usage.add_argument("--key", metavar="KEY_ID", help="only this API key's usage (its id)")
    usage.add_argument("--model", metavar="PROVIDER/MODEL", help="only this model's usage")
    usage.add_argument(
        "--by",
        type=_groups,
        default=(),
        metavar="GROUPS",
        help="group by any of day, user, key, model, face, comma-separated (default: "
        "one line for everything)",
    )
    usage.add_argument("--json", action="store_true", help="print the report as JSON")
    return usage  # type: ignore[no-any-return]


def _day(text: str) -> str:
    from parley.store.usage import parse_day

    try:
        return parse_day(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _groups(text: str) -> tuple[str, ...]:
    from parley.store.usage import parse_groups

    try:
        return parse_groups(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Print the report; 2 for bad input (a range that ends before it starts, an unknown
    key)."""
    if args.since and args.until and args.since > args.until:
        print("parley usage: --since is after --until", file=sys.stderr)
        return 2
    try:
        lines, totals = _report(settings, args)
    except LookupError as exc:
        print(f"parley usage: {exc}", file=sys.stderr)
        return 2
    groups: tuple[str, ...] = args.by
    if args.json:
        report = {
            "group_by": list(groups),
            "data": [_public(line) for line in lines],
            "totals": _public(totals),
        }
        print(json.dumps(report, indent=2))
    else:
        print(_table(groups, lines, totals))
    return 0


def _report(settings: Settings, args: argparse.Namespace) -> tuple[list[UsageLine], UsageLine]:
    from sqlalchemy.engine import Connection

    from parley.cli.database import on_database
    from parley.store import usage as usage_store

    def read(conn: Connection) -> tuple[list[UsageLine], UsageLine]:
        key_hash = None
        if args.key is not None:
            key = usage_store.key_of(conn, key_id=args.key)
            if key is None:
                raise LookupError(f"no API key with id {args.key}")
            key_hash = key[1]
        where = usage_store.UsageFilter(args.since, args.until, args.user, key_hash, args.model)
        lines = usage_store.usage_report(conn, where=where, group_by=args.by)
        (totals,) = usage_store.usage_report(conn, where=where, group_by=())
        return lines, totals

    return on_database(settings, read, read_only=True)


def _public(line: UsageLine) -> dict[str, Any]:
    """The line as ``GET /v1/usage`` answers it."""
    return {
        "day": line.day,
        "user_id": line.user_id,
        "api_key_id": line.api_key_id,
        "model": line.model,
        "face": line.face,
        "requests": line.requests,
        "input_tokens": line.input_tokens,
        "output_tokens": line.output_tokens,
        "reasoning_tokens": line.reasoning_tokens,
        "cached_tokens": line.cached_tokens,
        "total_tokens": line.total_tokens,
    }


def _table(groups: tuple[str, ...], lines: list[UsageLine], totals: UsageLine) -> str:
    """A text table: the groups' columns left-aligned, the counts right-aligned; under a
    rule, the totals when there are several lines (or none)."""
    from parley.controls import clean

    heads = [*groups, *(head for _, head in _COUNTS)]
    rows = [_cells(groups, line) for line in lines]
    total = None
    if groups and len(lines) != 1:
        total = ["total", *([""] * (len(groups) - 1)), *_cells((), totals)]
    widths = [len(h) for h in heads]
    for row in [*rows, *([total] if total else [])]:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]

    def line_of(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i < len(groups) else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    out = [line_of(heads), *(line_of(row) for row in rows)]
    if total is not None:
        out += ["  ".join("-" * w for w in widths), line_of(total)]
    return clean("\n".join(out))


def _cells(groups: tuple[str, ...], line: UsageLine) -> list[str]:
    named = [str(getattr(line, _GROUP_FIELDS.get(g, g)) or "-") for g in groups]
    return [*named, *(f"{getattr(line, name):,}" for name, _ in _COUNTS)]
