"""The routes FastAPI would build at each router's first request, on the event loop, are
built at start-up (``parley.server.route_warming``): no request builds one afterwards."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import routing

from parley.config import Settings
from parley.server.app import create_app
from parley.server.route_warming import build_routes

INCLUDED: Any = getattr(routing, "_IncludedRouter", None)
lazy = pytest.mark.skipif(INCLUDED is None, reason="this FastAPI builds its routes up front")

#: One path of each face, and the OpenAPI document's.
PATHS = [
    "/v1/models",
    "/v1/chat/completions",
    "/v1/responses",
    "/v1/threads",
    "/v1/assistants",
    "/v1/files",
    "/v1/vector_stores",
    "/v1/containers",
    "/v1/embeddings",
    "/healthz",
]


async def _request_each(app: Any) -> None:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://parley") as client:
        for path in PATHS:
            await client.get(path)  # no services: what matters is the match, not the answer


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The routes FastAPI builds from now on, as it builds them."""
    built: list[Any] = []
    plain = INCLUDED._build_effective_context

    def counted(self: Any, route: Any) -> Any:
        built.append(route)
        return plain(self, route)

    monkeypatch.setattr(INCLUDED, "_build_effective_context", counted)
    return built


@lazy
async def test_no_request_builds_a_route_after_start_up(tmp_path: Any, builds: list[Any]) -> None:
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path}/db.sqlite"))
    assert build_routes(app) > 50  # every face's routes
    assert len(builds) > 50
    builds.clear()
    await _request_each(app)
    assert builds == []


@lazy
async def test_without_it_the_first_requests_build_their_routers(
    tmp_path: Any, builds: list[Any]
) -> None:
    """The plain path: what ``build_routes`` saves the first requests."""
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path}/db.sqlite"))
    await _request_each(app)
    assert len(builds) > 20
