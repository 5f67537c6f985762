"""Embeddings of every adapter that has them, each against the fake upstream in its own
wire format over real sockets (``parley.testing.fake_embeddings``): batching, dimensions,
base64 answers, token counts; and the demo's hashing embedding."""

from __future__ import annotations

import base64
import math
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from parley.config import Settings
from parley.errors import InvalidRequest, UpstreamError
from parley.providers.anthropic import AnthropicProvider
from parley.providers.demo import DemoProvider
from parley.providers.embedding_wire import openai_result
from parley.providers.embeddings import (
    Embedder,
    EmbedRequest,
    embed,
    embedder_of,
    estimate_tokens,
    hashing_embedding,
)
from parley.providers.gemini import GeminiProvider
from parley.providers.ollama import OllamaProvider
from parley.providers.openai_chat import OpenAIChatProvider
from parley.providers.openai_responses import OpenAIResponsesProvider
from parley.providers.registry import ProviderRegistry
from parley.testing.fake_embeddings import fake_embedding
from parley.testing.fake_upstream import FakeUpstream
from tests.providers.helpers import CannedUpstream


def _cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def _close(a: list[float], b: list[float]) -> bool:
    # The fake sends JSON numbers (float64); base64 answers are float32.
    return len(a) == len(b) and all(
        math.isclose(x, y, abs_tol=1e-6) for x, y in zip(a, b, strict=True)
    )


@pytest.fixture
async def gemini(fake: FakeUpstream) -> AsyncIterator[GeminiProvider]:
    adapter = GeminiProvider(f"{fake.url}/v1beta", api_key="g-key", read_timeout=10)
    yield adapter
    await adapter.aclose()


@pytest.fixture
async def ollama(fake: FakeUpstream) -> AsyncIterator[OllamaProvider]:
    adapter = OllamaProvider(fake.url, read_timeout=10)
    yield adapter
    await adapter.aclose()


# ------------------------------------------------------------------------------- OpenAI


async def test_openai_texts(provider: OpenAIChatProvider, fake: FakeUpstream) -> None:
    texts = ["the cat sat on the mat", "a dog barked"]
    result = await embed(provider, EmbedRequest(model="text-embedding-3-small", inputs=texts))
    assert [len(v) for v in result.vectors] == [256, 256]
    assert all(_close(v, fake_embedding(t)) for v, t in zip(result.vectors, texts, strict=True))
    assert (result.input_tokens, result.estimated) == (9, False)
    assert result.model == "text-embedding-3-small"
    path, body = fake.embedding_requests[0]
    assert path == "/v1/embeddings"
    assert body == {"model": "text-embedding-3-small", "input": texts}


async def test_openai_dimensions_user_and_token_ids(
    provider: OpenAIChatProvider, fake: FakeUpstream
) -> None:
    request = EmbedRequest(model="m", inputs=[[1, 2, 3], "hello"], dimensions=32, user="u-1")
    result = await embed(provider, request)
    assert [len(v) for v in result.vectors] == [32, 32]
    assert _close(result.vectors[0], fake_embedding([1, 2, 3], 32))
    assert result.input_tokens == 4
    _, body = fake.embedding_requests[0]
    assert body["dimensions"] == 32 and body["user"] == "u-1"
    assert body["input"] == [[1, 2, 3], "hello"]


async def test_openai_batches_past_its_limit(
    provider: OpenAIChatProvider, fake: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(provider, "embed_batch", 3)
    texts = [f"text number {i}" for i in range(8)]
    result = await embed(provider, EmbedRequest(model="m", inputs=texts))
    assert [len(body["input"]) for _, body in fake.embedding_requests] == [3, 3, 2]
    assert all(_close(v, fake_embedding(t)) for v, t in zip(result.vectors, texts, strict=True))
    assert result.input_tokens == 3 * 8


def test_openai_answer_in_base64_is_read() -> None:
    vector = [0.5, -0.25, 0.125]
    packed = base64.b64encode(struct.pack("<3f", *vector)).decode()
    answer = {
        "data": [
            {"object": "embedding", "index": 1, "embedding": [1.0, 0.0, 0.0]},
            {"object": "embedding", "index": 0, "embedding": packed},
        ],
        "model": "m",
    }
    request = EmbedRequest(model="m", inputs=["abcdefgh", "x"])
    result = openai_result(answer, request, "upstream provider")
    assert result.vectors == [vector, [1.0, 0.0, 0.0]]  # in index order
    assert (result.input_tokens, result.estimated) == (3, True)  # no usage: 2 + 1 estimated


async def test_openai_responses_adapter_embeds_too(fake: FakeUpstream) -> None:
    adapter = OpenAIResponsesProvider(fake.base_url, api_key="sk", read_timeout=10)
    try:
        result = await embed(adapter, EmbedRequest(model="m", inputs=["one two"]))
    finally:
        await adapter.aclose()
    assert _close(result.vectors[0], fake_embedding("one two"))
    assert result.input_tokens == 2


async def test_openai_upstream_error(provider: OpenAIChatProvider) -> None:
    with pytest.raises(UpstreamError) as caught:
        await embed(provider, EmbedRequest(model="error:400", inputs=["x"]))
    assert caught.value.code == "upstream_invalid_request"
    assert "HTTP 400" in caught.value.message and "fake upstream error 400" in caught.value.message


async def test_an_answer_that_is_not_json(canned: CannedUpstream) -> None:
    canned.answer = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5\r\n"
        b"Connection: close\r\n\r\nhello"
    )
    adapter = OpenAIChatProvider(canned.base_url, read_timeout=5)
    try:
        with pytest.raises(UpstreamError) as caught:
            await embed(adapter, EmbedRequest(model="m", inputs=["x"]))
    finally:
        await adapter.aclose()
    assert caught.value.code == "upstream_malformed"


