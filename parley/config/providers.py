"""Providers: the ones Parley knows by name, and what the config file says of one
(``[providers.NAME]``): where and with which key to reach it, and how to talk to it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

ProviderKind = Literal[
    "openai-chat", "openai-responses", "anthropic", "gemini", "ollama", "demo", "local"
]
#: How a model is asked for tool calls: through its API's own tool calling (``native``), or
#: as a JSON answer its output is constrained to (``constrained``: any model that can be
#: held to a JSON schema, tool calling or not; ``parley.providers.constrained``).
ToolCalls = Literal["native", "constrained"]


@dataclass(frozen=True, slots=True)
class BuiltinProvider:
    """A provider Parley knows by name: its kind, address and where its key is found."""

    kind: ProviderKind
    base_url: str
    #: Environment variables that may hold the key, in order; empty: it needs none.
    key_vars: tuple[str, ...] = ()


BUILTIN_PROVIDERS: dict[str, BuiltinProvider] = {
    "demo": BuiltinProvider("demo", ""),
    "openai": BuiltinProvider("openai-chat", "https://api.openai.com/v1", ("OPENAI_API_KEY",)),
    "anthropic": BuiltinProvider("anthropic", "https://api.anthropic.com", ("ANTHROPIC_API_KEY",)),
    "gemini": BuiltinProvider(
        "gemini",
        "https://generativelanguage.googleapis.com/v1beta",
        ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
    ),
    "deepseek": BuiltinProvider(
        "openai-chat", "https://api.deepseek.com/v1", ("DEEPSEEK_API_KEY",)
    ),
    "groq": BuiltinProvider("openai-chat", "https://api.groq.com/openai/v1", ("GROQ_API_KEY",)),
    "openrouter": BuiltinProvider(
        "openai-chat", "https://openrouter.ai/api/v1", ("OPENROUTER_API_KEY",)
    ),
    "mistral": BuiltinProvider("openai-chat", "https://api.mistral.ai/v1", ("MISTRAL_API_KEY",)),
    "together": BuiltinProvider(
        "openai-chat", "https://api.together.xyz/v1", ("TOGETHER_API_KEY",)
    ),
    "ollama": BuiltinProvider("ollama", "http://127.0.0.1:11434"),
    # A model server Parley runs itself (llama.cpp's llama-server), and the embedding model
    # it runs in process (parley.providers.local).
    "local": BuiltinProvider("local", ""),
}


class ModelConfig(BaseModel):
    """What the config file says of one model of a provider
    (``[providers.NAME.models."MODEL"]``)."""

    model_config = ConfigDict(extra="forbid")

    #: The tokens the model reads and writes in one call, its answer included; wins over
    #: the built-in table (``providers.windows``). A turn's history is fitted to it.
    context_window: int | None = Field(default=None, gt=0)
    #: How this model is asked for tool calls (``ToolCalls``); unset: its provider's way.
    tool_calls: ToolCalls | None = None


class ProviderConfig(BaseModel):
    """Where and with which key to reach one upstream; ``kind`` says how to talk to it."""

    model_config = ConfigDict(extra="forbid")

    kind: ProviderKind
    base_url: str | None = None
    api_key: str | None = None
    api_key_env: str | None = None
    #: Extra HTTP headers sent on every request to this provider.
    headers: dict[str, str] = Field(default_factory=dict)
    #: Seconds to wait for the connection, and for each read of the stream's bytes.
    connect_timeout: float = 10.0
    read_timeout: float = 120.0
    #: Seconds from the request to the model's first text, reasoning or tool call; and
    #: at most between two of its events afterwards (keep-alive comments do not count).
    #: 0 turns either off. On a timeout the turn fails, with what arrived kept.
    first_token_timeout: float = Field(default=120.0, ge=0.0)
    idle_timeout: float = Field(default=60.0, ge=0.0)
    #: Tries again, before the first token only, after a refused or dropped connection or
    #: a 429 / 5xx answer; waits start at ``retry_backoff`` seconds and double, with jitter,
    #: and honour ``Retry-After``.
    max_retries: int = Field(default=2, ge=0, le=10)
    retry_backoff: float = Field(default=0.5, ge=0.0, le=30.0)
    #: openai-chat: split ``<think>…</think>`` out of the answer text into reasoning.
    think_tags: bool = False
    #: openai-chat: send a message's reasoning back as ``reasoning_content`` on tool-call
    #: turns (DeepSeek's thinking mode asks for it).
    reasoning_back: bool = False
    #: How its models are asked for tool calls (``ToolCalls``); unset: ``native``, except
    #: for ``local``, whose small models have no tool calling of their own: ``constrained``.
    tool_calls: ToolCalls | None = None
    #: What is known of some of its models, by model id (``ModelConfig``).
    models: dict[str, ModelConfig] = Field(default_factory=dict)
    #: local: the GGUF file to serve (unset: the packaged SmolLM2-135M-Instruct); the
    #: llama-server binary (unset: the one ``parley local setup`` built, or on PATH); its
    #: context size in tokens (unset: 8192); CPU threads (unset: half the CPUs this
    #: process may use, at least one); parallel slots; flags added to its command line.
    model: str | None = None
    server_path: str | None = None
    context_size: int | None = Field(default=None, ge=256, le=1 << 20)
    threads: int | None = Field(default=None, ge=1, le=1024)
    parallel: int = Field(default=2, ge=1, le=64)
    server_args: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_key_source(self) -> ProviderConfig:
        if self.api_key and self.api_key_env:
            raise ValueError("give api_key or api_key_env, not both")
        return self
