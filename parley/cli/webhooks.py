"""``parley webhooks``: a user's webhook endpoints and their deliveries, managed on the
database directly (the server's, from ``--database-url``/``--config`` or the environment),
as ``parley users`` and ``parley keys`` are. Every command names the user (``--user``).

A new endpoint's URL passes the same address rules as the API's (public addresses, and what
``PARLEY_WEBHOOK_ALLOW_URLS`` adds), checked after DNS. A secret is printed as the last line
of stdout, when an endpoint is made and when its secret is rotated; never again.

Exit codes: 0 done; 1 no such user, endpoint or delivery; 2 bad input (a URL refused, an
unknown event). Errors are one line on stderr.

Only ``argparse`` is imported at the top: the parser is built on every ``parley`` command.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from parley.cli.database import on_database

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from parley.config import Settings

#: Exit codes.
NOT_FOUND = 1
BAD_INPUT = 2


def add_parser(
    subparsers: Any, add_db_options: Callable[[argparse.ArgumentParser], None]
) -> argparse.ArgumentParser:
    """Add ``webhooks`` to the ``parley`` subcommands."""
    hooks = subparsers.add_parser(
        "webhooks",
        help="manage users' webhook endpoints",
        description="Webhook endpoints receive the ends of a user's background responses and "
        "runs (docs/webhooks.md).",
    )
    sub = hooks.add_subparsers(dest="webhooks_command", required=True)
    create = sub.add_parser("create", help="add an endpoint; prints its secret last")
    create.add_argument("--url", required=True)
    create.add_argument(
        "--events",
        required=True,
        help="comma-separated: response.completed, thread.run.failed, ...",
    )
    create.add_argument("--description")
    listed = sub.add_parser("list", help="list the user's endpoints")
    delete = sub.add_parser("delete", help="delete an endpoint and its deliveries")
    delete.add_argument("webhook_id", metavar="WEBHOOK_ID")
    rotate = sub.add_parser("rotate-secret", help="give an endpoint a new secret; prints it")
    rotate.add_argument("webhook_id", metavar="WEBHOOK_ID")
    deliveries = sub.add_parser("deliveries", help="an endpoint's deliveries, newest first")
    deliveries.add_argument("webhook_id", metavar="WEBHOOK_ID")
    deliveries.add_argument("--limit", type=int, default=20, help="at most this many (20)")
    replay = sub.add_parser("replay", help="send a delivery again")
    replay.add_argument("webhook_id", metavar="WEBHOOK_ID")
    replay.add_argument("delivery_id", metavar="DELIVERY_ID")
    for command in (create, listed, delete, rotate, deliveries, replay):
        command.add_argument("--user", required=True, metavar="USER_ID", help="whose endpoints")
        command.add_argument("--json", action="store_true", help="print JSON")
        add_db_options(command)
    return hooks  # type: ignore[no-any-return]


def run(settings: Settings, args: argparse.Namespace) -> int:
    from parley.errors import InvalidRequest, NotFound

    try:
        return _run(settings, args)
    except NotFound as exc:
        print(f"parley webhooks: {exc.message}", file=sys.stderr)
        return NOT_FOUND
    except InvalidRequest as exc:
        print(f"parley webhooks: {exc.message}", file=sys.stderr)
        return BAD_INPUT


def _run(settings: Settings, args: argparse.Namespace) -> int:
    import asyncio

    from parley.store import webhooks as store
    from parley.store.db import now
    from parley.store.pagination import ListQuery
    from parley.store.users import get_user
    from parley.webhooks.delivery import webhook_policy
    from parley.webhooks.endpoints import check_endpoint, delivery_public, endpoint_public

    user_id: str = args.user
    command: str = args.webhooks_command
    found: Any
    if command == "create":
        events = [e.strip() for e in args.events.split(",") if e.strip()]
        events = asyncio.run(check_endpoint(webhook_policy(settings), args.url, events))

        def create(conn: Connection) -> Any:
            get_user(conn, user_id=user_id)
            return store.create_endpoint(
                conn, user_id=user_id, url=args.url, events=events, description=args.description
            )

        made = on_database(settings, create)
        return _secret_shown(endpoint_public(made, with_secret=True), args.json)
    if command == "rotate-secret":
        found = on_database(
            settings,
            lambda c: store.rotate_secret(c, user_id=user_id, endpoint_id=args.webhook_id),
        )
        return _secret_shown(endpoint_public(found, with_secret=True), args.json)
    if command == "list":
        found = on_database(
            settings, lambda c: store.list_endpoints(c, user_id=user_id), read_only=True
        )
        shown = [endpoint_public(e) for e in found]
        if args.json:
            print(json.dumps(shown, indent=2))
        for e in [] if args.json else shown:
            print(f"{e['id']}  {e['url']}  {','.join(e['events'])}")
        return 0
    if command == "delete":
        on_database(
            settings,
            lambda c: store.delete_endpoint(c, user_id=user_id, endpoint_id=args.webhook_id),
        )
        print(json.dumps({"id": args.webhook_id, "deleted": True}) if args.json else "deleted")
        return 0
    if command == "deliveries":
        page = ListQuery(limit=max(1, min(args.limit, 100)), order="desc")
        found, _ = on_database(
            settings,
            lambda c: store.list_deliveries(
                c, user_id=user_id, endpoint_id=args.webhook_id, page=page
            ),
            read_only=True,
        )
        shown = [delivery_public(d, attempts) for d, attempts in found]
        if args.json:
            print(json.dumps(shown, indent=2))
        for d in [] if args.json else shown:
            last = d["last_status_code"] or d["last_error"] or "-"
            print(f"{d['id']}  {d['event_type']}  {d['status']}  attempts={d['attempts']}  {last}")
        return 0
    # replay
    found = on_database(
        settings,
        lambda c: store.replay(
            c,
            user_id=user_id,
            endpoint_id=args.webhook_id,
            delivery_id=args.delivery_id,
            retry_until=now() + settings.webhook_retry_hours * 3600,
        ),
    )
    shown_one = delivery_public(found, [])
    print(json.dumps(shown_one, indent=2) if args.json else f"{found.id} {found.status}")
    return 0


def _secret_shown(endpoint: dict[str, Any], as_json: bool) -> int:
    if as_json:
        print(json.dumps(endpoint, indent=2))
    else:
        print(f"{endpoint['id']}  {endpoint['url']}  {','.join(endpoint['events'])}")
        print(endpoint["secret"])
    return 0
