"""The context windows of well-known models: the tokens one call may read and write.

A provider's config can name a model's window (``[providers.NAME.models."MODEL"]``
``context_window``), which wins; else this table answers for the models it knows, from the
numbers their makers publish; else the window is unknown and a turn sends the whole thread.

A model id matches the longest prefix of the table that ends at a boundary of the id (its
end, or a character other than a letter or digit): ``gpt-4o-2024-08-06`` is ``gpt-4o``,
``llama3.1:8b`` is ``llama3.1``. An id with a vendor path (``openai/gpt-4o`` through a
router) is looked up by its last part as well.
"""

from __future__ import annotations

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


def builtin_window(model_id: str) -> int | None:
    """The window the table gives ``model_id``; None when it does not know the model."""
    model_id = model_id.lower()
    found = _longest(model_id)
    if found is None and "/" in model_id:
        found = _longest(model_id.rsplit("/", 1)[1])
    return None if found is None else BUILTIN_WINDOWS[found]


def _longest(model_id: str) -> str | None:
    best = None
    for prefix in BUILTIN_WINDOWS:
        if not model_id.startswith(prefix):
            continue
        rest = model_id[len(prefix) : len(prefix) + 1]
        if rest.isalnum():
            continue  # "gpt-4" is not a prefix of "gpt-4o"
        if best is None or len(prefix) > len(best):
            best = prefix
    return best
