"""Token usage per API key, user, model and day (docs/usage.md): every face's turns count
the tokens their answers report, read back through ``GET /v1/usage`` and ``parley usage``.

Two ``parley serve`` replicas share one database (PostgreSQL in the PostgreSQL pass, else
one SQLite file) and write their counts every ``FLUSH`` seconds.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.e2e.helpers import WEATHER, assert_error, guarded, wait_until
from tests.harness import FreshDatabase, ParleyServer, free_port, provider_config, tuned

FLUSH = 0.2  # seconds between the writes of the counts


@dataclass
class Replicas:
    a: ParleyServer
    b: ParleyServer


@dataclass
class Account:
    """A user, one of its API keys, and a client with that key on a replica."""

    user_id: str
    key_id: str
    key: str


@pytest.fixture(scope="module")
def replicas(upstream: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicas]:
    tmp = tmp_path_factory.mktemp("usage")
    db = FreshDatabase(tmp)
    config = provider_config(upstream.base_url, free_port())
    env = tuned(usage_flush_seconds=FLUSH)
    a = ParleyServer(database_url=db.url, workdir=tmp, config=config, env=env).start()
    b = ParleyServer(database_url=db.url, workdir=tmp, config=config, env=env).start()
    yield Replicas(a, b)
    for server in (a, b):
        server.stop()
        server.assert_clean_log()
    db.drop()


def new_account(server: ParleyServer, name: str) -> Account:
    with server.client(server.admin_key) as admin:
        answer = admin.post("/users", json={"name": name})
    assert answer.status_code == 201, answer.text
    created = answer.json()
    key = created["api_key"]
    return Account(created["user"]["id"], key["id"], key["key"])


def client(server: ParleyServer, account: Account) -> httpx.Client:
    return guarded(server.client(account.key))


def today() -> str:
    return datetime.now(UTC).date().isoformat()


# ------------------------------------------------------------------------ the four faces


def native_turn(http: httpx.Client, assistant_id: str) -> tuple[int, int]:
    answer = http.post(
        "/process", json={"assistant_id": assistant_id, "content": "one two", "stream": False}
    )
    assert answer.status_code == 200, answer.text
    used = answer.json()["usage"]
    return used["input_tokens"], used["output_tokens"]


def response_turn(http: httpx.Client, model: str) -> tuple[int, int]:
    answer = http.post("/responses", json={"model": model, "input": "three words here"})
    assert answer.status_code == 200, answer.text
    used = answer.json()["usage"]
    return used["input_tokens"], used["output_tokens"]


def compaction(http: httpx.Client, model: str) -> tuple[int, int]:
    answer = http.post("/responses/compact", json={"model": model, "input": "sum this up"})
    assert answer.status_code == 200, answer.text
    used = answer.json()["usage"]
    return used["input_tokens"], used["output_tokens"]


def chat_call(http: httpx.Client, model: str) -> tuple[int, int]:
    body = {"model": model, "messages": [{"role": "user", "content": "four words right here"}]}
    answer = http.post("/chat/completions", json=body)
    assert answer.status_code == 200, answer.text
    used = answer.json()["usage"]
    return used["prompt_tokens"], used["completion_tokens"]


def assistants_run(http: httpx.Client, assistant_id: str) -> tuple[int, int]:
    body = {
        "assistant_id": assistant_id,
        "thread": {"messages": [{"role": "user", "content": "hi"}]},
    }
    run = http.post("/threads/runs", json=body).json()

    def ended() -> dict[str, Any] | None:
        now = http.get(f"/threads/{run['thread_id']}/runs/{run['id']}").json()
        return now if now["status"] not in ("queued", "in_progress") else None

    done = wait_until(ended, what="the Assistants run to end")
    assert done["status"] == "completed", done
    return done["usage"]["prompt_tokens"], done["usage"]["completion_tokens"]


def assistant(http: httpx.Client, model: str, **fields: Any) -> str:
    answer = http.post("/assistants", json={"model": model, **fields})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["id"])


def report(http: httpx.Client, **params: Any) -> dict[str, Any]:
    answer = http.get("/usage", params=params)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def lines_by(
    lines: list[dict[str, Any]], *fields: str
) -> dict[tuple[Any, ...], tuple[int, int, int]]:
    return {
        tuple(line[f] for f in fields): (
            line["requests"],
            line["input_tokens"],
            line["output_tokens"],
        )
        for line in lines
    }


def added(calls: list[tuple[int, int]]) -> tuple[int, int, int]:
    return len(calls), sum(c[0] for c in calls), sum(c[1] for c in calls)


def test_every_face_counts_what_its_answers_report(replicas: Replicas) -> None:
    me = new_account(replicas.a, "counted")
    expected: dict[tuple[str, str], tuple[int, int, int]] = {}
    with client(replicas.a, me) as http:
        native = assistant(http, "fake/text:3")
        old_school = assistant(http, "fake/text:6")
        faces = {
            ("fake/text:3", "runs"): [native_turn(http, native) for _ in range(2)],
            ("fake/text:4", "responses"): [response_turn(http, "fake/text:4") for _ in range(3)],
            ("fake/text:5", "chat.completions"): [chat_call(http, "fake/text:5") for _ in range(2)],
            ("fake/text:6", "assistants"): [assistants_run(http, old_school) for _ in range(2)],
            ("fake/text:7", "responses"): [compaction(http, "fake/text:7")],
        }
        expected = {group: added(calls) for group, calls in faces.items()}
        assert all(tokens[1] > 0 and tokens[2] > 0 for tokens in expected.values()), expected

        def counted() -> dict[tuple[Any, ...], tuple[int, int, int]] | None:
            got = lines_by(report(http, group_by="model,face")["data"], "model", "face")
            return got if got == expected else None

        wait_until(counted, what=f"the usage to reach {expected}")
        by_key = report(http, group_by="day,user,key", start_date=today(), end_date=today())
    [line] = by_key["data"]
    assert (line["day"], line["user_id"], line["api_key_id"]) == (today(), me.user_id, me.key_id)
    whole = tuple(map(sum, zip(*expected.values(), strict=True)))
    assert (line["requests"], line["input_tokens"], line["output_tokens"]) == whole
    assert line["total_tokens"] == whole[1] + whole[2]
    assert by_key["totals"]["total_tokens"] == line["total_tokens"]

    # The same report from the database, without a server.
    printed = replicas.b.cli("usage", "--user", me.user_id, "--by", "model,face", "--json")
    assert printed.returncode == 0, printed.stderr
    from_cli = json.loads(printed.stdout)
    assert lines_by(from_cli["data"], "model", "face") == expected
    assert from_cli["totals"]["total_tokens"] == line["total_tokens"]
    table = replicas.b.cli("usage", "--key", me.key_id, "--by", "model")
    assert table.returncode == 0, table.stderr
    assert "fake/text:4" in table.stdout and f"{line['total_tokens']:,}" in table.stdout


def test_a_continued_run_counts_against_the_key_that_drove_each_turn(
    replicas: Replicas,
) -> None:
    me = new_account(replicas.a, "two keys")
    with client(replicas.a, me) as http:
        second = http.post("/api_keys", json={}).json()
        bot = assistant(http, "fake/tools", tools=[WEATHER])
        first = http.post(
            "/process", json={"assistant_id": bot, "content": "weather?", "stream": False}
        ).json()
        assert first["status"] == "action_required", first
    with guarded(replicas.b.client(second["key"])) as http:
        [action] = first["actions"]
        sent = http.post(
            "/submit_tool_output", json={"action_id": action["action_id"], "output": "sunny"}
        )
        assert sent.status_code == 200, sent.text
        answer = http.post("/process", json={"run_id": first["run_id"], "stream": False})
        assert answer.status_code == 200, answer.text
        then = answer.json()
        assert then["status"] == "completed", then
    expected = {
        (me.key_id,): (1, first["usage"]["input_tokens"], first["usage"]["output_tokens"]),
        (second["id"],): (1, then["usage"]["input_tokens"], then["usage"]["output_tokens"]),
    }
    with client(replicas.b, me) as http:

        def counted() -> dict[tuple[Any, ...], tuple[int, int, int]] | None:
            got = lines_by(report(http, group_by="key")["data"], "api_key_id")
            return got if got == expected else None

        wait_until(counted, what=f"the usage to reach {expected}")
        one_key = report(http, api_key_id=second["id"])["totals"]
    assert (one_key["input_tokens"], one_key["output_tokens"]) == expected[(second["id"],)][1:]


def test_a_user_sees_only_their_own_usage(replicas: Replicas) -> None:
    mine, theirs = new_account(replicas.a, "mine"), new_account(replicas.a, "theirs")
    with client(replicas.a, theirs) as http:
        chat_call(http, "fake/text:2")
    with client(replicas.a, mine) as http:
        chat_call(http, "fake/text:7")
        assert_error(http.get("/usage", params={"user_id": theirs.user_id}), 403, "admin_only")
        assert_error(
            http.get("/usage", params={"api_key_id": theirs.key_id}), 404, "api_key_not_found"
        )
        wait_until(
            lambda: report(http)["totals"]["requests"] == 1, what="my one call to be counted"
        )
        mine_only = report(http, group_by="user,model")["data"]
        assert [(m["user_id"], m["model"]) for m in mine_only] == [(mine.user_id, "fake/text:7")]
        assert report(http, user_id=mine.user_id)["totals"]["requests"] == 1
    with replicas.a.client(replicas.a.admin_key) as admin:
        wait_until(
            lambda: report(admin, user_id=theirs.user_id)["totals"]["requests"] == 1,
            what="the admin to see the other user's call",
        )
        everyone = {line["user_id"] for line in report(admin, group_by="user")["data"]}
        assert {mine.user_id, theirs.user_id} <= everyone


def test_pages_of_a_report(replicas: Replicas) -> None:
    me = new_account(replicas.a, "pages")
    with client(replicas.a, me) as http:
        for model in ("fake/text:2", "fake/text:3", "fake/text:4"):
            chat_call(http, model)
        wait_until(lambda: report(http)["totals"]["requests"] == 3, what="three calls counted")
        first = report(http, group_by="model", limit=2)
        rest = report(http, group_by="model", limit=2, offset=2)
    assert [line["model"] for line in first["data"]] == ["fake/text:2", "fake/text:3"]
    assert first["has_more"] is True
    assert [line["model"] for line in rest["data"]] == ["fake/text:4"]
    assert rest["has_more"] is False
    assert rest["totals"]["requests"] == 3


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({"start_date": "2026-13-01"}, 400, "invalid_date"),
        ({"end_date": "20261124"}, 400, "invalid_date"),
        ({"start_date": "2026-11-24", "end_date": "2026-11-01"}, 400, "invalid_date_range"),
        ({"group_by": "day,colour"}, 400, "invalid_group_by"),
        ({"group_by": "day,day"}, 400, "invalid_group_by"),
        ({"limit": "0"}, 422, None),
        ({"offset": "-1"}, 422, None),
    ],
)
def test_bad_filters_are_refused(
    replicas: Replicas, params: dict[str, str], status: int, code: str | None
) -> None:
    with guarded(replicas.a.client(replicas.a.admin_key)) as admin:
        assert_error(admin.get("/usage", params=params), status, code)


@pytest.mark.parametrize(
    "args",
    [
        ("--since", "yesterday"),
        ("--by", "colour"),
        ("--since", "2026-11-24", "--until", "2026-11-01"),
        ("--key", "key_unknown"),
    ],
)
def test_bad_cli_filters_exit_2(replicas: Replicas, args: tuple[str, ...]) -> None:
    done = replicas.a.cli("usage", *args)
    assert done.returncode == 2, done
    assert done.stdout == ""
    assert done.stderr.strip().splitlines()[-1].startswith(("parley usage: ", "usage: parley"))
