"""Files attached to a conversation on the page's routes: ``POST /api/files`` uploads a file
into the conversation's vector store (made with its first file, named in the thread's
metadata), ``GET /api/threads/<id>/files`` shows its indexing, and the runs of that
conversation search it with ``file_search``. Real HTTP against the suite's Parley server
(its ingestion worker indexes the files) and the demo model, which calls ``file_search``
when the message names it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from parley.errors import NotFound
from parley.sdk import Client
from parley.sdk.models import Message
from parley.web import create_app
from parley.web.attachments import citations_of
from tests.web.conftest import SECRET, Browser, serve

NOTES = b"The launch of the Heron rocket is on Tuesday, from the north harbour.\n"


def attach(browser: Browser, name: str, content: bytes, **form: str) -> Any:
    return browser.http.post(
        "/api/files",
        files={"file": (name, content, "text/plain")},
        data=form,
        headers=browser.headers(),
    )


def wait_ready(browser: Browser, thread_id: str, timeout: float = 30.0) -> list[dict[str, Any]]:
    """The conversation's chips once none is indexing (a deadline, no fixed sleep)."""
    deadline = time.monotonic() + timeout
    while True:
        files = browser.get(f"/api/threads/{thread_id}/files").json()["data"]
        if all(f["status"] != "indexing" for f in files) or time.monotonic() > deadline:
            return list(files)
        time.sleep(0.05)


def test_a_file_starts_a_conversation_whose_runs_search_it(
    browser: Browser, other_browser: Browser, sdk: Client
) -> None:
    made = attach(browser, "heron.txt", NOTES)
    assert made.status_code == 201, made.text
    thread, chip = made.json()["thread"], made.json()["file"]
    assert (thread["title"], chip["filename"]) == ("heron.txt", "heron.txt")
    assert chip["status"] in ("indexing", "ready")
    store = sdk.threads.retrieve(thread["id"]).metadata["vector_store_id"]

    second = attach(browser, "empty-ish.txt", b"x", thread_id=thread["id"])
    assert second.status_code == 201, second.text
    assert sdk.threads.retrieve(thread["id"]).metadata["vector_store_id"] == store  # one store
    chips = wait_ready(browser, thread["id"])
    assert [c["filename"] for c in chips] == ["heron.txt", "empty-ish.txt"]
    assert chips[0]["status"] == "ready", chips

    events = browser.process("file_search Heron launch", thread_id=thread["id"])
    searches = [d["item"] for e, d in events if e == "hosted_tool" and d["phase"] == "done"]
    assert [s["type"] for s in searches] == ["file_search_call"]
    assert searches[0]["queries"] == ["Heron launch"]
    assert [r["filename"] for r in searches[0]["results"] or []][:1] == ["heron.txt"]
    run = sdk.runs.retrieve(next(d["run_id"] for e, d in events if e == "run"))
    assert [t.type for t in run.tools][-1] == "file_search"
    # The answer's citations are those its stored message's text carries, when it has any.
    stored = sdk.messages.list(thread_id=thread["id"], run_id=run.id).data
    expected = [c for m in stored if m.role == "assistant" for c in citations_of(m)]
    cited = [d["citations"] for e, d in events if e == "citations"]
    assert cited == [expected]
    assert {c["filename"] for c in expected} == {"heron.txt"}  # the demo's answer names it

    # Another browser session sees none of it, exactly as an unknown thread.
    assert other_browser.get(f"/api/threads/{thread['id']}/files").status_code == 404
    assert attach(other_browser, "x.txt", b"x", thread_id=thread["id"]).status_code == 404

    # Deleting the conversation deletes its files and its store.
    assert browser.delete(f"/api/threads/{thread['id']}").status_code == 200
    with pytest.raises(NotFound):
        sdk.vector_stores.retrieve(store)
    for gone in (chip["id"], second.json()["file"]["id"]):
        with pytest.raises(NotFound):
            sdk.files.retrieve(gone)


def test_a_file_without_text_fails_with_the_reason(browser: Browser) -> None:
    made = attach(browser, "blob.bin", bytes(range(256)) * 8)
    assert made.status_code == 201, made.text
    [chip] = wait_ready(browser, made.json()["thread"]["id"])
    assert chip["status"] == "failed"
    assert chip["error"] and not chip["error"].startswith("Indexing ended"), chip  # the server's


@pytest.fixture
def small_page(server: Any, user_key: str) -> Iterator[Browser]:
    app = create_app(
        base_url=server.base_url, api_key=user_key, secret_key=SECRET, max_upload_bytes=1000
    )
    for web in serve(app):
        browser = Browser(web.url)
        browser.open_page()
        yield browser
        browser.close()


def test_bad_uploads_are_refused_and_leave_nothing(small_page: Browser, sdk: Client) -> None:
    too_big = attach(small_page, "big.txt", b"x" * 1001)
    assert too_big.status_code == 413
    assert too_big.json()["error"]["type"] == "file_too_large"
    beyond_the_body = attach(small_page, "bigger.txt", b"x" * 200_000)
    assert beyond_the_body.status_code == 413
    assert beyond_the_body.json()["error"]["type"] == "file_too_large"
    missing = small_page.http.post("/api/files", data={"x": "y"}, headers=small_page.headers())
    assert missing.status_code == 422
    no_token = small_page.http.post("/api/files", files={"file": ("a.txt", b"a", "text/plain")})
    assert no_token.status_code == 403
    assert small_page.get("/api/threads").json()["data"] == []  # no conversation was started
    assert sdk.threads.list().data == []


def test_citations_are_read_in_both_of_openais_shapes() -> None:
    responses = {"type": "file_citation", "file_id": "file-1", "filename": "a.txt", "index": 4}
    assistants = {
        "type": "file_citation",
        "text": "[a.txt]",
        "start_index": 7,
        "end_index": 14,
        "file_citation": {"file_id": "file-2"},
    }
    other = {"type": "url_citation", "url": "https://example.com"}
    text = {"value": "It is [a.txt].", "annotations": [responses, assistants, other]}
    message = Message(
        id="msg_1", thread_id="thread_1", role="assistant", content=[{"type": "text", "text": text}]
    )
    assert citations_of(message) == [
        {"file_id": "file-1", "filename": "a.txt", "index": 4},
        {"file_id": "file-2", "filename": "a.txt", "index": 7},
    ]
