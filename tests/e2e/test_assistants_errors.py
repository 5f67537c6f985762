"""Errors of the Assistants v2 paths (``/v1/assistants``, ``/v1/threads`` and everything
below them) over real HTTP: OpenAI's shape ``{"error": {"message", "type", "param",
"code"}}`` and OpenAI's statuses, a body, query or path parameter that fails validation
being a 400 that names the field in ``param``; Parley's codes are kept (``thread_busy``,
``run_not_found``, ...). Parley's own paths keep Parley's shape and their 422.

``assert_error`` and ``assert_invalid`` check the shape each path must have (see
``tests/e2e/helpers.py``); the tests here say which status, code and ``param``."""

from __future__ import annotations

from typing import Any

import httpx

from tests.e2e.helpers import (
    WEATHER,
    assert_error,
    assert_invalid,
    wait_until,
)
from tests.e2e.test_assistants_api import assistant, finished, thread

MIB = 1024 * 1024


def _run(http: httpx.Client, thread_id: str, assistant_id: str) -> dict[str, Any]:
    answer = http.post(f"/threads/{thread_id}/runs", json={"assistant_id": assistant_id})
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def _waiting(http: httpx.Client) -> dict[str, Any]:
    """A run of the Assistants API that waits for one tool output."""
    bot = assistant(http, "fake/tools:1", tools=[WEATHER])
    t = thread(http, "weather please")
    run = _run(http, t["id"], bot["id"])

    def waits() -> dict[str, Any] | None:
        now = http.get(f"/threads/{t['id']}/runs/{run['id']}").json()
        return now if now["status"] == "requires_action" else None

    return dict(wait_until(waits, what="the run to wait for its tool output"))


def test_assistants(http: httpx.Client, other: httpx.Client) -> None:
    error = assert_invalid(
        http.post("/assistants", json={"model": "demo/x", "colour": 1}), "colour"
    )
    assert (error["code"], error["message"]) == (
        "unknown_parameter",
        "Unknown parameter: 'colour'.",
    )
    error = assert_invalid(http.post("/assistants", json={"name": "x"}), "model")
    assert error["code"] == "missing_required_parameter", error
    assert_invalid(http.get("/assistants", params={"limit": 101}), "limit")
    assert_invalid(http.get("/assistants", params={"order": "sideways"}), "order")
    bot = assistant(http, "demo/x")
    assert_invalid(http.post(f"/assistants/{bot['id']}", json={"top_p": "high"}), "top_p")
    theirs = assistant(other, "demo/x")
    for missing in ("asst_" + "0" * 24, theirs["id"]):
        error = assert_error(http.get(f"/assistants/{missing}"), 404, "assistant_not_found")
        assert error["param"] is None, error
        assert_error(http.delete(f"/assistants/{missing}"), 404, "assistant_not_found")
    error = assert_error(http.post("/assistants", json={"model": "nowhere/x"}), 400)
    assert (error["param"], error["code"]) == ("model", "unknown_model"), error
    assert http.get("/assistants").json()["data"] == [bot]


def test_threads_and_messages(http: httpx.Client, other: httpx.Client) -> None:
    assert_invalid(http.post("/threads", json={"metadata": ["a"]}), "metadata")
    error = assert_invalid(http.post("/threads", json={"messages": [{"role": "user"}]}))
    assert (error["param"], error["code"]) == ("messages[0].content", "missing_required_parameter")
    t = thread(http, "Hi")
    theirs = thread(other, "Mine")
    assert_error(http.get(f"/threads/{theirs['id']}"), 404, "thread_not_found")
    assert_error(http.post(f"/threads/{theirs['id']}", json={"metadata": {}}), 404)
    path = f"/threads/{t['id']}/messages"
    assert_invalid(http.post(path, json={"role": "system", "content": "x"}), "role")
    assert_invalid(http.post(path, json={"content": "x", "file_ids": []}), "file_ids")
    assert_invalid(http.get(path, params={"limit": 0}), "limit")
    assert_invalid(http.get(path, params={"order": "sideways"}), "order")
    assert_error(http.get(path, params={"after": "msg_nope"}), 400)
    assert_error(http.get(f"{path}/msg_nope"), 404, "message_not_found")
    [mine] = http.get(path).json()["data"]
    assert_error(http.get(f"/threads/{theirs['id']}/messages/{mine['id']}"), 404)
    assert_error(http.get(f"/threads/{theirs['id']}/messages"), 404, "thread_not_found")
    assert [m["id"] for m in http.get(path).json()["data"]] == [mine["id"]]


def test_thread_runs(http: httpx.Client) -> None:
    stall = assistant(http, "fake/stall:1")
    t = thread(http, "Hi")
    path = f"/threads/{t['id']}/runs"
    assert_invalid(
        http.post(path, json={"assistant_id": stall["id"], "temperature": 3}), "temperature"
    )
    assert_invalid(http.post(path, json={}), "assistant_id")
    for stream in (False, True):  # refused before the first byte of a stream
        body = {"assistant_id": "asst_" + "0" * 24, "stream": stream}
        assert_error(http.post(path, json=body), 404, "assistant_not_found")
    body = {"assistant_id": stall["id"], "thread": {"messages": "Hi"}}
    assert_invalid(http.post("/threads/runs", json=body), "thread.messages")
    run = _run(http, t["id"], stall["id"])
    for stream in (False, True):
        body = {"assistant_id": stall["id"], "stream": stream}
        error = assert_error(http.post(path, json=body), 409, "thread_busy")
        assert error["param"] is None and run["id"] in error["message"], error
    busy = http.post(f"/threads/{t['id']}/messages", json={"content": "more"})
    assert_error(busy, 409, "thread_busy")
    assert_invalid(http.get(path, params={"limit": "ten"}), "limit")
    assert_error(http.get(f"{path}/run_nope"), 404, "run_not_found")
    outputs = f"{path}/{run['id']}/submit_tool_outputs"
    assert_invalid(http.post(outputs, json={"tool_outputs": []}), "tool_outputs")
    assert http.post(f"{path}/{run['id']}/cancel").status_code == 200
    finished(http, t["id"], run["id"])
    assert_error(http.post(f"{path}/{run['id']}/cancel"), 409, "run_finished")


