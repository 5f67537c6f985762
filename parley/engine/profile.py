"""What a model can do, asked once (``Engine.profile``): which API serves it, its name as
stored and counted, its context window, its timeouts, and what its API cannot be asked.

A face reads a request against a ``ModelProfile`` instead of asking the provider registry
itself, so that one model name is resolved once per request; a turn resolves its model once
too, and its model calls read the profile (``streaming.stream_answer``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from parley.providers.base import Provider
from parley.providers.options import PROMPT_CACHE_KINDS
from parley.providers.registry import ProviderRegistry


@dataclass(frozen=True, slots=True)
class ModelProfile:
    """One model as its provider serves it."""

    #: ``provider/model-id``, the default provider's name put before a name without ``/``
    #: (``gpt-4o`` is ``openai/gpt-4o``).
    qualified: str
    #: The provider's name, and the model id sent to it.
    provider: str
    model_id: str
    #: The kind of API behind the provider (``openai-chat``, ``anthropic``, ``demo``, ...;
    #: ``test`` for an adapter a test put in).
    kind: str
    #: The tokens one call may read and write (None: unknown).
    window: int | None
    #: The options the model's API has no equivalent for (``HTTPProvider.refused_options``):
    #: sampling options by their names (``stop``, ``seed``, ``presence_penalty``,
    #: ``frequency_penalty``), and ``json``, an output format of JSON (a schema, or JSON
    #: mode).
    refused: frozenset[str]
    #: Whether its answers may hand state back with their tool calls (``provider_state``).
    hands_back_state: bool
    #: The seconds a call may wait for the model's first token, and between two of its
    #: parts (its provider's ``first_token_timeout`` and ``idle_timeout``; 0: no limit).
    timeouts: tuple[float, float]
    #: The adapter its calls go through (``ProviderRegistry.resolve``).
    adapter: Provider = field(compare=False, repr=False)

    def refuses(self, option: str) -> bool:
        """Whether the model's API has no equivalent for ``option`` (``refused``)."""
        return option in self.refused

    @property
    def json_output(self) -> bool:
        """Whether the model can be asked for JSON: a JSON schema or JSON mode output
        format (``response_format``, ``text.format``)."""
        return "json" not in self.refused

    @property
    def prompt_cache_retention(self) -> bool:
        """Whether the model's API takes ``prompt_cache_retention`` (OpenAI's APIs); the
        others are not sent it."""
        return self.kind in PROMPT_CACHE_KINDS


def profile_of(providers: ProviderRegistry, model: str) -> ModelProfile:
    """``model``'s profile. Raises ``InvalidRequest`` for a model no provider here serves,
    as ``ProviderRegistry.check_model`` does (code ``unknown_model``,
    ``provider_not_configured`` or ``provider_kind_unsupported``)."""
    kind = providers.kind_of(model)  # checks the name first
    adapter, model_id = providers.resolve(model)
    refused, hands_back_state = providers.traits(model)
    return ModelProfile(
        qualified=providers.qualified(model),
        provider=providers.provider_of(model),
        model_id=model_id,
        kind=kind,
        window=providers.context_window(model),
        refused=refused,
        hands_back_state=hands_back_state,
        timeouts=providers.timeouts(model),
        adapter=adapter,
    )
