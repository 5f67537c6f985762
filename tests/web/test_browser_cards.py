"""The page's cards of the calls the server runs (``static/cards.js``) in a real headless
Chromium: an item of a kind the page does not know shows through the fallback card, its
type and its status, and the answer goes on around it; a web search shows through its own. The exchange's stream is the web
app's own event stream, played by the browser's route of ``/api/messages/process``.

Skipped, with the reason, when no Chromium can be started (see ``tests/web/chromium.py``).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Route

    from tests.web.chromium import ChatPage

pytest_plugins = ("tests.web.chromium",)
pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed").expect


def _stream(*events: dict[str, Any]) -> str:
    """``events`` as the web app's event stream: each named by its ``type``."""
    return "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events)


def _hosted(phase: str, item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "hosted_tool", "run_id": "run_1", "phase": phase, "item": item}


def _play(web_chat: ChatPage, body: str) -> None:
    def answer(route: Route) -> None:
        route.fulfill(status=200, content_type="text/event-stream", body=body)

    web_chat.page.route("**/api/messages/process", answer)


def test_an_unknown_kind_shows_its_type_and_status_and_the_answer_goes_on(
    web_chat: ChatPage,
) -> None:
    web_chat.open()
    echo = {"type": "echo_call", "id": "echo_1", "text": "<b>hi</b>"}
    _play(
        web_chat,
        _stream(
            {"type": "content.delta", "run_id": "run_1", "message_id": "m", "text": "Before. "},
            _hosted("started", {**echo, "status": "in_progress"}),
            _hosted("done", {**echo, "status": "completed"}),
            {"type": "content.delta", "run_id": "run_1", "message_id": "m", "text": "After."},
            {"type": "done", "run_id": "run_1", "status": "completed"},
        ),
    )
    web_chat.send("echo")
    web_chat.wait_done()
    card = web_chat.answer.get_by_test_id("hosted-unknown")
    expect(card).to_have_count(1)  # the start and the end of one call: one card
    expect(card).to_have_attribute("data-item-type", "echo_call")
    expect(card).to_have_attribute("data-status", "ok")
    expect(card).to_contain_text("echo_call")
    expect(card.get_by_test_id("tool-result")).to_have_text("completed")
    expect(card.get_by_test_id("tool-status")).to_have_text("✓")
    content = web_chat.answer.get_by_test_id("content")
    expect(content).to_have_count(2)  # the card sits between the text before and after
    expect(content.last).to_have_text("After.")
    expect(web_chat.status).to_have_text("Done.")


def test_an_unknown_kind_that_failed_shows_its_error(web_chat: ChatPage) -> None:
    web_chat.open()
    failed = {"type": "echo_call", "status": "failed", "error": {"message": "no echo"}}
    _play(
        web_chat,
        _stream(
            _hosted("done", failed),
            {"type": "done", "run_id": "run_1", "status": "completed"},
        ),
    )
    web_chat.send("echo")
    web_chat.wait_done()
    card = web_chat.answer.get_by_test_id("hosted-unknown")
    expect(card).to_have_attribute("data-status", "error")
    expect(card.get_by_test_id("tool-result")).to_have_text("failed: no echo")
    expect(card.get_by_test_id("tool-status")).to_have_text("⚠ error")


def test_a_web_search_shows_its_query_and_the_pages_found(web_chat: ChatPage) -> None:
    web_chat.open()
    search = {
        "type": "web_search_call",
        "id": "ws_1",
        "action": {"type": "search", "query": "tides"},
    }
    page = {"url": "https://example.com/t", "title": "Tides", "snippet": "High and low."}
    _play(
        web_chat,
        _stream(
            _hosted("started", {**search, "status": "in_progress"}),
            _hosted("done", {**search, "status": "completed", "pages": [page]}),
            {"type": "done", "run_id": "run_1", "status": "completed"},
        ),
    )
    web_chat.send("tides")
    web_chat.wait_done()
    card = web_chat.answer.get_by_test_id("web-search-call")
    expect(card).to_have_count(1)
    expect(card).to_have_attribute("data-status", "ok")
    expect(card.get_by_test_id("search-queries")).to_have_text("Searched for: tides")
    expect(card.get_by_test_id("tool-status")).to_have_text("✓ 1 page")
    expect(card.get_by_test_id("search-result")).to_have_text("TidesHigh and low.")
    expect(web_chat.answer.get_by_test_id("hosted-unknown")).to_have_count(0)
