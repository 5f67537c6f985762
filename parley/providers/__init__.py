"""Provider adapters: how to talk to each kind of upstream LLM API.

The names below are imported on first use: a module of this package (``providers.base``,
say) does not load every adapter and its HTTP client with it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from parley.providers.accumulator import AnswerAccumulator
    from parley.providers.base import ChatMessage, ModelRequest, Provider
    from parley.providers.demo import DemoProvider
    from parley.providers.openai_chat import OpenAIChatProvider
    from parley.providers.registry import ProviderRegistry

_LAZY = {
    "AnswerAccumulator": "parley.providers.accumulator",
    "ChatMessage": "parley.providers.base",
    "DemoProvider": "parley.providers.demo",
    "ModelRequest": "parley.providers.base",
    "OpenAIChatProvider": "parley.providers.openai_chat",
    "Provider": "parley.providers.base",
    "ProviderRegistry": "parley.providers.registry",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'parley.providers' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "AnswerAccumulator",
    "ChatMessage",
    "DemoProvider",
    "ModelRequest",
    "OpenAIChatProvider",
    "Provider",
    "ProviderRegistry",
]
