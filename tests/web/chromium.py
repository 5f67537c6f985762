"""A real Chromium (headless, through Playwright's sync API) on the web app's page.

``chromium`` is one browser for the module; it skips, with the reason, when there is no
Chromium (``PARLEY_CHROMIUM``, else ``/usr/bin/chromium``) or Playwright cannot start it.
``web_chat`` is a fresh browser context (its own cookies, so its own web session) on the page
of the test's web app (``web`` of ``tests/web/conftest.py``), wrapped in ``ChatPage``;
``unreachable_web_chat`` the same on a web app whose Parley server is not there. A test
fails when the page raised an uncaught exception or broke its Content-Security-Policy; the
page's other console errors are kept in ``ChatPage.console_errors`` for a test to check.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from parley.web import create_app
from tests.harness import free_port
from tests.web.conftest import SECRET, WebApp, serve

CHROMIUM_ENV = "PARLEY_CHROMIUM"
DEFAULT_CHROMIUM = "/usr/bin/chromium"
#: Milliseconds an answer may take to finish (a tool round polls every 200 ms).
ANSWER_TIMEOUT = 20_000


def chromium_path() -> str:
    return os.environ.get(CHROMIUM_ENV) or DEFAULT_CHROMIUM


def _launch() -> tuple[Any, Any]:
    """(playwright, browser), or ``pytest.skip`` saying why not."""
    path = chromium_path()
    if not (Path(path).is_file() and os.access(path, os.X_OK)):
        pytest.skip(f"browser tests skipped: no Chromium at {path} (set {CHROMIUM_ENV})")
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError as exc:
        pytest.skip(f"browser tests skipped: Playwright is not installed ({exc})")
    try:
        playwright = sync_playwright().start()
    except (Error, OSError) as exc:
        pytest.skip(f"browser tests skipped: Playwright cannot start ({exc})")
    try:
        browser = playwright.chromium.launch(
            executable_path=path, args=["--no-sandbox"], headless=True
        )
    except Error as exc:
        playwright.stop()
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        pytest.skip(f"browser tests skipped: Playwright cannot start {path}: {reason}")
    return playwright, browser


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """One headless Chromium for the module. Not one for the session: while Playwright's
    sync API runs, its event loop is the running loop of the main thread, so an async test
    after it in the same process (pytest-xdist gives a worker files in any order) could not
    start its own loop. Stopping Playwright at the module's end lets go of it."""
    playwright, browser = _launch()
    try:
        yield browser
    finally:
        browser.close()
        playwright.stop()


class ChatPage:
    """The chat page of one browser session, with the page's test ids as properties."""

    answer_timeout = ANSWER_TIMEOUT

    def __init__(self, page: Any, url: str) -> None:
        self.page = page
        self.url = url
        #: The text of each console message of type "error" the page logged.
        self.console_errors: list[str] = []

    def open(self, *, model: str | None = None, thread_id: str | None = None) -> ChatPage:
        """Load the page (``?model=`` picks a model; a thread id opens that thread) and wait
        until it has loaded its models and threads."""
        query = f"?model={quote(model, safe='')}" if model else ""
        fragment = f"#thread={quote(thread_id, safe='')}" if thread_id else ""
        self.page.goto(f"{self.url}/{query}{fragment}")
        self.wait_ready()
        return self

    def reload(self) -> None:
        self.page.reload()
        self.wait_ready()

    def wait_ready(self) -> None:
        from playwright.sync_api import expect

        expect(self.page.locator("body[data-ready=true]")).to_be_attached()

    def send(self, text: str) -> None:
        self.composer.fill(text)
        self.composer.press("Enter")

    def wait_done(self, timeout: float = ANSWER_TIMEOUT) -> None:
        """The answer is over (the Send button is back) and all of it is on screen."""
        from playwright.sync_api import expect

        expect(self.send_button).to_be_visible(timeout=timeout)
        expect(self.stop_button).to_be_hidden()
        expect(self.answer).to_have_attribute("data-state", "done")

    def by_id(self, test_id: str) -> Any:
        return self.page.get_by_test_id(test_id)

    @property
    def composer(self) -> Any:
        return self.by_id("composer")

    @property
    def send_button(self) -> Any:
        return self.by_id("send")

    @property
    def stop_button(self) -> Any:
        return self.by_id("stop")

    @property
    def status(self) -> Any:
        return self.by_id("status")

    @property
    def threads(self) -> Any:
        return self.by_id("thread-item")

    @property
    def messages(self) -> Any:
        return self.by_id("message")

    @property
    def examples(self) -> Any:
        """The example prompts of an empty conversation."""
        return self.by_id("example")

    def horizontal_overflow(self) -> int:
        """How many CSS pixels the page is wider than the window (0: no sideways scroll)."""
        return int(
            self.page.evaluate(
                "Math.max(0, document.documentElement.scrollWidth - window.innerWidth)"
            )
        )

    def role(self, role: str) -> Any:
        return self.page.locator(f'[data-testid="message"][data-role="{role}"]')

    @property
    def answer(self) -> Any:
        """The newest assistant message."""
        return self.role("assistant").last

    def current_thread(self) -> str:
        """The thread on screen, from the address (``#thread=<id>``)."""
        fragment = str(self.page.evaluate("location.hash"))
        assert fragment.startswith("#thread="), fragment
        return fragment.removeprefix("#thread=")


@pytest.fixture
def web_chat(chromium: Any, web: WebApp) -> Iterator[ChatPage]:
    """A new browser session on the test's web app (not loaded yet: call ``open``)."""
    yield from open_chat(chromium, web.url)


def open_chat(chromium: Any, url: str) -> Iterator[ChatPage]:
    context = chromium.new_context()
    page = context.new_page()
    failures: list[str] = []
    page.on("pageerror", lambda exc: failures.append(f"uncaught: {exc}"))
    page.on(
        "console",
        lambda msg: (
            failures.append(f"CSP: {msg.text}") if "Content Security Policy" in msg.text else None
        ),
    )
    chat = ChatPage(page, url)
    page.on(
        "console", lambda msg: chat.console_errors.append(msg.text) if msg.type == "error" else None
    )
    try:
        yield chat
    finally:
        context.close()
    assert not failures, failures


@pytest.fixture
def unreachable_web_chat(chromium: Any) -> Iterator[ChatPage]:
    """A new browser session on a web app whose Parley server is not there."""
    dead = f"http://127.0.0.1:{free_port()}"
    app = create_app(base_url=dead, api_key="pk_nobody", secret_key=SECRET)
    for web in serve(app):
        yield from open_chat(chromium, web.url)
