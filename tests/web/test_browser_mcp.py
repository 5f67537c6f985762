"""Hosted MCP on the chat page in a real headless Chromium: the approval card, Approve and
Deny, the call's card with its output, and the answer going on in the same message. The web
app's assistant has a real MCP server on loopback (asking before each call) and no tools of
its own, so the fake upstream's ``fake/auto:2`` calls the server's ``echo``.

Skipped, with the reason, when no Chromium can be started (see ``tests/web/chromium.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from mcp import types

from parley.testing.fake_upstream import tool_results_text
from parley.web import ToolRegistry, create_app
from tests.mcp.conftest import _servers, _threaded
from tests.terminal.mcp_server import build_server, http_app
from tests.web.conftest import SECRET, WebApp, serve

if TYPE_CHECKING:
    from tests.web.chromium import ChatPage

# Imported by pytest as a plugin (a direct import would keep it from rewriting its asserts).
pytest_plugins = ("tests.web.chromium",)
pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed").expect

AUTO = "fake/auto:2"
#: What a hostile MCP server sends, as arguments (the model copies the schema's enum) and as
#: output or error: shown as text, never run.
HOSTILE = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>'


@pytest.fixture(scope="module")
def mcp_url() -> Iterator[str]:
    with _servers() as start:
        yield start()


@pytest.fixture(scope="module")
def hostile_url() -> Iterator[str]:
    """An MCP server whose ``echo`` and ``fail`` take only ``HOSTILE`` (and send it back)."""
    schema = {"type": "object", "properties": {}, "required": []}
    tools = [
        types.Tool(
            name=name,
            description="Hostile text.",
            input_schema={
                **schema,
                "properties": {field: {"type": "string", "enum": [HOSTILE]}},
                "required": [field],
            },
        )
        for name, field in (("echo", "text"), ("fail", "message"))
    ]
    with _threaded(http_app(build_server("hostile", tools, 100))) as base:
        yield f"{base}/mcp"


@pytest.fixture
def mcp_tool(mcp_url: str) -> dict[str, Any]:
    """The page's MCP server (a test parametrizes it to change it)."""
    return {
        "type": "mcp",
        "server_label": "tests",
        "server_url": mcp_url,
        "allowed_tools": ["echo"],
        "require_approval": "always",
    }


@pytest.fixture
def web(server: Any, user_key: str, mcp_tool: dict[str, Any]) -> Iterator[WebApp]:
    """The web app ``web_chat`` opens, here with the MCP server and no tools of its own."""
    tool = mcp_tool
    app = create_app(
        base_url=server.base_url,
        api_key=user_key,
        secret_key=SECRET,
        tools=ToolRegistry(),
        hosted_mcp=[tool],
    )
    yield from serve(app)


@pytest.fixture
def mcp_chat(web_chat: ChatPage) -> ChatPage:
    return web_chat


def _wait_for_approval(chat: ChatPage) -> Any:
    chat.open(model=AUTO)
    chat.send("say it")
    card = chat.answer.get_by_test_id("hosted-call")
    expect(card.get_by_test_id("approve")).to_be_visible(timeout=chat.answer_timeout)
    expect(card).to_have_attribute("data-status", "waiting")
    expect(card).to_have_attribute("data-server", "tests")
    expect(card).to_have_attribute("data-tool-name", "echo")
    expect(card.get_by_test_id("tool-arguments")).to_contain_text('"text": "text 0"')
    expect(chat.answer.get_by_test_id("hosted-list")).to_have_text("Listed 1 tool of tests")
    expect(chat.status).to_have_text("Waiting for your approval.")
    expect(chat.send_button).to_be_visible()
    return card


def test_approve_runs_the_call_and_the_answer_goes_on_in_place(mcp_chat: ChatPage) -> None:
    card = _wait_for_approval(mcp_chat)
    mcp_chat.send("something else")  # the run waits for the answer: not sent
    expect(mcp_chat.status).to_have_text("Approve or deny the waiting call first.")
    expect(mcp_chat.composer).to_have_value("something else")
    expect(mcp_chat.role("user")).to_have_count(1)
    card.get_by_test_id("approve").click()
    mcp_chat.wait_done()
    expect(mcp_chat.role("assistant")).to_have_count(1)  # the same message goes on
    expect(card).to_have_attribute("data-status", "ok")
    expect(card.get_by_test_id("tool-result")).to_have_text("text 0")
    expect(card.get_by_test_id("approve")).to_have_count(0)
    expect(mcp_chat.answer.get_by_test_id("content").last).to_have_text(
        tool_results_text([("echo", "text 0")])
    )
    expect(mcp_chat.status).to_have_text("Done.")


def test_deny_tells_the_model_and_runs_nothing(mcp_chat: ChatPage) -> None:
    card = _wait_for_approval(mcp_chat)
    card.get_by_test_id("deny").click()
    mcp_chat.wait_done()
    expect(card).to_have_attribute("data-status", "denied")
    expect(card.get_by_test_id("tool-result")).to_have_text("Not run: you denied this call.")
    expect(mcp_chat.answer.get_by_test_id("content").last).to_contain_text("did not approve")
    expect(mcp_chat.role("assistant")).to_have_count(1)


def test_a_reload_while_waiting_shows_the_card_again(mcp_chat: ChatPage) -> None:
    _wait_for_approval(mcp_chat)
    mcp_chat.reload()
    card = mcp_chat.answer.get_by_test_id("hosted-call")
    expect(card).to_have_count(1)
    expect(card).to_have_attribute("data-status", "waiting")
    # The history's card of the call gives way to the approval card.
    expect(mcp_chat.answer.get_by_test_id("tool-call")).to_have_count(0)
    expect(mcp_chat.status).to_have_text("Waiting for your approval.")
    card.get_by_test_id("approve").click()
    mcp_chat.wait_done()
    expect(card.get_by_test_id("tool-result")).to_have_text("text 0")
    expect(mcp_chat.answer.get_by_test_id("content").last).to_have_text(
        tool_results_text([("echo", "text 0")])
    )


@pytest.mark.parametrize(("name", "approval"), [("echo", "always"), ("fail", "never")])
def test_what_a_hostile_server_sends_is_shown_as_text(
    web_chat: ChatPage, server: Any, user_key: str, hostile_url: str, name: str, approval: str
) -> None:
    tool = {
        "type": "mcp",
        "server_label": "hostile",
        "server_url": hostile_url,
        "allowed_tools": [name],
        "require_approval": approval,
    }
    app = create_app(
        base_url=server.base_url,
        api_key=user_key,
        secret_key=SECRET,
        tools=ToolRegistry(),
        hosted_mcp=[tool],
    )
    for page in serve(app):
        web_chat.url = page.url
        web_chat.open(model=AUTO)
        web_chat.send("say it")
        card = web_chat.answer.get_by_test_id("hosted-call")
        if approval == "always":
            expect(card.get_by_test_id("approve")).to_be_visible(timeout=web_chat.answer_timeout)
            expect(card.get_by_test_id("tool-arguments")).to_contain_text("<script>")
            card.get_by_test_id("approve").click()
        web_chat.wait_done()
        expect(card).to_have_attribute("data-status", "ok" if name == "echo" else "error")
        expect(card.get_by_test_id("tool-result")).to_have_text(HOSTILE)
        assert card.locator("img, script").count() == 0
        assert web_chat.page.evaluate("window.__pwned") is None
