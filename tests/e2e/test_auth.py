"""Authentication and authorisation: API keys in either header, 401 JSON for every bad key,
403 for admin-only endpoints."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.e2e.helpers import assert_error, guarded

#: A sample of endpoints, every kind of method and answer (JSON and SSE).
ENDPOINTS = [
    ("GET", "/me", None),
    ("GET", "/assistants", None),
    ("POST", "/assistants", {"name": "x", "model": "demo/x"}),
    ("POST", "/threads", {}),
    ("GET", "/runs/run_x", None),
    ("GET", "/runs/run_x/events", None),
    ("POST", "/process", {"assistant_id": "asst_x", "content": "hi"}),
    ("POST", "/completions", {"run_id": "run_x"}),
    ("DELETE", "/api_keys/key_x", None),
    ("POST", "/users", {"name": "x"}),
]


def _anonymous(server: Any, headers: dict[str, str]) -> httpx.Client:
    return guarded(httpx.Client(base_url=f"{server.base_url}/v1", headers=headers, timeout=30))


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer not-a-real-key"},
        {"X-API-Key": "not-a-real-key"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer"},
        {"Authorization": "just-a-key-without-scheme"},
    ],
    ids=["no key", "wrong bearer", "wrong x-api-key", "basic", "empty bearer", "no scheme"],
)
def test_bad_credentials_answer_401_json(server: Any, headers: dict[str, str]) -> None:
    with _anonymous(server, headers) as http:
        for method, path, body in ENDPOINTS:
            answer = (
                http.request(method, path, json=body)
                if body is not None
                else http.request(method, path)
            )
            assert_error(answer, 401)


@pytest.mark.parametrize("path", ["/process", "/completions", "/chat/completions", "/responses"])
def test_a_stream_starting_post_checks_the_key_before_the_body(server: Any, path: str) -> None:
    """The POSTs that start a stream (answered before routing, ``server.fastpaths``) say
    401 to a request without a valid key whatever its body."""
    with _anonymous(server, {"Authorization": "Bearer not-a-real-key"}) as http:
        for body in (b"not json", b"[]", b'{"assistant_id": 5}'):
            answer = http.post(path, content=body, headers={"Content-Type": "application/json"})
            assert_error(answer, 401)


def test_malformed_bearer_does_not_fall_back_to_x_api_key(server: Any, user_key: str) -> None:
    with _anonymous(server, {"Authorization": "Token abc", "X-API-Key": user_key}) as http:
        assert_error(http.get("/me"), 401)


def test_x_api_key_header_works(server: Any, user_key: str) -> None:
    with _anonymous(server, {"X-API-Key": user_key}) as http:
        me = http.get("/me")
        assert me.status_code == 200, me.text
        assert me.json()["object"] == "user" and me.json()["is_admin"] is False
        assert http.post("/threads", json={}).status_code == 200


def test_bearer_works_and_healthz_needs_no_key(server: Any, http: httpx.Client) -> None:
    assert http.get("/me").status_code == 200
    health = httpx.get(f"{server.base_url}/healthz")
    assert health.status_code == 200 and health.json() == {"status": "ok"}


def test_revoked_key_is_refused(server: Any, http: httpx.Client) -> None:
    created = http.post("/api_keys", json={})
    assert created.status_code == 201, created.text
    second = created.json()
    assert second["object"] == "api_key" and second["key"] and second["id"].startswith("key_")
    assert second["key"].startswith(second["prefix"])
    me = http.get("/me").json()
    assert second["user_id"] == me["id"]

    with guarded(server.client(second["key"])) as with_second:
        assert with_second.get("/me").json()["id"] == me["id"]
        listed = {k["id"]: k for k in with_second.get("/api_keys").json()["data"]}
        assert second["id"] in listed and "key" not in listed[second["id"]]
        assert listed[second["id"]]["revoked"] is False

        revoked = http.delete(f"/api_keys/{second['id']}")
        assert revoked.status_code == 200, revoked.text
        assert revoked.json()["revoked"] is True and "key" not in revoked.json()

        assert_error(with_second.get("/me"), 401)
        assert_error(with_second.post("/threads", json={}), 401)
    with _anonymous(server, {"X-API-Key": second["key"]}) as other_header:
        assert_error(other_header.get("/me"), 401)
    assert http.get("/me").status_code == 200  # the first key still works
    keys = {k["id"]: k for k in http.get("/api_keys").json()["data"]}
    assert keys[second["id"]]["revoked"] is True


def test_a_key_can_revoke_itself(server: Any, http: httpx.Client) -> None:
    key = http.post("/api_keys", json={}).json()
    with guarded(server.client(key["key"])) as own:
        assert own.delete(f"/api_keys/{key['id']}").status_code == 200
        assert_error(own.get("/me"), 401)


def test_non_admin_cannot_create_users(http: httpx.Client) -> None:
    assert_error(http.post("/users", json={"name": "mallory"}), 403)
    assert_error(http.post("/users", json={"name": "mallory", "is_admin": True}), 403)


def test_non_admin_cannot_make_keys_for_someone_else(
    server: Any, http: httpx.Client, other: httpx.Client
) -> None:
    victim = other.get("/me").json()["id"]
    answer = http.post("/api_keys", json={"user_id": victim})
    assert answer.status_code in (403, 404), answer.text
    assert_error(answer, answer.status_code)
    assert len(other.get("/api_keys").json()["data"]) == 1


def test_admin_creates_users(server: Any) -> None:
    with guarded(server.client(server.admin_key)) as admin:
        created = admin.post("/users", json={"name": "carol"})
        assert created.status_code == 201, created.text
        body = created.json()
        assert body["user"]["name"] == "carol" and body["user"]["is_admin"] is False
        assert body["api_key"]["user_id"] == body["user"]["id"] and body["api_key"]["key"]
    with guarded(server.client(body["api_key"]["key"])) as carol:
        assert carol.get("/me").json()["id"] == body["user"]["id"]
