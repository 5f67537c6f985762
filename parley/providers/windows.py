"""The context windows of models: the tokens one call may read and write.

Where a model's window comes from, first found first (``ProviderRegistry.context_window``):

1. the provider's config (``[providers.NAME.models."MODEL"]`` ``context_window``);
2. what the provider's own model list says (``LearnedWindows``: looked up in the background
   the first time a model of the provider is used or listed, kept for an hour);
3. this module's table of the numbers the models' makers publish (``builtin_window``);

else the window is unknown and a turn sends the whole thread.

A model id matches the longest prefix of the table that ends at a boundary of the id (its
end, or a character other than a letter or digit): ``gpt-4o-2024-08-06`` is ``gpt-4o``,
``llama3.1:8b`` is ``llama3.1``. An id with a vendor path (``openai/gpt-4o`` through a
router) is looked up by its last part as well.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from parley.errors import ParleyError

log = logging.getLogger("parley.providers")

_K = 1_000

#: Tokens of the context window, by model id prefix.
BUILTIN_WINDOWS: dict[str, int] = {
    # OpenAI
    "gpt-3.5-turbo": 16_385,
    "gpt-4": 8_192,
    "gpt-4-turbo": 128 * _K,
    "gpt-4o": 128 * _K,
    "gpt-4.1": 1_047_576,
    "gpt-5": 400 * _K,
    "gpt-5-chat": 128 * _K,
    "o1": 200 * _K,
    "o1-mini": 128 * _K,
    "o1-preview": 128 * _K,
    "o3": 200 * _K,
    "o3-mini": 200 * _K,
    "o4-mini": 200 * _K,
    # Anthropic (the standard window; a larger one is a beta a request must ask for)
    "claude-3": 200 * _K,
    "claude-sonnet-4": 200 * _K,
    "claude-opus-4": 200 * _K,
    "claude-haiku-4": 200 * _K,
    # Google
    "gemini-2.0-flash": 1_048_576,
    "gemini-2.5-pro": 1_048_576,
    "gemini-2.5-flash": 1_048_576,
    "gemini-2.5-flash-image": 32_768,
    # DeepSeek
    "deepseek-chat": 128 * _K,
    "deepseek-reasoner": 128 * _K,
    # Common Ollama models (what the model takes; Ollama's own num_ctx may be lower)
    "llama3": 8_192,
    "llama3.1": 131_072,
    "llama3.2": 131_072,
    "llama3.3": 131_072,
    "qwen2.5": 32_768,
    "qwen3": 40_960,
    "mistral": 32_768,
    "gemma2": 8_192,
    "gemma3": 131_072,
    "deepseek-r1": 131_072,
    "gpt-oss": 131_072,
}


@functools.lru_cache(maxsize=1024)
def builtin_window(model_id: str) -> int | None:
    """The window the table gives ``model_id``; None when it does not know the model
    (remembered: every turn asks, the table does not change)."""
    model_id = model_id.lower()
    window = _prefix_window(model_id)
    if window is None and "/" in model_id:
        window = _prefix_window(model_id.rpartition("/")[2])
    return window


def _prefix_window(model_id: str) -> int | None:
    """The window of the longest prefix of ``model_id`` in the table that ends at a
    boundary of the id ("gpt-4" is not a prefix of "gpt-4o")."""
    if model_id in BUILTIN_WINDOWS:
        return BUILTIN_WINDOWS[model_id]
    for end in range(len(model_id) - 1, 0, -1):
        if not model_id[end].isalnum() and model_id[:end] in BUILTIN_WINDOWS:
            return BUILTIN_WINDOWS[model_id[:end]]
    return None


# ----------------------------------------------------------------- from model lists

#: Fields of a model in an OpenAI-compatible model list that give its context window, in
#: the order they are read: vLLM's ``max_model_len``, OpenRouter's and Together's
#: ``context_length``, Groq's ``context_window``, Mistral's ``max_context_length``.
_LISTED_FIELDS = ("max_model_len", "context_length", "context_window", "max_context_length")
#: The same in the ``meta`` object of llama.cpp's server: the context each of its slots
#: has (``n_ctx``, newer servers), else the one the model was trained with.
_LLAMA_CPP_FIELDS = ("n_ctx", "n_ctx_train")


def as_window(value: Any) -> int | None:
    """``value`` if it is a whole, positive number of tokens; else None."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None


def listed_windows(
    page: Any, window_of: Callable[[Mapping[str, Any]], int | None] | None = None
) -> dict[str, int | None]:
    """The models one page of a model list names in its ``data`` (the entries that are
    objects with an ``id``, as OpenAI's and Anthropic's lists hold them), each with the
    window ``window_of`` reads from its entry (by default ``listed_window``: an
    OpenAI-compatible list's)."""
    entries = page.get("data") if isinstance(page, dict) else None
    if not isinstance(entries, list):
        return {}
    read = window_of or listed_window
    return {str(m["id"]): read(m) for m in entries if isinstance(m, dict) and "id" in m}


def listed_window(model: Mapping[str, Any]) -> int | None:
    """The context window one entry of an OpenAI-compatible model list (``GET /models``,
    an item of its ``data``) gives its model; None when it gives none (OpenAI's own list
    says nothing of windows)."""
    for name in _LISTED_FIELDS:
        if (window := as_window(model.get(name))) is not None:
            return window
    meta = model.get("meta")
    if isinstance(meta, Mapping):
        for name in _LLAMA_CPP_FIELDS:
            if (window := as_window(meta.get(name))) is not None:
                return window
    return None


