from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from parley.config import BUILTIN_PROVIDERS, ConfigError, Settings
from parley.errors import InvalidRequest
from parley.events import ModelEvent, TextPart
from parley.providers.accumulator import AnswerAccumulator
from parley.providers.base import ChatMessage, ModelRequest
from parley.providers.demo import DemoProvider
from parley.providers.openai_chat import OpenAIChatProvider
from parley.providers.registry import ProviderRegistry
from parley.testing.fake_upstream import FakeUpstream, expected_text
from parley.types import Role
from tests.providers.helpers import no_resource_warnings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "PARLEY_CONFIG", "PARLEY_DEFAULT_PROVIDER"):
        monkeypatch.delenv(name, raising=False)


def settings_with(tmp_path: Path, toml: str, **fields: Any) -> Settings:
    path = tmp_path / "parley.toml"
    path.write_text(toml)
    return Settings(config=path, **fields)


class EchoProvider:
    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        yield TextPart(request.model)


def invalid(registry: ProviderRegistry, model: str) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as info:
        registry.resolve(model)
    with pytest.raises(InvalidRequest):
        registry.check_model(model)
    return info.value


async def test_demo_is_always_there() -> None:
    registry = ProviderRegistry(Settings())
    provider, model_id = registry.resolve("demo/any-thing/with/slashes")
    assert isinstance(provider, DemoProvider)
    assert model_id == "any-thing/with/slashes"
    assert registry.resolve("demo/other")[0] is provider  # built once
    assert "demo" in registry.names
    await registry.aclose()


@pytest.mark.parametrize("model", ["/x", "demo/", "", "nope/x"])
def test_unknown_models(model: str) -> None:
    error = invalid(ProviderRegistry(Settings()), model)
    assert error.code == "unknown_model"
    assert "demo" in error.message  # lists the configured providers


# ----------------------------------------------------- names without a provider


@pytest.mark.parametrize("model", ["demo", "gpt-4o"])
def test_without_a_default_provider_every_model_names_its_provider(model: str) -> None:
    error = invalid(ProviderRegistry(Settings(default_provider="")), model)
    assert error.code == "unknown_model"
    assert error.message.startswith(f"Unknown model {model!r}: name it as provider/model-id")


async def test_a_name_without_a_slash_is_a_model_of_the_default_provider() -> None:
    echo = EchoProvider()
    registry = ProviderRegistry(Settings(default_provider="fake"), overrides={"fake": echo})
    assert registry.resolve("some-model") == (echo, "some-model")
    assert registry.check_model("some-model") == ("fake", "some-model")
    assert registry.qualified("some-model") == "fake/some-model"
    assert registry.provider_of("some-model") == "fake"
    assert registry.kind_of("some-model") == "test"
    # A name with a slash keeps its meaning: the first segment is the provider.
    assert registry.resolve("fake/a/b") == (echo, "a/b")
    assert isinstance(registry.resolve("demo/x")[0], DemoProvider)
    assert registry.qualified("demo/x") == "demo/x"
    await registry.aclose()


