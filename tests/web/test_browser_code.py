"""The code interpreter on the chat page in a real headless Chromium: the demo model calls
``python`` with the text after the word, the Parley server runs it in the sandbox, and the
page shows the code and "Running…", then the output, the figure (an <img> of a PNG data
URL) and the file written as a download link; a reload shows them again; the link hands
the file to this browser session and to no other.

Skipped, with the reason, when no Chromium can be started (see ``tests/web/chromium.py``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from parley.web import create_app
from tests.web.conftest import SECRET, WebApp, serve

if TYPE_CHECKING:
    from tests.web.chromium import ChatPage

# Imported by pytest as a plugin (a direct import would keep it from rewriting its asserts).
pytest_plugins = ("tests.web.chromium",)
pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed").expect

SLOW_PRINT = "python import time; time.sleep(1.5); print(6*7)"
#: 100 lines of output, then an exception.
LONG_THEN_RAISE = "python print('\\n'.join(f'row {i}' for i in range(100))); 1/0"
PLOT = (
    "python import matplotlib.pyplot as plt; plt.plot([1, 3, 2]); "
    "open('out.csv', 'w').write('a,b\\n1,2\\n'); print('<b>plotted</b>')"
)


@pytest.fixture
def code_web(server: Any, user_key: str) -> Iterator[WebApp]:
    app = create_app(
        base_url=server.base_url, api_key=user_key, secret_key=SECRET, code_interpreter=True
    )
    yield from serve(app)


@pytest.fixture
def code_chat(chromium: Any, code_web: WebApp) -> Iterator[ChatPage]:
    from tests.web.chromium import open_chat

    yield from open_chat(chromium, code_web.url)


@pytest.fixture
def other_chat(chromium: Any, code_web: WebApp) -> Iterator[ChatPage]:
    from tests.web.chromium import open_chat

    yield from open_chat(chromium, code_web.url)


def test_code_runs_shows_its_output_figure_and_file(
    code_chat: ChatPage, other_chat: ChatPage
) -> None:
    chat = code_chat.open()
    expect(chat.examples).to_have_count(4)  # one runs Python
    expect(chat.examples.last).to_have_attribute("data-prompt", re.compile(r"^python "))
    chat.send(SLOW_PRINT)
    card = chat.answer.get_by_test_id("code-call")
    expect(card.get_by_test_id("code-source")).to_have_text(
        "import time; time.sleep(1.5); print(6*7)"
    )
    expect(card.get_by_test_id("code-running")).to_have_text("Running…")
    expect(card).to_have_attribute("data-status", "ok", timeout=chat.answer_timeout)
    expect(card.get_by_test_id("code-logs")).to_have_text("42")
    expect(card.get_by_test_id("code-running")).to_have_count(0)
    chat.wait_done()

    chat.send(PLOT)
    chat.wait_done()
    plot = chat.answer.get_by_test_id("code-call")
    expect(plot).to_have_attribute("data-status", "ok")
    # The logs are text: the markup the code printed is not parsed.
    expect(plot.get_by_test_id("code-logs")).to_have_text("<b>plotted</b>")
    expect(plot.locator("b")).to_have_count(0)
    image = plot.get_by_test_id("code-image")
    expect(image).to_have_count(1)
    assert str(image.get_attribute("src")).startswith("data:image/png;base64,iVBOR")
    assert image.evaluate("img => img.complete && img.naturalWidth > 0")
    link = plot.get_by_test_id("code-file-link")
    expect(link).to_have_count(1)  # the figure is shown, not listed
    expect(link).to_contain_text("out.csv")
    href = str(link.get_attribute("href"))
    assert href.startswith(f"/api/threads/{chat.current_thread()}/code-files/cntr_")

    got = chat.page.request.get(f"{chat.url}{href}")
    assert got.status == 200
    assert got.body() == b"a,b\n1,2\n"
    other = other_chat.open()
    assert other.page.request.get(f"{other.url}{href}").status == 404

    chat.reload()
    cards = chat.by_id("code-call")
    expect(cards).to_have_count(2)
    expect(cards.first.get_by_test_id("code-logs")).to_have_text("42")
    expect(cards.nth(1).get_by_test_id("code-image")).to_have_count(1)
    expect(cards.nth(1).get_by_test_id("code-file-link")).to_have_attribute("href", href)
    # The history's record of the model's call is the card: no second "python" card.
    expect(chat.by_id("tool-call")).to_have_count(0)

    chat.send(LONG_THEN_RAISE)
    chat.wait_done()
    failed = chat.answer.get_by_test_id("code-call")
    expect(failed).to_have_attribute("data-status", "error")
    expect(failed.get_by_test_id("tool-status")).to_have_text("⚠ error")
    error = failed.get_by_test_id("code-error")
    expect(error).to_contain_text("ZeroDivisionError: division by zero")
    logs = failed.get_by_test_id("code-logs")
    expect(logs).to_contain_text("row 29")
    expect(logs).not_to_contain_text("row 30")
    expect(logs).not_to_contain_text("ZeroDivisionError")  # shown once, apart
    expect(failed.get_by_test_id("code-logs-more")).to_have_text("Show all 100 lines")
    failed.get_by_test_id("code-logs-more").click()
    expect(failed.get_by_test_id("code-logs-more")).to_have_count(0)
    expect(logs).to_contain_text("row 99")
