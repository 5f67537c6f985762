"""The chat page when the web app is at its bound on concurrent exchanges, in a real headless
Chromium (skipped, with the reason, when none can be started: ``tests/web/chromium.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from parley.web import create_app
from tests.web.conftest import SECRET, Browser, WebApp, serve

if TYPE_CHECKING:
    from tests.web.chromium import ChatPage

# Imported by pytest as a plugin (a direct import would keep it from rewriting its asserts).
pytest_plugins = ("tests.web.chromium",)
pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed").expect


@pytest.fixture
def one_slot(server: Any, user_key: str) -> Iterator[WebApp]:
    app = create_app(base_url=server.base_url, api_key=user_key, secret_key=SECRET, max_exchanges=1)
    yield from serve(app)


@pytest.fixture
def busy_chat(chromium: Any, one_slot: WebApp) -> Iterator[ChatPage]:
    from tests.web.chromium import open_chat

    yield from open_chat(chromium, one_slot.url)


def test_the_page_says_the_server_is_busy(one_slot: WebApp, busy_chat: ChatPage) -> None:
    busy_chat.open()
    other = Browser(one_slot.url)
    other.open_page()
    try:
        with other.open_stream("hold the slot", model="fake/text:60:50") as holding:
            assert holding.status_code == 200
            busy_chat.send("hello")
            error = busy_chat.answer.get_by_text(
                "The server is busy: 1 chat is streaming; try again in a moment."
            )
            expect(error).to_be_visible()
            expect(busy_chat.send_button).to_be_visible()  # the page can send again
    finally:
        other.close()
