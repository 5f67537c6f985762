"""Embeddings: the second, optional capability of a provider, beside ``stream``.

An adapter that can embed has ``embed(request) -> EmbedResult`` (the ``Embedder``
protocol) and says how many inputs one upstream call may carry (``embed_batch``) and
whether it takes token ids as well as text (``takes_token_ids``). ``embed`` (the function
here) is what callers use: it checks the request, splits it into batches the provider
takes, and joins the answers in order with their token counts added up. A provider without
embeddings (Anthropic has no embeddings API) has no ``embed`` method, and ``embedder_of``
says so with a clear ``InvalidRequest``.

Which adapters embed, and how (each wire format is in ``embedding_wire``):

- ``openai-chat`` and ``openai-responses`` (OpenAI and every OpenAI-compatible provider:
  Mistral, Together, OpenRouter, vLLM, ...): ``POST {base_url}/embeddings``; token ids are
  passed through; usage from the answer's ``usage.prompt_tokens``.
- ``gemini``: ``POST {base_url}/models/{model}:batchEmbedContents``, 100 inputs a call;
  its answer carries no token counts, so they are estimated (``estimate_tokens``) and the
  result says so (``estimated``).
- ``ollama``: ``POST {base_url}/api/embed``; usage from ``prompt_eval_count``.
- ``demo``: ``hashing_embedding``, offline and deterministic (see there).

``hashing_embedding`` is also what the fake upstream answers with, so tests over real
sockets see vectors whose nearness means something.
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from parley.errors import InvalidRequest, UpstreamError

__all__ = [
    "DEFAULT_DEMO_DIMENSIONS",
    "MAX_DEMO_DIMENSIONS",
    "MAX_DIMENSIONS",
    "MAX_INPUTS",
    "EmbedInput",
    "EmbedRequest",
    "EmbedResult",
    "Embedder",
    "check_inputs",
    "embed",
    "embedder_of",
    "estimate_tokens",
    "hashing_embedding",
]

#: The most inputs one request may hold (OpenAI's limit).
MAX_INPUTS = 2048
#: The demo embedding's length unless a request asks for ``dimensions``.
DEFAULT_DEMO_DIMENSIONS = 256
#: The longest demo embedding a request may ask for.
MAX_DEMO_DIMENSIONS = 4096
#: The longest embedding any request may ask for (``dimensions``): twice the longest
#: model's (OpenAI's text-embedding-3-large has 3072 dimensions, the largest common ones
#: 4096), and a bound on the answer's size (a vector of 8192 numbers per input).
MAX_DIMENSIONS = 8192

#: One input: a text, or a list of token ids (OpenAI-family providers only).
EmbedInput = str | list[int]


@dataclass(slots=True)
class EmbedRequest:
    """One embedding call: the model id within its provider, and the inputs in order."""

    model: str
    inputs: Sequence[EmbedInput]
    #: The length of each vector (None: the model's own).
    dimensions: int | None = None
    #: OpenAI's ``user``, passed on to providers that take it.
    user: str | None = None


@dataclass(slots=True)
class EmbedResult:
    """One vector per input, in the order of the inputs."""

    vectors: list[list[float]]
    #: Tokens of the inputs, as the provider counted them (or estimated: ``estimated``).
    input_tokens: int = 0
    #: Whether ``input_tokens`` is Parley's estimate (the provider gave no count).
    estimated: bool = False
    #: The model that answered, as the provider names it ("" when it does not say).
    model: str = ""


@runtime_checkable
class Embedder(Protocol):
    """A provider that can embed."""

    #: The most inputs one upstream call may carry.
    embed_batch: int
    #: Whether inputs may be token ids (``list[int]``) as well as text.
    takes_token_ids: bool

    async def embed(self, request: EmbedRequest) -> EmbedResult:
        """The vectors of ``request.inputs`` (at most ``embed_batch`` of them), in order.
        Raises ``UpstreamError`` with a message safe to show a user."""
        ...


def embedder_of(provider: object, provider_name: str) -> Embedder:
    """``provider`` as an ``Embedder``, or ``InvalidRequest`` (``embeddings_unsupported``)
    when its API has no embeddings."""
    if isinstance(provider, Embedder):
        return provider
    raise InvalidRequest(
        f"The provider {provider_name!r} has no embeddings API; embedding models are served "
        "by OpenAI-compatible, Gemini, Ollama and demo providers.",
        code="embeddings_unsupported",
        param="model",
    )


def check_inputs(request: EmbedRequest, embedder: Embedder) -> None:
    """Refuse what no provider or this one cannot take, naming the input at fault."""
    if not request.inputs:
        raise InvalidRequest("'input' must not be empty.", param="input")
    if len(request.inputs) > MAX_INPUTS:
        raise InvalidRequest(
            f"'input' holds {len(request.inputs)} items; at most {MAX_INPUTS} may be embedded "
            "in one request.",
            param="input",
        )
    for index, item in enumerate(request.inputs):
        if isinstance(item, str):
            if not item:
                raise InvalidRequest(
                    f"'input[{index}]' is an empty string; every input must have text.",
                    param="input",
                )
            continue
        if not item:
            raise InvalidRequest(f"'input[{index}]' is an empty list of tokens.", param="input")
        if not embedder.takes_token_ids:
            raise InvalidRequest(
                "This model takes text only: give 'input' as a string or a list of strings, "
                "not as token ids.",
                code="token_input_unsupported",
                param="input",
            )
    if request.dimensions is not None and request.dimensions < 1:
        raise InvalidRequest("'dimensions' must be at least 1.", param="dimensions")
    if request.dimensions is not None and request.dimensions > MAX_DIMENSIONS:
        raise InvalidRequest(
            f"'dimensions' is {request.dimensions}; at most {MAX_DIMENSIONS} may be asked for.",
            param="dimensions",
        )


async def embed(embedder: Embedder, request: EmbedRequest) -> EmbedResult:
    """The vectors of every input of ``request``, in order, in as many upstream calls as
    the provider's batch size needs (one after the other); the token counts are added up.

    Raises ``InvalidRequest`` for inputs no provider or this one takes, ``UpstreamError``
    when a call fails (nothing is returned in part)."""
    check_inputs(request, embedder)
    size = max(1, embedder.embed_batch)
    if len(request.inputs) <= size:
        return await _embed_one(embedder, request)
    total = EmbedResult(vectors=[])
    for start in range(0, len(request.inputs), size):
        part = EmbedRequest(
            model=request.model,
            inputs=request.inputs[start : start + size],
            dimensions=request.dimensions,
            user=request.user,
        )
        result = await _embed_one(embedder, part)
        total.vectors.extend(result.vectors)
        total.input_tokens += result.input_tokens
        total.estimated = total.estimated or result.estimated
        total.model = total.model or result.model
    return total


async def _embed_one(embedder: Embedder, request: EmbedRequest) -> EmbedResult:
    result = await embedder.embed(request)
    if len(result.vectors) != len(request.inputs):
        label = getattr(embedder, "label", "upstream provider")
        raise UpstreamError(
            f"The {label} sent {len(result.vectors)} embeddings for {len(request.inputs)} inputs.",
            code="upstream_malformed",
        )
    return result


def estimate_tokens(inputs: Sequence[EmbedInput]) -> int:
    """Tokens of ``inputs`` when the provider gives no count: a token per four
    characters of text (at least one per input), a token per token id."""
    return sum(
        max(1, math.ceil(len(item) / 4)) if isinstance(item, str) else len(item) for item in inputs
    )


# ------------------------------------------------------------------ the hashing embedding

_TERM = re.compile(r"\w+", re.UNICODE)


@functools.lru_cache(maxsize=1 << 16)
def _feature_buckets(feature: str, dimensions: int) -> tuple[int, float]:
    """The bucket of one feature and its sign (BLAKE2b: the same on every machine)."""
    digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
    value = int.from_bytes(digest, "little")
    return (value >> 1) % dimensions, 1.0 if value & 1 else -1.0


@functools.lru_cache(maxsize=1 << 16)
def _word_buckets(word: str, dimensions: int) -> tuple[tuple[int, float], ...]:
    """What one word adds: itself at weight 1, and its character trigrams (the word padded
    with a space each side) at half weight, so that "embedding" and "embeddings" share most
    of theirs. Kept per word: a text's words repeat."""
    padded = f" {word} "
    features = [("w" + word, 1.0)]
    features += [("c" + padded[i : i + 3], 0.5) for i in range(len(padded) - 2)]
    out = []
    for feature, weight in features:
        index, sign = _feature_buckets(feature, dimensions)
        out.append((index, sign * weight))
    return tuple(out)


def hashing_embedding(item: EmbedInput, dimensions: int = DEFAULT_DEMO_DIMENSIONS) -> list[float]:
    """A lexical embedding of ``item``, offline and deterministic: its words (lower-cased)
    and their character trigrams (``_word_buckets``), or its token ids, each hashed to one
    of ``dimensions`` buckets with a sign; the sums damped (square root) and the vector
    scaled to length 1 (an input with no word gives a zero vector).

    Texts that share words or word pieces come out close; it knows nothing of meaning
    (synonyms, paraphrases and other languages are far apart), so it is a stand-in for a
    real embedding model, not a replacement."""
    buckets = [0.0] * dimensions
    if isinstance(item, str):
        for word, count in Counter(_TERM.findall(item.lower())).items():
            for index, value in _word_buckets(word, dimensions):
                buckets[index] += value * count
    else:
        for token, count in Counter(item).items():
            index, sign = _feature_buckets(f"t{token}", dimensions)
            buckets[index] += sign * count
    damped = [math.copysign(math.sqrt(abs(v)), v) for v in buckets]
    norm = math.sqrt(sum(v * v for v in damped))
    if norm == 0.0:
        return damped
    return [v / norm for v in damped]