def test_tool_outputs(http: httpx.Client) -> None:
    run = _waiting(http)
    [call] = run["required_action"]["submit_tool_outputs"]["tool_calls"]
    path = f"/threads/{run['thread_id']}/runs/{run['id']}"
    wrong = {"tool_outputs": [{"tool_call_id": "call_nope", "output": "x"}]}
    assert_error(http.post(f"{path}/submit_tool_outputs", json=wrong), 400, "tool_call_not_found")
    unasked = {"tool_outputs": [{"tool_call_id": call["id"], "output": "x", "is_error": True}]}
    assert_invalid(
        http.post(f"{path}/submit_tool_outputs", json=unasked), "tool_outputs[0].is_error"
    )
    assert http.post(f"{path}/cancel").status_code == 200
    finished(http, run["thread_id"], run["id"])
    late = {"tool_outputs": [{"tool_call_id": call["id"], "output": "too late"}]}
    answer = http.post(f"{path}/submit_tool_outputs", json=late)  # the run waits no more
    error = assert_error(answer, 409)
    assert error["code"] in ("action_closed", "run_not_waiting"), error


def test_run_steps(http: httpx.Client) -> None:
    bot = assistant(http, "fake/text:1")
    t = thread(http, "Hi")
    run = finished(http, t["id"], _run(http, t["id"], bot["id"])["id"])
    steps = f"/threads/{t['id']}/runs/{run['id']}/steps"
    [step] = http.get(steps).json()["data"]
    assert_invalid(http.get(steps, params={"limit": 0}), "limit")
    assert_invalid(http.get(steps, params={"order": "up"}), "order")
    assert_error(http.get(f"{steps}/step_nope"), 404, "run_step_not_found")
    elsewhere = thread(http)
    moved = f"/threads/{elsewhere['id']}/runs/{run['id']}/steps"
    assert_error(http.get(moved), 404, "run_not_found")
    assert_error(http.get(f"{moved}/{step['id']}"), 404, "run_not_found")


def test_refusals_before_any_route(server: Any, http: httpx.Client) -> None:
    """Authentication, the request guard (size, NUL) and routing answer in OpenAI's shape
    on these paths too."""
    t = thread(http)
    anonymous = httpx.get(f"{server.base_url}/v1/threads/{t['id']}")
    assert_error(anonymous, 401, "missing_api_key")
    # curl -H "Authorization: Bearer $KEY" with $KEY unset sends the scheme alone: told so,
    # not told to use the header it used.
    unset = httpx.get(
        f"{server.base_url}/v1/threads/{t['id']}", headers={"Authorization": "Bearer"}
    )
    assert_error(unset, 401, "missing_api_key")
    assert "no key after it" in unset.json()["error"]["message"]
    basic = httpx.get(
        f"{server.base_url}/v1/threads/{t['id']}", headers={"Authorization": "Basic x"}
    )
    assert_error(basic, 401, "bad_auth_header")
    wrong = httpx.get(f"{server.base_url}/v1/assistants", headers={"X-API-Key": "pk_nope"})
    assert_error(wrong, 401, "invalid_api_key")
    big = http.post(f"/threads/{t['id']}/messages", json={"content": "x" * (MIB + 16)})
    assert_error(big, 413)
    assert_error(http.get("/threads/thread_%00x/runs"), 404)
    assert_error(http.get("/assistants", params={"after": "asst_\x00"}), 400)
    moved = http.put(f"/threads/{t['id']}")
    assert_error(moved, 405)
    assert moved.headers["allow"] == "DELETE, GET, POST"
    assert_error(http.get(f"/threads/{t['id']}/nothing"), 404)
    assert http.get(f"/threads/{t['id']}/messages").json()["data"] == []


def test_parleys_own_paths_keep_their_shape(http: httpx.Client) -> None:
    """The same failures on Parley's own paths: Parley's shape, and 422 for validation."""
    t = thread(http, "Hi")
    native = assert_error(http.get("/runs/run_nope"), 404, "run_not_found")
    assert set(native) == {"type", "message", "code"}, native
    assert_error(http.get(f"/threads/{t['id']}/runs/run_nope"), 404, "run_not_found")
    body = {"thread_id": t["id"], "content": "x", "colour": 1}
    error = assert_invalid(http.post("/messages", json=body))
    assert error["details"][0]["loc"] == ["body", "colour"], error
    assert_invalid(http.post(f"/threads/{t['id']}/messages", json=body), "thread_id")
    assert_invalid(http.get("/runs", params={"limit": 0}))
    assert_invalid(http.get(f"/threads/{t['id']}/runs", params={"limit": 0}), "limit")
