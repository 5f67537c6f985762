"""A fake web search service speaking SearXNG's JSON API (``parley.retrieval.websearch``),
on a real socket: ``GET /search?q=<query>&format=json``.

Each query answers the same pages (``pages_for``): six results on six domains, each a URL
made from the query's words, a title and a snippet naming the query. ``site:DOMAIN`` in
the query keeps that domain's pages (and its subdomains'). Words in the query choose other
answers: ``nothing`` no result, ``error500`` HTTP 500, ``notjson`` a body that is not JSON,
``slow`` an answer after ``SLOW`` seconds. A request without ``format=json`` is a 403, as
a SearXNG whose JSON API is off answers. ``queries`` keeps the queries received, oldest
first.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

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


class FakeSearch:
    """The fake search service, served from a thread while in a ``with`` block."""

    def __init__(self) -> None:
        self.queries: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                asked = parse_qs(parts.query)
                if parts.path != "/search":
                    self._send(404, {"error": "not found"})
                    return
                if asked.get("format") != ["json"]:
                    self._send(403, {"error": "the json format is not enabled"})
                    return
                query = (asked.get("q") or [""])[0]
                fake.queries.append(query)
                words = set(re.findall(r"[a-z0-9]+", query.lower()))
                if "slow" in words:
                    time.sleep(SLOW)
                if "error500" in words:
                    self._send(500, {"error": "engine failure"})
                elif "notjson" in words:
                    self._raw(200, b"<html>not json</html>", "text/html")
                elif "nothing" in words:
                    self._send(200, {"query": query, "results": []})
                else:
                    self._send(200, {"query": query, "results": pages_for(query)})

            def _send(self, status: int, body: dict[str, Any]) -> None:
                self._raw(status, json.dumps(body).encode(), "application/json")

            def _raw(self, status: int, data: bytes, kind: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(data)  # unless the client gave up (a timeout)

            def log_message(self, *_: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FakeSearch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()
