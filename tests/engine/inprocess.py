"""The engine in-process, for the tests that drive it without a server: started on a fresh
database (``tests.harness.FreshDatabase``: SQLite, or PostgreSQL with
``PARLEY_TEST_DATABASE_URL``) with providers at the edge, and a user with an assistant."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from parley.config import Settings
from parley.engine import Engine
from parley.providers.registry import ProviderRegistry
from parley.store import assistants, users
from parley.store.db import Database
from parley.store.records import Assistant, User
from tests.harness import FreshDatabase


@contextlib.asynccontextmanager
async def running_engine(
    tmp: Path, providers: dict[str, Any], **settings: Any
) -> AsyncIterator[Engine]:
    """An engine started on a fresh database, ``providers`` answering for their model
    prefixes and ``settings`` over the defaults; stopped, and its database dropped, after."""
    fresh = FreshDatabase(tmp)
    config = Settings(database_url=fresh.url, **settings)
    db = Database(config.database_url)
    await db.migrate()
    registry = ProviderRegistry(config, overrides=providers)
    engine = Engine(db, registry, config)
    await engine.start()
    try:
        yield engine
    finally:
        await engine.stop()
        await registry.aclose()
        await db.dispose()
        fresh.drop()


async def user_and_assistant(engine: Engine, model: str) -> tuple[User, Assistant]:
    """A new user, and an assistant of theirs on ``model`` with nothing else set."""
    user = await engine.db.write(lambda c: users.create_user(c, name="u"))
    bot = await engine.db.write(
        lambda c: assistants.create_assistant(
            c,
            user_id=user.id,
            name="b",
            model=model,
            instructions=None,
            tools=[],
            parameters={},
            metadata={},
        )
    )
    return user, bot