async def test_too_few_vectors_is_an_upstream_error(canned: CannedUpstream) -> None:
    body = b'{"data": [{"index": 0, "embedding": [1.0]}], "usage": {"prompt_tokens": 1}}'
    canned.answer = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\nConnection: close\r\n\r\n"
        + body
    )
    adapter = OpenAIChatProvider(canned.base_url, read_timeout=5)
    try:
        with pytest.raises(UpstreamError) as caught:
            await embed(adapter, EmbedRequest(model="m", inputs=["x", "y"]))
    finally:
        await adapter.aclose()
    assert caught.value.code == "upstream_malformed"
    assert "1 embeddings for 2 inputs" in caught.value.message


# ------------------------------------------------------------------------------- Gemini


async def test_gemini_batches_of_one_hundred(gemini: GeminiProvider, fake: FakeUpstream) -> None:
    texts = [f"passage {i} about rivers" for i in range(250)]
    result = await embed(gemini, EmbedRequest(model="gemini-embedding-001", inputs=texts))
    assert len(result.vectors) == 250
    assert all(_close(v, fake_embedding(t)) for v, t in zip(result.vectors, texts, strict=True))
    paths = {path for path, _ in fake.embedding_requests}
    assert paths == {"/v1beta/models/gemini-embedding-001:batchEmbedContents"}
    sizes = [len(body["requests"]) for _, body in fake.embedding_requests]
    assert sizes == [100, 100, 50]
    first = fake.embedding_requests[0][1]["requests"][0]
    assert first == {
        "model": "models/gemini-embedding-001",
        "content": {"parts": [{"text": "passage 0 about rivers"}]},
    }
    # Gemini gives no token count: estimated, a token per four characters.
    assert result.estimated
    assert result.input_tokens == estimate_tokens(texts)


async def test_gemini_dimensions_and_models_prefix(
    gemini: GeminiProvider, fake: FakeUpstream
) -> None:
    request = EmbedRequest(model="models/text-embedding-004", inputs=["hi"], dimensions=16)
    result = await embed(gemini, request)
    assert len(result.vectors[0]) == 16
    path, body = fake.embedding_requests[0]
    assert path == "/v1beta/models/text-embedding-004:batchEmbedContents"
    assert body["requests"][0]["outputDimensionality"] == 16
    assert body["requests"][0]["model"] == "models/text-embedding-004"


async def test_gemini_refuses_token_ids(gemini: GeminiProvider, fake: FakeUpstream) -> None:
    with pytest.raises(InvalidRequest) as caught:
        await embed(gemini, EmbedRequest(model="m", inputs=[[1, 2]]))
    assert caught.value.code == "token_input_unsupported"
    assert fake.embedding_requests == []


async def test_gemini_error_keeps_its_message(gemini: GeminiProvider) -> None:
    with pytest.raises(UpstreamError) as caught:
        await embed(gemini, EmbedRequest(model="error:503", inputs=["x"]))
    assert "Gemini API" in caught.value.message and "HTTP 503" in caught.value.message


# ------------------------------------------------------------------------------- Ollama


async def test_ollama(ollama: OllamaProvider, fake: FakeUpstream) -> None:
    texts = ["why is the sky blue", "because of scattering"]
    request = EmbedRequest(model="nomic-embed-text", inputs=texts, dimensions=64)
    result = await embed(ollama, request)
    assert all(_close(v, fake_embedding(t, 64)) for v, t in zip(result.vectors, texts, strict=True))
    assert (result.input_tokens, result.estimated) == (8, False)
    path, body = fake.embedding_requests[0]
    assert path == "/api/embed"
    assert body == {"model": "nomic-embed-text", "input": texts, "dimensions": 64}


