"""Tenant isolation: another user's id answers 404 on every endpoint that takes an id, exactly
like an id that does not exist; lists never show another user's items; and nothing of the
owner changes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.e2e.helpers import (
    WEATHER,
    actions,
    add_message,
    assert_error,
    create_assistant,
    create_run,
    create_thread,
    get_run,
    guarded,
    list_all,
    messages,
    stream_process,
)

SECRET = "alice's private words"


@dataclass
class World:
    """User A's things, and user B's own assistant and thread."""

    a: httpx.Client
    b: httpx.Client
    bot: dict[str, Any]
    thread: dict[str, Any]  # has a queued run
    message: dict[str, Any]
    queued: dict[str, Any]
    waiting_thread: str  # has an action_required run
    waiting: dict[str, Any]
    action: dict[str, Any]
    key: dict[str, Any]
    b_bot: dict[str, Any]
    b_thread: dict[str, Any]

    def snapshot(self) -> dict[str, Any]:
        """Everything of A, as A sees it (api keys without their last use time)."""
        keys = [
            {k: v for k, v in key.items() if k != "last_used_at"}
            for key in list_all(self.a, "/api_keys")
        ]
        return {
            "assistants": list_all(self.a, "/assistants"),
            "threads": list_all(self.a, "/threads"),
            "runs": list_all(self.a, "/runs"),
            "messages": [messages(self.a, t) for t in (self.thread["id"], self.waiting_thread)],
            "actions": [actions(self.a, r) for r in (self.queued["id"], self.waiting["id"])],
            "run_details": [get_run(self.a, r) for r in (self.queued["id"], self.waiting["id"])],
            "keys": keys,
        }


@pytest.fixture(scope="module")
def world(server: Any) -> Iterator[World]:
    with (
        guarded(server.client(server.new_user("alice"))) as a,
        guarded(server.client(server.new_user("bob"))) as b,
    ):
        bot = create_assistant(a, "fake/tools:1", tools=[WEATHER], instructions=SECRET)
        thread = create_thread(a, metadata={"secret": SECRET})
        message = add_message(a, thread["id"], SECRET)
        queued = create_run(a, thread["id"], bot["id"])
        turn = stream_process(a, assistant_id=bot["id"], content=SECRET)
        waiting = get_run(a, turn.run_id)
        assert waiting["status"] == "requires_action"
        (action,) = actions(a, waiting["id"])
        key = a.post("/api_keys", json={})
        assert key.status_code == 201, key.text
        yield World(
            a=a,
            b=b,
            bot=bot,
            thread=thread,
            message=message,
            queued=queued,
            waiting_thread=waiting["thread_id"],
            waiting=waiting,
            action=action,
            key=key.json(),
            b_bot=create_assistant(b, "fake/text:3"),
            b_thread=create_thread(b),
        )


def _req(
    method: str, path: Callable[[World], str], body: Callable[[World], Any] | None = None
) -> Any:
    def send(w: World) -> httpx.Response:
        kwargs: dict[str, Any] = {}
        if body is not None:
            kwargs["json"] = body(w)
        return w.b.request(method, path(w), **kwargs)

    return send


CASES: dict[str, Any] = {
    "assistants get": _req("GET", lambda w: f"/assistants/{w.bot['id']}"),
    "assistants update": _req(
        "POST", lambda w: f"/assistants/{w.bot['id']}", lambda w: {"name": "mine now"}
    ),
    "assistants delete": _req("DELETE", lambda w: f"/assistants/{w.bot['id']}"),
    "threads get": _req("GET", lambda w: f"/threads/{w.thread['id']}"),
    "threads delete": _req("DELETE", lambda w: f"/threads/{w.thread['id']}"),
    "thread messages list": _req("GET", lambda w: f"/threads/{w.thread['id']}/messages"),
    "thread messages create": _req(
        "POST",
        lambda w: f"/threads/{w.waiting_thread}/messages",
        lambda w: {"content": "hi", "role": "user"},
    ),
    "messages create": _req(
        "POST",
        lambda w: "/messages",
        lambda w: {"thread_id": w.thread["id"], "content": "hi", "role": "user"},
    ),
    "messages get": _req("GET", lambda w: f"/messages/{w.message['id']}"),
    "runs create with A's thread": _req(
        "POST",
        lambda w: "/runs",
        lambda w: {"thread_id": w.thread["id"], "assistant_id": w.b_bot["id"]},
    ),
    "runs create with A's assistant": _req(
        "POST",
        lambda w: "/runs",
        lambda w: {"thread_id": w.b_thread["id"], "assistant_id": w.bot["id"]},
    ),
    "runs list of A's thread": _req("GET", lambda w: f"/runs?thread_id={w.thread['id']}"),
    "runs get": _req("GET", lambda w: f"/runs/{w.waiting['id']}"),
    "runs cancel": _req("POST", lambda w: f"/runs/{w.waiting['id']}/cancel"),
    "runs cancel queued": _req("POST", lambda w: f"/runs/{w.queued['id']}/cancel"),
    "runs events": _req("GET", lambda w: f"/runs/{w.waiting['id']}/events"),
    "runs submit_tool_outputs": _req(
        "POST",
        lambda w: f"/runs/{w.waiting['id']}/submit_tool_outputs",
        lambda w: {"tool_outputs": [{"tool_call_id": w.action["tool_call_id"], "output": "x"}]},
    ),
    "actions list": _req("GET", lambda w: f"/actions?run_id={w.waiting['id']}&status=pending"),
    "completions": _req("POST", lambda w: "/completions", lambda w: {"run_id": w.queued["id"]}),
    "completions not streamed": _req(
        "POST", lambda w: "/completions", lambda w: {"run_id": w.queued["id"], "stream": False}
    ),
    "process with A's run": _req(
        "POST", lambda w: "/process", lambda w: {"run_id": w.queued["id"]}
    ),
    "process with A's assistant": _req(
        "POST", lambda w: "/process", lambda w: {"assistant_id": w.bot["id"], "content": "hi"}
    ),
    "process with A's thread": _req(
        "POST",
        lambda w: "/process",
        lambda w: {"assistant_id": w.b_bot["id"], "content": "hi", "thread_id": w.thread["id"]},
    ),
    "submit_tool_output with A's action": _req(
        "POST",
        lambda w: "/submit_tool_output",
        lambda w: {"action_id": w.action["id"], "output": "x"},
    ),
    "submit_tool_output with A's run": _req(
        "POST",
        lambda w: "/submit_tool_output",
        lambda w: {
            "run_id": w.waiting["id"],
            "tool_call_id": w.action["tool_call_id"],
            "output": "x",
        },
    ),
    "api_keys delete": _req("DELETE", lambda w: f"/api_keys/{w.key['id']}"),
}


@pytest.mark.parametrize("case", CASES)
def test_another_users_id_is_not_found(world: World, case: str) -> None:
    before = world.snapshot()
    answer = CASES[case](world)
    assert_error(answer, 404)
    assert SECRET not in answer.text
    after = world.snapshot()
    assert after == before, f"{case} changed A's data"


def test_lists_show_only_your_own_items(world: World) -> None:
    b = world.b
    for path, own in (
        ("/assistants", {world.b_bot["id"]}),
        ("/threads", {world.b_thread["id"]}),
        ("/runs", set()),
    ):
        listed = list_all(b, path)
        assert {item["id"] for item in listed} == own, (path, listed)
        assert SECRET not in str(listed)
    keys = list_all(b, "/api_keys")
    assert world.key["id"] not in {k["id"] for k in keys}
    assert {k["user_id"] for k in keys} == {b.get("/me").json()["id"]}
    assert list_all(b, "/threads", order="asc") == list_all(b, "/threads")[::-1]


def test_unknown_ids_answer_the_same_as_foreign_ids(world: World) -> None:
    b = world.b
    for path in (
        "/assistants/asst_doesnotexist",
        "/threads/thread_doesnotexist",
        "/messages/msg_doesnotexist",
        "/runs/run_doesnotexist",
    ):
        foreign = {
            "/assistants/": world.bot["id"],
            "/threads/": world.thread["id"],
            "/messages/": world.message["id"],
            "/runs/": world.queued["id"],
        }[path.rsplit("/", 1)[0] + "/"]
        unknown_error = assert_error(b.get(path), 404)
        foreign_error = assert_error(b.get(path.rsplit("/", 1)[0] + "/" + foreign), 404)
        assert unknown_error.get("code") == foreign_error.get("code")


def test_the_owner_still_has_everything(world: World, server: Any) -> None:
    a = world.a
    assert get_run(a, world.queued["id"])["status"] == "queued"
    assert get_run(a, world.waiting["id"])["status"] == "requires_action"
    assert [m["content"] for m in messages(a, world.thread["id"])] == [SECRET]
    assert a.get(f"/assistants/{world.bot['id']}").json()["name"] == "e2e"
    with server.client(world.key["key"]) as same_user:
        assert same_user.get("/me").status_code == 200
