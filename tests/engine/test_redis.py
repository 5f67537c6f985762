"""Replicas with Redis: a run followed from another replica arrives live, before any
checkpoint could have carried it through the database, and a cancel reaches the turn's
replica at once."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis

from parley import Client
from parley.testing.fake_upstream import expected_text
from tests.harness import (
    TEST_REDIS_URL,
    FreshDatabase,
    ParleyServer,
    free_port,
    provider_config,
    redis_reachable,
    tuned,
)

REDIS_URL = TEST_REDIS_URL


pytestmark = pytest.mark.skipif(
    not redis_reachable(REDIS_URL), reason=f"no Redis at {REDIS_URL} (set PARLEY_TEST_REDIS_URL)"
)


@pytest.fixture(scope="module")
def pair(
    upstream: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ParleyServer, ParleyServer]]:
    tmp = tmp_path_factory.mktemp("redis")
    db = FreshDatabase(tmp)
    config = provider_config(upstream.base_url, free_port())
    # Checkpoints far apart: before a turn ends, only Redis can carry its events elsewhere.
    env = tuned({"PARLEY_REDIS_URL": REDIS_URL}, checkpoint_seconds=10)
    a = ParleyServer(database_url=db.url, workdir=tmp, config=config, env=env).start()
    b = ParleyServer(database_url=db.url, workdir=tmp, config=config, env=env).start()
    yield a, b
    for srv in (a, b):
        srv.stop()
        srv.assert_clean_log()
    db.drop()


def test_a_follower_elsewhere_gets_the_turn_live(pair: tuple[ParleyServer, ParleyServer]) -> None:
    a, b = pair
    key = a.new_user()
    with (
        Client(base_url=a.base_url, api_key=key) as on_a,
        Client(base_url=b.base_url, api_key=key) as on_b,
    ):
        bot = on_a.assistants.create(name="r", model="fake/text:40:50")  # two seconds
        stream = on_a.process(assistant_id=bot.id, content="go")
        first = next(iter(stream))
        seen_at: list[float] = []
        followed: list[Any] = []

        def follow() -> None:
            for event in on_b.runs.events(first.run_id):
                followed.append(event)
                seen_at.append(time.monotonic())

        follower = threading.Thread(target=follow)
        follower.start()
        rest = list(stream)
        ended = time.monotonic()
        stream.close()
        follower.join(timeout=30)
    assert [e.model_dump() for e in followed] == [e.model_dump() for e in [first, *rest]]
    assert "".join(e.text for e in followed if e.type == "content.delta") == expected_text(40)
    live = [t for t, e in zip(seen_at, followed, strict=True) if e.type == "content.delta"]
    # Most content reached the follower while the turn still ran (no checkpoint before
    # its end), so it came over Redis.
    assert sum(t < ended - 0.3 for t in live) >= 20


def test_a_cancel_reaches_the_other_replica_at_once(
    pair: tuple[ParleyServer, ParleyServer],
) -> None:
    a, b = pair
    key = a.new_user()
    with (
        Client(base_url=a.base_url, api_key=key) as on_a,
        Client(base_url=b.base_url, api_key=key) as on_b,
    ):
        bot = on_a.assistants.create(name="r", model="fake/stall:2")
        stream = on_a.process(assistant_id=bot.id, content="go")
        events = iter(stream)
        while next(events).type != "content.delta":
            pass
        started = time.monotonic()
        assert on_b.runs.cancel(stream.run_id).status == "cancelled"
        rest = list(events)
        took = time.monotonic() - started
        stream.close()
    assert rest[-1].type == "done" and rest[-1].status == "cancelled"
    assert took < 0.8, took


def test_many_followers_of_a_run_share_one_redis_connection(
    pair: tuple[ParleyServer, ParleyServer],
) -> None:
    """More followers on one replica than its Redis connection pool holds (100): each used
    to take a pub/sub connection of its own, and past the pool's size their streams broke.
    They share one subscription now, and all of them get the whole turn."""
    a, b = pair
    key = a.new_user()
    followers = 120
    with Client(base_url=a.base_url, api_key=key) as on_a:
        bot = on_a.assistants.create(name="r", model="fake/text:40:50")  # two seconds
        stream = on_a.process(assistant_id=bot.id, content="go")
        run_id = next(iter(stream)).run_id
        subscribers: list[int] = []

        async def follow(http: httpx.AsyncClient) -> str:
            text = []
            async with http.stream("GET", f"/v1/runs/{run_id}/events") as r:
                assert r.status_code == 200
                async for line in r.aiter_lines():
                    if line.startswith("data: "):
                        event = json.loads(line[6:])
                        if event["type"] == "content.delta":
                            text.append(event["text"])
            return "".join(text)

        async def count_subscribers(done: asyncio.Future[list[str]]) -> None:
            # Count the run channel's subscribers until the followers are done: the most
            # seen at once is what matters, whenever a loaded machine lets them subscribe.
            with redis.Redis.from_url(REDIS_URL) as r:
                while not done.done():
                    subscribers.append(r.pubsub_numsub(f"parley:run:{run_id}")[0][1])
                    await asyncio.sleep(0.05)

        async def all_followers() -> list[str]:
            limits = httpx.Limits(max_connections=followers + 10)
            headers = {"Authorization": f"Bearer {key}"}
            async with httpx.AsyncClient(
                base_url=b.base_url, headers=headers, limits=limits, timeout=30
            ) as http:
                texts = asyncio.gather(*(follow(http) for _ in range(followers)))
                await count_subscribers(texts)
                return list(await texts)

        texts = asyncio.run(all_followers())
        list(stream)
        stream.close()
    assert texts == [expected_text(40)] * followers
    assert max(subscribers) == 1
