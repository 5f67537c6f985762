"""``POST /v1/embeddings`` on a real ``parley serve``, through the official ``openai`` SDK
and raw HTTP: the OpenAI-compatible, Gemini and Ollama kinds against the fake upstream in
their own wire formats over real sockets, the demo's offline embedding, bad input answered
400 in OpenAI's shape, and the tokens counted for the key under the face ``embeddings``."""

from __future__ import annotations

import base64
import math
import struct
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from parley.providers.embeddings import hashing_embedding
from parley.testing.fake_embeddings import fake_embedding
from parley.testing.fake_upstream import FakeUpstream
from tests.e2e.helpers import wait_until
from tests.harness import FreshDatabase, ParleyServer, tuned

FLUSH = 0.2  # seconds between the writes of the usage counts


@pytest.fixture(scope="module")
def server(upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    tmp = tmp_path_factory.mktemp("embeddings")
    db = FreshDatabase(tmp)
    config = f"""
[providers.fake]
kind = "openai-chat"
base_url = "{upstream.base_url}"
api_key = "sk-fake"
max_retries = 0

[providers.gem]
kind = "gemini"
base_url = "{upstream.url}/v1beta"
api_key = "g-fake"
max_retries = 0

[providers.llama]
kind = "ollama"
base_url = "{upstream.url}"
max_retries = 0

[providers.claude]
kind = "anthropic"
base_url = "{upstream.url}"
api_key = "sk-ant-fake"
"""
    env = tuned(usage_flush_seconds=FLUSH)
    srv = ParleyServer(database_url=db.url, workdir=tmp, config=config, env=env).start()
    yield srv
    srv.stop()
    srv.assert_clean_log()
    db.drop()


@pytest.fixture
def key(server: Any) -> str:
    return str(server.new_user("embedder"))


@pytest.fixture
def client(server: Any, key: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=f"{server.base_url}/v1", api_key=key, max_retries=0, timeout=30
    ) as sdk:
        yield sdk


@pytest.fixture
def http(server: Any, key: str) -> Iterator[httpx.Client]:
    with server.client(key) as plain:
        yield plain


def close(got: list[float], expected: list[float]) -> bool:
    # A base64 answer is float32.
    return len(got) == len(expected) and all(
        math.isclose(a, b, abs_tol=1e-6) for a, b in zip(got, expected, strict=True)
    )


# ---------------------------------------------------------------------- through the SDK


def test_floats_from_an_openai_compatible_provider(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    texts = ["the cat sat on the mat", "a dog barked at night"]
    answer = client.embeddings.create(
        model="fake/text-embedding-3-small", input=texts, encoding_format="float"
    )
    assert answer.object == "list" and answer.model == "fake/text-embedding-3-small"
    assert [item.index for item in answer.data] == [0, 1]
    assert all(item.object == "embedding" for item in answer.data)
    assert all(
        close(item.embedding, fake_embedding(text))
        for item, text in zip(answer.data, texts, strict=True)
    )
    assert (answer.usage.prompt_tokens, answer.usage.total_tokens) == (11, 11)


def test_base64_by_default_is_decoded_by_the_sdk(client: openai.OpenAI) -> None:
    # The SDK asks for base64 when no encoding_format is given, and decodes it.
    answer = client.embeddings.create(model="fake/text-embedding-3-small", input="hello world")
    [item] = answer.data
    assert close(item.embedding, fake_embedding("hello world"))


def test_raw_base64_answer(http: httpx.Client) -> None:
    answer = http.post(
        "/embeddings",
        json={"model": "demo/embed", "input": ["abc"], "encoding_format": "base64"},
    )
    assert answer.status_code == 200, answer.text
    embedding = answer.json()["data"][0]["embedding"]
    assert isinstance(embedding, str)
    raw = base64.b64decode(embedding)
    assert len(raw) == 256 * 4  # float32, little-endian
    assert close(list(struct.unpack("<256f", raw)), hashing_embedding("abc"))


def test_gemini_in_batches_with_dimensions(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    texts = [f"passage {i} on the river" for i in range(120)]
    before = len(upstream.embedding_requests)
    answer = client.embeddings.create(
        model="gem/gemini-embedding-001", input=texts, dimensions=32, encoding_format="float"
    )
    assert len(answer.data) == 120
    assert all(
        close(item.embedding, fake_embedding(text, 32))
        for item, text in zip(answer.data, texts, strict=True)
    )
    sent = upstream.embedding_requests[before:]
    assert [len(body["requests"]) for _, body in sent] == [100, 20]
    # Gemini counts no tokens: Parley's estimate, a token per four characters.
    assert answer.usage.prompt_tokens == sum(math.ceil(len(t) / 4) for t in texts)


def test_ollama(client: openai.OpenAI) -> None:
    answer = client.embeddings.create(model="llama/nomic-embed-text", input=["why is it blue"])
    assert close(answer.data[0].embedding, fake_embedding("why is it blue"))
    assert answer.usage.prompt_tokens == 4


def test_token_ids_pass_through_to_the_openai_family(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    answer = client.embeddings.create(
        model="fake/text-embedding-3-small", input=[[10, 20, 30], [40]], encoding_format="float"
    )
    assert close(answer.data[0].embedding, fake_embedding([10, 20, 30]))
    assert upstream.embedding_requests[-1][1]["input"] == [[10, 20, 30], [40]]
    single = client.embeddings.create(model="fake/m", input=[7, 8], encoding_format="float")
    assert close(single.data[0].embedding, fake_embedding([7, 8]))


def test_demo_embedding_offline(client: openai.OpenAI) -> None:
    texts = ["reset your password", "how to reset a password", "rivers flood in spring"]
    answer = client.embeddings.create(model="demo/embed", input=texts, encoding_format="float")
    vectors = [item.embedding for item in answer.data]
    assert all(len(v) == 256 for v in vectors)
    assert all(math.isclose(math.sqrt(sum(x * x for x in v)), 1.0) for v in vectors)

    def cosine(a: list[float], b: list[float]) -> float:
        return sum(x * y for x, y in zip(a, b, strict=True))

    assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2])
    again = client.embeddings.create(model="demo/embed", input=texts[0], encoding_format="float")
    assert again.data[0].embedding == vectors[0]


# ------------------------------------------------------------------------- refusals


def refused(http: httpx.Client, body: Any, status: int = 400) -> dict[str, Any]:
    answer = http.post("/embeddings", json=body)
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert set(error) >= {"message", "type"}
    assert "Traceback" not in error["message"]
    return dict(error)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"model": "demo/embed", "input": ""}, "empty string"),
        ({"model": "demo/embed", "input": []}, "must not be empty"),
        ({"model": "demo/embed", "input": ["ok", ""]}, "input[1]"),
        ({"model": "demo/embed", "input": ["x"] * 2049}, "at most 2048"),
        ({"model": "demo/embed", "input": 5}, "input"),
        ({"model": "demo/embed", "input": [1, "a"]}, "input"),
        ({"model": "demo/embed", "input": [True]}, "input"),
        ({"model": "demo/embed", "input": {"text": "x"}}, "input"),
        ({"model": "demo/embed"}, "input"),
        ({"input": "x"}, "model"),
        ({"model": "demo/embed", "input": "x", "encoding_format": "hex"}, "encoding_format"),
        ({"model": "demo/embed", "input": "x", "dimensions": 0}, "dimensions"),
        ({"model": "demo/embed", "input": "x", "dimensions": "8"}, "dimensions"),
        ({"model": "demo/embed", "input": "x", "colour": "red"}, "colour"),
    ],
)
def test_bad_input(http: httpx.Client, body: dict[str, Any], words: str) -> None:
    error = refused(http, body)
    assert error["type"] == "invalid_request"
    assert words in error["message"] or words == error.get("param"), error


