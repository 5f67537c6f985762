"""``parley users`` and ``parley keys``: users and API keys, managed on the database directly
(the server's, from ``--database-url``/``--config`` or the environment), as an admin would.

Exit codes: 0 done; 1 no such user or key; 2 bad input (an expiry that cannot be read or
is past, a negative budget). Errors are one line on stderr. A secret is printed once, as
the last line of stdout, when a key is made; never again.

A server remembers the keys it has seen for ``auth_cache_seconds``: a key revoked or a user
disabled here is refused by running servers within that many seconds. A key's expiry is
checked at every use.

Only ``argparse`` is imported at the top: the parser is built on every ``parley`` command.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from parley.cli.database import on_database
from parley.cli.durations import seconds_of

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from parley.config import Settings
    from parley.store.records import ApiKey, User

#: Exit codes.
NOT_FOUND = 1
BAD_INPUT = 2


class BadInput(ValueError):
    """A value given on the command line that cannot be used (exit 2)."""


def add_parsers(subparsers: Any, add_db_options: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add ``users`` and ``keys`` to the ``parley`` subcommands; ``add_db_options`` adds
    ``--database-url`` and ``--config`` to each command."""
    users = subparsers.add_parser("users", help="manage users")
    users_sub = users.add_subparsers(dest="users_command", required=True)
    create = users_sub.add_parser("create", help="create a user; prints its API key last")
    create.add_argument("name")
    create.add_argument("--admin", action="store_true", help="make the user an admin")
    listed = users_sub.add_parser("list", help="list users, with their active keys counted")
    listed.add_argument("--json", action="store_true", help="print the users as JSON")
    disable = users_sub.add_parser("disable", help="refuse every key of a user")
    disable.add_argument("user_id", metavar="USER_ID")
    enable = users_sub.add_parser("enable", help="let a disabled user's keys work again")
    enable.add_argument("user_id", metavar="USER_ID")
    for command in (create, listed, disable, enable):
        add_db_options(command)

    keys = subparsers.add_parser("keys", help="manage API keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    make = keys_sub.add_parser("create", help="create an API key for a user; prints it last")
    make.add_argument("--user", required=True, metavar="USER_ID", help="the key's user")
    make.add_argument(
        "--expires",
        metavar="WHEN",
        help="when the key stops working: a duration from now (30d, 12h, 90m, 2w), a day "
        "(2026-12-31: at 00:00 UTC) or an ISO date and time (UTC unless it says)",
    )
    make.add_argument(
        "--daily-tokens",
        metavar="N",
        help="input plus output tokens the key may use per UTC day (default: no budget)",
    )
    show = keys_sub.add_parser("list", help="list API keys (never their secrets)")
    show.add_argument("--user", metavar="USER_ID", help="only this user's keys")
    show.add_argument("--json", action="store_true", help="print the keys as JSON")
    revoke = keys_sub.add_parser("revoke", help="revoke an API key")
    revoke.add_argument("key_id", metavar="KEY_ID")
    for command in (make, show, revoke):
        add_db_options(command)


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Run ``parley users ...`` or ``parley keys ...``."""
    from parley.errors import NotFound

    sub = args.users_command if args.command == "users" else args.keys_command
    prog = f"parley {args.command} {sub}"
    try:
        if args.command == "users":
            return _users(settings, args)
        return _keys(settings, args)
    except BadInput as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return BAD_INPUT
    except NotFound as exc:
        print(f"{prog}: {exc.message}", file=sys.stderr)
        return NOT_FOUND


# ---------------------------------------------------------------------------- users


def _users(settings: Settings, args: argparse.Namespace) -> int:
    from parley.store import users as user_store

    command = args.users_command
    if command == "create":
        return _create_user(settings, args.name, args.admin)
    if command == "list":
        summaries = on_database(settings, user_store.list_users)
        if args.json:
            rows = [{**_user_json(s.user), "active_keys": s.active_keys} for s in summaries]
            print(json.dumps(rows, indent=2))
        else:
            print(_users_table([(s.user, s.active_keys) for s in summaries]))
        return 0
    disabled = command == "disable"

    def change(conn: Connection) -> User:
        return user_store.set_user_disabled(conn, user_id=args.user_id, disabled=disabled)

    user = on_database(settings, change)
    print(f"{'disabled' if disabled else 'enabled'} user {user.name} ({user.id})")
    return 0


def _create_user(settings: Settings, name: str, admin: bool) -> int:
    from parley.store import users as user_store

    def create(conn: Connection) -> tuple[User, str]:
        user = user_store.create_user(conn, name=name, is_admin=admin)
        return user, user_store.create_api_key(conn, user_id=user.id)[1]

    user, secret = on_database(settings, create)
    print(f"created user {user.name} ({user.id}){' as admin' if admin else ''}")
    print(secret)  # the last line: scripts read the key from it
    return 0


def _user_json(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "name": user.name,
        "is_admin": user.is_admin,
        "created_at": int(user.created_at),
        "disabled_at": _int(user.disabled_at),
    }


def _users_table(users: list[tuple[User, int]]) -> str:
    from parley.controls import clean

    rows = [("ID", "NAME", "ADMIN", "STATUS", "KEYS", "CREATED")]
    for user, keys in users:
        status = "disabled" if user.disabled_at is not None else "active"
        admin = "yes" if user.is_admin else "no"
        rows.append((user.id, user.name, admin, status, str(keys), _when(user.created_at)))
    return clean(_table(rows))


# ----------------------------------------------------------------------------- keys


def _keys(settings: Settings, args: argparse.Namespace) -> int:
    from parley.store import users as user_store
    from parley.store.db import now

    command = args.keys_command
    if command == "create":
        expires_at = None if args.expires is None else parse_expiry(args.expires, now())
        budget = None if args.daily_tokens is None else parse_budget(args.daily_tokens)

        def create(conn: Connection) -> tuple[User, ApiKey, str]:
            user = user_store.get_user(conn, user_id=args.user)
            key, secret = user_store.create_api_key(
                conn, user_id=user.id, expires_at=expires_at, daily_token_budget=budget
            )
            return user, key, secret

        user, key, secret = on_database(settings, create)
        terms = []
        if key.expires_at is not None:
            terms.append(f"expires {_when(key.expires_at)}")
        if key.daily_token_budget is not None:
            terms.append(f"{key.daily_token_budget:,} tokens a day")
        extra = f"; {', '.join(terms)}" if terms else ""
        print(f"created key {key.id} for user {user.name} ({user.id}){extra}")
        print(secret)  # the last line: scripts read the key from it
        return 0
    if command == "list":

        def listed(conn: Connection) -> list[ApiKey]:
            if args.user is not None:
                user_store.get_user(conn, user_id=args.user)
            return user_store.list_api_keys(conn, user_id=args.user)

        keys = on_database(settings, listed)
        at = now()
        if args.json:
            print(json.dumps([_key_json(k, at) for k in keys], indent=2))
        else:
            print(_keys_table(keys, at))
        return 0

    def revoke(conn: Connection) -> ApiKey:
        return user_store.revoke_api_key(conn, user_id=None, key_id=args.key_id)

    key = on_database(settings, revoke)
    print(f"revoked key {key.id} ({key.prefix}…) of user {key.user_id}")
    return 0


def key_status(key: ApiKey, at: float) -> str:
    """``revoked``, ``expired`` or ``active`` at ``at``."""
    if key.revoked_at is not None:
        return "revoked"
    if key.expires_at is not None and key.expires_at <= at:
        return "expired"
    return "active"


def _key_json(key: ApiKey, at: float) -> dict[str, Any]:
    return {
        "id": key.id,
        "user_id": key.user_id,
        "prefix": key.prefix,
        "status": key_status(key, at),
        "created_at": int(key.created_at),
        "last_used_at": _int(key.last_used_at),
        "expires_at": _int(key.expires_at),
        "revoked_at": _int(key.revoked_at),
        "daily_token_budget": key.daily_token_budget,
    }


def _keys_table(keys: list[ApiKey], at: float) -> str:
    from parley.controls import clean

    rows = [("ID", "USER", "PREFIX", "STATUS", "CREATED", "LAST USED", "EXPIRES", "DAILY TOKENS")]
    for key in keys:
        budget = "-" if key.daily_token_budget is None else f"{key.daily_token_budget:,}"
        rows.append(
            (
                key.id,
                key.user_id,
                key.prefix + "…",
                key_status(key, at),
                _when(key.created_at),
                _when(key.last_used_at),
                _when(key.expires_at),
                budget,
            )
        )
    return clean(_table(rows))


# ---------------------------------------------------------------------------- input


def parse_expiry(text: str, at: float) -> float:
    """The Unix time ``text`` names, after ``at``: a duration from ``at`` (``30d``,
    ``12h``, ``1d12h``; units s, m, h, d, w), a day (``2026-12-31``, its 00:00 UTC) or an
    ISO date and time (UTC unless it gives an offset).

    Raises:
        BadInput: ``text`` is none of these, or not after ``at``.
    """
    seconds = seconds_of(text)
    if seconds is not None:
        when = at + seconds
    else:
        try:
            moment = datetime.fromisoformat(text.strip())
        except ValueError:
            raise BadInput(
                f"--expires {text!r}: use a duration (30d, 12h, 90m), a day (2026-12-31) "
                "or an ISO date and time"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        when = moment.timestamp()
    if when <= at:
        raise BadInput(f"--expires {text!r} is not in the future")
    return when


def parse_budget(text: str) -> int:
    """A daily token budget: a whole number, 0 or more (``_`` and ``,`` may group digits).

    Raises:
        BadInput: anything else.
    """
    digits = text.strip().replace("_", "").replace(",", "")
    if not digits.isdigit() or not digits.isascii() or len(digits) > 18:
        raise BadInput(f"--daily-tokens {text!r}: give a whole number of tokens, 0 or more")
    return int(digits)


# ---------------------------------------------------------------------------- output


def _int(value: float | None) -> int | None:
    return None if value is None else int(value)


def _when(value: float | None) -> str:
    if value is None:
        return "-"
    return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )
