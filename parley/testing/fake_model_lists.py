"""The model lists of the fake upstream (``fake_upstream``), in the shape of each provider
kind's API, with the context windows Parley reads from them: OpenAI's (with vLLM's
``max_model_len``), Anthropic's (``max_input_tokens``), Gemini's (``inputTokenLimit``) and
Ollama's (a model's ``num_ctx`` in its ``parameters``).
"""

from __future__ import annotations

from typing import Any

from parley.testing.fake_gemini import gemini_error
from parley.testing.loopback import Request

#: The models every model list names (beside those of ``FakeUpstreamServer.windows``).
LISTED = ("text", "reasoning", "tools")
#: What ``/api/show`` says every model takes (``model_info``), whatever its ``num_ctx``.
_OLLAMA_TRAINED = 131_072


def is_model_list(method: str, path: str) -> bool:
    """Whether a request asks for a model list, of any API (the module's docstring)."""
    if method == "POST":
        return path == "/api/show"
    lists = ("/v1/models", "/models", "/v1beta/models", "/api/tags")
    return method == "GET" and (path in lists or path.startswith("/v1beta/models/"))


def listing_answer(request: Request, windows: dict[str, int | None]) -> tuple[int, Any]:
    """The status and body that answer a model-list request (``is_model_list``) in its
    API's shape, for the models of ``windows`` (sorted) with their windows."""
    path, models = request.path, list(windows)
    if path.startswith("/v1beta/models/"):  # Gemini: one model
        name = path.removeprefix("/v1beta/models/")
        if name not in windows:
            return 404, gemini_error(404, f"models/{name} is not found.", "NOT_FOUND")
        return 200, _gemini_model(name, windows[name])
    if path == "/v1beta/models":
        return 200, {"models": [_gemini_model(m, w) for m, w in windows.items()]}
    if path == "/api/tags":
        tags = [{"name": m, "model": m, "size": 0, "details": {"family": "llama"}} for m in models]
        return 200, {"models": tags}
    if path == "/api/show":
        try:
            asked = request.json().get("model")
        except (ValueError, AttributeError):
            asked = None
        if not isinstance(asked, str) or asked not in windows:
            return 404, {"error": f"model '{asked}' not found"}
        return 200, _ollama_show(windows[asked])
    if "anthropic-version" in request.headers:
        page = [_anthropic_model(m, w) for m, w in windows.items()]
        return 200, {"data": page, "has_more": False, "first_id": models[0], "last_id": models[-1]}
    return 200, {"object": "list", "data": [_openai_model(m, w) for m, w in windows.items()]}


def _openai_model(model: str, window: int | None) -> dict[str, Any]:
    entry: dict[str, Any] = {"id": model, "object": "model", "created": 0, "owned_by": "fake"}
    if window is not None:
        entry["max_model_len"] = window  # as vLLM lists it
    return entry


def _anthropic_model(model: str, window: int | None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "type": "model",
        "id": model,
        "display_name": model,
        "created_at": "2025-01-01T00:00:00Z",
    }
    if window is not None:
        entry.update(max_input_tokens=window, max_tokens=min(window, 8192))
    return entry


def _gemini_model(model: str, window: int | None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": f"models/{model}",
        "version": "001",
        "displayName": model,
        "supportedGenerationMethods": ["generateContent", "countTokens"],
    }
    if window is not None:
        entry.update(inputTokenLimit=window, outputTokenLimit=min(window, 8192))
    return entry


def _ollama_show(window: int | None) -> dict[str, Any]:
    """An ``/api/show`` answer: the model takes ``_OLLAMA_TRAINED`` tokens; ``window``, when
    given, is its ``num_ctx``."""
    parameters = 'stop "<|eot_id|>"'
    if window is not None:
        parameters = f"num_ctx {window:>30}\n{parameters}"
    return {
        "parameters": parameters,
        "details": {"format": "gguf", "family": "llama"},
        "model_info": {"general.architecture": "llama", "llama.context_length": _OLLAMA_TRAINED},
        "capabilities": ["completion", "tools"],
    }
