"""Whose ``X-Forwarded-For`` a server believes (uvicorn's ``FORWARDED_ALLOW_IPS``): trusting
every peer (``*``) lets a client choose the address its failed authentications count
against, so the server says so when it starts. (Through nginx: tests/e2e/test_nginx.py.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.harness import FreshDatabase, ParleyServer, free_port, provider_config

WARNING = "FORWARDED_ALLOW_IPS is *: any client can set its address with X-Forwarded-For"


@pytest.mark.parametrize(("trusted", "warned"), [("*", True), ("10.0.0.5, 127.0.0.1", False)])
def test_trusting_every_peer_is_warned_about(
    upstream: Any, tmp_path: Path, trusted: str, warned: bool
) -> None:
    db = FreshDatabase(tmp_path)
    server = ParleyServer(
        database_url=db.url,
        workdir=tmp_path,
        config=provider_config(upstream.base_url, free_port()),
        env={"FORWARDED_ALLOW_IPS": trusted},
    )
    try:
        server.start()
    finally:
        server.stop()
        db.drop()
    assert (WARNING in server.log()) is warned, server.log()
    server.assert_clean_log()