#: Seconds what a provider's model list told is kept before it is asked again.
LEARNED_TTL = 3600.0
#: Seconds before a model list that could not be read is asked again.
RETRY_AFTER = 300.0
#: Seconds one lookup may take; a slower one counts as failed.
LOOKUP_TIMEOUT = 10.0
#: Lookups under way at once, all providers together (listing an Ollama server's models
#: asks it about each one).
MAX_LOOKUPS = 4
#: Sources kept at most; past it the oldest are forgotten (and asked again when needed).
MAX_SOURCES = 2048

#: Where windows are learned from: a provider's name, and the model id when its API tells
#: one model at a time (Ollama's ``/api/show``), or ``""`` for its whole model list.
Source = tuple[str, str]
#: A lookup: the windows a source tells, by model id (None: no window for that model).
Lookup = Callable[[], Awaitable[Mapping[str, int | None]]]


class LearnedWindows:
    """The context windows providers' model lists told, by source and model id.

    ``learn`` starts a source's lookup in the background (one at a time per source,
    ``MAX_LOOKUPS`` in all) unless what it told is still fresh. What it tells is kept for
    ``ttl`` seconds; after that the next ``learn`` asks again while the old answer still
    serves. A lookup that fails or outlasts ``timeout`` tells nothing new: it is logged,
    what the source told before stays, and it is asked again after ``retry`` seconds. No
    method raises because of a lookup, and none waits for one but ``settle``.
    """

    def __init__(
        self,
        *,
        ttl: float = LEARNED_TTL,
        retry: float = RETRY_AFTER,
        timeout: float = LOOKUP_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl, self._retry, self._timeout, self._clock = ttl, retry, timeout, clock
        #: What each source told (models without a window left out), and until when.
        self._told: dict[Source, tuple[dict[str, int], float]] = {}
        self._tasks: dict[Source, asyncio.Task[None]] = {}
        self._slots: asyncio.Semaphore | None = None
        self._slots_loop: asyncio.AbstractEventLoop | None = None

    def window(self, source: Source, model_id: str) -> int | None:
        """The window ``source`` told for ``model_id``, however old; None: none told."""
        told = self._told.get(source)
        return None if told is None else told[0].get(model_id)

    def told(self, source: Source) -> bool:
        """Whether ``source`` has answered a lookup (or failed one) yet."""
        return source in self._told

    def put(self, source: Source, windows: Mapping[str, int | None]) -> None:
        """Keep what ``source`` told (a model list read for another reason, say)."""
        self._keep(source, {m: w for m, w in windows.items() if w}, self._ttl)

    def learn(self, source: Source, lookup: Lookup) -> None:
        """Look ``source`` up in the background with ``lookup``, unless it is being looked
        up, or what it told is fresh. Outside a running event loop, nothing is started."""
        told = self._told.get(source)
        if told is not None and told[1] > self._clock():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        running = self._tasks.get(source)
        if running is not None and not running.done() and running.get_loop() is loop:
            return
        task = loop.create_task(self._look_up(source, lookup, loop))
        self._tasks[source] = task
        task.add_done_callback(lambda done: self._forget_task(source, done))

    async def settle(self, source: Source, within: float) -> None:
        """Wait up to ``within`` seconds for the lookup of ``source`` under way, if any."""
        task = self._tasks.get(source)
        if task is not None and task.get_loop() is asyncio.get_running_loop():
            await asyncio.wait({task}, timeout=within)

    async def aclose(self) -> None:
        """Stop the lookups under way."""
        tasks, self._tasks = list(self._tasks.values()), {}
        loop = asyncio.get_running_loop()
        mine = [t for t in tasks if t.get_loop() is loop]
        for task in mine:
            task.cancel()
        await asyncio.gather(*mine, return_exceptions=True)

    async def _look_up(
        self, source: Source, lookup: Lookup, loop: asyncio.AbstractEventLoop
    ) -> None:
        if self._slots is None or self._slots_loop is not loop:
            self._slots, self._slots_loop = asyncio.Semaphore(MAX_LOOKUPS), loop
        old = self._told.get(source, ({}, 0.0))[0]
        where = "/".join(part for part in source if part)
        try:
            async with self._slots:
                async with asyncio.timeout(self._timeout):
                    windows = await lookup()
        except (ParleyError, TimeoutError) as exc:
            why = exc.message if isinstance(exc, ParleyError) else "it took too long"
            log.info("could not read the context windows of %s: %s", where, why)
            self._keep(source, old, self._retry)
        except Exception:  # a boundary: a turn never fails because a model list did
            log.warning("could not read the context windows of %s", where, exc_info=True)
            self._keep(source, old, self._retry)
        else:
            self.put(source, windows)

    def _keep(self, source: Source, windows: dict[str, int], ttl: float) -> None:
        self._told.pop(source, None)  # kept in the order of their last answer
        self._told[source] = (windows, self._clock() + ttl)
        while len(self._told) > MAX_SOURCES:
            del self._told[next(iter(self._told))]

    def _forget_task(self, source: Source, task: asyncio.Task[None]) -> None:
        if self._tasks.get(source) is task:
            del self._tasks[source]
