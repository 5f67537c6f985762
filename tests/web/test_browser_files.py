"""Files on the chat page in a real headless Chromium: attached by the 📎 button (the file
chooser) and by a drop, shown as chips that become ready once indexed; a question then
searches them (the demo model calls ``file_search`` when the message names it), the search
shows as a card (queries, each passage with its file) and the answer's citation links to
the passage. A reload shows the files, the card and the citation again.

Skipped, with the reason, when no Chromium can be started (see ``tests/web/chromium.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.web.chromium import ChatPage

# Imported by pytest as a plugin (a direct import would keep it from rewriting its asserts).
pytest_plugins = ("tests.web.chromium",)
pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed").expect

HERON = "The launch of the Heron rocket is on Tuesday, from the north harbour."
DROP = """
const data = new DataTransfer();
data.items.add(new File([arguments_text], "crane.txt", { type: "text/plain" }));
document.querySelector('[data-testid="messages"]').dispatchEvent(
  new DragEvent("drop", { dataTransfer: data, bubbles: true, cancelable: true }),
);
"""


def test_attach_by_button_and_by_drop_then_ask_and_see_the_search(web_chat: ChatPage) -> None:
    chat = web_chat.open()
    page = chat.page
    with page.expect_file_chooser() as chooser:
        chat.by_id("attach").click()
    chooser.value.set_files(
        files=[{"name": "heron.txt", "mimeType": "text/plain", "buffer": HERON.encode()}]
    )
    chips = chat.by_id("file-chip")
    expect(chips).to_have_count(1)
    expect(chips.first.get_by_test_id("file-name")).to_have_text("heron.txt")
    expect(chips.first).to_have_attribute("data-status", "ready", timeout=chat.answer_timeout)
    expect(chips.first.get_by_test_id("file-status")).to_have_text("ready")
    thread_id = chat.current_thread()  # the first file started the conversation
    expect(chat.threads).to_have_count(1)

    page.evaluate(f"(arguments_text) => {{ {DROP} }}", "Cranes nest by the river.")
    expect(chips).to_have_count(2)
    expect(chips.nth(1).get_by_test_id("file-name")).to_have_text("crane.txt")
    expect(chips.nth(1)).to_have_attribute("data-status", "ready", timeout=chat.answer_timeout)

    chat.send("file_search Heron launch")
    chat.wait_done()
    card = chat.answer.get_by_test_id("file-search-call")
    expect(card).to_have_attribute("data-status", "ok")
    expect(card.get_by_test_id("search-queries")).to_have_text("Searched for: Heron launch")
    first = card.get_by_test_id("search-result").first
    expect(first.get_by_test_id("search-file")).to_have_text("heron.txt")
    expect(first.get_by_test_id("search-passage")).to_contain_text("Heron rocket")
    citation = chat.answer.get_by_test_id("citation")
    expect(citation).to_have_count(1)  # one link per file cited
    expect(citation).to_have_text("[1] heron.txt")
    citation.click()
    expect(first).to_have_class("search-result highlight")
    assert chat.current_thread() == thread_id  # the link does not change the address

    chat.reload()
    expect(chips).to_have_count(2)
    expect(chat.answer.get_by_test_id("file-search-call")).to_have_count(1)
    expect(chat.answer.get_by_test_id("search-file").first).to_have_text("heron.txt")
    expect(chat.answer.get_by_test_id("citation")).to_have_text("[1] heron.txt")
