"""``Engine.profile``: what a model can do, asked once, from the providers configured."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path

import pytest

from parley.config import Settings
from parley.engine import Engine, ModelProfile
from parley.errors import InvalidRequest
from parley.events import ModelEvent
from parley.providers.base import ModelRequest
from parley.providers.registry import ProviderRegistry
from parley.store.db import Database

CONFIG = """
[providers.claude]
kind = "anthropic"
base_url = "http://127.0.0.1:9"
api_key = "k"

[providers.oai]
kind = "openai-chat"
base_url = "http://127.0.0.1:9"
api_key = "k"

[providers.oai.models.house-model]
context_window = 32000
"""


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PARLEY_CONFIG", "PARLEY_DEFAULT_PROVIDER", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
async def engine(db: Database, tmp_path: Path) -> AsyncIterator[Engine]:
    path = tmp_path / "parley.toml"
    path.write_text(CONFIG)
    settings = Settings(config=path, default_provider="oai")
    registry = ProviderRegistry(settings)
    yield Engine(db, registry, settings)
    await registry.aclose()


def test_a_name_without_a_provider_is_profiled_as_the_default_provider_s(engine: Engine) -> None:
    profile = engine.profile("house-model")
    assert profile == ModelProfile(
        qualified="oai/house-model",
        provider="oai",
        model_id="house-model",
        kind="openai-chat",
        window=32000,
        refused=frozenset(),
        hands_back_state=False,
        timeouts=(120.0, 60.0),
        adapter=profile.adapter,
    )
    assert profile.adapter is engine.providers.resolve("house-model")[0]
    assert profile.json_output and profile.prompt_cache_retention
    assert not profile.refuses("seed")


def test_what_an_api_cannot_be_asked_is_in_the_profile(engine: Engine) -> None:
    profile = engine.profile("claude/claude-sonnet-4-5")
    assert (profile.qualified, profile.kind, profile.model_id) == (
        "claude/claude-sonnet-4-5",
        "anthropic",
        "claude-sonnet-4-5",
    )
    assert profile.refuses("seed") and not profile.refuses("stop")
    assert not profile.prompt_cache_retention
    assert profile.hands_back_state
    assert profile.window == engine.providers.context_window("claude/claude-sonnet-4-5")


class NoJson:
    """An adapter whose API has no JSON output format and no seed."""

    refused_options = frozenset({"json", "seed"})

    def stream(self, request: ModelRequest) -> AsyncGenerator[ModelEvent, None]:
        raise AssertionError("a profile calls no model")


async def test_a_model_without_json_output_says_so(db: Database) -> None:
    registry = ProviderRegistry(Settings(default_provider=""), overrides={"plain": NoJson()})
    profile = Engine(db, registry, Settings()).profile("plain/m")
    assert (profile.kind, profile.qualified, profile.provider) == ("test", "plain/m", "plain")
    assert not profile.json_output and profile.refuses("json") and profile.refuses("seed")
    assert not profile.hands_back_state
    await registry.aclose()


def test_the_demo_model_takes_anything_and_has_no_known_window(engine: Engine) -> None:
    profile = engine.profile("demo/parley")
    assert (profile.kind, profile.window, profile.refused) == ("demo", None, frozenset())
    assert profile.json_output and not profile.prompt_cache_retention


@pytest.mark.parametrize("model", ["nope/x", "demo/", ""])
def test_an_unknown_model_is_refused_as_a_turn_of_it_would_be(engine: Engine, model: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        engine.profile(model)
    with pytest.raises(InvalidRequest) as checked:
        engine.providers.check_model(model)
    error, expected = refused.value, checked.value
    assert (error.code, error.message, error.param) == (
        expected.code,
        expected.message,
        expected.param,
    )
    assert error.code == "unknown_model"
