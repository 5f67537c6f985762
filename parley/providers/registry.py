"""From a model name (``provider/model-id``) to the adapter that serves it.

A name without ``/`` (``gpt-4o``) is a model of the default provider
(``Settings.default_provider``, ``openai`` unless set otherwise), as code written for OpenAI
names them. Such a name is kept as given wherever it is stored, and resolved on each use.

Adapters are built on first use from ``Settings.provider_configs()`` and kept (each holds
its connection pool) until ``aclose``. Tests inject ready adapters with ``overrides`` (and may set the demo model's
``demo_delay`` between chunks, in seconds).

A model's context window (``context_window``) is its provider's config for it, else what the
provider's model list says, else the built-in table (``providers.windows``). An adapter
whose API lists windows has ``model_listing()`` (every listed model id and its window, one
call for all) or ``model_window(model_id)`` (one model a call); the registry reads them in
the background (``LearnedWindows``), so that neither a slow nor a failing model list ever
holds up or fails a turn.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from parley.config import BUILTIN_PROVIDERS, ProviderConfig, Settings
from parley.errors import InvalidRequest
from parley.metrics import Metrics
from parley.providers.base import Provider
from parley.providers.demo import MODELS as DEMO_MODELS
from parley.providers.demo import DemoProvider
from parley.providers.embeddings import (
    Embedder,
    EmbedInput,
    EmbedRequest,
    EmbedResult,
    embed,
    embedder_of,
)
from parley.providers.file_parts import reads_natively
from parley.providers.windows import (
    BUILTIN_WINDOWS,
    LearnedWindows,
    Lookup,
    Source,
    builtin_window,
)

#: How to talk to each kind of API (besides the demo model): one adapter class a kind, as
#: module and class name. An adapter (and its HTTP client) is imported when a provider of
#: its kind is first built, so a server that uses none of them never loads them.
_ADAPTERS: dict[str, tuple[str, str]] = {
    "openai-chat": ("parley.providers.openai_chat", "OpenAIChatProvider"),
    "anthropic": ("parley.providers.anthropic", "AnthropicProvider"),
    "gemini": ("parley.providers.gemini", "GeminiProvider"),
    "ollama": ("parley.providers.ollama", "OllamaProvider"),
    "openai-responses": ("parley.providers.openai_responses", "OpenAIResponsesProvider"),
    "local": ("parley.providers.local", "LocalProvider"),
}
_DEFAULT_URLS = {
    "openai-chat": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com",
    "gemini": "https://generativelanguage.googleapis.com/v1beta",
    "ollama": "http://127.0.0.1:11434",
    "openai-responses": "https://api.openai.com/v1",
}
#: Provider kinds this version can talk to.
SUPPORTED_KINDS = frozenset({"demo", *_ADAPTERS})
#: Seconds ``learn_window`` waits, at most, for a provider's model list read the first time.
WINDOW_WAIT = 1.0


@dataclass(frozen=True, slots=True)
class ProviderInfo:
    name: str
    kind: str
    ready: bool
    problem: str | None


class ProviderRegistry:
    """The configured providers by name, built lazily."""

    def __init__(
        self,
        settings: Settings,
        *,
        overrides: Mapping[str, Provider] | None = None,
        demo_delay: float | None = None,
        windows: LearnedWindows | None = None,
    ) -> None:
        self._settings = settings
        self._demo_delay = demo_delay
        self._configs: dict[str, ProviderConfig] = settings.provider_configs()
        self._overrides: dict[str, Provider] = dict(overrides or {})
        self._built: dict[str, Provider] = {}
        #: The windows the providers' model lists told.
        self._learned = windows or LearnedWindows()
        #: Where the adapters built from now on count their retries (the app's metrics).
        self.metrics = Metrics()
        #: The model ids each provider's model list named (``models``), for ``knows``.
        self._listed: dict[str, frozenset[str]] = {}

    @property
    def names(self) -> list[str]:
        """Every provider name a model may start with, sorted."""
        return sorted(self._configs.keys() | self._overrides.keys())

    def qualified(self, model: str) -> str:
        """``model`` as ``provider/model-id``: a name without ``/`` is a model of the
        default provider; any other name (or with no default provider, any name) is as
        given. Checks nothing."""
        default = self._settings.default_provider
        if not model or not default or "/" in model:
            return model
        return f"{default}/{model}"

    def provider_of(self, model: str) -> str:
        """The name of ``model``'s provider (the default one for a name without ``/``),
        whether or not it is there."""
        return self.qualified(model).partition("/")[0]

    def check_model(self, model: str) -> tuple[str, str]:
        """Validate a model name without building anything; answer its provider's name and
        the model id to send it (``gpt-4o``: the default provider's name and ``gpt-4o``).

        Raises ``InvalidRequest`` (code ``unknown_model``, ``provider_not_configured`` or
        ``provider_kind_unsupported``).
        """
        qualified = self.qualified(model)
        by_default = qualified != model
        provider_name, sep, model_id = qualified.partition("/")
        known = provider_name in self._overrides or provider_name in self._configs
        if by_default and not known:
            raise InvalidRequest(
                f"The model {model!r} names no provider, so it goes to the default provider "
                f"{provider_name!r}, and there is no provider of that name: set "
                f"PARLEY_DEFAULT_PROVIDER to one of {', '.join(self.names)}, or name the "
                "model as provider/model-id.",
                code="unknown_model",
            )
        if not (sep and provider_name and model_id and known):
            listed = ", ".join(self.names)
            raise InvalidRequest(
                f"Unknown model {model!r}: name it as provider/model-id, where provider is "
                f"one of: {listed}.",
                code="unknown_model",
            )
        if provider_name not in self._overrides:
            config = self._configs[provider_name]
            _check_kind(provider_name, config)
            missing = self._settings.missing_key(provider_name, config)
            if missing and by_default:
                raise InvalidRequest(
                    f"The model {model!r} names no provider, so it goes to the default "
                    f"provider {provider_name!r} (PARLEY_DEFAULT_PROVIDER), which has no API "
                    f"key: set {missing}, set PARLEY_DEFAULT_PROVIDER to a provider that is "
                    "ready, or name the model as provider/model-id (demo/parley needs no key).",
                    code="provider_not_configured",
                )
            if missing:
                raise InvalidRequest(
                    f"The provider {provider_name!r} has no API key: set {missing} (or give it "
                    f"api_key or api_key_env in a [providers.{provider_name}] table of the "
                    "config file).",
                    code="provider_not_configured",
                )
        return provider_name, model_id

    def catalog(self) -> list[ProviderInfo]:
        """Every provider: its kind, and whether a model of it can be used now (and if
        not, why)."""
        out = [
            ProviderInfo(name, "test", ready=True, problem=None) for name in sorted(self._overrides)
        ]
        for name, config in sorted(self._configs.items()):
            if name in self._overrides:
                continue
            problem = None
            if config.kind not in SUPPORTED_KINDS:
                problem = f"kind {config.kind} is not available in this version"
            elif missing := self._settings.missing_key(name, config):
                problem = f"set {missing}"
            elif config.kind == "local":
                from parley.providers.local_models import unavailable

                problem = unavailable(config)
            out.append(ProviderInfo(name, config.kind, ready=problem is None, problem=problem))
        return sorted(out, key=lambda p: p.name)

    async def models(self, name: str) -> list[str] | None:
        """The model ids the provider lists (None: it cannot say). The windows the list
        gives are kept (``context_window``)."""
        provider, _ = self._adapter(f"{name}/-")
        listing = getattr(provider, "model_listing", None)
        if listing is not None:
            listed: Mapping[str, int | None] = await listing()
            self._learned.put((name, ""), listed)
            return sorted(listed)
        lister = getattr(provider, "list_models", None)
        if lister is None:
            return None
        ids = list(await lister())
        config = self._configs.get(name)
        if config is not None and getattr(provider, "serves_any_model", False):
            # The demo model takes any name: the ones the config describes are its models too.
            ids += sorted(m for m in config.models if m not in ids)
        self._listed[name] = frozenset(ids)
        return ids

    def model_details(self, model: str) -> dict[str, object]:
        """What the model's provider says of it beyond its id, for its model object (a
        ``description``; ``embedding``: an embedding model). Most say nothing."""
        provider_name, _, model_id = self.qualified(model).partition("/")
        provider = self._overrides.get(provider_name) or self._built.get(provider_name)
        details = getattr(provider, "model_details", None)
        return dict(details(model_id)) if details is not None else {}

    def knows(self, provider_name: str, model_id: str) -> bool:
        """Whether ``model_id`` is a model of ``provider_name`` this server knows: one its
        config names, one its model list named (with the demo's own, ``demo.MODELS``), one
        whose window that list or the built-in table gives by its exact name. Any other id
        is one a client may have made up (the metrics count it as ``other``). Never waits,
        never calls the provider."""
        config = self._configs.get(provider_name)
        if config is None and provider_name not in self._overrides:
            return False
        if config is not None and model_id in config.models:
            return True
        if config is not None and config.kind == "demo" and model_id in DEMO_MODELS:
            return True
        if config is not None and config.kind == "local" and model_id in local_models(config):
            return True
        if model_id in self._listed.get(provider_name, ()):
            return True
        found = self._window_source(provider_name, model_id)
        if found is not None and self._learned.window(found[0], model_id) is not None:
            return True
        return model_id.lower() in BUILTIN_WINDOWS

    def traits(self, model: str) -> tuple[frozenset[str], bool]:
        """What ``model``'s API cannot be asked (``HTTPProvider.refused_options``), and
        whether its answers may hand state back with their tool calls. The demo model and
        the adapters tests put in take anything, and hand nothing back."""
        provider, _ = self.resolve(model)
        refused: frozenset[str] = getattr(provider, "refused_options", frozenset())
        return refused, bool(getattr(provider, "hands_back_state", False))

    def kind_of(self, model: str) -> str:
        """The kind of API behind ``model`` (``openai-chat``, ``anthropic``, ...; ``test``
        for an adapter a test put in). Raises as ``check_model`` does."""
        name, _ = self.check_model(model)
        if name in self._overrides:
            return "test"
        return self._configs[name].kind

    def reads_file(self, model: str, media_type: str) -> bool:
        """Whether ``model``'s provider gets a file of ``media_type`` as its own file input
        (its bytes), rather than as its text (``file_parts.reads_natively``). Raises as
        ``check_model`` does."""
        name, _ = self.check_model(model)
        config = self._configs.get(name)
        if name in self._overrides or config is None:
            return False
        return reads_natively(config.kind, media_type, base_url=config.base_url)

    def timeouts(self, model: str) -> tuple[float, float]:
        """The first-token and idle timeouts of ``model``'s provider (0: none)."""
        config = self._configs.get(self.provider_of(model))
        if config is None:  # an override without a config table (tests)
            return 0.0, 0.0
        return config.first_token_timeout, config.idle_timeout

    def context_window(self, model: str) -> int | None:
        """The tokens one call of ``model`` may read and write: its provider's config for
        the model id, else what the provider's model list says, else the built-in table
        (``providers.windows``); None: unknown. Never waits: the first time a model of a
        provider that lists windows is asked about, its list is read in the background,
        and the table answers until it has been (``learn_window`` waits for it)."""
        provider_name, _, model_id = self.qualified(model).partition("/")
        return self._window(provider_name, model_id)

    async def learn_window(self, model: str, *, within: float = WINDOW_WAIT) -> int | None:
        """``context_window(model)``, once its provider's model list has been read: the
        first time, this waits up to ``within`` seconds for it (after that, the table's
        window, or none, while the list is read on in the background)."""
        provider_name, _, model_id = self.qualified(model).partition("/")
        window = self._window(provider_name, model_id)  # starts the lookup when it is due
        found = self._window_source(provider_name, model_id)
        if found is None or self._learned.told(found[0]):
            return window
        await self._learned.settle(found[0], within)
        return self._window(provider_name, model_id)

    def _window(self, provider_name: str, model_id: str) -> int | None:
        """``context_window`` of ``provider_name/model_id``."""
        config = self._configs.get(provider_name)
        if config is not None:
            known = config.models.get(model_id)
            if known is not None and known.context_window is not None:
                return known.context_window
            if config.kind == "demo":
                return None
        found = self._window_source(provider_name, model_id)
        if found is not None:
            source, lookup = found
            self._learned.learn(source, lookup)
            if (listed := self._learned.window(source, model_id)) is not None:
                return listed
        return builtin_window(model_id)

    def _window_source(self, provider_name: str, model_id: str) -> tuple[Source, Lookup] | None:
        """Where the window of ``model_id`` is learned from, and how, when its provider's
        adapter is in use and lists windows; else None (the table answers meanwhile)."""
        provider = self._overrides.get(provider_name) or self._built.get(provider_name)
        one = getattr(provider, "model_window", None)
        if one is not None:
            return (provider_name, model_id), functools.partial(_one_window, one, model_id)
        listing = getattr(provider, "model_listing", None)
        if listing is not None:
            return (provider_name, ""), listing
        return None

    def resolve(self, model: str) -> tuple[Provider, str]:
        """The adapter for ``model`` and the model id to send it: for a model asked for its
        tool calls as constrained JSON (``tool_calls``), the adapter wrapped to do so."""
        provider, model_id = self._adapter(model)
        if self.tool_calls(model) == "constrained":
            from parley.providers.constrained import ConstrainedTools

            return ConstrainedTools(provider), model_id
        return provider, model_id

    def tool_calls(self, model: str) -> str:
        """How ``model`` is asked for tool calls: ``native`` or ``constrained`` (its model's
        setting, else its provider's, else ``constrained`` for ``local``, else ``native``)."""
        provider_name, _, model_id = self.qualified(model).partition("/")
        config = self._configs.get(provider_name)
        if config is None:
            return "native"
        known = config.models.get(model_id)
        if known is not None and known.tool_calls is not None:
            return known.tool_calls
        if config.tool_calls is not None:
            return config.tool_calls
        return "constrained" if config.kind == "local" else "native"

    def _adapter(self, model: str) -> tuple[Provider, str]:
        """The adapter of ``model``'s provider, built on first use, and the model id."""
        provider_name, model_id = self.check_model(model)
        provider = self._overrides.get(provider_name) or self._built.get(provider_name)
        if provider is None:
            config = self._configs[provider_name]
            provider = self._built[provider_name] = self._build(provider_name, config)
        return provider, model_id

    def embedder(self, model: str) -> tuple[Embedder, str]:
        """The adapter that embeds with ``model`` and the model id to send it. Raises as
        ``check_model`` does, and ``InvalidRequest`` (``embeddings_unsupported``) when the
        provider's API has no embeddings (Anthropic)."""
        provider, model_id = self._adapter(model)
        return embedder_of(provider, self.provider_of(model)), model_id

    async def embed(
        self, model: str, inputs: Sequence[EmbedInput], *, dimensions: int | None = None
    ) -> EmbedResult:
        """The vectors of ``inputs`` (texts, or token ids where the provider takes them)
        from the embedding model ``model`` (``provider/model-id``), in order, in as many
        upstream calls as the provider's batch size needs. Raises ``InvalidRequest`` (as
        ``embedder``, and for inputs ``embeddings.check_inputs`` refuses) or
        ``UpstreamError``."""
        embedder, model_id = self.embedder(model)
        request = EmbedRequest(model=model_id, inputs=inputs, dimensions=dimensions)
        return await embed(embedder, request)

    def warm(self) -> list[str]:
        """Import the adapters of the providers this server is set up to call (those with
        an API key, and those of the config file) and the HTTP client under them; the
        modules imported. For a thread of its own as the server starts: otherwise the
        first model call imports them on the event loop, and aiohttp reads the system's
        certificates as it loads (tenths of a second of CPU, a second of a loaded
        machine's loop, while every other request waits). The demo needs none; a built-in
        provider without a key (Ollama's) is left to its first call."""
        modules = sorted(
            {
                _ADAPTERS[config.kind][0]
                for name, config in self._configs.items()
                if config.kind in _ADAPTERS
                and (name not in BUILTIN_PROVIDERS or self._settings.provider_api_key(config))
            }
        )
        if modules:
            modules.insert(0, "parley.providers.transport")
        for module in modules:
            importlib.import_module(module)
        return modules

    def start_local(self) -> list[str]:
        """Begin starting the model server of each local provider that can run one, in the
        background; the providers started."""
        started = []
        for name, config in sorted(self._configs.items()):
            if config.kind != "local" or name in self._overrides:
                continue
            provider, _ = self._adapter(f"{name}/-")
            start = getattr(provider, "start_soon", None)
            if start is not None and getattr(provider, "problem", None) is None:
                start()
                started.append(name)
        return started

    def _build(self, provider_name: str, config: ProviderConfig) -> Provider:
        if config.kind == "demo":
            return DemoProvider() if self._demo_delay is None else DemoProvider(self._demo_delay)
        from parley.providers.transport import RetryPolicy

        module, name = _ADAPTERS[config.kind]
        adapter: Callable[..., Provider] = getattr(importlib.import_module(module), name)
        if config.kind == "local":  # a model server of its own, not an address
            return adapter(config=config, metrics=self.metrics)
        if config.kind == "openai-chat":  # its per-provider profile
            adapter = functools.partial(
                adapter, think_tags=config.think_tags, reasoning_back=config.reasoning_back
            )
        return adapter(
            base_url=config.base_url or _DEFAULT_URLS[config.kind],
            api_key=self._settings.provider_api_key(config),
            headers=config.headers,
            connect_timeout=config.connect_timeout,
            read_timeout=config.read_timeout,
            retry=RetryPolicy(
                retries=config.max_retries,
                backoff=config.retry_backoff,
                on_retry=functools.partial(self.metrics.retried, provider_name),
            ),
        )

    async def aclose(self) -> None:
        """Stop the model-list lookups under way; close the HTTP clients of the adapters
        this registry built."""
        await self._learned.aclose()
        built, self._built = self._built, {}
        for provider in built.values():
            aclose = getattr(provider, "aclose", None)
            if aclose is not None:
                await aclose()


def local_models(config: ProviderConfig) -> tuple[str, str]:
    """The model ids a local provider of ``config`` serves, whether or not they run here."""
    from parley.providers.llama_server import model_name
    from parley.providers.minilm import MODEL_ID

    return model_name(config.model), MODEL_ID


async def _one_window(
    model_window: Callable[[str], Awaitable[int | None]], model_id: str
) -> dict[str, int | None]:
    return {model_id: await model_window(model_id)}


def _check_kind(name: str, config: ProviderConfig) -> None:
    if config.kind not in SUPPORTED_KINDS:
        raise InvalidRequest(
            f"The provider {name!r} is of kind {config.kind!r}, which is not available yet in "
            f"this version of Parley (available: {', '.join(sorted(SUPPORTED_KINDS))}).",
            code="provider_kind_unsupported",
        )
