"""Bad input: every mistake gets a clear 4xx JSON error, and nothing is stored twice or
half. After each refusal the test lists what is stored to see that nothing changed.

A body or query that fails validation is a 422 naming each field in ``details`` on Parley's
own paths (``runs``, ``messages``, ``process``, ...), and a 400 naming the field in ``param``
on the Assistants paths (``assistants``, ``threads``), whose errors take OpenAI's shape."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from parley.testing.fake_upstream import expected_text
from tests.e2e.helpers import (
    CLOCK,
    WEATHER,
    actions,
    add_message,
    assert_error,
    assert_invalid,
    create_assistant,
    create_run,
    create_thread,
    get_run,
    list_all,
    live_turn,
    messages,
    runs_of,
    stream_completion,
    stream_process,
)

MIB = 1024 * 1024


def _state(http: httpx.Client, thread_id: str) -> tuple[Any, ...]:
    """What a thread holds: its messages and its runs (with their actions)."""
    runs = runs_of(http, thread_id)
    return (messages(http, thread_id), runs, [actions(http, r["id"]) for r in runs])


def _everything(http: httpx.Client) -> tuple[Any, ...]:
    threads = list_all(http, "/threads")
    return (
        list_all(http, "/assistants"),
        threads,
        list_all(http, "/runs"),
        [messages(http, t["id"]) for t in threads],
    )


@pytest.fixture
def waiting(http: httpx.Client) -> dict[str, Any]:
    """A run waiting for two tool outputs: its run, thread and manifest."""
    bot = create_assistant(http, "fake/tools:2", tools=[WEATHER, CLOCK])
    turn = stream_process(http, assistant_id=bot["id"], content="two tools please")
    run = get_run(http, turn.run_id)
    assert run["status"] == "requires_action"
    return {"run": run, "thread_id": run["thread_id"], "manifest": turn.manifest, "bot": bot}


# ------------------------------------------------------------------- malformed bodies


@pytest.mark.parametrize(
    ("path", "raw"),
    [
        ("/assistants", b'{"name": "x", "model": "demo/x"'),
        ("/threads", b"{metadata: {}}"),
        ("/messages", b'{"thread_id": "thread_x", "content": "hi",}'),
        ("/process", b"not json at all"),
        ("/completions", b'{"run_id": "run_\xff"}'),
    ],
)
def test_malformed_json_is_400(http: httpx.Client, path: str, raw: bytes) -> None:
    before = _everything(http)
    answer = http.post(path, content=raw, headers={"Content-Type": "application/json"})
    assert_error(answer, 400)
    assert _everything(http) == before


@pytest.mark.parametrize(
    ("path", "body", "param", "code"),
    [
        ("/assistants", {"name": 5, "model": ["demo/x"]}, "model", "invalid_value"),
        ("/assistants", {"name": "x"}, "model", "missing_required_parameter"),
        pytest.param(
            "/assistants",
            {
                "name": "x",
                "model": "demo/x",
                "tools": [WEATHER, {"type": "function", "function": {"name": 3}}],
            },
            "tools[1].function.name",
            "invalid_value",
            id="tool index in param",
        ),
        ("/threads", {"metadata": "not an object"}, "metadata", "invalid_value"),
        (
            "/threads",
            {"messages": [{"role": "user", "content": "hi", "colour": "red"}]},
            "messages[0].colour",
            "unknown_parameter",
        ),
    ],
)
def test_wrong_types_on_the_assistants_paths_are_400_naming_the_field(
    http: httpx.Client, path: str, body: dict[str, Any], param: str, code: str
) -> None:
    before = _everything(http)
    error = assert_invalid(http.post(path, json=body), param)
    assert error["code"] == code, error
    assert param in error["message"], error
    assert _everything(http) == before


@pytest.mark.parametrize(
    ("path", "body", "locs"),
    [
        (
            "/messages",
            {"thread_id": "thread_x", "content": {"text": "hi"}},
            [
                ["body", "content", "str"],
                ["body", "content", "list[union[TextPart,ImageURLPart,ImageFilePart]]"],
            ],
        ),
        (
            "/messages",
            {"thread_id": "thread_x", "content": "hi", "role": "tool"},
            [["body", "role"]],
        ),
        (
            "/process",
            {"assistant_id": "asst_x", "content": "hi", "stream": "maybe"},
            [["body", "stream"]],
        ),
        (
            "/runs",
            {"thread_id": 1, "assistant_id": None},
            [["body", "thread_id"], ["body", "assistant_id"]],
        ),
    ],
)
def test_wrong_types_on_parleys_own_paths_are_422_with_field_paths(
    http: httpx.Client, path: str, body: dict[str, Any], locs: list[list[Any]]
) -> None:
    before = _everything(http)
    error = assert_error(http.post(path, json=body), 422)
    seen = [d["loc"] for d in error["details"]]
    for loc in locs:
        assert loc in seen, (loc, error)
    for detail in error["details"]:
        assert isinstance(detail["msg"], str) and detail["msg"] and isinstance(detail["type"], str)
    assert _everything(http) == before


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/assistants", []),
        ("/threads", "a string"),
        ("/process", 42),
        ("/process", {"run_id": "run_x", "content": "both kinds of turn"}),
        ("/process", {"content": "no assistant"}),
        ("/submit_tool_output", {"output": "names no call"}),
        ("/submit_tool_output", {"run_id": "run_x", "output": "no tool_call_id"}),
    ],
)
def test_bodies_of_the_wrong_shape_are_invalid(http: httpx.Client, path: str, body: Any) -> None:
    before = _everything(http)
    assert_invalid(http.post(path, json=body))
    assert _everything(http) == before


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/assistants", {"name": "x", "model": "demo/x", "temprature": 0.2}, "temprature"),
        ("/threads", {"metadata": {}, "title": "x"}, "title"),
        ("/messages", {"thread_id": "thread_x", "content": "hi", "attachment": []}, "attachment"),
        ("/runs", {"thread_id": "thread_x", "assistant_id": "asst_x", "extra": 1}, "extra"),
        ("/process", {"assistant_id": "asst_x", "content": "hi", "temperature": 1}, "temperature"),
        ("/completions", {"run_id": "run_x", "foo": "bar"}, "foo"),
        ("/submit_tool_output", {"action_id": "act_x", "output": "x", "extra": True}, "extra"),
    ],
)
def test_unknown_fields_are_refused_by_name(
    http: httpx.Client, path: str, body: dict[str, Any], field: str
) -> None:
    before = _everything(http)
    error = assert_invalid(http.post(path, json=body), field)
    if "details" in error:  # Parley's own paths
        assert [d["loc"] for d in error["details"]] == [["body", field]], error
    else:
        assert error["code"] == "unknown_parameter", error
        assert error["message"] == f"Unknown parameter: '{field}'.", error
    assert _everything(http) == before


def test_unknown_fields_on_update_and_tool_outputs_are_refused(
    http: httpx.Client, waiting: dict[str, Any]
) -> None:
    bot = waiting["bot"]
    assert_invalid(http.post(f"/assistants/{bot['id']}", json={"colour": "red"}), "colour")
    assert http.get(f"/assistants/{bot['id']}").json() == bot
    before = _state(http, waiting["thread_id"])
    call = waiting["manifest"][0]["tool_call_id"]
    body = {"tool_outputs": [{"tool_call_id": call, "output": "x", "is_error": False}]}
    assert_error(http.post(f"/runs/{waiting['run']['id']}/submit_tool_outputs", json=body), 422)
    assert_error(
        http.post(f"/runs/{waiting['run']['id']}/submit_tool_outputs", json={"tool_outputs": []}),
        422,
    )
    assert _state(http, waiting["thread_id"]) == before


# -------------------------------------------------------------------------- unknown ids


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/assistants/asst_nope", None),
        ("POST", "/assistants/asst_nope", {"name": "x"}),
        ("DELETE", "/assistants/asst_nope", None),
        ("GET", "/threads/thread_nope", None),
        ("DELETE", "/threads/thread_nope", None),
        ("GET", "/threads/thread_nope/messages", None),
        ("POST", "/threads/thread_nope/messages", {"content": "hi"}),
        ("POST", "/messages", {"thread_id": "thread_nope", "content": "hi"}),
        ("GET", "/messages/msg_nope", None),
        ("GET", "/runs/run_nope", None),
        ("GET", "/runs?thread_id=thread_nope", None),
        ("POST", "/runs/run_nope/cancel", None),
        ("GET", "/runs/run_nope/events", None),
        (
            "POST",
            "/runs/run_nope/submit_tool_outputs",
            {"tool_outputs": [{"tool_call_id": "c", "output": "x"}]},
        ),
        ("GET", "/actions?run_id=run_nope", None),
        ("POST", "/completions", {"run_id": "run_nope"}),
        ("POST", "/process", {"run_id": "run_nope"}),
        ("POST", "/process", {"assistant_id": "asst_nope", "content": "hi"}),
        ("POST", "/submit_tool_output", {"action_id": "act_nope", "output": "x"}),
        ("POST", "/submit_tool_output", {"run_id": "run_nope", "tool_call_id": "c", "output": "x"}),
        ("DELETE", "/api_keys/key_nope", None),
    ],
)
def test_unknown_ids_are_404(http: httpx.Client, method: str, path: str, body: Any) -> None:
    before = _everything(http)
    answer = (
        http.request(method, path, json=body) if body is not None else http.request(method, path)
    )
    assert_error(answer, 404)
    assert _everything(http) == before


def test_unknown_ids_in_run_create_and_process_thread(http: httpx.Client) -> None:
    bot = create_assistant(http, "demo/x")
    thread = create_thread(http)
    assert_error(
        http.post("/runs", json={"thread_id": "thread_nope", "assistant_id": bot["id"]}), 404
    )
    assert_error(
        http.post("/runs", json={"thread_id": thread["id"], "assistant_id": "asst_nope"}), 404
    )
    answer = http.post(
        "/process", json={"assistant_id": bot["id"], "content": "hi", "thread_id": "thread_nope"}
    )
    assert_error(answer, 404)
    assert runs_of(http, thread["id"]) == [] and messages(http, thread["id"]) == []
    assert [t["id"] for t in list_all(http, "/threads")] == [thread["id"]]


# -------------------------------------------------------------------------- body size


def test_body_over_the_limit_is_413(http: httpx.Client) -> None:
    thread = create_thread(http)
    content = "x" * (MIB + 16)
    answer = http.post("/messages", json={"thread_id": thread["id"], "content": content})
    assert_error(answer, 413)
    assert messages(http, thread["id"]) == []


def test_chunked_body_over_the_limit_is_413(http: httpx.Client) -> None:
    thread = create_thread(http)
    head = f'{{"thread_id": "{thread["id"]}", "content": "'.encode()

    def body() -> Iterator[bytes]:
        yield head
        for _ in range(20):
            yield b"y" * (64 * 1024)
        yield b'"}'

    answer = http.post("/messages", content=body(), headers={"Content-Type": "application/json"})
    assert "content-length" not in answer.request.headers
    assert answer.request.headers["transfer-encoding"] == "chunked"
    assert_error(answer, 413)
    assert messages(http, thread["id"]) == []


def test_chunked_body_under_the_limit_is_fine(http: httpx.Client) -> None:
    thread = create_thread(http)
    head = f'{{"thread_id": "{thread["id"]}", "content": "'.encode()

    def body() -> Iterator[bytes]:
        yield head
        yield b"z" * 1000
        yield b'"}'

    answer = http.post("/messages", content=body(), headers={"Content-Type": "application/json"})
    assert answer.status_code == 201, answer.text
    assert [m["content"] for m in messages(http, thread["id"])] == ["z" * 1000]


# -------------------------------------------------------------------------- tool outputs


def _submit(http: httpx.Client, run_id: str, pairs: list[tuple[str, str]]) -> httpx.Response:
    body = {"tool_outputs": [{"tool_call_id": c, "output": o} for c, o in pairs]}
    return http.post(f"/runs/{run_id}/submit_tool_outputs", json=body)


def test_outputs_for_unknown_tool_call_are_400_and_atomic(
    http: httpx.Client, waiting: dict[str, Any]
) -> None:
    run_id, (one, two) = waiting["run"]["id"], waiting["manifest"]
    before = _state(http, waiting["thread_id"])
    assert_error(_submit(http, run_id, [("call_unknown", "x")]), 400, "tool_call_not_found")
    # a good output next to a bad one is not stored either: all or nothing
    answer = _submit(http, run_id, [(one["tool_call_id"], "fine"), ("call_unknown", "x")])
    assert_error(answer, 400, "tool_call_not_found")
    answer = http.post(
        "/submit_tool_output",
        json={"run_id": run_id, "tool_call_id": "call_unknown", "output": "x"},
    )
    assert_error(answer, 400, "tool_call_not_found")
    assert _state(http, waiting["thread_id"]) == before
    assert get_run(http, run_id)["status"] == "requires_action"
    pending = actions(http, run_id, status="pending")
    assert [a["id"] for a in pending] == [one["action_id"], two["action_id"]]


def test_the_same_call_listed_twice_is_400(http: httpx.Client, waiting: dict[str, Any]) -> None:
    run_id, (one, _) = waiting["run"]["id"], waiting["manifest"]
    before = _state(http, waiting["thread_id"])
    answer = _submit(http, run_id, [(one["tool_call_id"], "a"), (one["tool_call_id"], "a")])
    assert_error(answer, 400, "duplicate_tool_output")
    assert _state(http, waiting["thread_id"]) == before


def test_same_outputs_twice_change_nothing(http: httpx.Client, waiting: dict[str, Any]) -> None:
    run_id, (one, two) = waiting["run"]["id"], waiting["manifest"]
    pairs = [(one["tool_call_id"], "out 1"), (two["tool_call_id"], "out 2")]
    first = _submit(http, run_id, pairs)
    assert first.status_code == 200 and first.json()["status"] == "queued"
    state = _state(http, waiting["thread_id"])
    again = _submit(http, run_id, pairs)
    assert again.status_code == 200, again.text
    assert again.json()["status"] == "queued"
    single = http.post(
        "/submit_tool_output", json={"action_id": one["action_id"], "output": "out 1"}
    )
    assert single.status_code == 200, single.text
    assert _state(http, waiting["thread_id"]) == state
    tools = [m for m in messages(http, waiting["thread_id"]) if m["role"] == "tool"]
    assert [(m["tool_call_id"], m["content"]) for m in tools] == pairs


def test_partial_resubmission_with_a_new_output_is_stored_once(
    http: httpx.Client, waiting: dict[str, Any]
) -> None:
    run_id, (one, two) = waiting["run"]["id"], waiting["manifest"]
    assert (
        _submit(http, run_id, [(one["tool_call_id"], "out 1")]).json()["status"]
        == "requires_action"
    )
    both = _submit(http, run_id, [(one["tool_call_id"], "out 1"), (two["tool_call_id"], "out 2")])
    assert both.status_code == 200 and both.json()["status"] == "queued", both.text
    tools = [m for m in messages(http, waiting["thread_id"]) if m["role"] == "tool"]
    assert [(m["tool_call_id"], m["content"]) for m in tools] == [
        (one["tool_call_id"], "out 1"),
        (two["tool_call_id"], "out 2"),
    ]


def test_a_different_output_for_the_same_call_is_a_duplicate(
    http: httpx.Client, waiting: dict[str, Any]
) -> None:
    run_id, (one, two) = waiting["run"]["id"], waiting["manifest"]
    assert _submit(http, run_id, [(one["tool_call_id"], "first")]).status_code == 200
    state = _state(http, waiting["thread_id"])
    assert_error(
        _submit(http, run_id, [(one["tool_call_id"], "second")]), 400, "duplicate_tool_output"
    )
    answer = http.post(
        "/submit_tool_output", json={"action_id": one["action_id"], "output": "third"}
    )
    assert_error(answer, 400, "duplicate_tool_output")
    # atomic: the pending call next to the conflicting one is not stored
    answer = _submit(http, run_id, [(two["tool_call_id"], "ok"), (one["tool_call_id"], "other")])
    assert_error(answer, 400, "duplicate_tool_output")
    assert _state(http, waiting["thread_id"]) == state
    assert [a["output"] for a in actions(http, run_id)] == ["first", None]


def test_outputs_for_a_run_without_tool_calls_are_refused(http: httpx.Client) -> None:
    bot = create_assistant(http, "fake/text:2")
    turn = stream_process(http, assistant_id=bot["id"], content="hi")
    thread_id = get_run(http, turn.run_id)["thread_id"]
    before = _state(http, thread_id)
    assert_error(_submit(http, turn.run_id, [("call_x", "x")]), 400, "tool_call_not_found")
    queued = create_run(http, thread_id, bot["id"])
    answer = _submit(http, queued["id"], [("call_x", "x")])
    assert answer.status_code in (400, 409), answer.text
    assert_error(answer, answer.status_code)
    assert _state(http, thread_id)[0] == before[0]


# ---------------------------------------------------------------------- busy threads


def test_a_second_run_on_a_busy_thread_is_409(http: httpx.Client, waiting: dict[str, Any]) -> None:
    thread_id, bot = waiting["thread_id"], waiting["bot"]
    before = _state(http, thread_id)
    answer = http.post("/runs", json={"thread_id": thread_id, "assistant_id": bot["id"]})
    assert_error(answer, 409, "thread_busy")
    answer = http.post(
        "/process", json={"assistant_id": bot["id"], "content": "again", "thread_id": thread_id}
    )
    assert_error(answer, 409, "thread_busy")
    answer = http.post(
        "/process",
        json={
            "assistant_id": bot["id"],
            "content": "again",
            "thread_id": thread_id,
            "stream": False,
        },
    )
    assert_error(answer, 409, "thread_busy")
    assert_error(http.post("/messages", json={"thread_id": thread_id, "content": "more"}), 409)
    assert_error(http.post(f"/threads/{thread_id}/messages", json={"content": "more"}), 409)
    assert _state(http, thread_id) == before


def test_a_queued_run_makes_the_thread_busy_but_takes_messages(http: httpx.Client) -> None:
    bot = create_assistant(http, "fake/text:2")
    thread = create_thread(http)
    add_message(http, thread["id"], "first")
    run = create_run(http, thread["id"], bot["id"])
    before = _state(http, thread["id"])
    assert_error(
        http.post("/runs", json={"thread_id": thread["id"], "assistant_id": bot["id"]}),
        409,
        "thread_busy",
    )
    answer = http.post(
        "/process", json={"assistant_id": bot["id"], "content": "x", "thread_id": thread["id"]}
    )
    assert_error(answer, 409, "thread_busy")
    assert _state(http, thread["id"]) == before
    add_message(http, thread["id"], "second")
    turn = stream_completion(http, run["id"])
    assert turn.final_status == "completed" and turn.text == expected_text(2)


def test_turns_on_a_run_in_progress_are_409(http: httpx.Client) -> None:
    bot = create_assistant(http, "fake/stall:1")
    with live_turn(http, bot["id"]) as live:
        run_id, thread_id = live.run_id, live.thread_id
        assert get_run(http, run_id)["status"] == "in_progress"
        before = _state(http, thread_id)
        assert_error(http.post("/completions", json={"run_id": run_id}), 409, "run_in_progress")
        assert_error(
            http.post("/completions", json={"run_id": run_id, "stream": False}),
            409,
            "run_in_progress",
        )
        assert_error(http.post("/process", json={"run_id": run_id}), 409, "run_in_progress")
        answer = http.post(
            "/process", json={"assistant_id": bot["id"], "content": "x", "thread_id": thread_id}
        )
        assert_error(answer, 409, "thread_busy")
        assert_error(
            http.post("/runs", json={"thread_id": thread_id, "assistant_id": bot["id"]}),
            409,
            "thread_busy",
        )
        assert_error(http.post("/messages", json={"thread_id": thread_id, "content": "more"}), 409)
        assert_error(_submit(http, run_id, [("call_x", "x")]), 400, "tool_call_not_found")
        after = _state(http, thread_id)
        assert [m["id"] for m in after[0]] == [m["id"] for m in before[0]]
        assert [r["id"] for r in after[1]] == [r["id"] for r in before[1]]
    assert get_run(http, run_id)["status"] == "cancelled"


def test_completions_on_a_run_waiting_for_tools_is_409(
    http: httpx.Client, waiting: dict[str, Any]
) -> None:
    run_id = waiting["run"]["id"]
    before = _state(http, waiting["thread_id"])
    assert_error(http.post("/completions", json={"run_id": run_id}), 409, "tool_outputs_pending")
    assert_error(
        http.post("/process", json={"run_id": run_id, "stream": False}), 409, "tool_outputs_pending"
    )
    assert _state(http, waiting["thread_id"]) == before


def test_turns_and_cancel_on_a_finished_run_are_409(http: httpx.Client) -> None:
    bot = create_assistant(http, "fake/text:2")
    turn = stream_process(http, assistant_id=bot["id"], content="hi")
    thread_id = get_run(http, turn.run_id)["thread_id"]
    before = _state(http, thread_id)
    assert_error(http.post("/completions", json={"run_id": turn.run_id}), 409, "run_finished")
    assert_error(http.post("/process", json={"run_id": turn.run_id}), 409, "run_finished")
    assert_error(http.post(f"/runs/{turn.run_id}/cancel"), 409, "run_finished")
    assert _state(http, thread_id) == before
    assert get_run(http, turn.run_id)["status"] == "completed"


def test_completions_naming_another_thread_or_assistant_is_refused(http: httpx.Client) -> None:
    bot = create_assistant(http, "fake/text:2")
    thread = create_thread(http)
    add_message(http, thread["id"], "hi")
    run = create_run(http, thread["id"], bot["id"])
    other_thread = create_thread(http)
    other_bot = create_assistant(http, "fake/text:2")
    answer = http.post("/completions", json={"run_id": run["id"], "thread_id": other_thread["id"]})
    assert_error(answer, 400, "thread_mismatch")
    answer = http.post("/completions", json={"run_id": run["id"], "assistant_id": other_bot["id"]})
    assert_error(answer, 400, "assistant_mismatch")
    assert get_run(http, run["id"])["status"] == "queued"
    assert [m["role"] for m in messages(http, thread["id"])] == ["user"]


# ---------------------------------------------------------------------------- models


def test_unknown_model_provider_is_400(http: httpx.Client) -> None:
    before = _everything(http)
    assert_error(http.post("/assistants", json={"name": "x", "model": "nosuchprovider/x"}), 400)
    bot = create_assistant(http, "demo/x")
    assert_error(http.post(f"/assistants/{bot['id']}", json={"model": "nosuchprovider/x"}), 400)
    assert http.get(f"/assistants/{bot['id']}").json()["model"] == "demo/x"
    thread = create_thread(http)
    body = {"thread_id": thread["id"], "assistant_id": bot["id"], "model": "nosuchprovider/x"}
    assert_error(http.post("/runs", json=body), 400)
    assert runs_of(http, thread["id"]) == []
    assert [a["id"] for a in list_all(http, "/assistants")] == [bot["id"]] + [
        a["id"] for a in before[0]
    ]


# ----------------------------------------------------------------------------- lists


@pytest.mark.parametrize(
    "query", ["limit=0", "limit=101", "limit=-1", "limit=ten", "order=sideways"]
)
def test_list_query_out_of_range_is_refused(http: httpx.Client, query: str) -> None:
    """A 400 naming the parameter on the Assistants lists, a 422 on Parley's own."""
    name = query.split("=")[0]
    for path in ("/threads", "/assistants"):
        error = assert_invalid(http.get(f"{path}?{query}"), name)
        assert error["code"] == "invalid_value", error
    error = assert_invalid(http.get(f"/runs?{query}"))
    assert error["details"][0]["loc"] == ["query", name], error
    thread = create_thread(http)
    assert_invalid(http.get(f"/threads/{thread['id']}/messages?{query}"), name)


