"""A new user's first minutes on the chat page, in a real headless Chromium: the example
prompts of an empty conversation, a tool that reports an error, the phone layout, and the
page waiting for the model's first token.

Skipped, with the reason, when no Chromium can be started (see ``tests/web/chromium.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from parley.testing.fake_upstream import text_chunks

if TYPE_CHECKING:
    from tests.web.chromium import ChatPage

# Imported by pytest as a plugin (a direct import would keep it from rewriting its asserts).
pytest_plugins = ("tests.web.chromium",)
pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed").expect

#: The example prompts the empty page offers, in order.
EXAMPLES = [
    "Tell me about Parley",
    "What time is it? current_time Europe/Lisbon",
    "Work it out with the calculator (2 + 3) * 4",
]

#: The color a CSS custom property of the page's stylesheet resolves to, as computed.
RESOLVED_COLOR = """(name) => {
    const probe = document.createElement('span');
    probe.style.color = `var(${name})`;
    document.body.append(probe);
    const color = getComputedStyle(probe).color;
    probe.remove();
    return color;
}"""


def test_example_prompts_start_an_empty_conversation_as_if_typed(web_chat: ChatPage) -> None:
    web_chat.open()  # the demo model
    expect(web_chat.examples).to_have_count(len(EXAMPLES))
    expect(web_chat.examples.first).to_be_visible()
    assert [web_chat.examples.nth(i).get_attribute("data-prompt") for i in range(3)] == EXAMPLES

    # From the keyboard: they are buttons.
    web_chat.examples.nth(1).focus()
    web_chat.page.keyboard.press("Enter")
    web_chat.wait_done()
    expect(web_chat.role("user")).to_have_text(EXAMPLES[1])
    expect(web_chat.examples.first).to_be_hidden()  # the thread has messages now
    card = web_chat.answer.get_by_test_id("tool-call")
    expect(card).to_have_attribute("data-tool-name", "current_time")
    expect(card.get_by_test_id("tool-arguments")).to_contain_text('"timezone": "Europe/Lisbon"')
    expect(card).to_have_attribute("data-status", "ok")
    expect(web_chat.composer).to_have_value("")
    web_chat.reload()  # a thread with messages: no examples
    expect(web_chat.role("user")).to_have_text(EXAMPLES[1])
    expect(web_chat.examples.first).to_be_hidden()

    # A new conversation offers them again; a click sends one.
    web_chat.by_id("new-thread").click()
    expect(web_chat.examples.nth(2)).to_be_visible()
    web_chat.examples.nth(2).click()
    web_chat.wait_done()
    card = web_chat.answer.get_by_test_id("tool-call")
    expect(card).to_have_attribute("data-tool-name", "calculator")
    expect(card.get_by_test_id("tool-result")).to_have_text("20")

    web_chat.by_id("new-thread").click()
    web_chat.examples.first.click()
    web_chat.wait_done()
    expect(web_chat.role("user")).to_have_text(EXAMPLES[0])
    expect(web_chat.answer.get_by_test_id("reasoning")).to_have_count(1)
    expect(web_chat.answer.get_by_test_id("content")).to_contain_text(EXAMPLES[0])
    expect(web_chat.threads).to_have_count(3)
    assert web_chat.console_errors == []


def test_a_tool_that_fails_reads_as_a_tool_error_not_a_broken_page(web_chat: ChatPage) -> None:
    web_chat.open()
    web_chat.send("current_time Mars/Olympus")  # an unknown zone: the tool raises
    web_chat.wait_done()

    def check() -> None:
        card = web_chat.answer.get_by_test_id("tool-call")
        expect(card).to_have_attribute("data-status", "error")
        expect(card.get_by_test_id("tool-error-label")).to_have_text(
            "current_time reported an error"
        )
        expect(card.get_by_test_id("tool-result")).to_contain_text(
            "unknown time zone 'Mars/Olympus'"
        )
        # Not a failure of the page or the run: no red alert, and the answer went on.
        expect(web_chat.page.get_by_role("alert")).to_have_count(0)
        expect(web_chat.by_id("error")).to_have_count(0)
        expect(web_chat.answer.get_by_test_id("content").last).to_contain_text("current_time")
        for scheme in ("light", "dark"):
            web_chat.page.emulate_media(color_scheme=scheme)
            warn = web_chat.page.evaluate(RESOLVED_COLOR, "--warn")
            bad = web_chat.page.evaluate(RESOLVED_COLOR, "--bad")
            assert warn != bad
            shown = card.get_by_test_id("tool-error-label").evaluate(
                "node => getComputedStyle(node).color"
            )
            assert shown == warn, (scheme, shown, warn)
        web_chat.page.emulate_media(color_scheme="light")

    check()
    expect(web_chat.status).to_have_text("Done.")
    web_chat.reload()  # the history says it the same way
    check()
    assert web_chat.console_errors == []


@pytest.mark.parametrize(("width", "height"), [(390, 844), (700, 800)])
def test_on_a_phone_the_threads_open_as_a_drawer(
    web_chat: ChatPage, width: int, height: int
) -> None:
    page = web_chat.page
    page.set_viewport_size({"width": width, "height": height})
    web_chat.open()
    drawer = web_chat.by_id("sidebar")
    toggle = web_chat.by_id("threads-toggle")
    expect(drawer).to_be_hidden()
    expect(toggle).to_be_visible()
    expect(toggle).to_have_attribute("aria-expanded", "false")
    expect(web_chat.examples.first).to_be_visible()
    assert web_chat.horizontal_overflow() == 0

    web_chat.send("hello " + "x" * 120)  # a long word, echoed back by the demo model
    web_chat.wait_done()
    first = web_chat.current_thread()
    assert web_chat.horizontal_overflow() == 0

    toggle.click()
    expect(drawer).to_be_visible()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(web_chat.threads).to_have_count(1)
    assert web_chat.horizontal_overflow() == 0
    web_chat.by_id("new-thread").click()
    expect(drawer).to_be_hidden()
    expect(web_chat.messages).to_have_count(0)
    web_chat.examples.nth(2).click()
    web_chat.wait_done()
    expect(web_chat.answer.get_by_test_id("tool-result")).to_have_text("20")
    assert web_chat.horizontal_overflow() == 0

    toggle.click()
    expect(web_chat.threads).to_have_count(2)
    page.locator(f'[data-testid="thread-item"][data-thread-id="{first}"] .thread-open').click()
    expect(drawer).to_be_hidden()
    expect(web_chat.role("user")).to_contain_text("hello xxx")
    assert web_chat.current_thread() == first

    toggle.click()  # Escape closes it too, and gives the focus back
    expect(drawer).to_be_visible()
    page.keyboard.press("Escape")
    expect(drawer).to_be_hidden()
    expect(toggle).to_be_focused()
    assert web_chat.horizontal_overflow() == 0
    assert web_chat.console_errors == []


def test_the_page_says_it_waits_for_the_first_token_then_that_it_streams(
    web_chat: ChatPage,
) -> None:
    web_chat.open(model="fake/hang")  # the upstream sends its headers, then nothing
    web_chat.send("hello")
    expect(web_chat.status).to_have_text("Waiting for the model…")
    expect(web_chat.status).to_have_attribute("data-state", "waiting")
    expect(web_chat.answer.get_by_test_id("typing")).to_be_visible()
    expect(web_chat.answer.get_by_test_id("content")).to_have_count(0)
    expect(web_chat.stop_button).to_be_enabled()
    web_chat.stop_button.click()
    web_chat.wait_done()
    expect(web_chat.answer.get_by_test_id("typing")).to_have_count(0)
    expect(web_chat.status).not_to_have_attribute("data-state", "waiting")

    web_chat.open(model="fake/stall:1")  # one token, then nothing
    web_chat.send("hello again")
    expect(web_chat.answer.get_by_test_id("content")).to_have_text(text_chunks(1)[0].strip())
    expect(web_chat.status).to_have_text("Streaming the answer…")
    expect(web_chat.status).to_have_attribute("data-state", "streaming")
    expect(web_chat.answer.get_by_test_id("typing")).to_have_count(0)
    expect(web_chat.stop_button).to_be_enabled()
    web_chat.stop_button.click()
    web_chat.wait_done()
    assert web_chat.console_errors == []
