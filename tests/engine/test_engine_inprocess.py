"""The engine driven in-process, on a real database, with a provider at the edge."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from parley.config import Settings
from parley.engine import Engine
from parley.events import FinishPart, ModelEvent, TextPart
from parley.providers.base import ModelRequest
from parley.providers.registry import ProviderRegistry
from parley.store import assistants, users
from parley.store.db import Database
from tests.harness import FreshDatabase


class Scripted:
    """A provider that streams the given text pieces."""

    def __init__(self, *pieces: str) -> None:
        self.pieces = pieces

    async def stream(self, request: ModelRequest) -> AsyncGenerator[ModelEvent, None]:
        for piece in self.pieces:
            yield TextPart(piece)
        yield FinishPart("stop")


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    fresh = FreshDatabase(tmp_path)
    settings = Settings(database_url=fresh.url)
    db = Database(settings.database_url)
    await db.migrate()
    registry = ProviderRegistry(settings, overrides={"script": Scripted("a\x00b", " end")})
    eng = Engine(db, registry, settings)
    await eng.start()
    yield eng
    await eng.stop()
    await registry.aclose()
    await db.dispose()
    fresh.drop()


async def _assistant(engine: Engine, model: str) -> Any:
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


async def test_model_text_with_nul_is_stored_with_a_replacement_character(engine: Engine) -> None:
    user, bot = await _assistant(engine, "script/x")
    turn = await engine.start_first_turn(user_id=user.id, assistant_id=bot.id, content="hi")
    result = await turn.result()
    assert result.run.status == "completed"
    assert result.message is not None
    assert result.message.content == "a\ufffdb end"
