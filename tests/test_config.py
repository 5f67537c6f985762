"""Built-in providers from the usual environment variables, and the config file over them."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from parley.config import BUILTIN_PROVIDERS, TUNING_VARIABLE, ConfigError, Settings, Tuning
from parley.errors import InvalidRequest
from parley.providers.registry import ProviderRegistry
from parley.sandbox.limits import OPEN_FILES, Limits

KEY_VARS = {v for b in BUILTIN_PROVIDERS.values() for v in b.key_vars}


@pytest.fixture(autouse=True)
def _no_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [*KEY_VARS, "OPENAI_BASE_URL", "OLLAMA_HOST", "PARLEY_DEFAULT_PROVIDER"]:
        monkeypatch.delenv(name, raising=False)


def test_every_builtin_is_listed_with_what_it_needs() -> None:
    catalog = {p.name: p for p in ProviderRegistry(Settings()).catalog()}
    assert set(catalog) == set(BUILTIN_PROVIDERS)
    assert catalog["demo"].ready
    assert catalog["deepseek"].problem == "set DEEPSEEK_API_KEY"
    assert catalog["gemini"].kind == "gemini"


def test_a_missing_key_is_a_clear_error_naming_the_variable() -> None:
    registry = ProviderRegistry(Settings())
    with pytest.raises(InvalidRequest) as refused:
        registry.check_model("groq/llama-3.3-70b-versatile")
    assert refused.value.code == "provider_not_configured"
    assert "GROQ_API_KEY" in refused.value.message


def test_a_key_in_the_environment_makes_the_builtin_ready(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEEPSEEK_API_KEY", "sk-test")
    settings = Settings()
    config = settings.provider_configs()["deepseek"]
    assert (config.kind, config.base_url) == ("openai-chat", "https://api.deepseek.com/v1")
    assert settings.provider_api_key(config) == "sk-test"
    assert ProviderRegistry(settings).check_model("deepseek/deepseek-chat") == (
        "deepseek",
        "deepseek-chat",
    )


def test_gemini_takes_either_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOOGLE_API_KEY", "g-key")
    settings = Settings()
    assert settings.provider_api_key(settings.provider_configs()["gemini"]) == "g-key"


def test_openai_base_url_points_the_builtin_elsewhere_without_a_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    settings = Settings()
    assert settings.provider_configs()["openai"].base_url == "http://127.0.0.1:9/v1"
    assert ProviderRegistry(settings).check_model("openai/local") == ("openai", "local")


def test_ollama_host_without_a_scheme(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_HOST", "10.1.2.3:11434")
    assert Settings().provider_configs()["ollama"].base_url == "http://10.1.2.3:11434"


def test_a_config_table_replaces_a_builtin(tmp_path: Path) -> None:
    config = tmp_path / "p.toml"
    config.write_text('[providers.openai]\nkind = "openai-chat"\nbase_url = "http://x/v1"\n')
    settings = Settings(config=config)
    assert settings.provider_configs()["openai"].base_url == "http://x/v1"
    # A table with no key needs none: an endpoint of the user's own.
    assert ProviderRegistry(settings).check_model("openai/m") == ("openai", "m")


def test_the_default_provider_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().default_provider == "openai"
    monkeypatch.setenv("PARLEY_DEFAULT_PROVIDER", "groq")
    monkeypatch.setenv("GROQ_API_KEY", "gsk-test")
    settings = Settings()
    assert settings.default_provider == "groq"
    assert ProviderRegistry(settings).check_model("llama-3.3-70b") == ("groq", "llama-3.3-70b")
    monkeypatch.setenv("PARLEY_DEFAULT_PROVIDER", "")
    assert Settings().default_provider == ""


def test_the_default_provider_must_be_a_provider(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as refused:
        Settings(default_provider="nosuch").checked_provider_configs()
    message = str(refused.value)
    assert "PARLEY_DEFAULT_PROVIDER" in message and "'nosuch'" in message
    assert "openai" in message  # the names it may take
    config = tmp_path / "p.toml"
    config.write_text('[providers.nosuch]\nkind = "openai-chat"\nbase_url = "http://x/v1"\n')
    assert "nosuch" in Settings(config=config, default_provider="nosuch").checked_provider_configs()
    assert Settings(default_provider="").checked_provider_configs()  # off: nothing to check


def test_a_builtin_providers_table_without_kind_adds_to_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    config = tmp_path / "p.toml"
    config.write_text(
        '[providers.openai.models."gpt-4o"]\ncontext_window = 4000\n'
        '[providers.demo.models."small"]\ncontext_window = 1500\n'
        '[providers.ollama]\nkind = "openai-chat"\nbase_url = "http://x/v1"\n'
    )
    settings = Settings(config=config)
    providers = settings.provider_configs()
    openai = providers["openai"]
    assert openai.kind == "openai-chat" and openai.base_url == "https://api.openai.com/v1"
    assert settings.provider_api_key(openai) == "sk-test"
    assert openai.models["gpt-4o"].context_window == 4000
    assert providers["demo"].kind == "demo"
    registry = ProviderRegistry(settings)
    assert registry.context_window("demo/small") == 1500
    assert "small" in asyncio.run(registry.models("demo"))  # listed, as the demo takes it
    # With a kind, the table replaces the built-in.
    assert providers["ollama"].kind == "openai-chat"


def test_a_key_in_a_builtin_providers_table_replaces_its_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    config = tmp_path / "p.toml"
    config.write_text('[providers.openai]\napi_key = "sk-from-file"\n')
    settings = Settings(config=config)
    openai = settings.provider_configs()["openai"]
    assert openai.kind == "openai-chat" and openai.base_url == "https://api.openai.com/v1"
    assert settings.provider_api_key(openai) == "sk-from-file"


def test_the_web_search_table_and_its_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PARLEY_WEB_SEARCH_URL", raising=False)
    config = tmp_path / "parley.toml"
    config.write_text('[web_search]\nurl = "http://search.local:8888/"\ntimeout = 4\n')
    settings = Settings(config=config)
    assert (settings.web_search_url, settings.web_search_timeout) == (
        "http://search.local:8888/",
        4.0,
    )
    monkeypatch.setenv("PARLEY_WEB_SEARCH_URL", "https://other.local")
    assert Settings(config=config).web_search_url == "https://other.local"  # a variable wins
    monkeypatch.setenv("PARLEY_WEB_SEARCH_URL", "  ")
    assert Settings().web_search_url is None  # empty: none
    for text, says in (
        ('[web_search]\nurl = "search.local"\n', "http:// or https://"),
        ("[web_search]\ntimeout = 0\n", "timeout"),
        ("[web_search]\nengine = 1\n", "no key 'engine'"),
    ):
        monkeypatch.delenv("PARLEY_WEB_SEARCH_URL")
        config.write_text(text)
        with pytest.raises(ConfigError, match=says):
            Settings(config=config)
        monkeypatch.setenv("PARLEY_WEB_SEARCH_URL", "")


def test_every_settings_table_goes_under_the_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("EMBEDDING_MODEL", "WEB_SEARCH_URL", "FILES_MAX_BYTES"):
        monkeypatch.delenv(f"PARLEY_{name}", raising=False)
    config = tmp_path / "parley.toml"
    config.write_text(
        '[retrieval]\nembedding_model = "demo/embed"\n'
        '[web_search]\nurl = "http://search.local"\ntimeout = 3\n'
        "[files]\nmax_bytes = 1000\nuser_quota_bytes = 5000\n"
        "[code_interpreter]\ncall_timeout = 7\nmax_containers = 2\n"
    )
    settings = Settings(config=config)
    assert settings.embedding_model == "demo/embed"
    assert (settings.web_search_url, settings.web_search_timeout) == ("http://search.local", 3)
    assert (settings.files_max_bytes, settings.files_user_quota_bytes) == (1000, 5000)
    assert settings.code_interpreter_call_timeout == 7
    assert settings.code_interpreter_max_containers == 2
    monkeypatch.setenv("PARLEY_WEB_SEARCH_TIMEOUT", "9")
    monkeypatch.setenv("PARLEY_FILES_MAX_BYTES", "2000")
    settings = Settings(config=config, code_interpreter_call_timeout=11, embedding_model="")
    # A variable or an argument wins over its key; the table's other keys still count.
    assert settings.embedding_model is None
    assert (settings.web_search_url, settings.web_search_timeout) == ("http://search.local", 9)
    assert (settings.files_max_bytes, settings.files_user_quota_bytes) == (2000, 5000)
    assert settings.code_interpreter_call_timeout == 11
    assert settings.code_interpreter_max_containers == 2


def test_a_bad_key_is_named_with_its_table(tmp_path: Path) -> None:
    config = tmp_path / "parley.toml"
    for text, says in (
        ("[web_search]\nurl = 3\n", "[web_search] web_search_url: Input should be a valid string"),
        (
            "[retrieval]\nembedding_model = 5\n",
            "[retrieval] embedding_model: Input should be a valid string",
        ),
        ("[files]\nmax_bytes = 0\n", "[files] files_max_bytes: Input should be greater than 0"),
        ("[retrieval]\nmodel = 'x'\n", "[retrieval] has no key 'model'"),
    ):
        config.write_text(text)
        with pytest.raises(ConfigError) as refused:
            Settings(config=config)
        assert str(refused.value) == f"{config}: {says}"


def test_the_file_is_read_once(tmp_path: Path) -> None:
    config = tmp_path / "parley.toml"
    config.write_text(
        '[providers.mine]\nkind = "openai-chat"\nbase_url = "http://x/v1"\n'
        '[mcp_servers.docs]\nurl = "http://127.0.0.1:9/mcp"\n'
    )
    settings = Settings(config=config)
    config.write_text("not toml at all [")
    # What the settings hold is what the file said when they were made.
    assert settings.provider_configs()["mine"].base_url == "http://x/v1"
    assert list(settings.mcp_servers) == ["docs"]
    with pytest.raises(ConfigError, match="not valid TOML"):
        Settings(config=config)


def test_a_key_no_longer_read_is_taken_and_ignored(tmp_path: Path) -> None:
    config = tmp_path / "parley.toml"
    config.write_text("[code_interpreter]\nmax_open_files = 64\ncall_timeout = 5\n")
    settings = Settings(config=config)
    assert settings.code_interpreter_call_timeout == 5
    assert Limits.of(settings).open_files == OPEN_FILES


def test_the_intervals_are_constants_that_no_setting_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(TUNING_VARIABLE, raising=False)
    monkeypatch.setenv("PARLEY_SWEEP_SECONDS", "9")
    monkeypatch.setenv("PARLEY_AUTH_CACHE_SECONDS", "0")
    config = tmp_path / "parley.toml"
    config.write_text("[files]\nsweep_seconds = 1\nmax_bytes = 1000\n")
    settings = Settings(config=config)
    assert settings.files_max_bytes == 1000
    assert settings.tuning == Tuning()
    assert (settings.tuning.sweep_seconds, settings.tuning.auth_cache_seconds) == (0.5, 10.0)
    assert settings.tuning.files_sweep_seconds == 300.0


def test_tests_shorten_the_intervals_through_one_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(TUNING_VARIABLE, '{"sweep_seconds": 0.2, "checkpoint_seconds": 0.05}')
    tuning = Settings().tuning
    assert (tuning.sweep_seconds, tuning.checkpoint_seconds) == (0.2, 0.05)
    assert tuning.webhook_poll_seconds == Tuning().webhook_poll_seconds
    assert Settings(tuning=Tuning(sweep_seconds=1.5)).tuning.sweep_seconds == 1.5
    monkeypatch.setenv(TUNING_VARIABLE, '{"sweep_secs": 0.2}')
    with pytest.raises(ValidationError, match="sweep_secs"):
        Settings()
    monkeypatch.setenv(TUNING_VARIABLE, '{"sweep_seconds": 0}')
    with pytest.raises(ValidationError, match="greater than 0"):
        Settings()


def test_configuration_md_names_every_variable_read_and_no_other() -> None:
    root = Path(__file__).parents[1]
    doc = (root / "docs" / "configuration.md").read_text()
    documented = set(re.findall(r"`(PARLEY_[A-Z0-9_]+)`", doc))
    read = {
        info.validation_alias
        if isinstance(info.validation_alias, str)
        else f"PARLEY_{name.upper()}"
        for name, info in Settings.model_fields.items()
    }
    assert sorted(read - set(re.findall(r"`([A-Z0-9_]+)`", doc))) == []
    no_longer_read = doc.split("Settings no longer read", 1)[1].split("\n\n", 2)[1]
    retired = set(re.findall(r"`(PARLEY_[A-Z0-9_]+)`", no_longer_read))
    assert retired and not retired & read
    source = "".join(p.read_text() for p in (root / "parley").rglob("*.py"))
    # The rest are read by the commands that use them, not by the server's settings.
    elsewhere = documented - read - retired
    assert sorted(n for n in elsewhere if f'"{n}"' not in source) == []
    assert not any(f'"{n}"' in source for n in retired)
