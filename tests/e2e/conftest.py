"""Fixtures of the end-to-end tests: httpx clients of the session server, one per user."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.helpers import guarded


@pytest.fixture
def http(server: Any, user_key: str) -> Iterator[httpx.Client]:
    """The test's own user, on ``/v1``; every JSON answer is checked for leaked internals."""
    with guarded(server.client(user_key)) as client:
        yield client


@pytest.fixture
def other(server: Any) -> Iterator[httpx.Client]:
    """A second, unrelated user."""
    with guarded(server.client(server.new_user("other"))) as client:
        yield client


@pytest.fixture(autouse=True)
def _no_upstream_stream_left(upstream_left_idle: None) -> None:
    """Every turn an e2e test starts closes its upstream stream."""