def test_after_cursor_not_in_the_list_is_400(http: httpx.Client, other: httpx.Client) -> None:
    create_thread(http)
    foreign = create_thread(other)
    assistant = create_assistant(http, "demo/x")
    for cursor in ("thread_nope", foreign["id"], assistant["id"]):
        assert_error(http.get("/threads", params={"after": cursor}), 400)
    thread = create_thread(http)
    add_message(http, thread["id"], "hi")
    assert_error(http.get(f"/threads/{thread['id']}/messages", params={"after": "msg_nope"}), 400)
    assert_error(http.get("/assistants", params={"after": "asst_nope"}), 400)
    assert_error(http.get("/runs", params={"after": "run_nope"}), 400)


# ------------------------------------------------------------------------ paths, methods


@pytest.mark.parametrize(
    "path", ["/v1/nothing-here", "/nothing", "/v1/runs/run_x/nothing", "/v2/threads"]
)
def test_unknown_path_is_404_json(server: Any, http: httpx.Client, path: str) -> None:
    answer = httpx.get(f"{server.base_url}{path}", headers=http.headers)
    assert_error(answer, 404)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PUT", "/threads"),
        ("DELETE", "/messages"),
        ("PATCH", "/assistants"),
        ("GET", "/process"),
        ("GET", "/completions"),
    ],
)
def test_wrong_method_is_405_json(http: httpx.Client, method: str, path: str) -> None:
    assert_error(http.request(method, path), 405)


