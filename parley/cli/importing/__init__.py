"""``parley import``: an Assistants API's assistants, threads, messages and runs, from a
live server (``--from-url``) or a folder of JSON files (``--from-dir``), written straight
to Parley's database for one user (see docs/import.md).

Safe to run again: Parley's ids are derived from the source's, so a second run adds only
what the first did not write (a thread's new messages after those it has). Each thread is
written in one transaction, whole or not at all.

Exit codes: 0 done; 1 the source or a thread could not be read (what was written stays;
a run again finishes it); 2 bad input (no user to import into, conflicting options).

Only ``argparse`` is imported at the top: the parser is built on every ``parley`` command.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from parley.cli.importing.convert import Report
    from parley.cli.importing.sources import Source
    from parley.config import Settings
    from parley.store.db import Database

FAILED = 1
BAD_INPUT = 2


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``import`` to the ``parley`` subcommands; the caller adds the database options."""
    parser = subparsers.add_parser(
        "import",
        help="bring an Assistants API's assistants and threads into Parley",
        description="Import assistants, threads, messages and runs (with their tool calls) "
        "from a server that speaks the Assistants API, or from a folder of JSON files in "
        "its shapes, into the database for one user. Running it again adds only what is "
        "new. See docs/import.md.",
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--from-url", metavar="URL", help="the source server (its /v1 is added)")
    where.add_argument("--from-dir", type=Path, metavar="DIR", help="a folder of JSON files")
    parser.add_argument("--api-key", metavar="KEY", help="the source server's API key")
    parser.add_argument(
        "--thread",
        action="append",
        default=[],
        metavar="ID",
        help="a thread of the source to import (repeatable; default: every thread the "
        "source lists: a folder's, or a Parley server's own list)",
    )
    parser.add_argument(
        "--threads-file", type=Path, metavar="FILE", help="a file of thread ids, one a line"
    )
    parser.add_argument(
        "--user", metavar="USER_ID", help="the Parley user (default: the only user, or admin)"
    )
    parser.add_argument(
        "--origin",
        metavar="NAME",
        help="what the imported ids derive from (default: the URL, or the folder's path); "
        "give the same one to import the same data again from elsewhere",
    )
    parser.add_argument(
        "--max-file-mb",
        type=float,
        default=64.0,
        metavar="MB",
        help="the largest JSON file read from a folder (default 64)",
    )
    return parser  # type: ignore[no-any-return]


def run(settings: Settings, args: argparse.Namespace) -> int:
    import asyncio

    from parley.cli.importing.sources import ImportFailure

    if args.from_url is not None and not args.api_key:
        _error("--from-url needs --api-key")
        return BAD_INPUT
    try:
        return asyncio.run(_import(settings, args))
    except ImportFailure as exc:
        _error(str(exc))
        return FAILED


def _error(text: str) -> None:
    from parley.controls import clean

    print(f"parley import: {clean(text)}", file=sys.stderr)


def _source(args: argparse.Namespace) -> Source:
    from parley.cli.importing.sources import DirSource, ImportFailure, UrlSource

    given = list(args.thread)
    if args.threads_file is not None:
        try:
            lines = args.threads_file.read_text().splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise ImportFailure(f"{args.threads_file}: cannot read it ({exc})") from None
        given += [s for line in lines if (s := line.split("#")[0].strip())]
    if args.from_dir is not None:
        return DirSource(
            args.from_dir,
            thread_ids=given,
            origin=args.origin,
            max_bytes=int(args.max_file_mb * 1024 * 1024),
        )
    return UrlSource(args.from_url, args.api_key, thread_ids=given, origin=args.origin)


async def _import(settings: Settings, args: argparse.Namespace) -> int:
    from parley.cli.importing.writer import NoUser, pick_user
    from parley.store.db import Database
    from parley.store.local import private_database

    source = _source(args)
    private_database(settings.database_url)
    db = Database(settings.database_url)
    try:
        await db.migrate()
        try:
            user_id = await db.write(pick_user, user_id=args.user)
        except NoUser as exc:
            _error(str(exc))
            return BAD_INPUT
        report = await _bring(source, db, user_id, args)
    finally:
        await source.aclose()
        await db.dispose()
    _print_report(report)
    return FAILED if report.failed_threads else 0


async def _bring(source: Source, db: Database, user_id: str, args: argparse.Namespace) -> Report:
    from parley.cli.importing.convert import Ids, Report, assistant_values, plan_thread, spread
    from parley.cli.importing.sources import ImportFailure
    from parley.cli.importing.writer import write_assistants, write_thread
    from parley.controls import clean
    from parley.store.db import now

    ids = Ids(user_id=user_id, origin=source.origin)
    report = Report()
    at = now()
    found = await source.assistants()
    rows = sorted((assistant_values(a, ids, report, at) for a in found), key=_created)
    for row, stamp in zip(rows, spread([r["created_at"] for r in rows]), strict=True):
        row["created_at"] = stamp
    report.assistants = await db.write(write_assistants, rows=rows)
    report.assistants_present = len(rows) - report.assistants
    print(f"assistants: {len(rows)} found, {report.assistants} new", flush=True)
    thread_ids = await source.thread_ids()
    for thread_id in thread_ids:
        try:
            thread = await source.thread(thread_id)
            messages = await source.messages(thread_id)
            runs = await source.runs(thread_id)
            steps = {r["id"]: await source.steps(thread_id, r["id"]) for r in runs}
        except ImportFailure as exc:
            report.failed_threads.append(thread_id)
            _error(f"thread {thread_id}: {exc}")
            continue
        plan = plan_thread(thread, messages, runs, steps, ids=ids, report=report, at=at)
        written = await db.write(write_thread, user_id=user_id, plan=plan)
        report.threads += written.new_thread
        report.threads_present += not written.new_thread
        report.messages += written.messages
        report.runs += written.runs
        report.tool_calls += written.tool_calls
        state = "new" if written.new_thread else "already there"
        print(
            clean(
                f"thread {thread_id} -> {plan.id} ({state}): {len(messages)} messages and "
                f"{len(runs)} runs read, {written.messages} messages and {written.runs} runs "
                "added"
            ),
            flush=True,
        )
    return report


def _created(row: dict[str, Any]) -> float:
    return float(row["created_at"])


def _print_report(report: Report) -> None:
    from parley.controls import clean

    print(
        f"imported: {report.assistants} assistants ({report.assistants_present} already "
        f"there), {report.threads} threads ({report.threads_present} already there), "
        f"{report.messages} messages, {report.tool_calls} tool calls, {report.runs} runs"
    )
    if report.skipped:
        print("skipped:")
        for reason, count in sorted(report.skipped.items()):
            print(clean(f"  {count} x {reason}"))
    if report.failed_threads:
        print(f"failed: {len(report.failed_threads)} threads (see above; run again to finish)")
