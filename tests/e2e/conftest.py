"""Fixtures of the end-to-end tests: httpx clients of the session server, one per user."""

from __future__ import annotations

import time
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
def _no_upstream_stream_left(upstream: Any) -> Iterator[None]:
    """Every turn a test starts has closed its upstream stream by the end of the test (a
    cancelled, failed or abandoned turn must not keep the model's connection open)."""
    yield
    deadline = time.monotonic() + 5
    while upstream.active_streams and time.monotonic() < deadline:
        time.sleep(0.02)
    assert upstream.active_streams == 0, "a turn left its upstream stream open"
