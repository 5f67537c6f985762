"""The embedding endpoints of the fake upstream (``fake_upstream``), in each API's wire
format, answering with ``providers.embeddings.hashing_embedding`` (deterministic, and
lexical: texts that share words come out close), so tests of embeddings and of search see
vectors that mean something, over real sockets.

- OpenAI: ``POST /v1/embeddings`` (also without ``/v1``): ``input`` a string, a list of
  strings, a list of token ids or a list of lists of them (at most 2048 items, else 400, as
  OpenAI); ``encoding_format`` ``float`` or ``base64`` (little-endian float32);
  ``dimensions``; ``usage.prompt_tokens``: words of the texts plus the token ids.
- Gemini: ``POST /v1beta/models/{model}:batchEmbedContents`` (at most 100 requests, each
  naming the URL's model, else 400 ``INVALID_ARGUMENT``, as Gemini) and ``:embedContent``;
  ``outputDimensionality``; no token counts, as Gemini gives none.
- Ollama: ``POST /api/embed``: ``input`` a string or a list of strings; ``dimensions``;
  ``prompt_eval_count``: words of the texts.

A vector has 256 numbers unless the request asks for another length. The model ``error``
(or ``error:STATUS``) answers HTTP STATUS (default 500) with the API's own error body; the
model ``slow:MS`` answers as any other after MS milliseconds (``embedding_delay``).
"""

from __future__ import annotations

import base64
import struct
from typing import Any
from urllib.parse import unquote

from parley.providers.embeddings import DEFAULT_DEMO_DIMENSIONS, hashing_embedding
from parley.testing.fake_gemini import gemini_error

__all__ = [
    "EMBEDDING_DIMENSIONS",
    "embedding_delay",
    "embeddings_answer",
    "embeddings_kind",
    "fake_embedding",
]

#: The vectors' length when a request does not ask for one.
EMBEDDING_DIMENSIONS = DEFAULT_DEMO_DIMENSIONS
_OPENAI_MAX = 2048
_GEMINI_MAX = 100
_GEMINI_PREFIX = "/v1beta/models/"


def fake_embedding(item: str | list[int], dimensions: int | None = None) -> list[float]:
    """The vector the fake answers for one input."""
    return hashing_embedding(item, dimensions or EMBEDDING_DIMENSIONS)


def embeddings_kind(method: str, path: str) -> str | None:
    """``openai``, ``gemini`` or ``ollama`` for an embedding request's method and path
    (without its query), else None."""
    if method != "POST":
        return None
    if path in ("/v1/embeddings", "/embeddings"):
        return "openai"
    if path.startswith(_GEMINI_PREFIX) and path.endswith((":batchEmbedContents", ":embedContent")):
        return "gemini"
    if path == "/api/embed":
        return "ollama"
    return None


def embeddings_answer(kind: str, path: str, body: Any) -> tuple[int, Any]:
    """The status and JSON body answering an embedding request of ``kind``."""
    if kind == "openai":
        return _openai(body)
    if kind == "gemini":
        return _gemini(path, body)
    return _ollama(body)


def embedding_delay(body: Any) -> float:
    """Seconds to wait before answering: MS/1000 for the model ``slow:MS`` (OpenAI's and
    Ollama's bodies name their model), else 0."""
    model = body.get("model") if isinstance(body, dict) else None
    if not isinstance(model, str) or not model.startswith("slow:"):
        return 0.0
    ms = model.removeprefix("slow:")
    return int(ms) / 1000 if ms.isdigit() else 0.0


def _error_status(model: Any) -> int | None:
    if not isinstance(model, str) or not model.startswith("error"):
        return None
    _, _, status = model.partition(":")
    return int(status) if status.isdigit() and 400 <= int(status) <= 599 else 500


def _words(items: list[Any]) -> int:
    return sum(len(i.split()) if isinstance(i, str) else len(i) for i in items)


