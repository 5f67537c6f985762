"""The plain resources: assistants, threads and messages, created, read, updated, deleted."""

from __future__ import annotations

import httpx

from tests.e2e.helpers import (
    WEATHER,
    add_message,
    assert_error,
    create_assistant,
    create_thread,
    flat,
    list_all,
    messages,
    stream_process,
)


def test_assistant_lifecycle(http: httpx.Client) -> None:
    flat_tool = {"name": "lookup", "description": "Look it up.", "parameters": {"type": "object"}}
    bot = create_assistant(
        http,
        "demo/x",
        tools=[WEATHER, flat_tool],
        name="helper",
        instructions="Be kind.",
        parameters={"temperature": 0.3},
        metadata={"team": "blue"},
    )
    assert bot["object"] == "assistant" and isinstance(bot["created_at"], int)
    assert bot["name"] == "helper" and bot["instructions"] == "Be kind."
    assert bot["parameters"] == {"temperature": 0.3} and bot["metadata"] == {"team": "blue"}
    assert [t["function"]["name"] for t in bot["tools"]] == ["get_weather", "lookup"]
    assert all(t["type"] == "function" for t in bot["tools"])
    assert http.get(f"/assistants/{bot['id']}").json() == bot

    updated = http.post(
        f"/assistants/{bot['id']}", json={"name": "renamed", "model": "fake/text:2"}
    )
    assert updated.status_code == 200, updated.text
    assert updated.json() == {**bot, "name": "renamed", "model": "fake/text:2"}
    assert http.get(f"/assistants/{bot['id']}").json() == updated.json()

    deleted = http.delete(f"/assistants/{bot['id']}")
    assert deleted.status_code == 200, deleted.text
    assert deleted.json() == {"id": bot["id"], "object": "assistant.deleted", "deleted": True}
    assert_error(http.get(f"/assistants/{bot['id']}"), 404)
    assert_error(http.delete(f"/assistants/{bot['id']}"), 404)
    assert list_all(http, "/assistants") == []


def test_thread_and_message_lifecycle(http: httpx.Client) -> None:
    thread = create_thread(http, metadata={"topic": "trips"})
    assert thread["object"] == "thread" and thread["metadata"] == {"topic": "trips"}
    assert http.get(f"/threads/{thread['id']}").json() == thread
    nested = http.post(f"/threads/{thread['id']}/messages", json={"content": "nested form"})
    assert nested.status_code == 200, nested.text
    added = add_message(http, thread["id"], "flat form")
    for message, seq in ((flat(nested.json()), 1), (added, 2)):
        assert message["object"] == "thread.message" and message["role"] == "user"
        assert message["thread_id"] == thread["id"] and message["seq"] == seq
        assert message["run_id"] is None and message["tool_calls"] == []
        assert message["tool_call_id"] is None and message["id"].startswith("msg_")
        assert flat(http.get(f"/messages/{message['id']}").json()) == message

    deleted = http.delete(f"/threads/{thread['id']}")
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["id"] == thread["id"] and deleted.json()["deleted"] is True
    assert_error(http.get(f"/threads/{thread['id']}"), 404)
    assert_error(http.get(f"/threads/{thread['id']}/messages"), 404)
    assert_error(http.get(f"/messages/{added['id']}"), 404)
    assert_error(http.post("/messages", json={"thread_id": thread["id"], "content": "x"}), 404)
    assert list_all(http, "/threads") == []


def test_unicode_round_trips_through_a_turn(http: httpx.Client) -> None:
    said = 'Grüße 😀 — 日本語 — עברית — "quotes" and \\ backslash\nnew line'
    bot = create_assistant(http, "fake/echo")
    turn = stream_process(http, assistant_id=bot["id"], content=said)
    assert turn.text == said
    thread_id = http.get(f"/runs/{turn.run_id}").json()["thread_id"]
    stored = messages(http, thread_id)
    assert [m["content"] for m in stored] == [said, said]
