"""The Conversations API over HTTP: a conversation is a thread, its items the thread's
messages. Creating with items and metadata, paging items, adding, reading and deleting
them (and the rules of deleting parts of an assistant message), metadata limits, unknown
and foreign ids, and function tools inside a conversation."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from parley.testing.fake_upstream import tool_results_text
from tests.e2e.helpers import assert_error, marker, messages
from tests.e2e.responses_helpers import (
    WEATHER_TOOL,
    call_output,
    calls,
    conversation,
    conversation_items,
    create,
    nothing_stored,
    openai_error,
    output_text,
    stored,
    texts,
    thread_ids,
    user,
    weather_result,
)


def _five(http: httpx.Client) -> tuple[str, list[dict[str, Any]]]:
    made = conversation(http, items=[user(f"m{i}") for i in range(5)])
    items = conversation_items(http, made["id"])
    assert texts(items) == [("user", f"m{i}") for i in range(5)]
    return made["id"], items


# --------------------------------------------------------------------------- creating


def test_create_with_items_and_metadata(http: httpx.Client) -> None:
    items = [
        {"type": "message", "role": "developer", "content": "Be brief."},
        user("Hello"),
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Hi!"}],
        },
        {"type": "function_call", "call_id": "call_1", "name": "lookup", "arguments": "{}"},
        call_output("call_1", "found"),
    ]
    made = conversation(http, items=items, metadata={"topic": "demo", "owner": "me"})
    assert made["metadata"] == {"topic": "demo", "owner": "me"}
    assert isinstance(made["created_at"], int)

    answer = http.get(f"/conversations/{made['id']}")
    assert answer.status_code == 200 and answer.json() == made, answer.text
    assert texts(conversation_items(http, made["id"])) == [
        ("system", "Be brief."),
        ("user", "Hello"),
        ("assistant", "Hi!"),
        ("function_call", "lookup"),
        ("function_call_output", "found"),
    ]
    # The same thread in the native API, with the same metadata.
    native = http.get(f"/threads/{made['id']}").json()
    assert native["metadata"] == made["metadata"]
    roles = [m["role"] for m in messages(http, made["id"])]
    assert roles == ["system", "user", "assistant", "tool"]


def test_create_without_a_body(http: httpx.Client) -> None:
    answer = http.post("/conversations")
    assert answer.status_code == 200, answer.text
    assert answer.json()["metadata"] == {}
    assert conversation_items(http, answer.json()["id"]) == []


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"items": [user("x")] * 21}, "items", "invalid_value"),
        ({"items": [{"type": "telepathy"}]}, "items[0].type", "invalid_value"),
        ({"items": "hello"}, "items", "invalid_value"),
        ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata", "invalid_value"),
        ({"metadata": {"k" * 65: "v"}}, "metadata", "invalid_value"),
        ({"metadata": {"k": "v" * 513}}, "metadata", "invalid_value"),
        ({"metadata": {"k": 5}}, "metadata", "invalid_value"),
        ({"topic": "x"}, "topic", "unknown_parameter"),
        ({"items": [call_output("call_nowhere", "x")]}, "items", "tool_call_not_found"),
    ],
    ids=[
        "21-items",
        "unknown-item",
        "items-not-a-list",
        "17-keys",
        "long-key",
        "long-value",
        "number-value",
        "unknown-field",
        "output-without-call",
    ],
)
def test_bad_creates_are_400(
    http: httpx.Client, body: dict[str, Any], param: str, code: str
) -> None:
    with nothing_stored(http):
        openai_error(http.post("/conversations", json=body), 400, param, code)


# ------------------------------------------------------------------------------ metadata


def test_metadata_at_its_limits_and_past_them(http: httpx.Client) -> None:
    made = conversation(http, metadata={"a": "b"})
    path = f"/conversations/{made['id']}"
    fullest = {f"{i:02d}" + "k" * 62: "v" * 512 for i in range(16)}
    answer = http.post(path, json={"metadata": fullest})
    assert answer.status_code == 200, answer.text
    assert answer.json()["metadata"] == fullest

    for metadata in (
        {**fullest, "one more": "x"},
        {"k" * 65: "v"},
        {"k": "v" * 513},
        {"k": 1},
        {"k": None},
    ):
        openai_error(http.post(path, json={"metadata": metadata}), 400, "metadata", "invalid_value")
    openai_error(http.post(path, json={}), 400, "metadata", "missing_required_parameter")
    openai_error(
        http.post(path, json={"metadata": {}, "name": "x"}), 400, "name", "unknown_parameter"
    )
    assert http.get(path).json()["metadata"] == fullest
    assert http.get(f"/threads/{made['id']}").json()["metadata"] == fullest

    answer = http.post(path, json={"metadata": {"only": "this"}})  # replaced, not merged
    assert answer.status_code == 200 and answer.json()["metadata"] == {"only": "this"}
    answer = http.post(path, json={"metadata": None})
    assert answer.status_code == 200 and answer.json()["metadata"] == {}


def test_a_responses_metadata_has_the_same_limits(http: httpx.Client) -> None:
    with nothing_stored(http):
        for metadata in ({f"k{i}": "v" for i in range(17)}, {"k" * 65: "v"}, {"k": "v" * 513}):
            answer = http.post(
                "/responses", json={"model": "fake/text:2", "input": "x", "metadata": metadata}
            )
            openai_error(answer, 400, "metadata", "invalid_value")


# -------------------------------------------------------------------------------- items


def test_items_page_by_page(http: httpx.Client) -> None:
    cid, items = _five(http)
    ids = [i["id"] for i in items]
    path = f"/conversations/{cid}/items"

    page = http.get(path, params={"limit": 2, "order": "asc"}).json()
    assert [i["id"] for i in page["data"]] == ids[:2]
    assert (page["first_id"], page["last_id"], page["has_more"]) == (ids[0], ids[1], True)
    page = http.get(path, params={"limit": 2, "order": "asc", "after": ids[1]}).json()
    assert [i["id"] for i in page["data"]] == ids[2:4] and page["has_more"] is True
    page = http.get(path, params={"limit": 2, "order": "asc", "after": ids[3]}).json()
    assert [i["id"] for i in page["data"]] == ids[4:] and page["has_more"] is False

    page = http.get(path).json()  # newest first by default
    assert [i["id"] for i in page["data"]] == ids[::-1] and page["has_more"] is False
    page = http.get(path, params={"limit": 3, "order": "desc", "after": ids[4]}).json()
    assert [i["id"] for i in page["data"]] == ids[3:0:-1] and page["has_more"] is True
    page = http.get(path, params={"order": "asc", "after": ids[4]}).json()
    assert page["data"] == [] and page["first_id"] is None and page["has_more"] is False

    openai_error(http.get(path, params={"after": "msg_nowhere"}), 400, "after", "invalid_value")
    openai_error(http.get(path, params={"limit": 0}), 400, "limit", "invalid_value")
    openai_error(http.get(path, params={"limit": 101}), 400, "limit", "invalid_value")
    openai_error(http.get(path, params={"order": "sideways"}), 400, "order", "invalid_value")


def test_add_and_read_items(http: httpx.Client) -> None:
    cid, before = _five(http)
    path = f"/conversations/{cid}/items"
    added = http.post(
        path,
        json={
            "items": [
                {"role": "assistant", "content": "Noted."},
                {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
            ]
        },
    )
    assert added.status_code == 200, added.text
    page = added.json()
    assert page["object"] == "list" and page["has_more"] is False
    assert [i["type"] for i in page["data"]] == ["message", "function_call"]
    assert (page["first_id"], page["last_id"]) == (page["data"][0]["id"], page["data"][1]["id"])
    after = conversation_items(http, cid)
    assert after == before + page["data"]

    for item in after:
        answer = http.get(f"{path}/{item['id']}")
        assert answer.status_code == 200 and answer.json() == item, answer.text
    for unknown in ("msg_000000000000000000000000", "fc_000000000000000000000000", "what"):
        openai_error(http.get(f"{path}/{unknown}"), 404, "item_id", None)

    bodies: list[dict[str, Any]] = [
        {"items": []},
        {"items": [user("x")] * 21},
        {"items": [{"type": "telepathy"}]},
        {"items": [call_output("c1", "ok"), call_output("c1", "again")]},
        {"items": [user("x")], "extra": 1},
    ]
    with nothing_stored(http):
        for body in bodies:
            assert_error(http.post(path, json=body), 400, type_="invalid_request")


def test_an_item_of_another_conversation_is_not_found_here(http: httpx.Client) -> None:
    here, _ = _five(http)
    there, there_items = _five(http)
    openai_error(
        http.get(f"/conversations/{here}/items/{there_items[0]['id']}"), 404, "item_id", None
    )
    openai_error(
        http.delete(f"/conversations/{here}/items/{there_items[0]['id']}"), 404, "item_id", None
    )
    assert conversation_items(http, there) == there_items


def test_delete_items(http: httpx.Client) -> None:
    made = conversation(
        http,
        items=[
            user("question"),
            {
                "type": "reasoning",
                "summary": [],
                "content": [{"type": "reasoning_text", "text": "hmm"}],
            },
            {"role": "assistant", "content": "Let me look."},
            {"type": "function_call", "call_id": "c1", "name": "look", "arguments": "{}"},
            call_output("c1", "seen"),
        ],
    )
    cid = made["id"]
    items = conversation_items(http, cid)
    question, reasoning, text, call, output = items
    assert [i["type"] for i in items] == [
        "message",
        "reasoning",
        "message",
        "function_call",
        "function_call_output",
    ]
    path = f"/conversations/{cid}/items"

    answer = http.delete(f"{path}/{question['id']}")
    assert answer.status_code == 200, answer.text
    assert answer.json() == made  # the conversation, as OpenAI answers
    # A call whose output is still there stays: its output goes first.
    openai_error(http.delete(f"{path}/{call['id']}"), 400, "item_id", "item_has_output")
    assert conversation_items(http, cid) == [reasoning, text, call, output]
    assert http.delete(f"{path}/{output['id']}").status_code == 200
    assert http.delete(f"{path}/{call['id']}").status_code == 200
    # The reasoning goes; the text of the same message stays.
    assert http.delete(f"{path}/{reasoning['id']}").status_code == 200
    assert conversation_items(http, cid) == [text]
    kept = messages(http, cid)
    assert [(m["role"], m["content"], m["reasoning"], m["tool_calls"]) for m in kept] == [
        ("assistant", "Let me look.", None, [])
    ]
    assert http.delete(f"{path}/{text['id']}").status_code == 200
    assert conversation_items(http, cid) == []
    assert messages(http, cid) == []
    openai_error(http.delete(f"{path}/{text['id']}"), 404, "item_id", None)


def test_reasoning_given_as_a_summary_stays_a_summary(http: httpx.Client) -> None:
    """A reasoning item with only a summary (what OpenAI returns when asked for summaries)
    is listed back with that summary, not as raw reasoning; the raw one stays raw; each
    keeps its place before or after the text of the same message, and the thread's
    message holds both as its reasoning."""
    summary = {"type": "summary_text", "text": "Check the map."}
    raw = {"type": "reasoning_text", "text": "Oslo is north."}
    made = conversation(
        http,
        items=[
            user("where?"),
            {"type": "reasoning", "summary": [summary], "content": []},
            {"role": "assistant", "content": "North."},
            user("sure?"),
            {"type": "reasoning", "summary": [summary]},
            {"type": "reasoning", "summary": [], "content": [raw]},
            {"role": "assistant", "content": "Yes."},
        ],
    )
    items = conversation_items(http, made["id"])
    shown = [
        (i["type"], [p["text"] for p in i.get("summary", [])], [p["text"] for p in i["content"]])
        for i in items
    ]
    assert shown == [
        ("message", [], ["where?"]),
        ("reasoning", ["Check the map."], []),
        ("message", [], ["North."]),
        ("message", [], ["sure?"]),
        ("reasoning", ["Check the map."], []),
        ("reasoning", [], ["Oslo is north."]),
        ("message", [], ["Yes."]),
    ]
    for item in items:  # each one read alone is the one listed
        answer = http.get(f"/conversations/{made['id']}/items/{item['id']}")
        assert answer.status_code == 200, answer.text
        assert answer.json() == item
    kept = messages(http, made["id"])
    assert [(m["role"], m["content"], m["reasoning"]) for m in kept] == [
        ("user", "where?", None),
        ("assistant", "North.", "Check the map."),
        ("user", "sure?", None),
        ("assistant", "Yes.", "Check the map.Oslo is north."),
    ]


def test_delete_a_conversation(http: httpx.Client) -> None:
    cid, items = _five(http)
    response = create(http, model="fake/text:2", input="one more", conversation=cid)
    answer = http.delete(f"/conversations/{cid}")
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"id": cid, "object": "conversation.deleted", "deleted": True}

    openai_error(http.get(f"/conversations/{cid}"), 404, "conversation_id", None)
    openai_error(http.get(f"/conversations/{cid}/items"), 404, "conversation_id", None)
    openai_error(
        http.get(f"/conversations/{cid}/items/{items[0]['id']}"), 404, "conversation_id", None
    )
    openai_error(http.delete(f"/conversations/{cid}"), 404, "conversation_id", None)
    assert http.get(f"/threads/{cid}").status_code == 404
    openai_error(http.get(f"/responses/{response['id']}"), 404, "response_id", None)
    answer = http.post(
        "/responses", json={"model": "fake/text:2", "input": "again", "conversation": cid}
    )
    openai_error(answer, 404, "conversation", None)
    assert cid not in thread_ids(http)


# ------------------------------------------------------------------- unknown and foreign


def _conversation_requests(cid: str, item_id: str) -> list[tuple[str, str, Any]]:
    return [
        ("GET", f"/conversations/{cid}", None),
        ("POST", f"/conversations/{cid}", {"metadata": {"stolen": "yes"}}),
        ("DELETE", f"/conversations/{cid}", None),
        ("GET", f"/conversations/{cid}/items", None),
        ("POST", f"/conversations/{cid}/items", {"items": [user("intruder")]}),
        ("GET", f"/conversations/{cid}/items/{item_id}", None),
        ("DELETE", f"/conversations/{cid}/items/{item_id}", None),
    ]


def test_unknown_conversations_are_404(http: httpx.Client) -> None:
    unknown = "thread_000000000000000000000000"
    with nothing_stored(http):
        for method, path, body in _conversation_requests(unknown, "msg_000000000000000000000000"):
            openai_error(http.request(method, path, json=body), 404, "conversation_id", None)
        answer = http.post(
            "/responses", json={"model": "fake/text:2", "input": "x", "conversation": unknown}
        )
        openai_error(answer, 404, "conversation", None)


def test_another_users_conversation_is_404(http: httpx.Client, other: httpx.Client) -> None:
    word = marker()
    theirs, their_items = _five(other)
    private = create(other, model="fake/echo", input=f"private {word}", conversation=theirs)
    assert output_text(private) == f"private {word}"
    their_state = (stored(other), conversation_items(other, theirs))
    mine = stored(http)

    item_id = their_items[0]["id"]
    for method, path, body in _conversation_requests(theirs, item_id):
        openai_error(http.request(method, path, json=body), 404, "conversation_id", None)
    for conversation_field in (theirs, {"id": theirs}):
        answer = http.post(
            "/responses",
            json={"model": "fake/echo", "input": "x", "conversation": conversation_field},
        )
        openai_error(answer, 404, "conversation", None)

    assert stored(http) == mine
    assert (stored(other), conversation_items(other, theirs)) == their_state


# ----------------------------------------------------------------------- function tools


def test_function_tool_round_trip_in_a_conversation(http: httpx.Client) -> None:
    cid = conversation(http, metadata={"kind": "tools"})["id"]
    first = create(
        http, model="fake/auto", input="weather?", tools=[WEATHER_TOOL], conversation=cid
    )
    assert first["conversation"] == {"id": cid}
    (call,) = calls(first)

    # While the call waits for its output the conversation takes nothing else.
    busy = http.post(
        "/responses",
        json={"model": "fake/auto", "input": "other", "tools": [WEATHER_TOOL], "conversation": cid},
    )
    openai_error(busy, 400, "input", "tool_output_missing")
    openai_error(
        http.delete(f"/conversations/{cid}/items/{call['id']}"), 409, None, "conversation_busy"
    )

    second = create(http, **weather_result(call["call_id"], "rainy", conversation=cid))
    assert output_text(second) == tool_results_text([("get_weather", "rainy")])
    items = conversation_items(http, cid)
    assert texts(items) == [
        ("user", "weather?"),
        ("function_call", "get_weather"),
        ("function_call_output", "rainy"),
        ("assistant", tool_results_text([("get_weather", "rainy")])),
    ]

    # The same output again, by a response or as an added item: refused, stored once.
    with nothing_stored(http):
        again = weather_result(call["call_id"], "rainy", conversation=cid)
        openai_error(http.post("/responses", json=again), 400, "input", "duplicate_tool_output")
        answer = http.post(f"/conversations/{cid}/items", json={"items": again["input"]})
        openai_error(answer, 400, "items", "duplicate_tool_output")
    assert conversation_items(http, cid) == items
