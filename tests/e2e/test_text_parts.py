"""A message's text parts reach the model joined the same way on every face: one after the
other, with nothing added between them (a client that splits a text into parts gets the
same text to the model)."""

from __future__ import annotations

from typing import Any

import httpx

from tests.e2e.helpers import upstream_requests, wait_until

PARTS = ("parts-joined: first half,", " second half")
JOINED = "".join(PARTS)


def sent_text(upstream: Any, tag: str) -> str:
    [sent] = upstream_requests(upstream, tag)
    [user] = [m for m in sent["messages"] if m["role"] == "user"]
    return str(user["content"])


def test_the_responses_face_joins_text_parts_as_they_are(http: httpx.Client, upstream: Any) -> None:
    tag = "tag-responses"
    content = [
        {"type": "input_text", "text": f"{tag} {PARTS[0]}"},
        {"type": "input_text", "text": PARTS[1]},
    ]
    answer = http.post(
        "/responses", json={"model": "fake/text:1", "input": [{"role": "user", "content": content}]}
    )
    assert answer.status_code == 200, answer.text
    assert sent_text(upstream, tag) == f"{tag} {JOINED}"


def test_the_chat_face_joins_text_parts_as_they_are(http: httpx.Client, upstream: Any) -> None:
    tag = "tag-chat"
    content = [{"type": "text", "text": f"{tag} {PARTS[0]}"}, {"type": "text", "text": PARTS[1]}]
    answer = http.post(
        "/chat/completions",
        json={"model": "fake/text:1", "messages": [{"role": "user", "content": content}]},
    )
    assert answer.status_code == 200, answer.text
    assert sent_text(upstream, tag) == f"{tag} {JOINED}"


def test_the_assistants_face_joins_text_parts_as_they_are(
    http: httpx.Client, upstream: Any
) -> None:
    tag = "tag-assistants"
    bot = http.post("/assistants", json={"model": "fake/text:1"}).json()
    thread = http.post("/threads", json={}).json()
    content = [{"type": "text", "text": f"{tag} {PARTS[0]}"}, {"type": "text", "text": PARTS[1]}]
    made = http.post(f"/threads/{thread['id']}/messages", json={"role": "user", "content": content})
    assert made.status_code < 300, made.text
    run = http.post(f"/threads/{thread['id']}/runs", json={"assistant_id": bot["id"]}).json()

    def ended() -> dict[str, Any] | None:
        now = http.get(f"/threads/{thread['id']}/runs/{run['id']}").json()
        return now if now["status"] not in ("queued", "in_progress") else None

    assert wait_until(ended, what="the run to end")["status"] == "completed"
    assert sent_text(upstream, tag) == f"{tag} {JOINED}"
