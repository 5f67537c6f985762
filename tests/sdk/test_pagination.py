"""``Page[T]``: list answers, and walking the following pages through ``after``."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from parley.sdk import AsyncClient, Client, Thread
from tests.sdk.fake import FakeServer, make_client, ok, page


def thread(n: int) -> dict[str, Any]:
    return {"id": f"thread_{n}", "object": "thread", "created_at": n, "metadata": {}}


def script_pages(fake_server: FakeServer) -> None:
    fake_server.on(
        "GET",
        "/v1/threads",
        ok(page([thread(1), thread(2)], has_more=True)),
        ok(page([thread(3), thread(4)], has_more=True)),
        ok(page([thread(5)], has_more=False)),
    )


def test_sync_iter_all_follows_after(fake_server: FakeServer) -> None:
    script_pages(fake_server)
    with make_client("sync", fake_server) as client:
        assert isinstance(client, Client)
        first = client.threads.list(limit=2, order="asc")
        ids = [t.id for t in first.iter_all()]
    assert ids == [f"thread_{n}" for n in range(1, 6)]
    assert [r.params for r in fake_server.requests] == [
        {"limit": "2", "order": "asc"},
        {"limit": "2", "order": "asc", "after": "thread_2"},
        {"limit": "2", "order": "asc", "after": "thread_4"},
    ]
    assert all(isinstance(t, Thread) for t in first.data)


async def test_async_aiter_all_follows_after(fake_server: FakeServer) -> None:
    script_pages(fake_server)
    async with make_client("async", fake_server) as client:
        assert isinstance(client, AsyncClient)
        first = await client.threads.list(limit=2)
        ids = [t.id async for t in first.aiter_all()]
    assert ids == [f"thread_{n}" for n in range(1, 6)]
    assert fake_server.requests[-1].params == {"limit": "2", "after": "thread_4"}


def test_last_page_and_wrong_flavour(fake_server: FakeServer) -> None:
    fake_server.on("GET", "/v1/threads", ok(page([thread(1)])))
    with make_client("sync", fake_server) as client:
        only = client.threads.list()
    assert not only.has_next_page()
    assert [t.id for t in only.iter_all()] == ["thread_1"]
    with pytest.raises(ValueError, match="last page"):
        only.next_page()
    with pytest.raises(TypeError, match="next_page"):
        asyncio.run(only.anext_page())