async def test_the_default_provider_is_openai(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    registry = ProviderRegistry(Settings())
    provider, model_id = registry.resolve("gpt-4o")
    assert isinstance(provider, OpenAIChatProvider) and model_id == "gpt-4o"
    assert registry.resolve("openai/gpt-4o")[0] is provider  # one provider, either name
    assert registry.kind_of("o3-mini") == "openai-chat"
    await registry.aclose()


def test_the_default_provider_without_its_key_says_what_to_do() -> None:
    error = invalid(ProviderRegistry(Settings()), "gpt-4o")
    assert error.code == "provider_not_configured"
    for said in ("'gpt-4o'", "default provider 'openai'", "OPENAI_API_KEY"):
        assert said in error.message
    assert "PARLEY_DEFAULT_PROVIDER" in error.message and "provider/model-id" in error.message
    # Named with its provider, the error is the provider's own.
    prefixed = invalid(ProviderRegistry(Settings()), "openai/gpt-4o")
    assert prefixed.code == "provider_not_configured"
    assert "OPENAI_API_KEY" in prefixed.message
    assert "PARLEY_DEFAULT_PROVIDER" not in prefixed.message


def test_an_unknown_default_provider_names_the_setting() -> None:
    registry = ProviderRegistry(Settings(default_provider="nosuch"))
    error = invalid(registry, "gpt-4o")
    assert error.code == "unknown_model"
    for said in ("'gpt-4o'", "'nosuch'", "PARLEY_DEFAULT_PROVIDER", "provider/model-id"):
        assert said in error.message
    assert "demo" in error.message  # the providers it may name
    assert registry.check_model("demo/x") == ("demo", "x")


def test_the_default_providers_timeouts(tmp_path: Path) -> None:
    toml = (
        '[providers.local]\nkind = "openai-chat"\nbase_url = "http://127.0.0.1:9/v1"\n'
        "first_token_timeout = 7\nidle_timeout = 3\n"
    )
    registry = ProviderRegistry(settings_with(tmp_path, toml, default_provider="local"))
    assert registry.timeouts("m") == (7.0, 3.0)
    assert registry.timeouts("local/m") == (7.0, 3.0)
    assert registry.timeouts("demo/m") != (7.0, 3.0)


def test_context_windows_from_the_config_then_the_built_in_table(tmp_path: Path) -> None:
    toml = (
        '[providers.local]\nkind = "openai-chat"\nbase_url = "http://127.0.0.1:9/v1"\n'
        '[providers.local.models."my-model"]\ncontext_window = 5000\n'
        '[providers.local.models."gpt-4o"]\ncontext_window = 64000\n'
    )
    registry = ProviderRegistry(settings_with(tmp_path, toml, default_provider="local"))
    window = registry.context_window
    assert window("local/my-model") == window("my-model") == 5000
    assert window("local/gpt-4o") == 64_000  # the config wins over the table
    assert window("openai/gpt-4o") == window("openai/gpt-4o-2024-08-06") == 128_000
    assert window("openai/gpt-4.1-mini") == 1_047_576
    assert window("openai/gpt-5") == window("openai/gpt-5.1") == 400_000
    assert window("openai/gpt-5-chat-latest") == 128_000
    assert window("openai/o3-mini") == window("openai/o4-mini") == 200_000
    assert window("anthropic/claude-sonnet-4-5-20250929") == 200_000
    assert window("anthropic/claude-3-5-haiku-latest") == 200_000
    assert window("gemini/gemini-2.5-flash") == 1_048_576
    assert window("deepseek/deepseek-reasoner") == 128_000
    assert window("ollama/llama3.1:8b") == 131_072
    assert window("ollama/llama3:latest") == 8_192
    assert window("openrouter/openai/gpt-4o-mini") == 128_000  # by its last part
    assert window("local/gpt-4ox") is None  # a prefix only at a boundary
    assert window("local/unknown-model") is None
    assert window("demo/gpt-4o") is None  # the demo model has no window


def test_a_context_window_must_be_positive(tmp_path: Path) -> None:
    toml = (
        '[providers.local]\nkind = "openai-chat"\nbase_url = "http://127.0.0.1:9/v1"\n'
        '[providers.local.models."m"]\ncontext_window = 0\n'
    )
    with pytest.raises(ConfigError):
        settings_with(tmp_path, toml).provider_configs()


async def _answer_text(registry: ProviderRegistry, model: str) -> str:
    """The text ``model`` answers "hi" with, through the registry; closes the registry."""
    try:
        provider, model_id = registry.resolve(model)
        acc = AnswerAccumulator()
        request = ModelRequest(model=model_id, messages=[ChatMessage(role=Role.USER, content="hi")])
        async for event in provider.stream(request):
            acc.add(event)
    finally:
        await registry.aclose()
    return acc.text


async def test_a_default_provider_of_the_config_file_streams_from_the_fake(
    tmp_path: Path, fake: FakeUpstream
) -> None:
    toml = f'[providers.local]\nkind = "openai-chat"\nbase_url = "{fake.base_url}"\n'
    registry = ProviderRegistry(settings_with(tmp_path, toml, default_provider="local"))
    assert await _answer_text(registry, "text:3") == expected_text(3)
    assert fake.requests[-1]["model"] == "text:3"


def test_check_model_splits_without_building() -> None:
    registry = ProviderRegistry(Settings())
    assert registry.check_model("demo/x") == ("demo", "x")


async def test_openai_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    registry = ProviderRegistry(Settings())
    assert {"demo", "openai"} <= set(registry.names)
    provider, model_id = registry.resolve("openai/gpt-4o-mini")
    assert isinstance(provider, OpenAIChatProvider)
    assert model_id == "gpt-4o-mini"
    await registry.aclose()


async def test_file_provider_streams_from_the_fake(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake: FakeUpstream
) -> None:
    monkeypatch.setenv("LOCAL_KEY", "sk-local")
    settings = settings_with(
        tmp_path,
        f'[providers.local]\nkind = "openai-chat"\nbase_url = "{fake.base_url}"\n'
        'api_key_env = "LOCAL_KEY"\nread_timeout = 5\n[providers.local.headers]\nX-Team = "a"\n',
    )
    registry = ProviderRegistry(settings)
    assert await _answer_text(registry, "local/text:3") == expected_text(3)
    assert fake.request_headers[-1]["authorization"] == "Bearer sk-local"
    assert fake.request_headers[-1]["x-team"] == "a"


async def test_overrides_replace_and_add_providers() -> None:
    echo, demo = EchoProvider(), DemoProvider(delay=0)
    registry = ProviderRegistry(Settings(), overrides={"fake": echo, "demo": demo})
    assert {"demo", "fake"} <= set(registry.names)
    assert registry.resolve("fake/m1") == (echo, "m1")
    assert registry.resolve("demo/x") == (demo, "x")
    await registry.aclose()


async def test_demo_delay_setting() -> None:
    registry = ProviderRegistry(Settings(), demo_delay=0)
    provider, _ = registry.resolve("demo/x")
    assert isinstance(provider, DemoProvider) and provider.delay == 0


async def test_aclose_forgets_built_adapters(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    registry = ProviderRegistry(Settings())
    first, _ = registry.resolve("openai/a")
    await registry.aclose()
    second, _ = registry.resolve("openai/a")
    assert second is not first
    await registry.aclose()


async def test_aclose_closes_the_sessions_of_built_adapters(
    tmp_path: Path, fake: FakeUpstream
) -> None:
    settings = settings_with(
        tmp_path, f'[providers.local]\nkind = "openai-chat"\nbase_url = "{fake.base_url}"\n'
    )
    with no_resource_warnings():
        registry = ProviderRegistry(settings)
        provider, model_id = registry.resolve("local/text:2")
        request = ModelRequest(model=model_id, messages=[ChatMessage(role=Role.USER, content="hi")])
        assert [event async for event in provider.stream(request)]  # a pooled connection now
        await registry.aclose()
        del provider, registry


@pytest.mark.parametrize(
    ("kind", "adapter"),
    [
        ("anthropic", "AnthropicProvider"),
        ("gemini", "GeminiProvider"),
        ("ollama", "OllamaProvider"),
        ("openai-responses", "OpenAIResponsesProvider"),
    ],
)
async def test_each_kind_gets_its_adapter(tmp_path: Path, kind: str, adapter: str) -> None:
    toml = f'[providers.p]\nkind = "{kind}"\nbase_url = "http://127.0.0.1:9"\napi_key = "k"\n'
    registry = ProviderRegistry(settings_with(tmp_path, toml))
    provider, model_id = registry.resolve("p/some-model")
    assert type(provider).__name__ == adapter
    assert model_id == "some-model"
    await registry.aclose()


def test_a_kind_without_an_adapter_is_refused_in_the_config_file(tmp_path: Path) -> None:
    from parley.config import ConfigError

    with pytest.raises(ConfigError) as refused:
        settings_with(tmp_path, '[providers.p]\nkind = "telepathy"\n').provider_configs()
    assert "providers.p" in str(refused.value) and "kind" in str(refused.value)


def test_warm_imports_the_adapters_of_the_providers_set_up_to_be_called(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``warm`` (run on a thread as the server starts) imports the adapters of the
    providers with a key or a table of the config file, and the HTTP client under them;
    not the demo's, nor those of the built-in providers without a key."""
    for builtin in BUILTIN_PROVIDERS.values():
        for var in builtin.key_vars:
            monkeypatch.delenv(var, raising=False)
    assert ProviderRegistry(Settings()).warm() == []

    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    assert ProviderRegistry(Settings()).warm() == [
        "parley.providers.transport",
        "parley.providers.anthropic",
    ]

    keyless = '[providers.mine]\nkind = "openai-responses"\nbase_url = "http://127.0.0.1:9/v1"\n'
    assert ProviderRegistry(settings_with(tmp_path, keyless)).warm() == [
        "parley.providers.transport",
        "parley.providers.anthropic",
        "parley.providers.openai_responses",
    ]
