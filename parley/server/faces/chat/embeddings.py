"""``POST /v1/embeddings``, in OpenAI's shape (``CreateEmbeddingRequest`` →
``CreateEmbeddingResponse``), over any provider that embeds
(``ProviderRegistry.embedder``). Like Chat Completions, a stateless gateway: nothing is
stored but the tokens used, per API key, under the face ``embeddings``.

``input`` is a string, a list of strings, a list of token ids or a list of lists of them
(token ids only for the OpenAI family and the demo; elsewhere a 400
``token_input_unsupported``); ``model`` is ``provider/model-id``, as for chat. The call
takes a turn slot of the key, as a chat completion does, and reserves its estimated tokens
of the key's daily budget; the tokens the provider reports count for the key.
"""

from __future__ import annotations

import array
import base64
import sys
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel, Field, Strict, StrictStr

from parley.providers.embeddings import (
    MAX_DIMENSIONS,
    EmbedInput,
    EmbedRequest,
    check_inputs,
    embed,
)
from parley.providers.embeddings import estimate_tokens as estimate
from parley.server.deps import AuthenticatedCaller, Svc
from parley.server.faces.kit.bodies import MAX_INTEGER, Body
from parley.server.openapi import errors, upstream_errors
from parley.types import Usage

router = APIRouter(tags=["embeddings"])

TokenId = Annotated[int, Strict(), Field(ge=0, le=MAX_INTEGER)]


class EmbeddingCreate(Body):
    """``POST /v1/embeddings`` (OpenAI's ``CreateEmbeddingRequest``)."""

    input: StrictStr | list[StrictStr] | list[TokenId] | list[list[TokenId]]
    model: str = Field(min_length=1, max_length=256)
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: Annotated[int, Strict(), Field(ge=1, le=MAX_DIMENSIONS)] | None = None
    user: str | None = Field(default=None, max_length=256)


def _inputs(value: str | list[str] | list[int] | list[list[int]]) -> list[EmbedInput]:
    """One item per vector asked for: a string, or a list of token ids."""
    if isinstance(value, str):
        return [value]
    if value and all(isinstance(item, int) for item in value):
        return [value]  # type: ignore[list-item]  # one list of token ids
    return list(value)  # type: ignore[arg-type]  # strings, or lists of token ids


def _base64(vector: list[float]) -> str:
    """The vector as OpenAI's ``base64`` encoding: little-endian float32, in base64."""
    packed = array.array("f", vector)
    if sys.byteorder != "little":
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode("ascii")


class EmbeddingPublic(BaseModel):
    """One vector (OpenAI's ``Embedding``): numbers, or with ``encoding_format`` ``base64``
    their little-endian float32 bytes in base64."""

    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class EmbeddingUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingListPublic(BaseModel):
    """OpenAI's ``CreateEmbeddingResponse``."""

    object: Literal["list"] = "list"
    data: list[EmbeddingPublic]
    model: str
    usage: EmbeddingUsage


_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {"model": EmbeddingListPublic, "description": "The vectors, in the order of the inputs."},
    **errors(503),
    **upstream_errors(),
}


@router.post("/embeddings", responses=_ANSWERS, response_model=None)
async def create_embedding(
    body: EmbeddingCreate, caller: AuthenticatedCaller, svc: Svc
) -> Response:
    """The embedding of each input, in order, in OpenAI's shape."""
    embedder, model_id = svc.providers.embedder(body.model)
    request = EmbedRequest(
        model=model_id, inputs=_inputs(body.input), dimensions=body.dimensions, user=body.user
    )
    check_inputs(request, embedder)  # before the key's slot and budget are touched
    most = estimate(request.inputs) if caller.key_budget is not None else None
    async with svc.limits.run_slot(caller.key_hash, most):
        result = await embed(embedder, request)
        # Counted before the slot is given back: the reservation gives way to the count.
        svc.usage.count(
            user_id=caller.user.id,
            key_hash=caller.key_hash,
            model=svc.providers.qualified(body.model),
            face="embeddings",
            used=Usage(input_tokens=result.input_tokens),
        )
    encode = _base64 if body.encoding_format == "base64" else None
    data: list[dict[str, Any]] = [
        {
            "object": "embedding",
            "index": index,
            "embedding": encode(vector) if encode else vector,
        }
        for index, vector in enumerate(result.vectors)
    ]
    answer = {
        "object": "list",
        "data": data,
        "model": body.model,
        "usage": {"prompt_tokens": result.input_tokens, "total_tokens": result.input_tokens},
    }
    return Response(orjson.dumps(answer), media_type="application/json")
