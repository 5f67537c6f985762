"""A fake web search service speaking SearXNG's JSON API (``parley.retrieval.websearch``),
on a loopback socket (``LoopbackFake``): ``GET /search?q=<query>&format=json``.

Each query answers the same pages (``pages_for``): six results on six domains, each a URL
made from the query's words, a title and a snippet naming the query. ``site:DOMAIN`` in
the query keeps that domain's pages (and its subdomains'). Words in the query choose other
answers: ``nothing`` no result, ``error500`` HTTP 500, ``notjson`` a body that is not JSON,
``slow`` an answer after ``SLOW`` seconds. A request without ``format=json`` is a 403, as
a SearXNG whose JSON API is off answers. ``queries`` keeps the queries received, oldest
first.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

from parley.testing.loopback import Connection, LoopbackFake, Request

#: The domains of the six pages every query finds.
DOMAINS = (
    "docs.example.com",
    "example.org",
    "news.example.net",
    "wiki.example.com",
    "blog.example.io",
    "example.edu",
)
#: Seconds a ``slow`` query waits.
SLOW = 3.0


def pages_for(query: str) -> list[dict[str, Any]]:
    """The results of ``query`` as the fake answers them (SearXNG's fields)."""
    site = re.search(r"\bsite:(\S+)", query)
    words = re.findall(r"[a-z0-9]+", re.sub(r"\bsite:\S+", "", query).lower())
    slug = "-".join(words[:6]) or "page"
    pages = [
        {
            "url": f"https://{domain}/{slug}/{n}",
            "title": f"{query} ({domain})",
            "content": f"What {domain} says about {query}: fact number {n}.",
            "engine": "fake",
            "score": 1.0 / n,
        }
        for n, domain in enumerate(DOMAINS, 1)
    ]
    if site:
        wanted = site[1].lower()
        pages = [p for p in pages if _within(str(p["url"]), wanted)]
    return pages


def _within(url: str, domain: str) -> bool:
    host = urlsplit(url).hostname or ""
    return host == domain or host.endswith("." + domain)


class FakeSearch(LoopbackFake):
    """The fake search service, served from a thread of its own while in a ``with`` block
    (or on the running loop in an ``async with`` one)."""

    def __init__(self) -> None:
        super().__init__()
        self.queries: list[str] = []

    async def _respond(self, request: Request, conn: Connection) -> bool:
        asked = parse_qs(urlsplit(request.target).query)
        if request.path != "/search":
            await conn.send_json(404, {"error": "not found"})
            return True
        if asked.get("format") != ["json"]:
            await conn.send_json(403, {"error": "the json format is not enabled"})
            return True
        query = (asked.get("q") or [""])[0]
        self.queries.append(query)
        words = set(re.findall(r"[a-z0-9]+", query.lower()))
        if "slow" in words:
            await asyncio.sleep(SLOW)
        if "error500" in words:
            await conn.send_json(500, {"error": "engine failure"})
        elif "notjson" in words:
            await conn.send(200, b"<html>not json</html>", content_type="text/html")
        elif "nothing" in words:
            await conn.send_json(200, {"query": query, "results": []})
        else:
            await conn.send_json(200, {"query": query, "results": pages_for(query)})
        return True
