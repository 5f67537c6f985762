"""The web app in a real werkzeug server on loopback, against the suite's Parley server, and
"browsers" (httpx clients with their own cookie jars) that talk to it as the page does."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from flask import Flask

from parley.sdk import Client, SSEDecoder
from parley.web import create_app
from parley.web.app import close_app
from parley.web.server import WebServer

SECRET = "test-secret-0123456789abcdef0123456789abcdef"
_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')

Events = list[tuple[str, dict[str, Any]]]


@dataclass
class WebApp:
    url: str
    app: Flask


class Browser:
    """One browser session: a cookie jar, and the CSRF token of the page it loaded."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx.Client(base_url=url, timeout=30)
        self.token = ""

    def open_page(self) -> str:
        page = self.http.get("/")
        assert page.status_code == 200, page.text
        found = _META.search(page.text)
        assert found is not None, page.text[:500]
        self.token = found.group(1)
        return page.text

    def headers(self, **extra: str) -> dict[str, str]:
        return {"X-CSRF-Token": self.token, **extra}

    def post(self, path: str, body: Any = None, **kwargs: Any) -> httpx.Response:
        return self.http.post(path, json=body, headers=self.headers(), **kwargs)

    def delete(self, path: str) -> httpx.Response:
        return self.http.delete(path, headers=self.headers())

    def get(self, path: str) -> httpx.Response:
        return self.http.get(path)

    def process(self, content: str, **fields: Any) -> Events:
        """Send a message and read its whole event stream."""
        with self.open_stream(content, **fields) as response:
            assert response.status_code == 200, response.read()
            return list(read_events(response))

    def open_stream(self, content: str, **fields: Any) -> Any:
        body = {"content": content, **fields}
        return self.http.stream("POST", "/api/messages/process", json=body, headers=self.headers())

    def close(self) -> None:
        self.http.close()


def read_events(response: httpx.Response) -> Iterator[tuple[str, dict[str, Any]]]:
    assert response.headers["content-type"].startswith("text/event-stream")
    decoder = SSEDecoder()
    for chunk in response.iter_bytes():
        for frame in decoder.feed(chunk):
            yield str(frame.event), json.loads(frame.data)


def serve(app: Flask) -> Iterator[WebApp]:
    server = WebServer(app, "127.0.0.1", 0).start_in_thread()
    try:
        yield WebApp(url=server.url, app=app)
    finally:
        server.stop()
        close_app(app)


@pytest.fixture
def web(server: Any, user_key: str) -> Iterator[WebApp]:
    """The web app of a fresh Parley user, served on a free loopback port."""
    yield from serve(create_app(base_url=server.base_url, api_key=user_key, secret_key=SECRET))


@pytest.fixture
def browser(web: WebApp) -> Iterator[Browser]:
    b = Browser(web.url)
    b.open_page()
    yield b
    b.close()


@pytest.fixture
def other_browser(web: WebApp) -> Iterator[Browser]:
    b = Browser(web.url)
    b.open_page()
    yield b
    b.close()


@pytest.fixture
def sdk(server: Any, user_key: str) -> Iterator[Client]:
    """The SDK as the same Parley user as the web app (to look behind the page)."""
    with Client(base_url=server.base_url, api_key=user_key) as client:
        yield client