async def test_ollama_batches(
    ollama: OllamaProvider, fake: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ollama, "embed_batch", 2)
    result = await embed(ollama, EmbedRequest(model="m", inputs=["a", "b", "c"]))
    assert len(result.vectors) == 3
    assert [len(body["input"]) for _, body in fake.embedding_requests] == [2, 1]


# ------------------------------------------------------------------------ which can embed


def test_anthropic_has_no_embeddings() -> None:
    adapter = AnthropicProvider(base_url="http://127.0.0.1:9", api_key="k")
    assert not isinstance(adapter, Embedder)
    with pytest.raises(InvalidRequest) as caught:
        embedder_of(adapter, "anthropic")
    assert caught.value.code == "embeddings_unsupported"


def test_registry_embedder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "k")
    registry = ProviderRegistry(Settings(_env_file=None))  # type: ignore[call-arg]
    embedder, model_id = registry.embedder("demo/embed")
    assert isinstance(embedder, DemoProvider) and model_id == "embed"
    with pytest.raises(InvalidRequest) as caught:
        registry.embedder("anthropic/claude-sonnet-4-5")
    assert caught.value.code == "embeddings_unsupported"
    with pytest.raises(InvalidRequest) as unknown:
        registry.embedder("nowhere/model")
    assert unknown.value.code == "unknown_model"


async def test_registry_embeds_with_configured_providers(
    fake: FakeUpstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The call vector stores make: a model name and texts, through the config's providers."""
    monkeypatch.delenv("PARLEY_CONFIG", raising=False)
    config = tmp_path / "parley.toml"
    config.write_text(
        f"""
[providers.local]
kind = "openai-chat"
base_url = "{fake.base_url}"
api_key = "sk"

[providers.gem]
kind = "gemini"
base_url = "{fake.url}/v1beta"
api_key = "g"
"""
    )
    registry = ProviderRegistry(Settings(config=config))
    try:
        local = await registry.embed("local/e5", ["red apples", "green pears"], dimensions=8)
        gem = await registry.embed("gem/gemini-embedding-001", ["red apples"])
        demo = await registry.embed("demo/embed", ["red apples"])
    finally:
        await registry.aclose()
    assert _close(local.vectors[1], fake_embedding("green pears", 8))
    assert local.input_tokens == 4 and not local.estimated
    assert _close(gem.vectors[0], fake_embedding("red apples")) and gem.estimated
    assert demo.vectors[0] == hashing_embedding("red apples")
    assert [path for path, _ in fake.embedding_requests] == [
        "/v1/embeddings",
        "/v1beta/models/gemini-embedding-001:batchEmbedContents",
    ]


# ---------------------------------------------------------------------------- the checks


@pytest.mark.parametrize(
    ("inputs", "dimensions", "words"),
    [
        ([], None, "must not be empty"),
        (["ok", ""], None, "input[1]"),
        ([[]], None, "empty list of tokens"),
        (["x"] * 2049, None, "at most 2048"),
        (["x"], 0, "at least 1"),
    ],
)
async def test_inputs_refused_before_any_call(
    inputs: list[str | list[int]], dimensions: int | None, words: str
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        await embed(
            DemoProvider(), EmbedRequest(model="embed", inputs=inputs, dimensions=dimensions)
        )
    assert words in caught.value.message


# ------------------------------------------------------------------------------ the demo


async def test_demo_embedding_is_deterministic_and_normalised() -> None:
    demo = DemoProvider()
    texts = ["Parley keeps conversations", "Parley keeps conversations", "!!!"]
    result = await embed(demo, EmbedRequest(model="embed", inputs=texts))
    first, again, empty = result.vectors
    assert first == again == hashing_embedding(texts[0])
    assert len(first) == 256
    assert math.isclose(math.sqrt(sum(v * v for v in first)), 1.0)
    assert not any(empty)  # no word: a zero vector
    assert result.input_tokens == 3 + 3 + 1
    sized = await embed(demo, EmbedRequest(model="embed", inputs=["a b"], dimensions=1024))
    assert len(sized.vectors[0]) == 1024
    with pytest.raises(InvalidRequest):
        await embed(demo, EmbedRequest(model="embed", inputs=["a"], dimensions=5000))


async def test_demo_similar_texts_are_closer() -> None:
    query, near, far = (
        hashing_embedding(text)
        for text in (
            "how do I reset my password",
            "To reset your password, open the account settings.",
            "The river floods every spring after the snow melts.",
        )
    )
    assert _cosine(query, near) > _cosine(query, far) + 0.2
    # Word pieces count: a plural is close to its singular.
    assert _cosine(hashing_embedding("embedding"), hashing_embedding("embeddings")) > 0.5


async def test_demo_takes_token_ids() -> None:
    result = await embed(DemoProvider(), EmbedRequest(model="embed", inputs=[[5, 6, 7]]))
    assert result.vectors[0] == hashing_embedding([5, 6, 7])
    assert result.input_tokens == 3
