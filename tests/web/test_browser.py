"""The chat page in a real headless Chromium, against the web app and the real Parley server
(the offline demo model and the fake upstream's ``fake/...`` models).

Skipped, with the reason, when no Chromium can be started (see ``tests/web/chromium.py``).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest

from parley.testing.fake_upstream import expected_reasoning, expected_text

if TYPE_CHECKING:
    from playwright.sync_api import Route

    from tests.web.chromium import ChatPage

# The fixtures (chromium, web_chat, unreachable_web_chat) live in their own module; importing
# it here directly would keep pytest from rewriting its asserts.
pytest_plugins = ("tests.web.chromium",)
pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed").expect


def test_tokens_arrive_progressively_with_reasoning_in_a_collapsible_block(
    web_chat: ChatPage,
) -> None:
    web_chat.open(model="fake/reasoning:20:25")  # 20 reasoning then 20 content chunks, 25 ms apart
    web_chat.send("hello")
    content = web_chat.answer.get_by_test_id("content")

    # The answer grows under our eyes: several different lengths before it is over.
    seen: list[int] = []
    while len(seen) < 4:
        grown = web_chat.page.wait_for_function(
            """(n) => {
                const c = document.querySelector('[data-role="assistant"] [data-testid="content"]');
                const stop = document.querySelector('[data-testid="stop"]');
                return c && !stop.hidden && c.textContent.length > n && c.textContent.length;
            }""",
            arg=seen[-1] if seen else 0,
            timeout=web_chat.answer_timeout,
        )
        seen.append(int(grown.json_value()))
    web_chat.wait_done()
    expect(content).to_have_text(expected_text(20))
    assert seen == sorted(seen) and seen[-1] < len(expected_text(20)), seen

    # Reasoning: in a <details> block, collapsed once the answer started, there to open.
    reasoning = web_chat.answer.get_by_test_id("reasoning")
    expect(reasoning).to_have_count(1)
    assert reasoning.evaluate("node => node.tagName") == "DETAILS"
    expect(reasoning).not_to_have_attribute("open", "")
    reasoning.locator("summary").click()
    expect(reasoning.get_by_test_id("reasoning-text")).to_have_text(expected_reasoning(20))
    expect(web_chat.status).to_have_text("Done.")


def test_a_tool_call_shows_with_its_arguments_result_and_the_answer_also_after_reload(
    web_chat: ChatPage,
) -> None:
    web_chat.open()  # the demo model: it calls the tool a message names
    web_chat.send("calculator 2+3*4")
    web_chat.wait_done()

    def check() -> None:
        expect(web_chat.role("user")).to_have_text("calculator 2+3*4")
        card = web_chat.answer.get_by_test_id("tool-call")
        expect(card).to_have_count(1)
        expect(card).to_have_attribute("data-tool-name", "calculator")
        expect(card.get_by_test_id("tool-arguments")).to_contain_text('"expression": "2+3*4"')
        expect(card.get_by_test_id("tool-result")).to_have_text("14")
        expect(card.get_by_test_id("tool-status")).to_contain_text("✓")
        expect(web_chat.answer.get_by_test_id("content").last).to_contain_text(
            'the tool calculator returned "14"'
        )

    check()
    thread_id = web_chat.current_thread()
    expect(web_chat.threads).to_have_count(1)
    expect(web_chat.threads.first).to_have_attribute("data-thread-id", thread_id)
    expect(web_chat.threads.first).to_have_text(re.compile("calculator 2\\+3\\*4"))

    web_chat.reload()  # the history, read back from the server
    assert web_chat.current_thread() == thread_id
    check()


def test_threads_new_switch_delete_and_reload(web_chat: ChatPage) -> None:
    web_chat.open(model="fake/text:3")
    web_chat.send("first question")
    web_chat.wait_done()
    first = web_chat.current_thread()
    expect(web_chat.answer.get_by_test_id("content")).to_have_text(expected_text(3))

    web_chat.by_id("new-thread").click()
    expect(web_chat.messages).to_have_count(0)
    web_chat.send("second question")
    web_chat.wait_done()
    second = web_chat.current_thread()
    assert second != first
    expect(web_chat.threads).to_have_count(2)
    ids = [web_chat.threads.nth(i).get_attribute("data-thread-id") for i in range(2)]
    assert ids == [second, first]  # newest first

    web_chat.page.locator(
        f'[data-testid="thread-item"][data-thread-id="{first}"] button'
    ).first.click()
    expect(web_chat.role("user")).to_have_text("first question")
    assert web_chat.current_thread() == first
    web_chat.reload()
    expect(web_chat.role("user")).to_have_text("first question")
    expect(web_chat.answer.get_by_test_id("content")).to_have_text(expected_text(3))

    web_chat.page.locator(
        f'[data-testid="thread-item"][data-thread-id="{second}"] [data-testid="delete-thread"]'
    ).click()
    expect(web_chat.threads).to_have_count(1)
    expect(web_chat.role("user")).to_have_text("first question")  # still on the first one
    web_chat.reload()
    expect(web_chat.threads).to_have_count(1)
    expect(web_chat.threads.first).to_have_attribute("data-thread-id", first)


def test_stop_cancels_a_long_answer_and_keeps_what_arrived(web_chat: ChatPage) -> None:
    web_chat.open(model="fake/text:400:40")  # 16 s if nobody stops it
    web_chat.send("tell me a long story")
    content = web_chat.answer.get_by_test_id("content")
    expect(content).to_contain_text(" ".join(expected_text(5).split()[:4]))
    expect(web_chat.stop_button).to_be_enabled()
    web_chat.stop_button.click()
    web_chat.wait_done(timeout=10_000)
    expect(web_chat.answer.get_by_test_id("stopped")).to_be_visible()
    expect(web_chat.status).to_have_text("Stopped.")
    kept = content.inner_text().strip()
    assert 0 < len(kept) < len(expected_text(400)) // 2
    assert expected_text(400).startswith(kept)

    web_chat.reload()
    expect(web_chat.answer.get_by_test_id("content")).to_have_text(kept)


MARKDOWN = """# A heading

