"""``catalog.describe``: a provider is ready only when it answers (``GET /v1/models`` and
``parley models`` both show it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from parley.config import Settings
from parley.providers.catalog import describe
from parley.providers.registry import ProviderRegistry
from parley.testing.fake_ollama import FakeOllama
from parley.testing.fake_upstream import FakeUpstream
from tests.harness import free_port


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OLLAMA_HOST", "OPENAI_API_KEY", "OPENAI_BASE_URL", "PARLEY_CONFIG"):
        monkeypatch.delenv(name, raising=False)


async def _providers(tmp_path: Path, toml: str) -> dict[str, dict[str, Any]]:
    path = tmp_path / "parley.toml"
    path.write_text(toml)
    registry = ProviderRegistry(Settings(config=path))
    try:
        catalog = await describe(registry)
    finally:
        await registry.aclose()
    return {p["name"]: p for p in catalog["providers"]}


async def test_an_ollama_that_answers_is_ready_one_that_does_not_is_not(tmp_path: Path) -> None:
    async with FakeOllama(tags={"models": [{"name": "llama3:8b"}]}) as ollama:
        providers = await _providers(
            tmp_path,
            f'[providers.up]\nkind = "ollama"\nbase_url = "{ollama.base_url}"\n'
            f'[providers.down]\nkind = "ollama"\nbase_url = "http://127.0.0.1:{free_port()}"\n',
        )
    assert providers["up"]["ready"] is True and providers["up"]["problem"] is None
    assert providers["up"]["models_listed"] is True
    down = providers["down"]
    assert down["ready"] is False and down["models_listed"] is False
    assert down["problem"].startswith("Could not connect to the Ollama server"), down


async def test_a_provider_whose_list_fails_with_an_http_error_stays_ready(
    tmp_path: Path, fake: FakeUpstream
) -> None:
    """An OpenAI-compatible server whose ``GET /models`` answers an HTTP error answers:
    ready, its models not listed, and the error said."""
    fake.listing_fault = "error"
    providers = await _providers(tmp_path, _openai_chat(fake.base_url))
    assert providers["p"]["ready"] is True and providers["p"]["models_listed"] is False
    assert "HTTP 500" in providers["p"]["problem"], providers["p"]


async def test_a_provider_that_lists_its_models_is_ready(
    tmp_path: Path, fake: FakeUpstream
) -> None:
    providers = await _providers(tmp_path, _openai_chat(fake.base_url))
    assert providers["p"] == {
        "name": "p",
        "kind": "openai-chat",
        "ready": True,
        "problem": None,
        "models_listed": True,
    }


async def test_an_unreachable_openai_compatible_server_is_not_ready(tmp_path: Path) -> None:
    providers = await _providers(tmp_path, _openai_chat(f"http://127.0.0.1:{free_port()}/v1"))
    assert providers["p"]["ready"] is False
    assert providers["p"]["problem"].startswith("Could not connect"), providers["p"]


def _openai_chat(base_url: str) -> str:
    return (
        f'[providers.p]\nkind = "openai-chat"\nbase_url = "{base_url}"\n'
        'api_key = "sk-fake"\nmax_retries = 0\n'
    )
