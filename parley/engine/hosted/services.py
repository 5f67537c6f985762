"""What the hosted tools of every turn share in one process: the database, the settings,
the open MCP sessions, the containers' sandboxes, the web search backend."""

from __future__ import annotations

from typing import Any

from parley.config import Settings
from parley.engine.hosted.containers import Containers
from parley.engine.hosted.sessions import Sessions
from parley.mcp.shapes import Bounds
from parley.metrics import Metrics
from parley.providers.registry import ProviderRegistry
from parley.retrieval.websearch import backend_of
from parley.store.db import Database


class Services:
    """The process's parts the hosted tools run on."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        metrics: Metrics,
        providers: ProviderRegistry | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.metrics = metrics
        #: Embeds the queries of a file search in a store with an embedding model.
        self.providers = providers
        self.bounds = bounds_of(settings)
        self.sessions = Sessions(self.bounds)
        #: The containers whose sandboxes run the code interpreter's calls here.
        self.containers = Containers(db, settings, metrics)
        #: The search service of the web searches (none configured: None).
        self.web = backend_of(settings.web_search_url, settings.web_search_timeout)
        self._factory: Any = None

    @property
    def guarded(self) -> Any:
        """The HTTP clients of servers a request names by URL: they reach only the
        addresses the operator allows (``parley.mcp.addresses``)."""
        if self._factory is None:
            from parley.mcp.addresses import guarded_client_factory
            from parley.mcp.servers import address_policy

            self._factory = guarded_client_factory(address_policy(self.settings))
        return self._factory

    async def aclose(self) -> None:
        """Close the open MCP sessions and the containers' sandboxes (the engine stops)."""
        await self.sessions.aclose()
        await self.containers.aclose()
        if self.web is not None:
            await self.web.aclose()


def bounds_of(settings: Settings) -> Bounds:
    """The bounds of an MCP server's sessions: time to connect, list and call, and sizes."""
    return Bounds(
        connect_timeout=settings.mcp_connect_timeout,
        list_timeout=settings.mcp_list_timeout,
        call_timeout=settings.mcp_call_timeout,
        max_output_chars=settings.mcp_max_output,
        max_tools=settings.mcp_max_tools,
    )
