"""What ``GET /v1/models`` and ``parley models`` show: every provider, whether it can be used
now (and if not, what to do), and the models of those whose API can list them, each with
its context window where it is known (``ProviderRegistry.context_window``).

A provider is ready when it is configured (its key set) and it answers: one whose server
cannot be reached, does not answer in time or rejects the key is not ready, and says why.
One that answers but cannot list its models (no such endpoint, say) stays ready."""

from __future__ import annotations

import asyncio
from typing import Any

from parley.errors import NotFound, ParleyError, UpstreamError, UpstreamTimeout
from parley.providers.registry import ProviderRegistry

#: Seconds a provider gets to list its models.
LIST_TIMEOUT = 5.0
#: Codes of a listing's failure that mean the provider cannot be used now.
_UNUSABLE = frozenset({"upstream_unreachable", "upstream_auth"})


async def _models_of(
    registry: ProviderRegistry, name: str
) -> tuple[list[str] | None, str | None, bool]:
    """The model ids provider ``name`` lists, or None and why it could not say; and
    whether it answered (False: unreachable, too slow, or it refused the key)."""
    try:
        async with asyncio.timeout(LIST_TIMEOUT):
            return await registry.models(name), None, True
    except TimeoutError:
        return None, f"did not list its models within {LIST_TIMEOUT:g} s", False
    except UpstreamTimeout as exc:
        return None, exc.message, False
    except UpstreamError as exc:
        return None, exc.message, exc.code not in _UNUSABLE
    except ParleyError as exc:
        return None, exc.message, True


async def describe(registry: ProviderRegistry) -> dict[str, Any]:
    infos = registry.catalog()
    listed = await asyncio.gather(*(_models_of(registry, i.name) for i in infos if i.ready))
    by_name = dict(zip([i.name for i in infos if i.ready], listed, strict=True))
    providers: list[dict[str, Any]] = []
    models: list[dict[str, Any]] = []
    for info in infos:
        ids, error, answered = by_name.get(info.name, (None, None, True))
        providers.append(
            {
                "name": info.name,
                "kind": info.kind,
                "ready": info.ready and answered,
                "problem": info.problem or error,
                "models_listed": ids is not None,
            }
        )
        for model in ids or ():
            name = f"{info.name}/{model}"
            found = model_object(name, info.name, registry.context_window(name))
            models.append({**found, **registry.model_details(name)})
    return {"object": "list", "data": models, "providers": providers}


def model_object(model: str, provider: str, window: int | None = None) -> dict[str, Any]:
    """OpenAI's model object for ``model`` (its id as named) of ``provider``: ``owned_by``
    is the provider's name; ``created`` is 0, as no provider's list says when a model was
    made; Parley's ``context_window`` is the model's ``window`` in tokens, when known."""
    found = {
        "id": model,
        "object": "model",
        "created": 0,
        "owned_by": provider,
        "provider": provider,
    }
    if window is not None:
        found["context_window"] = window
    return found


async def find_model(registry: ProviderRegistry, model: str) -> dict[str, Any]:
    """The model object of ``model`` if it can be used: its provider (the default one for
    a name without ``/``) is configured and ready, and lists it (or cannot list its
    models). The object's id is ``model`` as asked. Raises ``NotFound``."""
    try:
        name, model_id = registry.check_model(model)
    except ParleyError as exc:  # unknown provider, or one without its key: it says which
        raise _no_model(model, exc.message) from None
    info = next(i for i in registry.catalog() if i.name == name)
    if not info.ready:
        raise _no_model(model, f"Its provider is not ready: {info.problem}.")
    provider, _ = registry.resolve(model)
    if getattr(provider, "serves_any_model", False):  # the demo model: any id is one
        return model_object(model, name, registry.context_window(model))
    listed, _, _ = await _models_of(registry, name)
    # A provider that cannot say: the id is well formed and its provider ready.
    if listed is not None and model_id not in listed:
        which = "default provider" if registry.qualified(model) != model else "provider"
        raise _no_model(model, f"The {which} {name} does not list it.")
    found = model_object(model, name, registry.context_window(model))
    return {**found, **registry.model_details(model)}


def _no_model(model: str, why: str) -> NotFound:
    return NotFound(
        f"The model '{model}' is not available. {why}", code="model_not_found", param="model"
    )