def _dimensions(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


# ------------------------------------------------------------------------------- OpenAI


def _openai_error(status: int, message: str) -> tuple[int, Any]:
    kind = "invalid_request_error" if status < 500 else "server_error"
    return status, {"error": {"message": message, "type": kind, "param": None, "code": None}}


def _token_ids(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(i, int) and not isinstance(i, bool) for i in value
    )


def _openai_inputs(value: Any) -> list[str | list[int]] | None:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not value:
        return None
    if _token_ids(value):
        return [value]
    if all((isinstance(i, str) or _token_ids(i)) and i for i in value):
        return list(value)
    return None


def _openai(body: Any) -> tuple[int, Any]:
    if not isinstance(body, dict):
        return _openai_error(400, "body is not a JSON object")
    model = body.get("model")
    if (status := _error_status(model)) is not None:
        return _openai_error(status, f"fake upstream error {status}")
    items = _openai_inputs(body.get("input"))
    if items is None:
        return _openai_error(400, "'input' is not a string, token ids or a list of them")
    if len(items) > _OPENAI_MAX:
        return _openai_error(400, f"'input' holds more than {_OPENAI_MAX} items")
    encoding = body.get("encoding_format", "float")
    dimensions = _dimensions(body.get("dimensions"))
    data = []
    for index, item in enumerate(items):
        vector = fake_embedding(item, dimensions)
        embedding: Any = vector
        if encoding == "base64":
            embedding = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    tokens = _words(items)
    return 200, {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


# ------------------------------------------------------------------------------- Gemini


def _gemini_text(content: Any) -> str | None:
    parts = content.get("parts") if isinstance(content, dict) else None
    if not isinstance(parts, list):
        return None
    texts = [p.get("text") if isinstance(p, dict) else None for p in parts]
    strings = [t for t in texts if isinstance(t, str)]
    if not strings or len(strings) != len(texts):
        return None
    return " ".join(strings)


def _gemini(path: str, body: Any) -> tuple[int, Any]:
    quoted, _, method = path.removeprefix(_GEMINI_PREFIX).rpartition(":")
    name = unquote(quoted)
    if (status := _error_status(name)) is not None:
        return status, gemini_error(status, f"fake upstream error {status}", "INTERNAL")
    if not isinstance(body, dict):
        return 400, gemini_error(400, "Invalid JSON payload received.", "INVALID_ARGUMENT")
    requests = [body] if method == "embedContent" else body.get("requests")
    if not isinstance(requests, list) or not requests:
        return 400, gemini_error(400, "* requests: must not be empty", "INVALID_ARGUMENT")
    if len(requests) > _GEMINI_MAX:
        message = f"* BatchEmbedContentsRequest.requests: at most {_GEMINI_MAX} requests."
        return 400, gemini_error(400, message, "INVALID_ARGUMENT")
    vectors = []
    for i, request in enumerate(requests):
        if not isinstance(request, dict):
            return 400, gemini_error(400, f"requests[{i}] is not an object", "INVALID_ARGUMENT")
        named = request.get("model")
        if method == "batchEmbedContents" and named != f"models/{name}":
            message = f"requests[{i}].model: {named!r} is not the model of the URL, models/{name}"
            return 400, gemini_error(400, message, "INVALID_ARGUMENT")
        text = _gemini_text(request.get("content"))
        if text is None:
            message = f"requests[{i}].content: expected parts with text"
            return 400, gemini_error(400, message, "INVALID_ARGUMENT")
        dimensions = _dimensions(request.get("outputDimensionality"))
        vectors.append({"values": fake_embedding(text, dimensions)})
    if method == "embedContent":
        return 200, {"embedding": vectors[0]}
    return 200, {"embeddings": vectors}


# ------------------------------------------------------------------------------- Ollama


def _ollama(body: Any) -> tuple[int, Any]:
    if not isinstance(body, dict):
        return 400, {"error": "invalid JSON body"}
    model = body.get("model")
    if (status := _error_status(model)) is not None:
        return status, {"error": f"fake upstream error {status}"}
    value = body.get("input")
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        return 400, {"error": "invalid input type"}
    dimensions = _dimensions(body.get("dimensions"))
    return 200, {
        "model": model,
        "embeddings": [fake_embedding(item, dimensions) for item in items],
        "total_duration": 1_000_000,
        "load_duration": 1_000,
        "prompt_eval_count": _words(items),
    }
