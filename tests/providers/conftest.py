"""Fixtures of the provider tests: one fake upstream per session, reset for each test, and a
canned upstream per test for what the fake does not do."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from parley.providers.openai_chat import OpenAIChatProvider
from parley.testing.fake_upstream import FakeUpstream
from tests.providers.helpers import CannedUpstream


@pytest.fixture(scope="session")
def fake_session() -> Iterator[FakeUpstream]:
    with FakeUpstream() as fake:
        yield fake


@pytest.fixture
def fake(fake_session: FakeUpstream) -> FakeUpstream:
    fake_session.reset()
    return fake_session


@pytest.fixture
async def provider(fake: FakeUpstream) -> AsyncIterator[OpenAIChatProvider]:
    adapter = OpenAIChatProvider(fake.base_url, api_key="sk-test", read_timeout=10)
    yield adapter
    await adapter.aclose()


@pytest.fixture
async def canned() -> AsyncIterator[CannedUpstream]:
    async with CannedUpstream() as server:
        yield server


@pytest.fixture
def clean_proxy_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No proxy in the environment, whatever the machine has; the test sets its own."""
    for scheme in ("http", "https", "all", "no"):
        monkeypatch.delenv(f"{scheme}_proxy", raising=False)
        monkeypatch.delenv(f"{scheme.upper()}_PROXY", raising=False)
    return monkeypatch
