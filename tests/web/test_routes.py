"""The JSON routes of the web app over real HTTP: sessions, CSRF, threads, bad input."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from parley.sdk import Client
from parley.web import create_app
from tests.harness import free_port
from tests.web.conftest import SECRET, Browser, WebApp, serve


def _error(response: httpx.Response, status: int, type_: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["type"] == type_, body
    message = body["error"]["message"]
    assert isinstance(message, str) and message
    assert "Traceback" not in message
    return str(message)


# ---------------------------------------------------------------------- the page


def test_the_page_carries_a_csrf_token_and_a_safe_cookie(web: WebApp, user_key: str) -> None:
    b = Browser(web.url)
    try:
        page = b.http.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert user_key not in page.text
        cookie = page.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie
        b.open_page()
        assert len(b.token) >= 32
        assert page.headers["x-frame-options"] == "DENY"
        policy = page.headers["content-security-policy"]
        assert "script-src 'self';" in policy and "frame-ancestors 'none'" in policy
        assert "unsafe-inline" not in policy
        # The same session keeps its token; another one gets another token.
        again = Browser(web.url)
        again.open_page()
        assert again.token != b.token
        again.close()
        first = b.token
        b.open_page()
        assert b.token == first
    finally:
        b.close()


def test_static_files_are_served(browser: Browser) -> None:
    assert browser.get("/static/app.js").status_code == 200
    _error(browser.get("/static/nope.js"), 404, "not_found")


# -------------------------------------------------------------------------- CSRF


def test_state_changing_requests_need_the_session_token(web: WebApp) -> None:
    b = Browser(web.url)
    try:
        b.open_page()
        no_token = b.http.post("/api/threads", json={})
        assert "X-CSRF-Token" in _error(no_token, 403, "csrf_failed")
        wrong = b.http.post("/api/threads", json={}, headers={"X-CSRF-Token": "x" * 43})
        _error(wrong, 403, "csrf_failed")
        foreign = b.http.post(
            "/api/threads", json={}, headers=b.headers(Origin="https://evil.example")
        )
        _error(foreign, 403, "csrf_failed")
        process = b.http.post("/api/messages/process", json={"content": "hi"})
        _error(process, 403, "csrf_failed")
        # Another session's token is no good here either.
        other = Browser(web.url)
        other.open_page()
        stolen = b.http.post("/api/threads", json={}, headers={"X-CSRF-Token": other.token})
        _error(stolen, 403, "csrf_failed")
        other.close()
        # Nothing was created by the refused requests.
        assert b.get("/api/threads").json() == {"data": []}

        same_origin = b.http.post("/api/threads", json={}, headers=b.headers(Origin=web.url))
        assert same_origin.status_code == 201, same_origin.text
        thread_id = same_origin.json()["id"]
        _error(b.http.delete(f"/api/threads/{thread_id}"), 403, "csrf_failed")
        _error(b.http.post("/api/runs/run_x/cancel"), 403, "csrf_failed")
        assert [t["id"] for t in b.get("/api/threads").json()["data"]] == [thread_id]
    finally:
        b.close()


def test_a_request_without_a_session_cookie_is_refused(web: WebApp, browser: Browser) -> None:
    fresh = httpx.post(
        f"{web.url}/api/threads", json={}, headers={"X-CSRF-Token": browser.token}, timeout=10
    )
    _error(fresh, 403, "csrf_failed")


# ----------------------------------------------------------------------- threads


def test_threads_are_created_listed_read_and_deleted(browser: Browser) -> None:
    assert browser.get("/api/threads").json() == {"data": []}
    titled = browser.post("/api/threads", {"title": "  Trip   to\nLisbon "})
    assert titled.status_code == 201
    assert titled.json()["title"] == "Trip to Lisbon"
    assert isinstance(titled.json()["created_at"], int)
    untitled = browser.post("/api/threads")  # no body at all
    assert untitled.status_code == 201, untitled.text
    assert untitled.json()["title"] == "New chat"
    long = browser.post("/api/threads", {"title": "word " * 30})
    assert len(long.json()["title"]) <= 60 and long.json()["title"].endswith("…")

    listed = browser.get("/api/threads").json()["data"]
    ids = [t["id"] for t in listed]
    assert set(ids) == {titled.json()["id"], untitled.json()["id"], long.json()["id"]}
    assert [t["created_at"] for t in listed] == sorted(
        (t["created_at"] for t in listed), reverse=True
    )
    assert browser.get(f"/api/threads/{titled.json()['id']}/messages").json() == {"data": []}

    gone = browser.delete(f"/api/threads/{titled.json()['id']}")
    assert gone.json() == {"id": titled.json()["id"], "deleted": True}
    remaining = [t["id"] for t in browser.get("/api/threads").json()["data"]]
    assert titled.json()["id"] not in remaining and len(remaining) == 2
    _error(browser.get(f"/api/threads/{titled.json()['id']}/messages"), 404, "not_found")
    _error(browser.delete(f"/api/threads/{titled.json()['id']}"), 404, "not_found")


def test_unknown_ids_are_404(browser: Browser) -> None:
    _error(browser.get("/api/threads/thread_nope/messages"), 404, "not_found")
    _error(browser.delete("/api/threads/thread_nope"), 404, "not_found")
    _error(browser.post("/api/runs/run_nope/cancel"), 404, "not_found")
    process = browser.post("/api/messages/process", {"content": "hi", "thread_id": "thread_no"})
    _error(process, 404, "not_found")
    _error(browser.get("/api/nothing"), 404, "not_found")
    _error(browser.http.put("/api/threads", headers=browser.headers()), 405, "method_not_allowed")


def test_a_session_sees_only_its_own_threads_and_runs(
    browser: Browser, other_browser: Browser, sdk: Client
) -> None:
    events = browser.process("hello there", model="fake/text:3")
    thread_id = events[0][1]["thread_id"]
    run_id = next(data["run_id"] for name, data in events if name == "run")
    mine = browser.post("/api/threads", {"title": "mine"}).json()["id"]
    theirs = other_browser.post("/api/threads", {"title": "theirs"}).json()["id"]

    assert {t["id"] for t in browser.get("/api/threads").json()["data"]} == {thread_id, mine}
    assert [t["id"] for t in other_browser.get("/api/threads").json()["data"]] == [theirs]
    for foreign in (thread_id, mine):
        _error(other_browser.get(f"/api/threads/{foreign}/messages"), 404, "not_found")
        _error(other_browser.delete(f"/api/threads/{foreign}"), 404, "not_found")
        sneak = other_browser.post(
            "/api/messages/process", {"content": "let me in", "thread_id": foreign}
        )
        _error(sneak, 404, "not_found")
    _error(other_browser.post(f"/api/runs/{run_id}/cancel"), 404, "not_found")
    _error(browser.get(f"/api/threads/{theirs}/messages"), 404, "not_found")

    # Nothing of the refused requests reached the first session's thread.
    assert [m.role for m in sdk.messages.list(thread_id=thread_id).data] == ["user", "assistant"]
    assert sdk.threads.retrieve(mine).id == mine
    # The tag is a hash: no session id or cookie value is stored on the Parley server.
    tag = sdk.threads.retrieve(mine).metadata["web_session"]
    assert tag not in browser.http.cookies.get("parley_web", "")


def test_threads_of_a_session_are_found_past_the_first_page(browser: Browser, sdk: Client) -> None:
    """The app asks for 100 threads a page: the session's oldest thread, behind 100 newer
    ones of the same Parley user (not the session's), is still listed."""
    oldest = browser.post("/api/threads", {"title": "oldest"}).json()["id"]
    for _ in range(100):
        sdk.threads.create(metadata={"title": "someone else's"})
    newest = browser.post("/api/threads", {"title": "newest"}).json()["id"]
    assert [t["id"] for t in browser.get("/api/threads").json()["data"]] == [newest, oldest]


# --------------------------------------------------------------------- bad bodies


@pytest.mark.parametrize(
    ("body", "status", "type_"),
    [
        ({}, 422, "validation_error"),
        ({"content": ""}, 422, "validation_error"),
        ({"content": "   \n"}, 422, "validation_error"),
        ({"content": 42}, 422, "validation_error"),
        ({"content": ["hi"]}, 422, "validation_error"),
        ({"content": "hi", "model": 3}, 422, "validation_error"),
        ({"content": "hi", "model": ""}, 422, "validation_error"),
        ({"content": "hi", "model": "m" * 201}, 422, "validation_error"),
        ({"content": "hi", "thread_id": ["thread_x"]}, 422, "validation_error"),
        (["content", "hi"], 400, "invalid_request"),
        ("hi", 400, "invalid_request"),
    ],
)
def test_bad_message_bodies_are_clear_errors(
    browser: Browser, body: Any, status: int, type_: str
) -> None:
    _error(browser.post("/api/messages/process", body), status, type_)
    assert browser.get("/api/threads").json() == {"data": []}


def test_a_body_that_is_not_json_is_400(browser: Browser) -> None:
    response = browser.http.post(
        "/api/messages/process",
        content=b"content=hi",
        headers=browser.headers(**{"Content-Type": "application/x-www-form-urlencoded"}),
    )
    _error(response, 400, "invalid_request")
    broken = browser.http.post(
        "/api/threads",
        content=b"{not json",
        headers=browser.headers(**{"Content-Type": "application/json"}),
    )
    _error(broken, 400, "invalid_request")
    _error(browser.post("/api/threads", {"title": 7}), 422, "validation_error")


def test_a_huge_body_is_413(browser: Browser) -> None:
    huge = {"content": "x" * (2 * 1024 * 1024)}
    _error(browser.post("/api/messages/process", huge), 413, "payload_too_large")
    assert browser.get("/api/threads").json() == {"data": []}


# --------------------------------------------------------------------- lookups


def test_models_and_tools(browser: Browser) -> None:
    models = browser.get("/api/models").json()
    assert models["default"] == "demo/parley"
    assert any(m.startswith("demo/") for m in models["models"])
    by_name = {p["name"]: p for p in models["providers"]}
    assert by_name["fake"]["ready"] is True and by_name["demo"]["problem"] is None
    assert set(by_name["fake"]) == {"name", "ready", "problem"}
    # Embedding models are no choice for a chat: the local one is left out of the picker.
    assert by_name["local"]["ready"] is True
    assert not any(m.startswith("local/all-minilm") for m in models["models"])

    tools = browser.get("/api/tools").json()["data"]
    assert [t["name"] for t in tools] == ["current_time", "calculator"]
    assert tools[1]["parameters"]["required"] == ["expression"]
    assert all(t["description"] for t in tools)


# ------------------------------------------------------------------ server down


@pytest.fixture
def web_without_server() -> Iterator[WebApp]:
    dead = f"http://127.0.0.1:{free_port()}"
    client = Client(base_url=dead, api_key="pk_nobody", max_retries=0)
    try:
        app = create_app(base_url=dead, api_key="pk_nobody", secret_key=SECRET, client=client)
        yield from serve(app)
    finally:
        client.close()


def test_a_server_that_cannot_be_reached_is_a_502(web_without_server: WebApp) -> None:
    b = Browser(web_without_server.url)
    try:
        b.open_page()
        for response in (
            b.get("/api/threads"),
            b.get("/api/models"),
            b.post("/api/threads", {}),
            b.get("/api/threads/thread_x/messages"),
            b.post("/api/runs/run_x/cancel"),
        ):
            message = _error(response, 502, "server_unreachable")
            assert "Cannot reach the Parley server at http://127.0.0.1:" in message
        # The app's own tools need no server.
        assert len(b.get("/api/tools").json()["data"]) == 2

        events = b.process("hello")
        names = [name for name, _ in events]
        assert names == ["error", "usage", "status", "done"]
        assert events[0][1]["code"] == "server_unreachable"
        assert "Cannot reach the Parley server" in events[0][1]["message"]
        assert events[-1][1] == {
            "type": "done",
            "status": "failed",
            "run_id": None,
            "thread_id": None,
        }
    finally:
        b.close()


def test_a_refused_api_key_is_a_502_that_says_so(server: Any) -> None:
    app = create_app(base_url=server.base_url, api_key="pk_wrong", secret_key=SECRET)
    for web in serve(app):
        b = Browser(web.url)
        b.open_page()
        message = _error(b.get("/api/threads"), 502, "server_auth_failed")
        assert "refused the web app's API key" in message
        b.close()


def test_with_all_threads_a_session_sees_every_thread_of_the_key(
    server: Any, user_key: str, sdk: Client
) -> None:
    """``create_app(all_threads=True)`` (``parley web --all-threads``): a conversation made
    through the Responses API, or natively, is listed and readable on the page, and the
    page's own threads stay readable to other sessions too."""
    with server.client(user_key) as api:
        made = api.post(
            "/responses", json={"model": "demo/parley", "input": "hello from the Responses API"}
        )
    assert made.status_code == 200, made.text
    conversation = sdk.runs.retrieve(made.json()["id"]).thread_id
    native = sdk.threads.create()
    app = create_app(
        base_url=server.base_url, api_key=user_key, secret_key=SECRET, all_threads=True
    )
    for web in serve(app):
        browser = Browser(web.url)
        browser.open_page()
        listed = [t["id"] for t in browser.get("/api/threads").json()["data"]]
        assert listed[:2] == [native.id, conversation]
        messages = browser.get(f"/api/threads/{conversation}/messages").json()["data"]
        assert [m["role"] for m in messages] == ["user", "assistant"]
        assert messages[0]["content"] == "hello from the Responses API"
        browser.close()
