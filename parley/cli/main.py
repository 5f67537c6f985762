"""The ``parley`` command: ``serve``, ``run`` and ``users create``."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from parley import __version__
from parley.config import ConfigError, Settings


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    for name in ("host", "port", "database_url", "config"):
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = value
    return Settings(**overrides)


def _add_server_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port to listen on (default 8700)")
    _add_db_options(p)


def _add_db_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--database-url", help="SQLAlchemy URL (env PARLEY_DATABASE_URL)")
    p.add_argument("--config", type=Path, help="TOML config file (env PARLEY_CONFIG)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="parley", description="Self-hostable assistants platform."
    )
    parser.add_argument("--version", action="version", version=f"parley {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the HTTP API server")
    _add_server_options(serve)

    run = sub.add_parser("run", help="serve on the embedded defaults, with a local API key")
    _add_server_options(run)

    models = sub.add_parser("models", help="list providers, whether each is ready, and models")
    _add_db_options(models)

    users = sub.add_parser("users", help="manage users")
    users_sub = users.add_subparsers(dest="users_command", required=True)
    create = users_sub.add_parser("create", help="create a user; prints its API key last")
    create.add_argument("name")
    create.add_argument("--admin", action="store_true", help="make the user an admin")
    _add_db_options(create)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = _settings(args)
        settings.provider_configs()  # fail early on a broken config file
        if args.command in ("serve", "run") and settings.redis_url:
            _check_redis(settings.redis_url)
        if args.command == "serve":
            from parley.cli.serve import serve

            return serve(settings)
        if args.command == "run":
            from parley.cli.serve import run_local

            return run_local(settings)
        if args.command == "models":
            return asyncio.run(_print_models(settings))
        if args.command == "users":
            return asyncio.run(_create_user(settings, args.name, args.admin))
    except ConfigError as exc:
        print(f"parley: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl+C: the server has already shut down cleanly
        return 130
    return 2


def _check_redis(url: str) -> None:
    import redis

    try:
        with redis.Redis.from_url(url, socket_connect_timeout=5) as client:
            client.ping()
    except (redis.RedisError, OSError, ValueError) as exc:
        raise ConfigError(f"cannot reach Redis at PARLEY_REDIS_URL ({exc})") from None


async def _print_models(settings: Settings) -> int:
    from parley.providers.catalog import describe
    from parley.providers.registry import ProviderRegistry

    registry = ProviderRegistry(settings)
    try:
        catalog = await describe(registry)
    finally:
        await registry.aclose()
    width = max(len(p["name"]) for p in catalog["providers"])
    for provider in catalog["providers"]:
        state = "ready" if provider["ready"] else "not ready"
        note = f" ({provider['problem']})" if provider["problem"] else ""
        print(f"{provider['name']:<{width}}  {provider['kind']:<12} {state}{note}")
        for model in catalog["data"]:
            if model["provider"] == provider["name"]:
                print(f"{'':<{width}}    {model['id']}")
    return 0


async def _create_user(settings: Settings, name: str, admin: bool) -> int:
    from sqlalchemy.engine import Connection

    from parley.store import users as user_store
    from parley.store.db import Database
    from parley.store.records import User

    db = Database(settings.database_url)
    try:
        await db.migrate()

        def create(conn: Connection) -> tuple[User, str]:
            user = user_store.create_user(conn, name=name, is_admin=admin)
            return user, user_store.create_api_key(conn, user_id=user.id)[1]

        user, secret = await db.write(create)
    finally:
        await db.dispose()
    print(f"created user {user.name} ({user.id}){' as admin' if admin else ''}")
    print(secret)
    return 0


if __name__ == "__main__":
    sys.exit(main())
