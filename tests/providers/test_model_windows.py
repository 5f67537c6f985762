"""Context windows from the providers' own model lists: each kind's list read over real
HTTP (the fake upstream serves every kind's), kept and refreshed in the background; the
config wins over the list, the list over the built-in table; a list that fails or hangs
holds nothing up."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from parley.config import Settings
from parley.errors import UpstreamError
from parley.providers.catalog import describe, find_model
from parley.providers.ollama import show_window
from parley.providers.registry import ProviderRegistry
from parley.providers.windows import LearnedWindows, listed_window
from parley.testing.fake_upstream import FakeUpstream

#: How each kind's adapter reaches the fake upstream, and the model-list request it makes.
KINDS = {
    "openai-chat": ("{base}", "GET /v1/models"),
    "openai-responses": ("{base}", "GET /v1/models"),
    "anthropic": ("{root}", "GET /v1/models?limit=1000"),
    "gemini": ("{root}/v1beta", "GET /v1beta/models?pageSize=1000"),
    "ollama": ("{root}", "POST /api/show"),
}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "PARLEY_CONFIG", "PARLEY_DEFAULT_PROVIDER"):
        monkeypatch.delenv(name, raising=False)


def config(fake: FakeUpstream, kind: str, *, name: str = "p", models: str = "") -> str:
    url = KINDS[kind][0].format(base=fake.base_url, root=fake.url)
    table = f'[providers.{name}]\nkind = "{kind}"\nbase_url = "{url}"\napi_key = "sk-test"\n'
    return table + models


@pytest.fixture
async def registry_for(tmp_path: Path) -> AsyncIterator[Any]:
    """``registry_for(toml, windows=None)``: a registry of that config (keeping what it
    learns in ``windows``, when given), closed afterwards."""
    made: list[ProviderRegistry] = []

    def make(toml: str, windows: LearnedWindows | None = None) -> ProviderRegistry:
        path = tmp_path / f"parley-{len(made)}.toml"
        path.write_text(toml)
        made.append(ProviderRegistry(Settings(config=path), windows=windows))
        return made[-1]

    yield make
    for registry in made:
        await registry.aclose()


# ------------------------------------------------------------------- from each kind


@pytest.mark.parametrize("kind", sorted(KINDS))
async def test_each_kind_reads_the_window_its_model_list_gives(
    kind: str, fake: FakeUpstream, registry_for: Any
) -> None:
    fake.windows["big-model"] = 5000
    registry = registry_for(config(fake, kind))
    registry.resolve("p/big-model")  # as a turn does before it asks for the window
    # The first time, the list is read in the background: the table (which does not know
    # this model) answers meanwhile.
    assert registry.context_window("p/big-model") is None
    assert await registry.learn_window("p/big-model") == 5000
    assert registry.context_window("p/big-model") == 5000
    assert fake.listings[0] == KINDS[kind][1]
    asked = len(fake.listings)
    assert registry.context_window("p/big-model") == 5000  # kept: not asked again
    assert len(fake.listings) == asked


@pytest.mark.parametrize("kind", sorted(KINDS))
async def test_the_config_wins_over_the_list_and_the_list_over_the_table(
    kind: str, fake: FakeUpstream, registry_for: Any
) -> None:
    fake.windows.update({"gpt-4o": 6000, "pinned": 6000})
    pinned = '[providers.p.models."pinned"]\ncontext_window = 1234\n'
    registry = registry_for(config(fake, kind, models=pinned))
    registry.resolve("p/gpt-4o")
    assert registry.context_window("p/gpt-4o") == 128_000  # the table, while the list is read
    assert await registry.learn_window("p/gpt-4o") == 6000
    assert await registry.learn_window("p/pinned") == 1234
    assert registry.context_window("p/pinned") == 1234


async def test_ollama_gives_num_ctx_and_nothing_for_a_model_it_lacks(
    fake: FakeUpstream, registry_for: Any
) -> None:
    fake.windows["llama3.1:8b"] = 8192  # its num_ctx; the model itself takes 131,072
    registry = registry_for(config(fake, "ollama"))
    registry.resolve("p/llama3.1:8b")
    assert await registry.learn_window("p/llama3.1:8b") == 8192
    # A model the server has not pulled: /api/show answers 404, and the table stands.
    assert await registry.learn_window("p/llama3.3") == 131_072
    assert fake.listings.count("POST /api/show") == 2


async def test_listing_the_models_keeps_their_windows(
    fake: FakeUpstream, registry_for: Any
) -> None:
    fake.windows.update({"big-model": 5000, "small-model": 700})
    registry = registry_for(config(fake, "openai-chat"))
    listed = await describe(registry)
    mine = {m["id"]: m for m in listed["data"] if m["provider"] == "p"}
    assert mine["p/big-model"]["context_window"] == 5000
    assert mine["p/small-model"]["context_window"] == 700
    assert "context_window" not in mine["p/text"]  # its entry gives none, nor the table
    assert registry.context_window("p/small-model") == 700
    assert fake.listings == ["GET /v1/models"]  # the windows came with the list
    found = await find_model(registry, "p/big-model")
    assert found["context_window"] == 5000
    demo = await find_model(registry, "demo/parley")
    assert "context_window" not in demo


# -------------------------------------------------------------- failures hold nothing up


@pytest.mark.parametrize("fault", ["error", "hang"])
async def test_a_model_list_that_fails_or_hangs_leaves_the_table(
    fault: str, fake: FakeUpstream, registry_for: Any
) -> None:
    fake.listing_fault = fault
    fake.windows["gpt-4o"] = 6000
    windows = LearnedWindows(timeout=0.3, retry=60)
    registry = registry_for(config(fake, "openai-chat"), windows)
    registry.resolve("p/gpt-4o")
    assert registry.context_window("p/gpt-4o") == 128_000  # at once, whatever the list does
    async with asyncio.timeout(5):
        assert await registry.learn_window("p/gpt-4o", within=2) == 128_000
    assert fake.listings == ["GET /v1/models"]
    assert windows.told(("p", ""))  # the failure is remembered: not asked again yet
    assert registry.context_window("p/gpt-4o") == 128_000
    await asyncio.sleep(0)
    assert fake.listings == ["GET /v1/models"]


async def test_learn_window_waits_no_longer_than_it_is_told(
    fake: FakeUpstream, registry_for: Any
) -> None:
    fake.listing_fault = "hang"
    registry = registry_for(config(fake, "openai-chat"))
    registry.resolve("p/gpt-4o")
    async with asyncio.timeout(5):  # the lookup itself goes on (up to LOOKUP_TIMEOUT)
        assert await registry.learn_window("p/gpt-4o", within=0.05) == 128_000


async def test_an_unreachable_provider_gives_the_table(registry_for: Any) -> None:
    toml = '[providers.p]\nkind = "anthropic"\nbase_url = "http://127.0.0.1:9"\napi_key = "k"\n'
    registry = registry_for(toml)
    registry.resolve("p/claude-sonnet-4-5")
    assert await registry.learn_window("p/claude-sonnet-4-5") == 200_000


# ------------------------------------------------------------------ what is kept, how long


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Lists:
    """A lookup that answers each of ``answers`` in turn (an exception is raised)."""

    def __init__(self, *answers: Mapping[str, int | None] | BaseException) -> None:
        self.answers = list(answers)
        self.calls = 0

    async def __call__(self) -> Mapping[str, int | None]:
        answer = self.answers[min(self.calls, len(self.answers) - 1)]
        self.calls += 1
        if isinstance(answer, BaseException):
            raise answer
        return answer


async def learned(windows: LearnedWindows, lookup: Lists) -> None:
    windows.learn(("p", ""), lookup)
    await windows.settle(("p", ""), within=5)


async def test_what_a_list_told_is_kept_for_its_time_then_asked_again() -> None:
    clock = Clock()
    windows = LearnedWindows(ttl=3600, retry=300, clock=clock)
    lookup = Lists({"a": 1000, "b": None}, {"a": 2000})
    assert not windows.told(("p", ""))
    await learned(windows, lookup)
    assert (windows.window(("p", ""), "a"), windows.window(("p", ""), "b")) == (1000, None)
    clock.now += 3599
    await learned(windows, lookup)
    assert lookup.calls == 1  # still fresh
    clock.now += 2
    windows.learn(("p", ""), lookup)
    assert windows.window(("p", ""), "a") == 1000  # the old answer serves meanwhile
    await windows.settle(("p", ""), within=5)
    assert (lookup.calls, windows.window(("p", ""), "a")) == (2, 2000)


async def test_a_failed_lookup_keeps_the_old_answer_and_is_tried_again_later(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    windows = LearnedWindows(ttl=3600, retry=300, clock=clock)
    lookup = Lists({"a": 1000}, UpstreamError("The model list said no."), {"a": 3000})
    await learned(windows, lookup)
    clock.now += 3601
    with caplog.at_level(logging.INFO, logger="parley.providers"):
        await learned(windows, lookup)
    assert "The model list said no." in caplog.text
    assert windows.window(("p", ""), "a") == 1000
    clock.now += 299
    await learned(windows, lookup)
    assert lookup.calls == 2  # not before the retry time
    clock.now += 2
    await learned(windows, lookup)
    assert (lookup.calls, windows.window(("p", ""), "a")) == (3, 3000)


async def test_an_unexpected_failure_is_logged_and_never_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    windows = LearnedWindows()
    with caplog.at_level(logging.WARNING, logger="parley.providers"):
        await learned(windows, Lists(KeyError("data")))
    assert "could not read the context windows of p" in caplog.text
    assert windows.told(("p", "")) and windows.window(("p", ""), "a") is None


async def test_one_lookup_at_a_time_per_source_and_none_outside_a_loop() -> None:
    windows = LearnedWindows()
    gate = asyncio.Event()
    calls = 0

    async def slow() -> Mapping[str, int | None]:
        nonlocal calls
        calls += 1
        await gate.wait()
        return {"a": 1}

    windows.learn(("p", ""), slow)
    windows.learn(("p", ""), slow)
    await asyncio.sleep(0)
    assert calls == 1
    gate.set()
    await windows.settle(("p", ""), within=5)
    assert windows.window(("p", ""), "a") == 1
    await windows.aclose()


def test_no_lookup_starts_without_a_running_loop() -> None:
    windows = LearnedWindows()
    windows.learn(("p", ""), Lists({"a": 1}))
    assert not windows.told(("p", ""))


async def test_closing_stops_the_lookups_under_way() -> None:
    windows = LearnedWindows()
    started = asyncio.Event()

    async def forever() -> Mapping[str, int | None]:
        started.set()
        await asyncio.Event().wait()
        return {}

    windows.learn(("p", ""), forever)
    await started.wait()
    await windows.aclose()
    assert not windows.told(("p", ""))


# ------------------------------------------------------------------- the lists' fields


@pytest.mark.parametrize(
    ("entry", "window"),
    [
        ({"id": "gpt-4o", "object": "model", "owned_by": "openai"}, None),  # OpenAI
        ({"id": "qwen", "max_model_len": 32768}, 32768),  # vLLM
        ({"id": "x/y", "context_length": 200_000, "top_provider": {}}, 200_000),  # OpenRouter
        ({"id": "llama-3.3-70b", "context_window": 131_072}, 131_072),  # Groq
        ({"id": "mistral-large", "max_context_length": 131_072}, 131_072),  # Mistral
        ({"id": "m.gguf", "meta": {"n_ctx": 8192, "n_ctx_train": 131_072}}, 8192),  # llama.cpp
        ({"id": "m.gguf", "meta": {"n_ctx_train": 4096}}, 4096),  # older llama.cpp
        ({"id": "m", "max_model_len": 0, "context_length": "8k"}, None),
        ({"id": "m", "max_model_len": True}, None),
    ],
)
def test_the_window_of_an_openai_compatible_list_entry(
    entry: dict[str, Any], window: int | None
) -> None:
    assert listed_window(entry) == window


def test_the_window_of_an_ollama_show_answer() -> None:
    info = {"general.architecture": "qwen3", "qwen3.context_length": 40960}
    assert show_window({"parameters": "num_ctx                        16384\nstop x"}) == 16384
    assert show_window({"parameters": 'stop "<|im_end|>"', "model_info": info}) == 40960
    assert show_window({"model_info": {"llama.context_length": 8192}}) == 8192
    assert show_window({"model_info": {"a.context_length": 1, "b.context_length": 2}}) is None
    assert show_window({"parameters": "temperature 0.7"}) is None
    assert show_window(["not", "an", "object"]) is None
