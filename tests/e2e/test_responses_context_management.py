"""``context_management`` on ``POST /v1/responses``: past its ``compact_threshold`` the
server compacts the conversation on its own. The response's output starts with the
``compaction`` item, the model sees the summary and the new turn, and later responses go on
from the summary (through ``previous_response_id``, a fork of an earlier response, or a
``conversation``)."""

from __future__ import annotations

import base64
from typing import Any

import httpx

from tests.e2e.helpers import marker
from tests.e2e.responses_helpers import (
    create,
    openai_error,
    output_text,
    sent,
    stream_create,
)

#: Past a threshold of 1000 tokens (four characters each, as the server estimates them).
LONG = "lorem ipsum dolor sit amet " * 200
COMPACT = [{"type": "compaction", "compact_threshold": 1000}]
SUMMARY = "Summary of the conversation so far:\n"


def _summary(item: dict[str, Any]) -> str:
    """The text a compaction item made here carries (opaque to clients, readable here)."""
    assert item["type"] == "compaction" and set(item) == {"type", "id", "encrypted_content"}
    text = base64.b64decode(item["encrypted_content"]).decode()
    prefix = "parley.compaction.v1:"
    assert text.startswith(prefix)
    return text[len(prefix) :]


def _compacted(http: httpx.Client, first: str, second: str) -> dict[str, Any]:
    """A long first response, then a second past the threshold: compacted."""
    one = create(http, model="fake/echo", input=f"{first} {LONG}")
    assert [i["type"] for i in one["output"]] == ["message"]  # no threshold: never compacted
    two = create(
        http,
        model="fake/echo",
        input=f"now {second}",
        previous_response_id=one["id"],
        context_management=COMPACT,
    )
    assert [i["type"] for i in two["output"]] == ["compaction", "message"], two["output"]
    return two


def test_a_long_conversation_is_compacted_past_the_threshold(
    http: httpx.Client, upstream: Any
) -> None:
    first, second, third = marker(), marker(), marker()
    two = _compacted(http, first, second)
    assert output_text(two) == f"now {second}"
    summary = _summary(two["output"][0])
    # The echo model's summary is the transcript it was given: the first turn, not the new.
    assert first in summary and second not in summary
    assert sent(upstream, second) == [("system", SUMMARY + summary), ("user", f"now {second}")]
    # The summary call's tokens are the response's too.
    assert two["usage"]["input_tokens"] > len(f"now {second}".split()) + len(summary.split())

    # On from there, with no context_management: the summary stands for the first turn.
    three = create(http, model="fake/echo", input=f"then {third}", previous_response_id=two["id"])
    assert [i["type"] for i in three["output"]] == ["message"]
    assert sent(upstream, third) == [
        ("system", SUMMARY + summary),
        ("user", f"now {second}"),
        ("assistant", f"now {second}"),
        ("user", f"then {third}"),
    ]
    # A response read back shows the compaction item as it was made.
    again = http.get(f"/responses/{two['id']}").json()
    assert again["output"] == two["output"]


def test_under_the_threshold_nothing_is_compacted(http: httpx.Client, upstream: Any) -> None:
    first, second = marker(), marker()
    one = create(http, model="fake/echo", input=f"short {first}")
    two = create(
        http,
        model="fake/echo",
        input=f"also short {second}",
        previous_response_id=one["id"],
        context_management=[{"type": "compaction", "compact_threshold": 100_000}],
    )
    assert [i["type"] for i in two["output"]] == ["message"]
    assert [role for role, _ in sent(upstream, second)] == ["user", "assistant", "user"]


def test_the_compaction_streams_as_the_first_output_item(http: httpx.Client) -> None:
    one = create(http, model="fake/echo", input=f"{marker()} {LONG}")
    events = stream_create(
        http,
        model="fake/echo",
        input=f"streamed {marker()}",
        previous_response_id=one["id"],
        context_management=COMPACT,
    )
    items = [
        (e["type"], e["output_index"], e["item"]["type"])
        for e in events
        if e["type"] in ("response.output_item.added", "response.output_item.done")
    ]
    assert items == [
        ("response.output_item.added", 0, "compaction"),
        ("response.output_item.done", 0, "compaction"),
        ("response.output_item.added", 1, "message"),
        ("response.output_item.done", 1, "message"),
    ]
    added = next(e for e in events if e["type"] == "response.output_item.added")
    final = events[-1]["response"]
    assert final["status"] == "completed"
    assert final["output"][0] == added["item"]
    _summary(added["item"])


