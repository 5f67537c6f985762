"""Model names without a provider, over HTTP: on a server whose default provider is the fake
upstream (``PARLEY_DEFAULT_PROVIDER=fake``), ``text:4`` is ``fake/text:4`` on every face and
reads back as it was sent; on the suite's server (default ``openai``, no key) such a name is
a clear error saying what to set."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from parley.store.db import normalise_url
from parley.testing.fake_upstream import expected_text
from tests.e2e.helpers import (
    assert_error,
    create_assistant,
    guarded,
    marker,
    messages,
    stream_process,
    upstream_requests,
    wait_until,
)
from tests.e2e.responses_helpers import create, output_text
from tests.harness import FreshDatabase, ParleyServer, free_port, provider_config


@pytest.fixture(scope="module")
def fake_default(upstream: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ParleyServer]:
    tmp = tmp_path_factory.mktemp("default-provider")
    db = FreshDatabase(tmp)
    srv = ParleyServer(
        database_url=db.url,
        workdir=tmp,
        config=provider_config(upstream.base_url, free_port()),
        env={"PARLEY_DEFAULT_PROVIDER": "fake"},
    ).start()
    yield srv
    srv.stop()
    srv.assert_clean_log()
    db.drop()


@pytest.fixture
def api(fake_default: ParleyServer) -> Iterator[httpx.Client]:
    """A new user of the server whose default provider is the fake upstream."""
    with guarded(fake_default.client(fake_default.new_user())) as client:
        yield client


def _sent(upstream: Any, word: str) -> dict[str, Any]:
    """The one request the fake upstream got for ``word``."""
    (body,) = upstream_requests(upstream, word)
    return body


def test_a_chat_completion_goes_to_the_default_provider(api: httpx.Client, upstream: Any) -> None:
    word = marker()
    body = {"model": "text:4", "messages": [{"role": "user", "content": word}]}
    answer = api.post("/chat/completions", json=body)
    assert answer.status_code == 200, answer.text
    completion = answer.json()
    assert completion["model"] == "text:4"
    assert completion["choices"][0]["message"]["content"] == expected_text(4)
    assert _sent(upstream, word)["model"] == "text:4"


def test_a_response_goes_to_the_default_provider(api: httpx.Client, upstream: Any) -> None:
    word = marker()
    response = create(api, model="text:3", input=word)
    assert response["status"] == "completed" and response["model"] == "text:3"
    assert output_text(response) == expected_text(3)
    assert _sent(upstream, word)["model"] == "text:3"


def test_an_assistant_keeps_the_name_it_was_given_and_runs(
    api: httpx.Client, upstream: Any
) -> None:
    bot = create_assistant(api, "text:3")
    assert bot["model"] == "text:3"
    assert api.get(f"/assistants/{bot['id']}").json()["model"] == "text:3"

    # The native API: a flow B turn of the assistant.
    word = marker()
    turn = stream_process(api, assistant_id=bot["id"], content=word)
    assert turn.final_status == "completed" and turn.text == expected_text(3)
    assert _sent(upstream, word)["model"] == "text:3"

    # Assistants v2: a run of the assistant, and one that overrides its model.
    updated = api.post(f"/assistants/{bot['id']}", json={"model": "text:2"})
    assert updated.status_code == 200, updated.text
    assert updated.json()["model"] == "text:2"
    for override, expected in ((None, "text:2"), ("text:5", "text:5")):
        word = marker()
        body: dict[str, Any] = {
            "assistant_id": bot["id"],
            "thread": {"messages": [{"role": "user", "content": word}]},
        }
        if override:
            body["model"] = override
        answer = api.post("/threads/runs", json=body)
        assert answer.status_code == 200, answer.text
        run = answer.json()
        assert run["model"] == expected

        def ended(run: dict[str, Any] = run) -> dict[str, Any] | None:
            now = api.get(f"/threads/{run['thread_id']}/runs/{run['id']}").json()
            return now if now["status"] not in ("queued", "in_progress") else None

        done = wait_until(ended, what="the run to end")
        assert done["status"] == "completed" and done["model"] == expected
        n = int(expected.partition(":")[2])
        assert messages(api, run["thread_id"])[-1]["content"] == expected_text(n)
        assert _sent(upstream, word)["model"] == expected


def test_models_retrieve_an_unprefixed_model(api: httpx.Client) -> None:
    answer = api.get("/models/text")  # the fake upstream lists text, reasoning and tools
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "id": "text",
        "object": "model",
        "created": 0,
        "owned_by": "fake",
        "provider": "fake",
    }
    missing = assert_error(api.get("/models/not-listed"), 404, "model_not_found")
    assert "not-listed" in missing["message"] and "default provider fake" in missing["message"]
    assert api.get("/models/demo/parley").json()["id"] == "demo/parley"  # prefixed: as before


# ------------------------------------------------- the suite's server: default openai, no key


def test_an_unprefixed_model_without_the_default_providers_key_says_what_to_do(
    http: httpx.Client,
) -> None:
    for answer in (
        http.post("/chat/completions", json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}),
        http.post("/assistants", json={"model": "gpt-4o"}),
        http.post("/responses", json={"model": "gpt-4o", "input": "hi"}),
    ):  # fmt: skip
        error = assert_error(answer, 400, "provider_not_configured")
        for said in ("'gpt-4o'", "'openai'", "OPENAI_API_KEY", "PARLEY_DEFAULT_PROVIDER"):
            assert said in error["message"], error
        assert "provider/model-id" in error["message"]
    missing = assert_error(http.get("/models/gpt-4o"), 404, "model_not_found")
    assert "OPENAI_API_KEY" in missing["message"]
    assert "PARLEY_DEFAULT_PROVIDER" in missing["message"]


def test_tokens_are_counted_under_the_providers_name(
    api: httpx.Client, fake_default: ParleyServer
) -> None:
    """``text:5:0`` and ``fake/text:5:0`` are one model: one row of counts."""
    for model in ("text:5:0", "fake/text:5:0"):
        body = {"model": model, "messages": [{"role": "user", "content": marker()}]}
        api.post("/chat/completions", json=body).raise_for_status()
    engine = sa.create_engine(normalise_url(fake_default.database_url))
    query = sa.text("SELECT model, requests FROM key_usage WHERE model LIKE '%text:5:0'")
    try:
        rows: list[Any] = []
        for _ in range(100):  # written within a second of the calls
            with engine.connect() as conn:
                rows = [tuple(r) for r in conn.execute(query)]
            if rows and rows[0][1] == 2:
                break
            time.sleep(0.05)
    finally:
        engine.dispose()
    assert rows == [("fake/text:5:0", 2)]
