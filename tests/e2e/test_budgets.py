"""Daily token budgets of API keys (docs/usage.md, "Daily token budgets"): a key at its
budget starts no model call on any face, 429 ``token_budget_exceeded`` with
``Retry-After``, and the tokens used through one replica count on the other.

Two ``parley serve`` replicas share one database (PostgreSQL in the PostgreSQL pass, else
one SQLite file); both write their counts and read the budgets every few tenths of a second.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.e2e.helpers import assert_error, guarded, wait_until
from tests.harness import FreshDatabase, ParleyServer, tuned

FLUSH = 0.2  # seconds between the writes of the counts
BUDGET_CACHE = 0.2  # seconds a budget and the written counts are remembered
MODEL = "demo/parley"


@dataclass
class Replicas:
    a: ParleyServer
    b: ParleyServer


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicas]:
    tmp = tmp_path_factory.mktemp("budgets")
    db = FreshDatabase(tmp)
    env = tuned(usage_flush_seconds=FLUSH, budget_cache_seconds=BUDGET_CACHE)
    a = ParleyServer(database_url=db.url, workdir=tmp, env=env).start()
    b = ParleyServer(database_url=db.url, workdir=tmp, env=env).start()
    yield Replicas(a, b)
    for server in (a, b):
        server.stop()
        server.assert_clean_log()
    db.drop()


def budgeted_key(server: ParleyServer, name: str, tokens: int) -> tuple[str, str]:
    """A new user's id, and a key of it with ``tokens`` a day made by ``parley keys create``."""
    with server.client(server.admin_key) as admin:
        created = admin.post("/users", json={"name": name})
    assert created.status_code == 201, created.text
    user_id = created.json()["user"]["id"]
    made = server.cli("keys", "create", "--user", user_id, "--daily-tokens", str(tokens))
    assert made.returncode == 0, made.stderr
    return user_id, made.stdout.strip().splitlines()[-1]


def native_turn(http: httpx.Client, assistant_id: str) -> httpx.Response:
    return http.post(
        "/process", json={"assistant_id": assistant_id, "content": "hello", "stream": False}
    )


def chat_call(http: httpx.Client) -> httpx.Response:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hello"}]}
    return http.post("/chat/completions", json=body)


def response_call(http: httpx.Client) -> httpx.Response:
    return http.post("/responses", json={"model": MODEL, "input": "hello"})


def assistant(http: httpx.Client) -> str:
    answer = http.post("/assistants", json={"model": MODEL})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["id"])


def assert_over_budget(response: httpx.Response) -> dict[str, Any]:
    error = assert_error(response, 429, "token_budget_exceeded")
    assert response.headers.get("x-parley-error-type", "rate_limited") == "rate_limited"
    retry = int(response.headers["retry-after"])
    assert 1 <= retry <= 86_400, retry
    assert "daily budget" in error["message"], error
    return error


def test_a_key_over_its_budget_starts_no_turn_on_any_face(replicas: Replicas) -> None:
    _, key = budgeted_key(replicas.a, "native", 1)
    with guarded(replicas.a.client(key)) as http:
        assistant_id = assistant(http)
        first = native_turn(http, assistant_id)
        assert first.status_code == 200, first.text
        assert sum(first.json()["usage"].values()) > 1  # the demo reports its tokens
        # This replica counts its own tokens at once.
        error = assert_over_budget(native_turn(http, assistant_id))
        assert "1 tokens" in error["message"] or "of 1 token" in error["message"], error
        assert_over_budget(chat_call(http))
        assert_over_budget(response_call(http))
        thread_run = {
            "assistant_id": assistant_id,
            "thread": {"messages": [{"role": "user", "content": "hi"}]},
        }
        assert_over_budget(http.post("/threads/runs", json=thread_run))
        # What starts no model call still passes.
        assert http.get("/me").status_code == 200
        assert http.get("/usage").status_code == 200


def test_the_openai_faces_refuse_in_openais_shape(replicas: Replicas) -> None:
    _, chat_key = budgeted_key(replicas.a, "chat", 1)
    with guarded(replicas.a.client(chat_key)) as http:
        assert chat_call(http).status_code == 200
        refused = chat_call(http)
        assert_over_budget(refused)
        assert refused.json()["error"]["type"] == "too_many_requests"
    _, responses_key = budgeted_key(replicas.a, "responses", 1)
    with guarded(replicas.a.client(responses_key)) as http:
        assert response_call(http).status_code == 200
        assert_over_budget(response_call(http))


def test_tokens_used_on_one_replica_refuse_on_the_other(replicas: Replicas) -> None:
    _, key = budgeted_key(replicas.a, "across", 1)
    with guarded(replicas.a.client(key)) as http:
        assert chat_call(http).status_code == 200
    with guarded(replicas.b.client(key)) as http:
        # Within the budget cache plus the other replica's flush (with room for a slow CI).
        refused = wait_until(
            lambda: (r := chat_call(http)).status_code == 429 and r,
            timeout=10 * (FLUSH + BUDGET_CACHE),
            what="replica b to see the tokens used through replica a",
        )
        assert_over_budget(refused)


def test_a_budget_not_reached_and_keys_without_one_pass(replicas: Replicas) -> None:
    _, key = budgeted_key(replicas.a, "roomy", 1_000_000)
    with guarded(replicas.a.client(key)) as http:
        for _ in range(3):
            assert chat_call(http).status_code == 200
    with guarded(replicas.b.client(replicas.b.admin_key)) as admin:
        for _ in range(3):
            assert chat_call(admin).status_code == 200


def test_only_an_admin_sets_a_budget_through_the_api(replicas: Replicas) -> None:
    with guarded(replicas.a.client(replicas.a.admin_key)) as admin:
        user = admin.post("/users", json={"name": "api budget"}).json()
        made = admin.post(
            "/api_keys", json={"user_id": user["user"]["id"], "daily_token_budget": 1}
        )
        assert made.status_code == 201, made.text
        assert made.json()["daily_token_budget"] == 1
        key = made.json()["key"]
    with guarded(replicas.a.client(user["api_key"]["key"])) as own:
        refused = own.post("/api_keys", json={"daily_token_budget": 10**9})
        assert_error(refused, 403, "admin_only")
    with guarded(replicas.a.client(key)) as budgeted:
        assert chat_call(budgeted).status_code == 200
        assert_over_budget(chat_call(budgeted))
        # A budgeted key cannot make itself an unbudgeted one.
        assert_error(budgeted.post("/api_keys", json={}), 403, "admin_only")
