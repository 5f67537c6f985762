"""The limit counters themselves: fixed windows in one process, and in a real Redis the
leases of turn slots (a holder that stops renewing loses its slot) and failing open when
Redis does not answer. Plus the settings and ``parley serve`` options that turn them on."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator

import pytest

from parley.cli.main import _settings, build_parser
from parley.config import Settings
from parley.errors import RateLimited
from parley.server.ratelimit import Limits, LocalCounters, Policy, RedisCounters
from tests.harness import TEST_REDIS_URL, free_port, redis_reachable

REDIS_URL = TEST_REDIS_URL


needs_redis = pytest.mark.skipif(
    not redis_reachable(), reason=f"no Redis at {REDIS_URL} (set PARLEY_TEST_REDIS_URL)"
)


def _key() -> str:
    return secrets.token_hex(16)  # a fresh key (and address) per test: Redis may be shared


async def test_local_windows_count_refuse_and_reset() -> None:
    counters = LocalCounters(Policy(requests=2, window=0.3, failures=2, failure_window=0.3))
    key, address = _key(), _key()
    assert await counters.check(address, key) is None
    assert await counters.check(address, key) is None
    refusal = await counters.check(address, key)
    assert refusal is not None and refusal.limit == "requests"
    assert 0 < refusal.retry_after <= 0.3
    assert await counters.check(address, _key()) is None  # another key
    await counters.failed(address)
    assert await counters.check(address, None) is None
    await counters.failed(address)
    blocked = await counters.check(address, _key())
    assert blocked is not None and blocked.limit == "auth_failures"
    await asyncio.sleep(0.35)
    assert await counters.check(address, key) is None


async def test_local_turn_slots() -> None:
    counters = LocalCounters(Policy(runs=2))
    key = _key()
    first, second = await counters.acquire(key), await counters.acquire(key)
    assert first is not None and second is not None
    assert await counters.acquire(key) is None
    assert await counters.acquire(_key()) is not None
    counters.release(key, first)
    assert await counters.acquire(key) is not None


@pytest.fixture
async def replicas() -> AsyncIterator[tuple[RedisCounters, RedisCounters]]:
    policy = Policy(runs=1, lease=0.6)
    a, b = RedisCounters(REDIS_URL, policy), RedisCounters(REDIS_URL, policy)
    yield a, b
    await a.aclose()
    await b.aclose()


@needs_redis
async def test_a_slot_lives_while_renewed_and_ends_with_its_lease(
    replicas: tuple[RedisCounters, RedisCounters],
) -> None:
    a, b = replicas
    key = _key()
    slot = await a.acquire(key)
    assert slot
    await asyncio.sleep(1.0)  # past the lease: renewed meanwhile
    assert await b.acquire(key) is None
    a.let_go(slot)  # the holder dies: no renewal, no release
    # Its last renewal (perhaps in flight as it died) ends 0.6 s on; a loaded machine may
    # run that late, so wait for the end rather than sleep a fixed time: a renewer still
    # alive would hold the slot past any deadline.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5.0
    while not await b.acquire(key):
        assert loop.time() < deadline, "the slot outlived its lease"
        await asyncio.sleep(0.05)


@needs_redis
async def test_a_released_slot_is_free_at_once(
    replicas: tuple[RedisCounters, RedisCounters],
) -> None:
    a, b = replicas
    key = _key()
    slot = await a.acquire(key)
    assert slot and await b.acquire(key) is None
    a.release(key, slot)
    for _ in range(50):
        if await b.acquire(key):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the released slot never came back")


@needs_redis
async def test_redis_windows_are_shared() -> None:
    policy = Policy(requests=3, window=5, failures=1, failure_window=5)
    a, b = RedisCounters(REDIS_URL, policy), RedisCounters(REDIS_URL, policy)
    try:
        key, address = _key(), _key()
        assert await a.check(address, key) is None
        assert await b.check(address, key) is None
        assert await a.check(address, key) is None
        refusal = await b.check(address, key)
        assert refusal is not None and refusal.limit == "requests"
        assert 4 <= refusal.retry_after <= 5
        await a.failed(address)
        blocked = await b.check(address, _key())
        assert blocked is not None and blocked.limit == "auth_failures"
    finally:
        await a.aclose()
        await b.aclose()


async def test_limits_fail_open_when_redis_does_not_answer(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = Settings(
        redis_url=f"redis://127.0.0.1:{free_port()}/0",  # nothing listens there
        rate_limit_requests=1,
        rate_limit_concurrent_runs=1,
        auth_failure_limit=1,
    )
    limits = Limits(settings)
    await limits.start()
    try:
        with caplog.at_level(logging.WARNING, logger="parley.server"):
            for _ in range(5):
                await limits.check("127.0.0.1", _key())
                await limits.failed("127.0.0.1")
                async with limits.run_slot(_key()) as slot:
                    slot.hold_until(None)
        warnings = [r for r in caplog.records if "Redis" in r.getMessage()]
        assert len(warnings) == 1, warnings  # once per outage, not per request
    finally:
        await limits.aclose()


async def test_limits_off_by_default_cost_nothing() -> None:
    limits = Limits(Settings())
    await limits.start()
    assert isinstance(limits.counters, LocalCounters)
    for _ in range(1000):
        await limits.check("127.0.0.1", "k")
        await limits.failed("127.0.0.1")
    async with limits.run_slot("k"), limits.run_slot("k"):
        pass
    await limits.aclose()


async def test_a_refused_slot_raises_rate_limited_with_retry_after() -> None:
    limits = Limits(Settings(rate_limit_concurrent_runs=1))
    await limits.start()
    task = asyncio.create_task(asyncio.sleep(0.05))
    async with limits.run_slot("k") as slot:
        slot.hold_until(lambda release: task.add_done_callback(lambda _: release()))
    with pytest.raises(RateLimited) as caught:
        async with limits.run_slot("k"):
            pass
    assert caught.value.code == "too_many_runs" and caught.value.retry_after == 1
    await task
    await asyncio.sleep(0)
    async with limits.run_slot("k"):
        pass
    await limits.aclose()


def test_serve_options_and_environment() -> None:
    args = build_parser().parse_args(
        [
            "serve",
            "--cors-origin",
            "https://a.example",
            "--cors-origin",
            "http://localhost:3000",
            "--rate-limit-requests",
            "100",
            "--rate-limit-window",
            "10",
            "--concurrent-runs",
            "4",
            "--auth-failure-limit",
            "20",
        ]
    )
    settings = _settings(args)
    assert settings.cors_origins == ["https://a.example", "http://localhost:3000"]
    assert settings.rate_limit_requests == 100 and settings.rate_limit_window_seconds == 10
    assert settings.rate_limit_concurrent_runs == 4 and settings.auth_failure_limit == 20

    plain = _settings(build_parser().parse_args(["serve"]))
    assert plain.cors_origins == [] and plain.rate_limit_requests == 0
    assert plain.rate_limit_concurrent_runs == 0 and plain.auth_failure_limit == 0


def test_cors_origins_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARLEY_CORS_ORIGINS", "https://a.example, http://b.example:8080")
    assert Settings().cors_origins == ["https://a.example", "http://b.example:8080"]
    monkeypatch.setenv("PARLEY_CORS_ORIGINS", '["https://a.example"]')
    assert Settings().cors_origins == ["https://a.example"]
