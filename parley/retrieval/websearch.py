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

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import orjson

if TYPE_CHECKING:
    import httpx

#: The most bytes of an answer read; the most results taken from one.
MAX_BODY = 4 * 1024 * 1024
MAX_RESULTS = 50


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
    """A SearXNG instance (or a service that answers as one), at ``url``."""

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        import httpx  # only a server with a search service needs it (and what it imports)

        self.url = url.rstrip("/")
        self.timeout = timeout
        self._client: httpx.AsyncClient = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout),
            headers={"Accept": "application/json", "User-Agent": "parley-web-search"},
            follow_redirects=False,
        )

    async def search(self, query: str) -> list[Page]:
        import httpx

        try:
            async with self._client.stream(
                "GET", f"{self.url}/search", params={"q": query, "format": "json"}
            ) as answer:
                if answer.status_code != 200:
                    raise SearchFailed(
                        f"the search service answered {answer.status_code}"
                        + (
                            " (is JSON among its search.formats?)"
                            if answer.status_code == 403
                            else ""
                        )
                    )
                body = bytearray()
                async for chunk in answer.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_BODY:
                        raise SearchFailed("the search service's answer is too large")
        except httpx.TimeoutException:
            raise SearchFailed(
                f"the search service did not answer within {self.timeout:g} s"
            ) from None
        except httpx.HTTPError as exc:
            raise SearchFailed(
                f"the search service cannot be reached ({type(exc).__name__})"
            ) from None
        return _pages(bytes(body))

    async def aclose(self) -> None:
        await self._client.aclose()


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
