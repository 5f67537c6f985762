"""Fixtures of the SDK tests: a fake server and a client of each kind talking to it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from parley.sdk import AsyncClient, Client
from tests.sdk.fake import FakeServer, close, make_client


@pytest.fixture
def fake_server() -> FakeServer:
    return FakeServer()


@pytest.fixture(params=["sync", "async"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def client(kind: str, fake_server: FakeServer) -> AsyncIterator[Client | AsyncClient]:
    """A ``Client`` or an ``AsyncClient`` (each test runs with both) on ``fake_server``."""
    made = make_client(kind, fake_server)
    yield made
    await close(made)
