"""The embedding requests and answers of each API, as plain functions of JSON (no I/O): the
adapters' ``embed`` methods post the body and read the answer with them.

- OpenAI and every OpenAI-compatible API: ``POST {base_url}/embeddings`` with ``{"model",
  "input": [...], "dimensions"?, "user"?}`` (floats, the default), answered by
  ``{"data": [{"index", "embedding"}], "model", "usage": {"prompt_tokens",
  "total_tokens"}}``. An ``embedding`` given as base64 (little-endian float32, what OpenAI
  sends for ``encoding_format: base64``) is read as well.
- Gemini: ``POST {base_url}/models/{model}:batchEmbedContents`` with ``{"requests":
  [{"model": "models/{model}", "content": {"parts": [{"text"}]}, "outputDimensionality"?}]}``,
  answered by ``{"embeddings": [{"values": [...]}]}``, at most 100 requests a call, and no
  token count (a ``usageMetadata.promptTokenCount``, should one come, is used).
- Ollama: ``POST {base_url}/api/embed`` with ``{"model", "input": [...], "dimensions"?}``,
  answered by ``{"model", "embeddings": [[...]], "prompt_eval_count"}``.
"""

from __future__ import annotations

import base64
import binascii
import math
import struct
from typing import Any

from parley.errors import UpstreamError
from parley.providers.embeddings import EmbedRequest, EmbedResult, estimate_tokens

__all__ = [
    "GEMINI_BATCH",
    "OLLAMA_BATCH",
    "OPENAI_BATCH",
    "gemini_body",
    "gemini_result",
    "ollama_body",
    "ollama_result",
    "openai_body",
    "openai_result",
]

#: Inputs per upstream call: OpenAI's limit; Gemini's ``batchEmbedContents`` limit; and a
#: bound of our own for Ollama, which embeds a batch in one go on the server's memory.
OPENAI_BATCH = 2048
GEMINI_BATCH = 100
OLLAMA_BATCH = 256


def _bad(label: str, what: str) -> UpstreamError:
    return UpstreamError(
        f"The {label} sent {what}; the embeddings could not be read.", code="upstream_malformed"
    )


def _vector(value: Any, label: str) -> list[float]:
    """A vector as sent: a JSON list of numbers, or base64 of little-endian float32."""
    if isinstance(value, str):
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise _bad(label, "an embedding that is neither numbers nor base64") from None
        if len(raw) % 4:
            raise _bad(label, "a base64 embedding whose length is not a whole number of floats")
        return list(struct.unpack(f"<{len(raw) // 4}f", raw))
    if not isinstance(value, list) or not value:
        raise _bad(label, "an embedding that is not a list of numbers")
    out: list[float] = []
    for number in value:
        if isinstance(number, bool) or not isinstance(number, int | float):
            raise _bad(label, "an embedding that is not a list of numbers")
        if not math.isfinite(number):
            raise _bad(label, "an embedding with a number that is not finite")
        out.append(float(number))
    return out


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _model_input_body(request: EmbedRequest) -> dict[str, Any]:
    """The body OpenAI's and Ollama's embedding calls share: model, inputs, dimensions."""
    body: dict[str, Any] = {"model": request.model, "input": list(request.inputs)}
    if request.dimensions is not None:
        body["dimensions"] = request.dimensions
    return body


def _result(
    vectors: list[list[float]], tokens: int | None, request: EmbedRequest, model: Any
) -> EmbedResult:
    """The result of an answer: its token count when it gave one, else an estimate
    (``estimate_tokens``); the model it names, "" when it names none."""
    return EmbedResult(
        vectors=vectors,
        input_tokens=tokens if tokens is not None else estimate_tokens(request.inputs),
        estimated=tokens is None,
        model=model if isinstance(model, str) else "",
    )


# ------------------------------------------------------------------------------- OpenAI


def openai_body(request: EmbedRequest) -> dict[str, Any]:
    # No ``encoding_format``: floats are every API's default, and not every compatible API
    # knows the field.
    body = _model_input_body(request)
    if request.user is not None:
        body["user"] = request.user
    return body


def openai_result(answer: Any, request: EmbedRequest, label: str) -> EmbedResult:
    """The vectors of an OpenAI ``CreateEmbeddingResponse``, in input order (by ``index``)."""
    data = answer.get("data") if isinstance(answer, dict) else None
    if not isinstance(data, list):
        raise _bad(label, "an answer without a 'data' list")
    by_index: dict[int, list[float]] = {}
    for position, item in enumerate(data):
        if not isinstance(item, dict):
            raise _bad(label, "an embedding that is not an object")
        index = item.get("index", position)
        if not isinstance(index, int) or isinstance(index, bool) or index in by_index:
            raise _bad(label, "embeddings with missing or repeated indexes")
        by_index[index] = _vector(item.get("embedding"), label)
    if sorted(by_index) != list(range(len(by_index))):
        raise _bad(label, "embeddings with indexes out of range")
    vectors = [by_index[i] for i in range(len(by_index))]
    usage = answer.get("usage")
    tokens = None
    if isinstance(usage, dict):
        tokens = _count(usage.get("prompt_tokens"))
        if tokens is None:
            tokens = _count(usage.get("total_tokens"))
    return _result(vectors, tokens, request, answer.get("model"))


# ------------------------------------------------------------------------------- Gemini


def gemini_body(request: EmbedRequest, model_name: str) -> dict[str, Any]:
    """``model_name``: ``models/{model}``, as each request of the batch names it."""
    requests = []
    for item in request.inputs:
        one: dict[str, Any] = {"model": model_name, "content": {"parts": [{"text": item}]}}
        if request.dimensions is not None:
            one["outputDimensionality"] = request.dimensions
        requests.append(one)
    return {"requests": requests}


def gemini_result(answer: Any, request: EmbedRequest, label: str) -> EmbedResult:
    """The vectors of a ``BatchEmbedContentsResponse``; its token count when it gives one,
    else an estimate (``estimate_tokens``)."""
    embeddings = answer.get("embeddings") if isinstance(answer, dict) else None
    if not isinstance(embeddings, list):
        raise _bad(label, "an answer without an 'embeddings' list")
    vectors = []
    for item in embeddings:
        if not isinstance(item, dict):
            raise _bad(label, "an embedding that is not an object")
        vectors.append(_vector(item.get("values"), label))
    usage = answer.get("usageMetadata")
    tokens = _count(usage.get("promptTokenCount")) if isinstance(usage, dict) else None
    return _result(vectors, tokens, request, None)


# ------------------------------------------------------------------------------- Ollama


def ollama_body(request: EmbedRequest) -> dict[str, Any]:
    return _model_input_body(request)


def ollama_result(answer: Any, request: EmbedRequest, label: str) -> EmbedResult:
    """The vectors of an ``/api/embed`` answer; its ``prompt_eval_count`` as the tokens."""
    embeddings = answer.get("embeddings") if isinstance(answer, dict) else None
    if not isinstance(embeddings, list):
        raise _bad(label, "an answer without an 'embeddings' list")
    tokens = _count(answer.get("prompt_eval_count"))
    return _result(
        [_vector(item, label) for item in embeddings], tokens, request, answer.get("model")
    )