# ------------------------------------------------------------------ awkward characters


def _post_raw(http: httpx.Client, path: str, raw: str) -> httpx.Response:
    thread = create_thread(http)
    body = raw.replace("THREAD", thread["id"]).encode()
    return http.post(path, content=body, headers={"Content-Type": "application/json"})


@pytest.mark.parametrize(
    ("path", "raw"),
    [
        ("/messages", '{"thread_id": "THREAD", "content": "x \\ud800 y"}'),
        ("/threads", '{"metadata": {"k": "\\udfff"}}'),
    ],
    ids=["message content", "thread metadata"],
)
def test_lone_surrogates_are_refused_cleanly(
    server: Any, http: httpx.Client, path: str, raw: str
) -> None:
    tracebacks = server.log().count("Traceback")
    answer = _post_raw(http, path, raw)
    assert answer.status_code in (400, 422), (answer.status_code, answer.text)
    assert_error(answer, answer.status_code)
    (thread,) = list_all(http, "/threads")
    assert messages(http, thread["id"]) == []
    assert server.log().count("Traceback") == tracebacks


@pytest.mark.parametrize(
    ("path", "raw", "field", "value"),
    [
        ("/messages", '{"thread_id": "THREAD", "content": "a\\u0000b"}', "content", "a\x00b"),
        ("/threads", '{"metadata": {"k": "a\\u0000b"}}', "metadata", {"k": "a\x00b"}),
        ("/assistants", '{"name": "a\\u0000b", "model": "demo/x"}', "name", "a\x00b"),
    ],
    ids=["message content", "thread metadata", "assistant name"],
)
def test_nul_characters_are_stored_or_refused(
    server: Any, http: httpx.Client, path: str, raw: str, field: str, value: Any
) -> None:
    """Stored exactly on both engines, or refused with a 4xx: never a 500."""
    tracebacks = server.log().count("Traceback")
    answer = _post_raw(http, path, raw)
    assert answer.status_code in (200, 201, 400, 422), (answer.status_code, answer.text)
    if answer.is_success:
        created = answer.json()
        assert created[field] == value
        assert http.get(f"{path}/{created['id']}").json()[field] == value
    else:
        assert_error(answer, answer.status_code)
        assert list_all(http, "/assistants") == []
        assert [messages(http, t["id"]) for t in list_all(http, "/threads")] == [[]]
    assert server.log().count("Traceback") == tracebacks


@pytest.mark.parametrize(
    "parameters",
    [{"type": 5}, {"type": "string"}, {"type": "object", "properties": [1]}],
    ids=["type not a string", "not an object schema", "properties not a map"],
)
def test_a_tool_whose_parameters_are_not_an_object_schema_is_400(
    http: httpx.Client, parameters: dict[str, Any]
) -> None:
    tool = {"type": "function", "function": {"name": "t", "parameters": parameters}}
    answer = http.post("/assistants", json={"name": "a", "model": "demo/x", "tools": [tool]})
    error = assert_invalid(answer)
    assert error["param"].startswith("tools[0].function.parameters"), error
    assert list_all(http, "/assistants") == []


def test_an_absurdly_long_id_is_not_echoed_back_whole(http: httpx.Client) -> None:
    answer = http.get("/runs/run_" + "x" * 5000)
    error = assert_error(answer, 404)
    assert len(error["message"]) <= 500
