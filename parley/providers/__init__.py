"""Provider adapters: how to talk to each kind of upstream LLM API."""

from parley.providers.accumulator import AnswerAccumulator
from parley.providers.base import ChatMessage, ModelRequest, Provider
from parley.providers.demo import DemoProvider
from parley.providers.openai_chat import OpenAIChatProvider
from parley.providers.registry import ProviderRegistry

__all__ = [
    "AnswerAccumulator",
    "ChatMessage",
    "DemoProvider",
    "ModelRequest",
    "OpenAIChatProvider",
    "Provider",
    "ProviderRegistry",
]
