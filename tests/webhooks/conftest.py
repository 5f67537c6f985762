"""A server whose webhooks may reach loopback, retry fast and look for work often."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import FreshDatabase, ParleyServer, free_port, provider_config, tuned
from tests.webhooks.receiver import Receiver

#: What every server of these tests is started with.
WEBHOOK_ENV = tuned(
    {"PARLEY_WEBHOOK_ALLOW_URLS": "127.0.0.1", "PARLEY_WEBHOOK_TIMEOUT_SECONDS": "3"},
    webhook_backoff_seconds=0.2,
    # Deliveries written by this server go at once, retries when due; the look for those
    # written elsewhere (``parley webhooks replay``, another process) comes this often.
    webhook_poll_seconds=1,
)


@pytest.fixture(scope="module")
def hooks_server(upstream: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ParleyServer]:
    tmp: Path = tmp_path_factory.mktemp("webhooks")
    db = FreshDatabase(tmp)
    srv = ParleyServer(
        database_url=db.url,
        workdir=tmp,
        config=provider_config(upstream.base_url, free_port()),
        env=WEBHOOK_ENV,
    )
    try:
        yield srv.start()
        srv.stop()
        srv.assert_clean_log()
    finally:
        srv.stop()
        db.drop()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r
