"""Daily token budgets under concurrency (docs/usage.md, "Daily token budgets"): a call
reserves its tokens before it starts and settles when it ends, so that calls running at
once cannot together spend past the budget: the spend passes it by less than one call's
tokens however many calls run at once, and with Redis across replicas too.

Rounds of 20 parallel chat completions with a key of 100 tokens a day, until a round has
none let through: the tokens the answers report add up to at most the budget plus the most
one call used. Without the reservation, the first round alone spends about three times
the budget.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.e2e.helpers import assert_error, guarded, wait_until
from tests.e2e.test_budgets import budgeted_key
from tests.harness import (
    SMALL_WINDOW,
    TEST_REDIS_URL,
    ParleyServer,
    redis_reachable,
    replicas,
    tuned,
)

BUDGET = 100
PARALLEL = 20
ENV = tuned(usage_flush_seconds=0.2, budget_cache_seconds=0.2)


@dataclass
class Spent:
    """What the calls of a key were let through with, and how many were refused."""

    calls: list[int]
    refused: int

    @property
    def total(self) -> int:
        return sum(self.calls)


def _servers(
    upstream: Any, tmp_path_factory: pytest.TempPathFactory, count: int, env: dict[str, str]
) -> Iterator[list[ParleyServer]]:
    tmp = tmp_path_factory.mktemp("budget_race")
    yield from replicas(upstream.base_url, tmp, count, tuned(ENV, env))


@pytest.fixture
def one(upstream: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ParleyServer]:
    for servers in _servers(upstream, tmp_path_factory, 1, {"PARLEY_REDIS_URL": ""}):
        yield servers[0]


@pytest.fixture
def two(upstream: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[ParleyServer]]:
    if not redis_reachable():
        pytest.skip(f"no Redis at {TEST_REDIS_URL} (set PARLEY_TEST_REDIS_URL)")
    yield from _servers(upstream, tmp_path_factory, 2, {"PARLEY_REDIS_URL": TEST_REDIS_URL})


def _budgeted_key(server: ParleyServer, budget: int = BUDGET) -> str:
    return budgeted_key(server, "budgeted", budget)[1]


def _call(http: httpx.Client, model: str, most: int | None, face: str = "chat") -> int | None:
    """One chat completion (or response, with ``face`` "responses"): its tokens, or None
    when the budget refused it."""
    if face == "chat":
        body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
        if most is not None:
            body["max_tokens"] = most
        answer = http.post("/chat/completions", json=body)
    else:
        answer = http.post("/responses", json={"model": model, "input": "hi", "store": False})
    if answer.status_code == 429:
        error = assert_error(answer, 429, "token_budget_exceeded", type_="too_many_requests")
        assert 1 <= int(answer.headers["retry-after"]) <= 86_400, answer.headers
        assert "budget" in error["message"], error
        return None
    assert answer.status_code == 200, answer.text
    usage = answer.json()["usage"]
    if face == "chat":
        return int(usage["prompt_tokens"]) + int(usage["completion_tokens"])
    return int(usage["input_tokens"]) + int(usage["output_tokens"])


def _spend(
    clients: list[httpx.Client], model: str, most: int | None = None, face: str = "chat"
) -> list[Spent]:
    """Rounds of ``PARALLEL`` calls at once, spread over ``clients``, until one round has
    none let through (at most 40 rounds)."""
    rounds: list[Spent] = []
    with ThreadPoolExecutor(PARALLEL) as pool:
        for _ in range(40):
            futures = [
                pool.submit(_call, clients[i % len(clients)], model, most, face)
                for i in range(PARALLEL)
            ]
            answers = [f.result() for f in futures]
            calls = [a for a in answers if a is not None]
            rounds.append(Spent(calls, len(answers) - len(calls)))
            if not calls:
                return rounds
    raise AssertionError(f"the key was never refused: {rounds}")


def _check_bound(rounds: list[Spent]) -> None:
    spent = sum(r.total for r in rounds)
    most = max(c for r in rounds for c in r.calls)
    # The budget is reached (calls are let through while the key is under it) ...
    assert spent >= BUDGET, rounds
    # ... and passed by less than the most one call used, whatever the concurrency.
    assert spent < BUDGET + most, (spent, most, rounds)


def test_parallel_calls_spend_no_more_than_the_budget_and_one_call(one: ParleyServer) -> None:
    key = _budgeted_key(one)
    with guarded(one.client(key)) as http:
        _check_bound(_spend([http], "demo/parley"))


def test_parallel_turns_spend_no_more_than_the_budget_and_one_turn(one: ParleyServer) -> None:
    key = _budgeted_key(one)
    with guarded(one.client(key)) as http:
        _check_bound(_spend([http], "demo/parley", face="responses"))


def test_calls_that_cap_their_tokens_still_run_side_by_side(one: ParleyServer) -> None:
    key = _budgeted_key(one)
    with guarded(one.client(key)) as http:
        rounds = _spend([http], "fake/text:3:200", most=3)
    _check_bound(rounds)
    # A capped call reserves what it may use, not the rest of the budget: several run at once.
    assert len(rounds[0].calls) > 1, rounds


def test_turns_of_a_model_with_a_known_window_reserve_that_window(one: ParleyServer) -> None:
    """A response's turn reserves its model's context window, not the rest of the budget:
    a budget of three windows runs three slow turns at once, and refuses the rest."""
    key = _budgeted_key(one, budget=3 * SMALL_WINDOW)
    with guarded(one.client(key)) as http, ThreadPoolExecutor(PARALLEL) as pool:
        futures = [
            pool.submit(_call, http, "small/text:3:500", None, "responses") for _ in range(PARALLEL)
        ]
        answers = [f.result() for f in futures]
    assert sum(a is not None for a in answers) == 3, answers


@pytest.mark.parametrize(("model", "most"), [("demo/parley", None), ("fake/text:3:200", 3)])
def test_replicas_share_the_reservations(
    two: list[ParleyServer], model: str, most: int | None
) -> None:
    key = _budgeted_key(two[0])
    with guarded(two[0].client(key)) as a, guarded(two[1].client(key)) as b:
        _check_bound(_spend([a, b], model, most))


# ------------------------------------------------------- reservations given back


def _chat(http: httpx.Client, model: str) -> httpx.Response:
    return http.post(
        "/chat/completions", json={"model": model, "messages": [{"role": "user", "content": "hi"}]}
    )


def test_a_failed_call_gives_its_reservation_back(one: ParleyServer) -> None:
    key = _budgeted_key(one)
    with guarded(one.client(key)) as http:
        for _ in range(3):  # each reserved the rest of the budget, and gave it back
            assert _chat(http, "fake/error:500").status_code >= 500
        assert _chat(http, "fake/text:2").status_code == 200


def test_a_client_gone_mid_stream_gives_its_reservation_back(one: ParleyServer) -> None:
    key = _budgeted_key(one)
    body = {"model": "fake/text:100:100", "messages": [{"role": "user", "content": "hi"}]}
    with guarded(one.client(key)) as http:
        with http.stream("POST", "/chat/completions", json={**body, "stream": True}) as response:
            assert response.status_code == 200
            lines = response.iter_lines()  # kept: a line iterator let go closes the stream
            next(lines)
            # The call holds the rest of the budget while it runs.
            busy = _chat(http, "fake/text:2")
            assert_error(busy, 429, "token_budget_exceeded", type_="too_many_requests")
            assert busy.headers["retry-after"] == "1", busy.headers
            assert "reserved by calls in progress" in busy.json()["error"]["message"]
        wait_until(
            lambda: _chat(http, "fake/text:2").status_code == 200,
            timeout=5,
            what="the reservation of the stream the client left to be given back",
        )


def test_the_reservation_of_a_replica_that_died_ends_with_its_lease(
    upstream: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    if not redis_reachable():
        pytest.skip(f"no Redis at {TEST_REDIS_URL} (set PARLEY_TEST_REDIS_URL)")
    env = {"PARLEY_REDIS_URL": TEST_REDIS_URL, "PARLEY_LEASE_SECONDS": "2"}
    for a, b in _servers(upstream, tmp_path_factory, 2, env):
        key = _budgeted_key(a)
        body = {"model": "fake/stall:1", "messages": [{"role": "user", "content": "hi"}]}
        with guarded(a.client(key)) as on_a, guarded(b.client(key)) as on_b:
            with on_a.stream("POST", "/chat/completions", json={**body, "stream": True}) as held:
                assert held.status_code == 200
                lines = held.iter_lines()  # kept: a line iterator let go closes the stream
                next(lines)
                # Replica a's call holds the rest of the budget, for b too ...
                busy = _chat(on_b, "fake/text:2")
                assert_error(busy, 429, "token_budget_exceeded", type_="too_many_requests")
                a.kill()
            # ... until its lease ends, a having died.
            wait_until(
                lambda: _chat(on_b, "fake/text:2").status_code == 200,
                timeout=10,
                what="the reservation of the dead replica to end with its lease",
            )
        wait_until(lambda: upstream.active_streams == 0, what="the upstream to see a die")
        a.start()  # stopped cleanly at the end, as the fixture expects
