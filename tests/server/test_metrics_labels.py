"""The ``model`` label of the metrics stays bounded whatever model names clients send:
only a model the server knows (its config names it, its provider lists it, the demo's own,
one the built-in table names) gets a label of its own; every other name is counted under
``model="other"``, so that new names add no series. A real ``parley serve`` with the fake
upstream, scraped without a token (the default)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from parley.config import Settings
from parley.metrics import OTHER, PrometheusMetrics
from parley.providers.registry import ProviderRegistry
from tests.harness import FreshDatabase, ParleyServer, free_port, provider_config
from tests.server.test_metrics import Samples, label_values, scrape, value

#: A model of the fake provider that the config names.
CONFIGURED = "text:2"


@pytest.fixture(scope="module")
def server(upstream: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ParleyServer]:
    tmp = tmp_path_factory.mktemp("metrics-labels")
    database = FreshDatabase(tmp)
    config = provider_config(upstream.base_url, free_port())
    config += f'\n[providers.fake.models."{CONFIGURED}"]\n'
    srv = ParleyServer(database_url=database.url, workdir=tmp, config=config).start()
    try:
        yield srv
    finally:
        srv.stop()
        srv.assert_clean_log()
        database.drop()


def _series(samples: Samples) -> int:
    return sum(1 for name, _ in samples if name.startswith("parley_upstream_"))


def _unknown_models(http: httpx.Client, first: int, count: int) -> None:
    """Model names nobody configured, sent to Chat Completions and Responses: the fake
    upstream answers any name, the demo any id; they succeed or fail as they do."""
    for i in range(first, first + count):
        chat = {"model": f"fake/made-up-{i}", "messages": [{"role": "user", "content": "hi"}]}
        http.post("/chat/completions", json=chat)
        http.post("/responses", json={"model": f"demo/made-up-{i}", "input": "hi"})
        http.post("/responses", json={"model": f"fake/made-up-r{i}", "input": "hi"})


def test_unknown_model_names_are_counted_as_other(server: ParleyServer) -> None:
    with server.client(server.new_user()) as http:
        chat = {"model": f"fake/{CONFIGURED}", "messages": [{"role": "user", "content": "hi"}]}
        assert http.post("/chat/completions", json=chat).status_code == 200
        answer = http.post("/responses", json={"model": "demo/parley", "input": "hi"})
        assert answer.status_code == 200
        _unknown_models(http, 0, 10)
        before = scrape(server.base_url, token=None)
        _unknown_models(http, 10, 20)
    after = scrape(server.base_url, token=None)

    assert label_values(after, "model") == {CONFIGURED, "parley", OTHER}, label_values(
        after, "model"
    )
    calls = "parley_upstream_call_duration_seconds_count"
    assert value(after, calls, provider="fake", model=CONFIGURED) == 1
    assert value(after, calls, provider="demo", model="parley") == 1
    assert value(after, calls, provider="demo", model=OTHER) == 30
    assert value(after, calls, provider="fake", model=OTHER) == 60
    # Twenty more new names of each kind: no new series.
    assert _series(after) == _series(before)


def test_only_known_models_become_labels() -> None:
    known = {("openai", "gpt-4o"), ("demo", "parley")}
    metrics = PrometheusMetrics(lambda provider, model: (provider, model) in known)
    assert metrics.model_labels("openai", "gpt-4o") == ("openai", "gpt-4o")
    assert metrics.model_labels("demo", "parley") == ("demo", "parley")
    assert metrics.model_labels("openai", "gpt-4o-made-up") == ("openai", OTHER)
    seen = {metrics.model_labels("demo", f"made-up-{i}") for i in range(1000)}
    assert seen == {("demo", OTHER)}
    # Without a rule, no model is known.
    assert PrometheusMetrics().model_labels("openai", "gpt-4o") == ("openai", OTHER)


def test_the_registry_knows_configured_listed_and_demo_models(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "PARLEY_DEFAULT_PROVIDER"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "parley.toml"
    path.write_text(
        '[providers.local]\nkind = "demo"\n\n[providers.local.models."mine"]\n\n'
        '[providers.up]\nkind = "openai-chat"\napi_key = "sk-x"\n\n[providers.up.models."m1"]\n'
    )
    registry = ProviderRegistry(Settings(config=path))
    assert registry.knows("up", "m1") and registry.knows("local", "mine")
    assert registry.knows("demo", "parley") and registry.knows("local", "parley")
    assert registry.knows("up", "gpt-4o")  # the built-in table's own name
    assert not registry.knows("up", "gpt-4o-made-up")
    assert not registry.knows("demo", "made-up") and not registry.knows("up", "made-up")
    assert not registry.knows("nowhere", "m1")
    listed = asyncio.run(registry.models("local"))
    assert listed is not None and "parley" in listed and "mine" in listed
