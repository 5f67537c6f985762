"""What ``GET /v1/models`` and ``parley models`` show: every provider, whether it can be used
now (and if not, what to do), and the models of those whose API can list them."""

from __future__ import annotations

import asyncio
from typing import Any

from parley.errors import ParleyError
from parley.providers.registry import ProviderRegistry

#: Seconds a provider gets to list its models.
LIST_TIMEOUT = 5.0


async def describe(registry: ProviderRegistry) -> dict[str, Any]:
    infos = registry.catalog()

    async def models_of(name: str) -> tuple[list[str] | None, str | None]:
        try:
            async with asyncio.timeout(LIST_TIMEOUT):
                return await registry.models(name), None
        except TimeoutError:
            return None, f"did not list its models within {LIST_TIMEOUT:g} s"
        except ParleyError as exc:
            return None, exc.message

    listed = await asyncio.gather(*(models_of(i.name) for i in infos if i.ready))
    by_name = dict(zip([i.name for i in infos if i.ready], listed, strict=True))
    providers: list[dict[str, Any]] = []
    models: list[dict[str, Any]] = []
    for info in infos:
        ids, error = by_name.get(info.name, (None, None))
        providers.append(
            {
                "name": info.name,
                "kind": info.kind,
                "ready": info.ready,
                "problem": info.problem or error,
                "models_listed": ids is not None,
            }
        )
        models += [
            {"id": f"{info.name}/{model}", "object": "model", "provider": info.name}
            for model in ids or ()
        ]
    return {"object": "list", "data": models, "providers": providers}
