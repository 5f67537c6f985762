"""Provider adapters: how to talk to each kind of upstream LLM API."""

from parley.providers.accumulator import TurnAccumulator
from parley.providers.base import ChatMessage, ModelRequest, Provider
from parley.providers.demo import DemoProvider
from parley.providers.openai_chat import OpenAIChatProvider
from parley.providers.registry import ProviderRegistry

__all__ = [
    "ChatMessage",
    "DemoProvider",
    "ModelRequest",
    "OpenAIChatProvider",
    "Provider",
    "ProviderRegistry",
    "TurnAccumulator",
]
