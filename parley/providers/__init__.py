"""Provider adapters: how to talk to each kind of upstream LLM API.

The names below are imported on first use: a module of this package (``providers.base``,
say) does not load every adapter and its HTTP client with it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from parley import _lazy_getattr

if TYPE_CHECKING:
    from parley.providers.accumulator import AnswerAccumulator
    from parley.providers.base import ChatMessage, ModelRequest, Provider
    from parley.providers.demo import DemoProvider
    from parley.providers.embeddings import Embedder, EmbedRequest, EmbedResult
    from parley.providers.openai_chat import OpenAIChatProvider
    from parley.providers.registry import ProviderRegistry

__getattr__ = _lazy_getattr(
    globals(),
    {
        "AnswerAccumulator": "parley.providers.accumulator",
        "ChatMessage": "parley.providers.base",
        "DemoProvider": "parley.providers.demo",
        "EmbedRequest": "parley.providers.embeddings",
        "EmbedResult": "parley.providers.embeddings",
        "Embedder": "parley.providers.embeddings",
        "ModelRequest": "parley.providers.base",
        "OpenAIChatProvider": "parley.providers.openai_chat",
        "Provider": "parley.providers.base",
        "ProviderRegistry": "parley.providers.registry",
    },
)

__all__ = [
    "AnswerAccumulator",
    "ChatMessage",
    "DemoProvider",
    "EmbedRequest",
    "EmbedResult",
    "Embedder",
    "ModelRequest",
    "OpenAIChatProvider",
    "Provider",
    "ProviderRegistry",
]