A paragraph with **bold** and `code`.

- a loose list

- its second item

```python
def f():

    return 1
```

> a quote

1. one
2. two
"""

#: The rendered Markdown of an answer, without the page's own wrappers.
RENDERED = """node => [...node.querySelectorAll('.md-frozen, .md-tail')]
    .map((part) => part.innerHTML).join('').replace(/>\\s+</g, '><').trim()"""


def test_markdown_rendered_while_streaming_is_what_a_reload_shows(web_chat: ChatPage) -> None:
    web_chat.open(model="fake/echo:1:15")  # the message back, a word every 15 ms
    web_chat.composer.fill(MARKDOWN)
    web_chat.send_button.click()
    web_chat.wait_done()
    content = web_chat.answer.get_by_test_id("content")
    expect(content.locator("h1")).to_have_text("A heading")
    expect(content.locator("pre code")).to_have_text("def f():\n\n    return 1\n")
    expect(content.locator("ul > li")).to_have_count(2)
    live = content.evaluate(RENDERED)
    # It was rendered bit by bit: finished blocks were kept as they were.
    assert content.evaluate("node => node.querySelector('.md-frozen').childElementCount") > 0

    web_chat.reload()
    assert web_chat.answer.get_by_test_id("content").evaluate(RENDERED) == live


def test_html_in_the_model_output_is_shown_as_text_and_never_run(web_chat: ChatPage) -> None:
    web_chat.open(model="fake/echo")  # echoes the message back, word by word
    # Inline HTML in a paragraph, then an HTML block of its own.
    attack = (
        '**bold** and <img src=x onerror="window.__pwned=2"> inline\n\n'
        "<script>window.__pwned=1</script>"
    )
    web_chat.send(attack)
    web_chat.wait_done()

    def check() -> None:
        content = web_chat.answer.get_by_test_id("content")
        expect(content).to_contain_text("<script>window.__pwned=1</script>")
        expect(content).to_contain_text('<img src=x onerror="window.__pwned=2">')
        expect(content.locator("strong")).to_have_text("bold")  # Markdown still works
        expect(web_chat.page.locator(".messages script, .messages img")).to_have_count(0)
        assert web_chat.page.evaluate("typeof window.__pwned") == "undefined"

    check()
    web_chat.reload()
    check()


def test_the_model_picker_lists_the_servers_models(web_chat: ChatPage) -> None:
    web_chat.open()
    answer = web_chat.page.request.get(f"{web_chat.url}/api/models").json()
    assert answer["models"], answer
    picker = web_chat.by_id("model")
    expect(picker).to_have_value(answer["default"])
    options = picker.locator("option:not([disabled])")
    listed = [options.nth(i).get_attribute("value") for i in range(options.count())]
    assert set(listed) == {*answer["models"], answer["default"]}

    # The choice is what the next message runs with.
    picker.select_option("fake/text")
    web_chat.send("hi")
    web_chat.wait_done()
    expect(web_chat.answer.get_by_test_id("content")).to_have_text(expected_text())


def test_a_provider_error_is_shown_inline(web_chat: ChatPage) -> None:
    web_chat.open(model="fake/error:500")
    web_chat.send("hello")
    web_chat.wait_done()
    error = web_chat.answer.get_by_test_id("error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("500")
    expect(web_chat.status).not_to_have_text("Done.")


def test_an_unreachable_server_is_shown_inline(unreachable_web_chat: ChatPage) -> None:
    web_chat = unreachable_web_chat
    web_chat.open()
    expect(web_chat.by_id("error").first).to_contain_text("Cannot reach the Parley server at")
    web_chat.send("hello")
    web_chat.wait_done()
    expect(web_chat.answer.get_by_test_id("error")).to_contain_text(
        "Cannot reach the Parley server"
    )


def test_a_network_failure_is_shown_inline(web_chat: ChatPage) -> None:
    web_chat.open()

    def refuse(route: Route) -> None:
        route.abort("connectionrefused")

    web_chat.page.route("**/api/messages/process", refuse)
    web_chat.send("hello")
    web_chat.wait_done()
    expect(web_chat.answer.get_by_test_id("error")).to_contain_text(
        "Cannot reach the Parley web app"
    )
    expect(web_chat.composer).to_have_value("hello")  # not sent: given back to try again