def test_chat_only_provider(http: httpx.Client) -> None:
    error = refused(http, {"model": "claude/claude-sonnet-4-5", "input": "x"})
    assert error["code"] == "embeddings_unsupported"
    assert "'claude' has no embeddings API" in error["message"]


def test_token_ids_where_the_provider_takes_text_only(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    before = len(upstream.embedding_requests)
    with pytest.raises(openai.BadRequestError) as caught:
        client.embeddings.create(model="gem/gemini-embedding-001", input=[[1, 2, 3]])
    assert caught.value.code == "token_input_unsupported"
    assert len(upstream.embedding_requests) == before  # refused before any call


def test_unknown_model(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.embeddings.create(model="nowhere/embedder", input="x")
    assert caught.value.code == "unknown_model"


def test_upstream_failure(http: httpx.Client) -> None:
    error = refused(http, {"model": "fake/error:503", "input": "x"}, status=502)
    assert error["type"] == "model_error"
    assert "HTTP 503" in error["message"]


def test_needs_a_key(server: Any) -> None:
    answer = httpx.post(
        f"{server.base_url}/v1/embeddings", json={"model": "demo/embed", "input": "x"}
    )
    assert answer.status_code == 401
    assert answer.json()["error"]["type"] == "authentication_error"


# --------------------------------------------------------------------------- usage


def test_tokens_are_counted_for_the_key(
    client: openai.OpenAI, http: httpx.Client, key: str
) -> None:
    client.embeddings.create(model="fake/e", input=["one two three"], encoding_format="float")
    client.embeddings.create(model="fake/e", input=["four five"], encoding_format="float")
    client.embeddings.create(model="demo/embed", input="six", encoding_format="float")

    def counted() -> dict[tuple[str, str], tuple[int, int, int]] | None:
        answer = http.get("/usage", params={"group_by": "model,face"})
        assert answer.status_code == 200, answer.text
        lines = {
            (line["model"], line["face"]): (
                line["requests"],
                line["input_tokens"],
                line["output_tokens"],
            )
            for line in answer.json()["data"]
        }
        expected = {("fake/e", "embeddings"): (2, 5, 0), ("demo/embed", "embeddings"): (1, 1, 0)}
        return lines if lines == expected else None

    wait_until(counted, what="the embedding tokens to be counted")


def test_a_key_over_its_budget_is_refused(server: Any) -> None:
    with server.client(server.admin_key) as admin:
        user = admin.post("/users", json={"name": "budgeted"}).json()["user"]
        created = admin.post("/api_keys", json={"user_id": user["id"], "daily_token_budget": 5})
        assert created.status_code in (200, 201), created.text
    with server.client(created.json()["key"]) as http:
        first = http.post("/embeddings", json={"model": "demo/embed", "input": "a b c d e f"})
        assert first.status_code == 200, first.text

        def refused_now() -> bool:
            answer = http.post("/embeddings", json={"model": "demo/embed", "input": "g"})
            return bool(answer.status_code == 429)

        wait_until(refused_now, what="the key's budget to refuse embeddings")