def test_an_earlier_response_after_the_compaction_forks_from_the_summary(
    http: httpx.Client, upstream: Any
) -> None:
    first, second, later, fork = marker(), marker(), marker(), marker()
    two = _compacted(http, first, second)
    create(http, model="fake/echo", input=f"later {later}", previous_response_id=two["id"])
    # Back to the second response (not the thread's last): a fork of what it saw.
    create(http, model="fake/echo", input=f"fork {fork}", previous_response_id=two["id"])
    summary = _summary(two["output"][0])
    assert sent(upstream, fork) == [
        ("system", SUMMARY + summary),
        ("user", f"now {second}"),
        ("assistant", f"now {second}"),
        ("user", f"fork {fork}"),
    ]


def test_a_conversation_is_compacted_and_lists_the_compaction(
    http: httpx.Client, upstream: Any
) -> None:
    made = http.post("/conversations", json={})
    assert made.status_code == 200, made.text
    conversation = made.json()["id"]
    first, second, third = marker(), marker(), marker()
    create(http, model="fake/echo", input=f"{first} {LONG}", conversation=conversation)
    two = create(
        http,
        model="fake/echo",
        input=f"now {second}",
        conversation=conversation,
        context_management=[{"type": "compaction", "compact_threshold": 1000}],
    )
    assert two["output"][0]["type"] == "compaction"
    create(http, model="fake/echo", input=f"then {third}", conversation=conversation)
    assert [role for role, _ in sent(upstream, third)] == ["system", "user", "assistant", "user"]
    listed = http.get(f"/conversations/{conversation}/items", params={"order": "asc"}).json()
    kinds = [(i["type"], i.get("role")) for i in listed["data"]]
    assert kinds == [
        ("message", "user"),
        ("message", "assistant"),
        ("message", "user"),
        ("compaction", None),
        ("message", "assistant"),
        ("message", "user"),
        ("message", "assistant"),
    ]
    assert listed["data"][3] == two["output"][0]


def test_a_compaction_without_a_threshold_waits_for_the_model_s_window(
    http: httpx.Client, upstream: Any
) -> None:
    """``compact_threshold`` null: at 80% of the model's context window (the fake's is
    unknown: the conversation is never compacted, as the window never cuts it either)."""
    first = marker()
    one = create(http, model="fake/echo", input=f"{marker()} {LONG}")
    two = create(
        http,
        model="fake/echo",
        input=f"now {first}",
        previous_response_id=one["id"],
        context_management=[{"type": "compaction", "compact_threshold": None}],
    )
    assert [i["type"] for i in two["output"]] == ["message"]


def test_bad_context_management_is_a_400_naming_the_field(http: httpx.Client) -> None:
    cases = [
        ([{"type": "truncate"}], "context_management[0].type"),
        (
            [{"type": "compaction", "compact_threshold": 999}],
            "context_management[0].compact_threshold",
        ),
        (
            [{"type": "compaction", "compact_threshold": "many"}],
            "context_management[0].compact_threshold",
        ),
        (
            [{"type": "compaction", "compact_threshold": True}],
            "context_management[0].compact_threshold",
        ),
        ([{"type": "compaction"}, {"type": "compaction"}], "context_management[1]"),
    ]
    for given, param in cases:
        answer = http.post(
            "/responses",
            json={"model": "fake/echo", "input": "hi", "context_management": given},
        )
        openai_error(answer, 400, param=param, code="invalid_value")


def test_a_compact_of_a_compacted_response_starts_from_its_summary(
    http: httpx.Client, upstream: Any
) -> None:
    first, second = marker(), marker()
    two = _compacted(http, first, second)
    answer = http.post(
        "/responses/compact", json={"model": "fake/echo", "previous_response_id": two["id"]}
    )
    assert answer.status_code == 200, answer.text
    *users, summary = answer.json()["output"]
    # The first turn is in the earlier summary, not sent again whole.
    assert [u["content"][0]["text"] for u in users] == [f"now {second}"]
    text, earlier = _summary(summary), _summary(two["output"][0])
    assert text.startswith("system: " + SUMMARY + earlier)
    assert text.count(first) == earlier.count(first)
