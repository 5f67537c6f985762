"""``POST /v1/responses/compact`` answers as OpenAI does: the user messages of the compacted
window, in order and as sent, then the ``compaction`` item; and that output, sent back as the
next request's ``input``, carries the conversation on."""

from __future__ import annotations

from typing import Any

import httpx

from tests.e2e.helpers import marker
from tests.e2e.responses_helpers import create, output_text, sent, stored, user


def _kept(item: dict[str, Any]) -> tuple[str, str, list[dict[str, Any]]]:
    assert item["type"] == "message" and item["status"] == "completed"
    assert isinstance(item["id"], str) and item["id"]
    return item["role"], item["type"], item["content"]


def test_compact_keeps_the_user_messages_then_the_compaction(
    http: httpx.Client, upstream: Any
) -> None:
    first, second, then = marker(), marker(), marker()
    window = [
        {"type": "message", "role": "developer", "content": "be brief"},
        user(f"alpha {first}"),
        {"type": "message", "role": "assistant", "content": f"noted {first}"},
        {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": f"bravo {second}"}],
        },
        {"type": "message", "role": "assistant", "content": f"noted {second}"},
    ]
    kept = stored(http)
    answer = http.post("/responses/compact", json={"model": "fake/echo", "input": window})
    assert answer.status_code == 200, answer.text
    compacted = answer.json()
    assert compacted["object"] == "response.compaction"
    one, two, summary = compacted["output"]
    for item, text in ((one, f"alpha {first}"), (two, f"bravo {second}")):
        assert _kept(item) == ("user", "message", [{"type": "input_text", "text": text}])
    assert one["id"] != two["id"]
    assert summary["type"] == "compaction" and isinstance(summary["encrypted_content"], str)
    assert stored(http) == kept  # compaction stores nothing

    # OpenAI's way on: the compacted output is the next request's input, then the new turn.
    nxt = create(http, model="fake/echo", input=[*compacted["output"], user(f"then {then}")])
    assert output_text(nxt) == f"then {then}"
    transcript = (
        f"system: be brief\n\nuser: alpha {first}\n\nassistant: noted {first}\n\n"
        f"user: bravo {second}\n\nassistant: noted {second}"
    )
    assert sent(upstream, then) == [
        ("user", f"alpha {first}"),
        ("user", f"bravo {second}"),
        ("system", "Summary of the conversation so far:\n" + transcript),
        ("user", f"then {then}"),
    ]


def test_compact_of_a_previous_response_keeps_its_user_messages(http: httpx.Client) -> None:
    first, second = marker(), marker()
    one = create(http, model="fake/echo", input=f"alpha {first}")
    two = create(http, model="fake/echo", input=f"bravo {second}", previous_response_id=one["id"])
    answer = http.post(
        "/responses/compact",
        json={"model": "fake/text:1", "previous_response_id": two["id"]},
    )
    assert answer.status_code == 200, answer.text
    *users, summary = answer.json()["output"]
    assert [_kept(u) for u in users] == [
        ("user", "message", [{"type": "input_text", "text": f"alpha {first}"}]),
        ("user", "message", [{"type": "input_text", "text": f"bravo {second}"}]),
    ]
    assert summary["type"] == "compaction"
    nxt = http.post(
        "/responses",
        json={"model": "demo/parley", "input": [*answer.json()["output"], user("and now?")]},
    )
    assert nxt.status_code == 200, nxt.text
    assert nxt.json()["status"] == "completed"


def test_compact_of_an_earlier_response_leaves_out_what_came_after_it(
    http: httpx.Client,
) -> None:
    """A response's context is what led to it: compacting the first of a chain leaves out
    the turns that came after it in the same thread."""
    first, second = marker(), marker()
    one = create(http, model="fake/echo", input=f"alpha {first}")
    create(http, model="fake/echo", input=f"bravo {second}", previous_response_id=one["id"])
    answer = http.post(
        "/responses/compact",
        json={"model": "fake/text:1", "previous_response_id": one["id"]},
    )
    assert answer.status_code == 200, answer.text
    *users, summary = answer.json()["output"]
    assert [_kept(u) for u in users] == [
        ("user", "message", [{"type": "input_text", "text": f"alpha {first}"}]),
    ]
    assert summary["type"] == "compaction"
