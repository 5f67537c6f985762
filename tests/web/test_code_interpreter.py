"""The code interpreter on the page's routes: a run of the page offers it, its calls stream
as ``hosted_tool`` events with ``code_interpreter_call`` items, a reload's messages keep
those items, ``GET /api/threads/<id>/code-files/<container>/<file>`` hands the session the
files its calls wrote (and no other session), and a server that cannot run the tool has the
page go on without it, saying so once. Real HTTP against real Parley servers, the demo
model (it calls ``python`` with the text after the word), and the real sandbox."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from parley.web import create_app
from tests.harness import ParleyServer
from tests.web.conftest import SECRET, Browser, Events, WebApp, serve

WRITE_CSV = "python open('out.csv', 'w').write('a,b\\n1,2\\n'); print(6*7)"


def _of(events: Events, name: str) -> list[dict[str, Any]]:
    return [data for event, data in events if event == name]


def _calls(events: Events) -> list[dict[str, Any]]:
    return [
        data
        for data in _of(events, "hosted_tool")
        if data["item"]["type"] == "code_interpreter_call"
    ]


@pytest.fixture
def code_web(server: Any, user_key: str) -> Iterator[WebApp]:
    """The page with the code interpreter offered, for a fresh user of the suite's server."""
    app = create_app(
        base_url=server.base_url, api_key=user_key, secret_key=SECRET, code_interpreter=True
    )
    yield from serve(app)


def _browser(web: WebApp) -> Browser:
    browser = Browser(web.url)
    browser.open_page()
    return browser


def test_a_call_streams_and_its_file_is_the_sessions_only(code_web: WebApp) -> None:
    browser, other = _browser(code_web), _browser(code_web)
    try:
        events = browser.process(WRITE_CSV)
        assert _of(events, "done")[-1]["status"] == "completed", events
        assert not _of(events, "notice")
        started, done = _calls(events)
        assert started["phase"] == "started"
        assert started["item"]["status"] == "in_progress"
        assert started["item"]["outputs"] is None
        item = done["item"]
        assert done["phase"] == "done"
        assert item["status"] == "completed"
        assert item["code"] == "open('out.csv', 'w').write('a,b\\n1,2\\n'); print(6*7)"
        assert item["outputs"] == [{"type": "logs", "logs": "42\n"}]
        (written,) = item["files"]
        assert written["path"] == "/mnt/data/out.csv"
        assert written["filename"] == "out.csv"

        thread_id = _of(events, "thread")[0]["thread_id"]
        history = browser.get(f"/api/threads/{thread_id}/messages").json()["data"]
        kept = [m["item"] for m in history if "item" in m]
        assert kept == [item]  # a reload shows the same call

        path = f"/api/threads/{thread_id}/code-files/{item['container_id']}/{written['file_id']}"
        answer = browser.get(path)
        assert answer.status_code == 200, answer.text
        assert answer.content == b"a,b\n1,2\n"
        assert answer.headers["content-type"] == "application/octet-stream"
        assert answer.headers["content-disposition"] == "attachment; filename=out.csv"
        assert "no-store" in answer.headers["cache-control"]

        assert other.get(path).status_code == 404  # another browser session
        unknown = f"/api/threads/{thread_id}/code-files/{item['container_id']}/cfile_nope"
        assert browser.get(unknown).status_code == 404
        other_container = f"/api/threads/{thread_id}/code-files/cntr_nope/{written['file_id']}"
        assert browser.get(other_container).status_code == 404
    finally:
        browser.close()
        other.close()


def test_a_file_of_another_conversation_is_not_found(code_web: WebApp) -> None:
    """The route hands out a file only through the conversation whose call wrote it."""
    browser = _browser(code_web)
    try:
        first = browser.process(WRITE_CSV)
        item = _calls(first)[-1]["item"]
        second = browser.process("Hello")
        thread_id = _of(second, "thread")[0]["thread_id"]
        assert thread_id != _of(first, "thread")[0]["thread_id"]
        file_id = item["files"][0]["file_id"]
        path = f"/api/threads/{thread_id}/code-files/{item['container_id']}/{file_id}"
        assert browser.get(path).status_code == 404
    finally:
        browser.close()


def test_a_page_without_the_tool_offers_none(web: WebApp) -> None:
    """``create_app`` offers the code interpreter only when asked: "python" is then a word."""
    browser = _browser(web)
    try:
        events = browser.process("python print(6*7)")
        assert not _calls(events)
        assert _of(events, "done")[-1]["status"] == "completed"
    finally:
        browser.close()


@pytest.fixture(scope="module")
def no_code_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ParleyServer]:
    """A server whose operator switched the code interpreter off: it refuses the tool."""
    tmp: Path = tmp_path_factory.mktemp("no-code")
    srv = ParleyServer(
        database_url=f"sqlite:///{tmp / 'parley.db'}",
        workdir=tmp,
        env={"PARLEY_CODE_INTERPRETER_ENABLED": "false"},
    ).start()
    yield srv
    srv.stop()
    srv.assert_clean_log()


def test_a_server_that_refuses_the_tool_is_said_once(no_code_server: ParleyServer) -> None:
    app = create_app(
        base_url=no_code_server.base_url,
        api_key=no_code_server.new_user(),
        secret_key=SECRET,
        code_interpreter=True,
    )
    for web in serve(app):
        browser = _browser(web)
        try:
            first = browser.process("python print(6*7)")
            (notice,) = _of(first, "notice")
            assert notice["code"] == "code_interpreter_off"
            assert "cannot run code" in notice["text"]
            assert "switched the code interpreter off" in notice["text"]
            assert not _calls(first)
            assert not _of(first, "error")
            assert _of(first, "done")[-1]["status"] == "completed"
            thread_id = _of(first, "thread")[0]["thread_id"]

            second = browser.process("python print(1)", thread_id=thread_id)
            assert not _of(second, "notice")  # said once, not on every message
            assert _of(second, "done")[-1]["status"] == "completed"
        finally:
            browser.close()
