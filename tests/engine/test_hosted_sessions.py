"""The MCP sessions the server keeps open between turns (``engine.hosted.sessions``): one
per user, server and secrets, reused while it lives, never shared across users or
headers, and closed when idle or when the engine stops. A real MCP server on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from parley.engine.hosted import sessions as kept
from parley.engine.hosted.sessions import Sessions
from parley.mcp.client import Bounds, ServerTarget, Session
from tests.mcp.conftest import _servers


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with _servers() as start:
        yield start()


async def test_a_session_is_kept_for_its_user_server_and_secrets(url: str) -> None:
    pool = Sessions(Bounds())
    target = ServerTarget("t", url=url, headers={"X-Key": "a"})
    first = await pool.get("u1", target, factory=None, allow_stdio=False)
    assert isinstance(first, Session)
    assert await pool.get("u1", target, factory=None, allow_stdio=False) is first
    other_user = await pool.get("u2", target, factory=None, allow_stdio=False)
    other_key = await pool.get(
        "u1", ServerTarget("t", url=url, headers={"X-Key": "b"}), factory=None, allow_stdio=False
    )
    assert other_user is not first and other_key is not first and other_user is not other_key
    assert (await first.call("echo", {"text": "hi"})).output == "hi"
    await pool.aclose()
    assert first.ended is not None or (await first.call("echo", {"text": "x"})).error


async def test_an_idle_session_is_closed(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    pool = Sessions(Bounds())
    target = ServerTarget("t", url=url)
    first = await pool.get("u", target, factory=None, allow_stdio=False)
    monkeypatch.setattr(kept, "IDLE", -1.0)  # everything kept is past its idle time
    second = await pool.get("u", ServerTarget("t2", url=url), factory=None, allow_stdio=False)
    assert isinstance(second, Session)
    assert key_count(pool) == 1  # the first went
    monkeypatch.setattr(kept, "IDLE", 60.0)
    again = await pool.get("u", target, factory=None, allow_stdio=False)
    assert again is not first
    await pool.aclose()


async def test_a_server_that_cannot_be_reached_is_not_kept() -> None:
    pool = Sessions(Bounds(connect_timeout=2))
    target = ServerTarget("t", url="http://127.0.0.1:9/mcp")
    assert isinstance(await pool.get("u", target, factory=None, allow_stdio=False), str)
    assert key_count(pool) == 0


def key_count(pool: Sessions) -> int:
    return len(pool._kept)
