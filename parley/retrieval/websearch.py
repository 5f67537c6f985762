"""The web search backend the ``web_search`` tool runs through (``engine.hosted.web_search``).

Parley does not search the web itself: the operator points it at a search service
(``PARLEY_WEB_SEARCH_URL``). The one spoken is SearXNG's JSON API, which a self-hosted
SearXNG (the metasearch engine) and services compatible with it answer: ``GET
<url>/search?q=<query>&format=json`` (JSON must be among the instance's
``search.formats``), answered with ``{"results": [{"url", "title", "content"}, ...]}``.
A failure (unreachable, an error status, a body that is not that) is a ``SearchFailed``
whose message the model reads as the call's error.
"""

from __future__ import annotations

import asyncio
import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import orjson

if TYPE_CHECKING:
    import aiohttp

#: The most bytes of an answer read; the most results taken from one.
MAX_BODY = 4 * 1024 * 1024
MAX_RESULTS = 50

_HEADERS = {"Accept": "application/json", "User-Agent": "parley-web-search"}


class SearchFailed(Exception):
    """The backend could not answer a search; the message says why."""


@dataclass(frozen=True, slots=True)
class Page:
    """One result: the page's URL, its title and a snippet of it."""

    url: str
    title: str
    snippet: str


class SearchBackend(Protocol):
    async def search(self, query: str) -> list[Page]: ...

    async def aclose(self) -> None: ...


class Searxng:
    """A SearXNG instance (or a service that answers as one), at ``url``. Its aiohttp
    session (``parley.guarded_http``, with no address policy: the operator chose the URL)
    opens with the first search, which imports aiohttp off the event loop if it is not
    loaded yet (a server with a search service loads it as it starts)."""

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    async def search(self, query: str) -> list[Page]:
        session = self._session or await self._open_session()
        import aiohttp  # loaded with the session

        try:
            async with session.get(
                f"{self.url}/search",
                params={"q": query, "format": "json"},
                allow_redirects=False,
            ) as answer:
                if answer.status != 200:
                    raise SearchFailed(
                        f"the search service answered {answer.status}"
                        + (" (is JSON among its search.formats?)" if answer.status == 403 else "")
                    )
                body = bytearray()
                async for chunk in answer.content.iter_any():
                    body += chunk
                    if len(body) > MAX_BODY:
                        raise SearchFailed("the search service's answer is too large")
        except TimeoutError:  # aiohttp's timeouts are TimeoutErrors too
            raise SearchFailed(
                f"the search service did not answer within {self.timeout:g} s"
            ) from None
        except aiohttp.ClientError as exc:
            raise SearchFailed(
                f"the search service cannot be reached ({type(exc).__name__})"
            ) from None
        return _pages(bytes(body))

    async def _open_session(self) -> aiohttp.ClientSession:
        await asyncio.to_thread(importlib.import_module, "parley.guarded_http")
        from parley.guarded_http import client_session

        if self._session is None:  # not opened by a concurrent first search meanwhile
            self._session = client_session(None, timeout=self.timeout, headers=_HEADERS)
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()


def _pages(body: bytes) -> list[Page]:
    """The results of a SearXNG JSON answer."""
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise SearchFailed("the search service's answer is not JSON") from None
    results = data.get("results") if isinstance(data, dict) else None
    if not isinstance(results, list):
        raise SearchFailed("the search service's answer has no results list")
    pages = []
    for result in results[:MAX_RESULTS]:
        if not isinstance(result, dict):
            continue
        url = result.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            continue
        title = result.get("title")
        snippet = result.get("content")
        pages.append(
            Page(
                url=url,
                title=title if isinstance(title, str) else "",
                snippet=snippet if isinstance(snippet, str) else "",
            )
        )
    return pages


def backend_of(url: str | None, timeout: float) -> SearchBackend | None:
    """The backend at ``url``; None when none is configured."""
    return Searxng(url, timeout=timeout) if url else None
