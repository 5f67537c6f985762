"""``parley users`` and ``parley keys`` against the database of a running server: the keys
they make, revoke, expire and disable are what the server accepts and refuses."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.helpers import assert_error
from tests.harness import FreshDatabase, ParleyServer, tuned

#: Long enough that every refusal below is decided at use, not by a cache that ran out.
AUTH_CACHE = 60


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ParleyServer]:
    tmp = tmp_path_factory.mktemp("admin")
    db = FreshDatabase(tmp)
    srv = ParleyServer(
        database_url=db.url, workdir=tmp, env=tuned(auth_cache_seconds=AUTH_CACHE)
    ).start()
    yield srv
    srv.stop()
    srv.assert_clean_log()
    db.drop()


def ok(server: ParleyServer, *args: str) -> str:
    done = server.cli(*args)
    assert done.returncode == 0, (args, done.stderr)
    assert "Traceback" not in done.stderr
    return done.stdout


def new_user(server: ParleyServer, name: str) -> tuple[str, str]:
    """``parley users create``: the new user's id and key (its last line)."""
    out = ok(server, "users", "create", name).strip().splitlines()
    found = re.fullmatch(rf"created user {re.escape(name)} \((user_\w+)\)", out[0])
    assert found is not None, out
    return found[1], out[-1]


def status(server: ParleyServer, key: str) -> Any:
    with server.client(key) as http:
        return http.get("/me")


def test_create_list_revoke(server: ParleyServer) -> None:
    user_id, first_key = new_user(server, "ada")
    out = ok(server, "keys", "create", "--user", user_id, "--expires", "30d")
    key = out.strip().splitlines()[-1]
    assert key.startswith("pk_") and f"for user ada ({user_id})" in out
    listed = json.loads(ok(server, "keys", "list", "--user", user_id, "--json"))
    assert len(listed) == 2
    made = listed[-1]
    assert made["status"] == "active" and key.startswith(made["prefix"])
    assert made["expires_at"] - time.time() == pytest.approx(30 * 86400, abs=120)
    assert "key" not in made and key not in json.dumps(listed)  # never the secret
    table = ok(server, "keys", "list", "--user", user_id)
    assert made["id"] in table and key not in table and "EXPIRES" in table
    users = json.loads(ok(server, "users", "list", "--json"))
    assert next(u for u in users if u["id"] == user_id)["active_keys"] == 2

    revoked = ok(server, "keys", "revoke", made["id"])
    assert made["id"] in revoked
    assert_error(status(server, key), 401, "invalid_api_key")
    assert status(server, first_key).status_code == 200  # the user's other key still works
    listed = json.loads(ok(server, "keys", "list", "--json"))
    assert next(k for k in listed if k["id"] == made["id"])["status"] == "revoked"


def test_disable_and_enable_a_user(server: ParleyServer) -> None:
    user_id, key = new_user(server, "bob")
    assert "disabled user bob" in ok(server, "users", "disable", user_id)
    error = assert_error(status(server, key), 401, "user_disabled")
    assert "disabled" in error["message"]
    # A key made while the user is disabled is refused too.
    other = ok(server, "keys", "create", "--user", user_id).strip().splitlines()[-1]
    assert_error(status(server, other), 401, "user_disabled")
    users = json.loads(ok(server, "users", "list", "--json"))
    assert next(u for u in users if u["id"] == user_id)["disabled_at"] is not None
    assert "enabled user bob" in ok(server, "users", "enable", user_id)
    assert status(server, key).status_code == 200
    assert status(server, other).status_code == 200


def test_an_expired_key_is_refused_even_when_remembered(server: ParleyServer) -> None:
    user_id, _ = new_user(server, "carol")
    key = ok(server, "keys", "create", "--user", user_id, "--expires", "3s")
    key = key.strip().splitlines()[-1]
    assert status(server, key).status_code == 200  # seen: the server remembers it
    expires_at = json.loads(ok(server, "keys", "list", "--user", user_id, "--json"))[-1][
        "expires_at"
    ]
    time.sleep(max(0.0, expires_at + 1 - time.time()))
    error = assert_error(status(server, key), 401, "api_key_expired")
    assert "expired" in error["message"]
    listed = json.loads(ok(server, "keys", "list", "--user", user_id, "--json"))
    assert listed[-1]["status"] == "expired"


def test_an_api_key_with_an_expiry(server: ParleyServer) -> None:
    _, key = new_user(server, "dora")
    with server.client(key) as http:
        past = http.post("/api_keys", json={"expires_at": int(time.time()) - 10})
        assert_error(past, 422)
        made = http.post("/api_keys", json={"expires_at": int(time.time()) + 3600})
        assert made.status_code == 201, made.text
        assert made.json()["expires_at"] == pytest.approx(time.time() + 3600, abs=60)
        assert made.json()["daily_token_budget"] is None
    assert status(server, made.json()["key"]).status_code == 200


@pytest.mark.parametrize(
    ("args", "code", "said"),
    [
        (("keys", "create", "--user", "user_nobody"), 1, "No user with id user_nobody"),
        (("keys", "revoke", "key_nothing"), 1, "No API key with id key_nothing"),
        (("keys", "list", "--user", "user_nobody"), 1, "No user with id user_nobody"),
        (("users", "disable", "user_nobody"), 1, "No user with id user_nobody"),
        (("keys", "create", "--user", "{user}", "--expires", "soon"), 2, "--expires 'soon'"),
        (("keys", "create", "--user", "{user}", "--expires", "2020-01-01"), 2, "not in the future"),
        (("keys", "create", "--user", "{user}", "--daily-tokens", "-5"), 2, "--daily-tokens"),
        (("keys", "create", "--user", "{user}", "--daily-tokens", "lots"), 2, "--daily-tokens"),
    ],
)
def test_bad_input_is_one_line_and_an_exit_code(
    server: ParleyServer, args: tuple[str, ...], code: int, said: str
) -> None:
    user_id, _ = new_user(server, "eve")
    done = server.cli(*(a.format(user=user_id) for a in args))
    assert done.returncode == code, (done.stdout, done.stderr)
    assert said in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert done.stdout == ""
