"""Hosted MCP on the page's routes: the server's MCP calls stream as ``hosted_tool`` events,
a call that waits for approval ends the exchange with ``approval``, and
``POST /api/runs/<run_id>/approval`` answers it and streams the rest. Real HTTP against the
suite's Parley server, a real MCP server on loopback, and the fake upstream's ``auto`` model
(it calls the first tool offered: ``echo`` with ``{"text": "text 0"}``)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from parley.testing.fake_upstream import tool_results_text
from parley.web import ToolRegistry, create_app
from tests.cli.conftest import Command
from tests.harness import free_port
from tests.mcp.conftest import _servers
from tests.terminal.conftest import parley
from tests.web.conftest import SECRET, Browser, Events, read_events, serve

AUTO = "fake/auto:2"
ANSWER = tool_results_text([("echo", "text 0")])


@pytest.fixture(scope="module")
def mcp_url() -> Iterator[str]:
    with _servers() as start:
        yield start()


def mcp_tool(url: str, **fields: Any) -> dict[str, Any]:
    return {
        "type": "mcp",
        "server_label": "tests",
        "server_url": url,
        "allowed_tools": ["echo"],
        "require_approval": "always",
        **fields,
    }


def _page(server: Any, key: str, *tools: dict[str, Any]) -> Iterator[Browser]:
    """The page with no tools of its own (``fake/auto`` calls the first tool offered)."""
    app = create_app(
        base_url=server.base_url,
        api_key=key,
        secret_key=SECRET,
        tools=ToolRegistry(),
        hosted_mcp=list(tools),
    )
    for web in serve(app):
        browser = Browser(web.url)
        browser.open_page()
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def asking(server: Any, user_key: str, mcp_url: str) -> Iterator[Browser]:
    """A page whose assistant has the test MCP server, asking before each call."""
    yield from _page(server, user_key, mcp_tool(mcp_url))


def _of(events: Events, name: str) -> list[dict[str, Any]]:
    return [data for n, data in events if n == name]


def _text(events: Events) -> str:
    return "".join(data["text"] for data in _of(events, "content.delta"))


def _answer(browser: Browser, run_id: str, action_id: str, approve: bool) -> Events:
    body = {"action_id": action_id, "approve": approve}
    with browser.http.stream(
        "POST", f"/api/runs/{run_id}/approval", json=body, headers=browser.headers()
    ) as response:
        assert response.status_code == 200, response.read()
        return list(read_events(response))


def _hosted(events: Events) -> list[tuple[str, str, str]]:
    return [
        (e["phase"], e["item"]["type"], e["item"].get("status", ""))
        for e in _of(events, "hosted_tool")
    ]


def test_a_call_waits_for_approval_then_runs_in_place(asking: Browser) -> None:
    first = asking.process("say it", model=AUTO)
    (approval,) = _of(first, "approval")
    run_id = approval["run_id"]
    assert approval["server_label"] == "tests" and approval["name"] == "echo"
    assert approval["arguments"] == {"text": "text 0"}
    assert approval["action_id"].startswith("mcpr_")
    assert ("done", "mcp_list_tools", "completed") in _hosted(first)
    assert _of(first, "done")[-1]["status"] == "action_required"
    assert [s["state"] for s in _of(first, "status")][-2:] == ["approval", "done"]

    # A reload while it waits: the thread's messages say which calls wait.
    thread_id = _of(first, "thread")[0]["thread_id"]
    pending = asking.get(f"/api/threads/{thread_id}/messages").json()["pending"]
    assert pending == {"run_id": run_id, "approvals": [approval]}

    second = _answer(asking, run_id, approval["action_id"], True)
    calls = [e["item"] for e in _of(second, "hosted_tool") if e["item"]["type"] == "mcp_call"]
    assert [c["status"] for c in calls] == ["in_progress", "completed"]
    assert calls[-1]["output"] == "text 0" and calls[-1]["server_label"] == "tests"
    assert _text(second) == ANSWER
    assert _of(second, "done")[-1]["status"] == "completed"
    assert "pending" not in asking.get(f"/api/threads/{thread_id}/messages").json()
    # Answered once: not again.
    again = asking.post(
        f"/api/runs/{run_id}/approval", {"action_id": approval["action_id"], "approve": True}
    )
    assert again.status_code == 409 and again.json()["error"]["type"] == "not_waiting"


def test_a_denied_call_is_not_run(asking: Browser) -> None:
    first = asking.process("say it", model=AUTO)
    (approval,) = _of(first, "approval")
    second = _answer(asking, approval["run_id"], approval["action_id"], False)
    assert not [e for e in _of(second, "hosted_tool") if e["item"]["type"] == "mcp_call"]
    assert "did not approve" in _text(second)
    assert _of(second, "done")[-1]["status"] == "completed"


def test_a_call_that_needs_no_approval_streams_as_it_runs(
    server: Any, user_key: str, mcp_url: str
) -> None:
    for browser in _page(server, user_key, mcp_tool(mcp_url, require_approval="never")):
        events = browser.process("say it", model=AUTO)
        assert not _of(events, "approval")
        assert _hosted(events) == [
            ("started", "mcp_list_tools", "in_progress"),
            ("done", "mcp_list_tools", "completed"),
            ("started", "mcp_call", "in_progress"),
            ("done", "mcp_call", "completed"),
        ]
        assert _text(events) == ANSWER


def test_only_the_sessions_runs_are_answered(asking: Browser) -> None:
    first = asking.process("say it", model=AUTO)
    (approval,) = _of(first, "approval")
    body = {"action_id": approval["action_id"], "approve": True}
    # Another browser session of the same page: its owner tag differs.
    other = Browser(asking.url)
    other.open_page()
    try:
        answer = other.post(f"/api/runs/{approval['run_id']}/approval", body)
        assert answer.status_code == 404, answer.text
    finally:
        other.close()
    for bad in ({"action_id": approval["action_id"]}, {"approve": True}, {**body, "approve": 1}):
        refused = asking.post(f"/api/runs/{approval['run_id']}/approval", bad)
        assert refused.status_code == 422, refused.text
    wrong = asking.post(f"/api/runs/{approval['run_id']}/approval", {**body, "action_id": "x"})
    assert wrong.status_code == 409


def test_the_assistant_gets_the_servers_tools(asking: Browser, sdk: Any, mcp_url: str) -> None:
    asking.process("say it", model=AUTO)
    (bot,) = [a for a in sdk.assistants.list(limit=100).iter_all() if a.name == "Parley web"]
    hosted = [t.model_dump() for t in bot.tools if t.type == "mcp"]
    assert [(t["server_label"], t["server_url"]) for t in hosted] == [("tests", mcp_url)]


# ------------------------------------------------------------------------ the commands


def _env(tmp_path: Path) -> dict[str, str]:
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path)}
    for name in ("PARLEY_BASE_URL", "PARLEY_API_KEY", "PARLEY_DATABASE_URL", "OPENAI_API_KEY"):
        env.pop(name, None)
    return env


def test_parley_web_gives_the_assistant_its_hosted_servers(
    server: Any, user_key: str, mcp_url: str, sdk: Any, tmp_path: Path
) -> None:
    args = ["web", "--port", str(free_port()), "--server", server.base_url]
    args += ["--api-key", user_key, "--hosted-mcp", f"tests={mcp_url}#echo"]
    cmd = Command(*args, "--hosted-mcp", f"{mcp_url}?approval=never", env=_env(tmp_path))
    try:
        url = cmd.wait_for(r"Parley web is running at (\S+)").group(1)
        browser = Browser(url)
        try:
            browser.open_page()
            assert browser.process("hello")[-1][1]["status"] == "completed"
        finally:
            browser.close()
    finally:
        cmd.kill()
    (bot,) = [a for a in sdk.assistants.list(limit=100).iter_all() if a.name == "Parley web"]
    hosted = [t.model_dump(exclude_none=True) for t in bot.tools if t.type == "mcp"]
    assert [(t["server_label"], t["server_url"], t["require_approval"]) for t in hosted] == [
        ("tests", mcp_url, "always"),
        ("127-0-0-1", mcp_url, "never"),
    ]
    assert hosted[0]["allowed_tools"] == ["echo"] and "allowed_tools" not in hosted[1]


def test_an_unknown_server_label_is_said_on_the_page(server: Any, user_key: str) -> None:
    for browser in _page(server, user_key, {"type": "mcp", "server_label": "nowhere"}):
        events = browser.process("hello")
        (error,) = _of(events, "error")
        assert "nowhere" in error["message"], error
        assert _of(events, "done")[-1]["status"] == "failed"


@pytest.mark.parametrize("command", ["web", "run"])
def test_a_bad_spec_stops_the_command_at_once(command: str, tmp_path: Path) -> None:
    args = ["--server", "http://127.0.0.1:9"] if command == "web" else ["--port", "0"]
    done = parley(command, *args, "--hosted-mcp", "x?approval=maybe", env=_env(tmp_path))
    assert done.returncode == 2, done
    assert "--hosted-mcp 'x?approval=maybe': approval must be always or never" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "parley" / "parley.db").exists()  # nothing started
