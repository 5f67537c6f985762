"""Webhooks end to end: a real server, a real receiver on loopback, the openai SDK's own
verifier."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.harness import ParleyServer, tuned
from tests.webhooks.receiver import Receiver

RESPONSE_EVENTS = [
    "response.completed",
    "response.failed",
    "response.cancelled",
    "response.incomplete",
]


def make_endpoint(http: httpx.Client, url: str, events: list[str]) -> dict[str, Any]:
    made = http.post("/webhooks", json={"url": url, "events": events})
    assert made.status_code == 200, made.text
    body: dict[str, Any] = made.json()
    assert body["secret"].startswith("whsec_")
    return body


def background_response(http: httpx.Client, text: str = "hello") -> str:
    made = http.post("/responses", json={"model": "demo/x", "input": text, "background": True})
    assert made.status_code == 200, made.text
    response_id: str = made.json()["id"]
    wait_until(lambda: http.get(f"/responses/{response_id}").json()["status"] == "completed")
    return response_id


def wait_until(check: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


def deliveries(http: httpx.Client, endpoint_id: str) -> list[dict[str, Any]]:
    listed = http.get(f"/webhooks/{endpoint_id}/deliveries")
    assert listed.status_code == 200, listed.text
    data: list[dict[str, Any]] = listed.json()["data"]
    return data


def test_a_background_response_is_delivered_and_verified_by_the_openai_sdk(
    hooks_server: ParleyServer, receiver: Receiver
) -> None:
    key = hooks_server.new_user()
    with hooks_server.client(key) as http:
        endpoint = make_endpoint(http, receiver.endpoint("/done"), RESPONSE_EVENTS)
        quiet = make_endpoint(http, receiver.endpoint("/quiet"), ["response.failed"])
        # As at OpenAI, only a response run in the background gives events.
        foreground = http.post("/responses", json={"model": "demo/x", "input": "hi"})
        assert foreground.json()["status"] == "completed", foreground.text
        response_id = background_response(http)
        (got,) = receiver.wait_for("/done", 1)
        event = openai.OpenAI(api_key="unused", webhook_secret=endpoint["secret"]).webhooks.unwrap(
            got.body, got.headers
        )
        assert event.type == "response.completed"
        assert event.data.id == response_id
        assert event.id == got.headers["webhook-id"] and event.id.startswith("evt_")
        assert event.object == "event"
        time.sleep(0.5)
        assert len(receiver.at("/done")) == 1
        assert receiver.at("/quiet") == []
        assert deliveries(http, quiet["id"]) == []
        wait_until(lambda: [d["status"] for d in deliveries(http, endpoint["id"])] == ["delivered"])
        (delivery,) = deliveries(http, endpoint["id"])
        assert delivery["event_type"] == "response.completed"
        assert delivery["attempts"] == 1 and delivery["last_status_code"] == 204
        assert delivery["next_attempt_at"] is None


def test_an_assistants_run_is_delivered(hooks_server: ParleyServer, receiver: Receiver) -> None:
    key = hooks_server.new_user()
    with hooks_server.client(key) as http:
        endpoint = make_endpoint(
            http, receiver.endpoint("/runs"), ["thread.run.completed", "thread.run.failed"]
        )
        # A Responses face's event is not one this endpoint asked for.
        background_response(http)
        assistant = http.post("/assistants", json={"model": "demo/x"}).json()
        run = http.post(
            "/threads/runs",
            json={
                "assistant_id": assistant["id"],
                "thread": {"messages": [{"role": "user", "content": "hi"}]},
            },
        )
        assert run.status_code == 200, run.text
        run_id, thread_id = run.json()["id"], run.json()["thread_id"]
        (got,) = receiver.wait_for("/runs", 1)
        event = openai.OpenAI(api_key="unused").webhooks.unwrap(
            got.body, got.headers, secret=endpoint["secret"]
        )
        assert event.type == "thread.run.completed"  # type: ignore[comparison-overlap]
        payload = json.loads(got.body)
        assert payload["data"] == {"id": run_id, "thread_id": thread_id}
        time.sleep(0.5)
        assert len(receiver.at("/runs")) == 1


def test_a_receiver_failing_three_times_gets_it_at_the_fourth_attempt(
    hooks_server: ParleyServer, receiver: Receiver
) -> None:
    key = hooks_server.new_user()
    receiver.fail("/flaky", 3)
    with hooks_server.client(key) as http:
        endpoint = make_endpoint(http, receiver.endpoint("/flaky"), ["response.completed"])
        background_response(http)
        got = receiver.wait_for("/flaky", 4)
        assert len({r.headers["webhook-id"] for r in got}) == 1
        wait_until(lambda: [d["status"] for d in deliveries(http, endpoint["id"])] == ["delivered"])
        (delivery,) = deliveries(http, endpoint["id"])
        assert delivery["attempts"] == 4
        log = delivery["attempt_log"]
        assert [a["number"] for a in log] == [1, 2, 3, 4]
        assert [a["status_code"] for a in log] == [500, 500, 500, 204]
        assert all(a["duration_ms"] >= 0 for a in log)
        # Each attempt is signed anew, and every one verifies.
        hooks = openai.OpenAI(api_key="unused", webhook_secret=endpoint["secret"]).webhooks
        for r in got:
            hooks.verify_signature(r.body, r.headers)
    scraped = httpx.get(f"{hooks_server.base_url}/metrics").text
    counts = {
        outcome: float(value)
        for outcome, value in re.findall(
            r'^parley_webhook_attempts_total\{outcome="(\w+)"\} (\S+)$', scraped, re.M
        )
    }
    assert counts.get("retry", 0) >= 3 and counts.get("delivered", 0) >= 1, counts


def test_replay_sends_a_delivery_again(hooks_server: ParleyServer, receiver: Receiver) -> None:
    key = hooks_server.new_user()
    with hooks_server.client(key) as http:
        endpoint = make_endpoint(http, receiver.endpoint("/again"), ["response.completed"])
        background_response(http)
        (first,) = receiver.wait_for("/again", 1)
        wait_until(lambda: [d["status"] for d in deliveries(http, endpoint["id"])] == ["delivered"])
        (delivery,) = deliveries(http, endpoint["id"])
        replayed = http.post(f"/webhooks/{endpoint['id']}/deliveries/{delivery['id']}/replay")
        assert replayed.status_code == 200, replayed.text
        assert replayed.json()["status"] == "pending"
        got = receiver.wait_for("/again", 2)
        assert got[1].headers["webhook-id"] == first.headers["webhook-id"]
        assert got[1].body == first.body


def test_rotating_the_secret_makes_old_signatures_fail(
    hooks_server: ParleyServer, receiver: Receiver
) -> None:
    key = hooks_server.new_user()
    with hooks_server.client(key) as http:
        endpoint = make_endpoint(http, receiver.endpoint("/rotated"), ["response.completed"])
        rotated = http.post(f"/webhooks/{endpoint['id']}/rotate_secret")
        assert rotated.status_code == 200, rotated.text
        new_secret = rotated.json()["secret"]
        assert new_secret != endpoint["secret"]
        assert "secret" not in http.get(f"/webhooks/{endpoint['id']}").json()
        assert all("secret" not in e for e in http.get("/webhooks").json()["data"])
        background_response(http)
        (got,) = receiver.wait_for("/rotated", 1)
        hooks = openai.OpenAI(api_key="unused").webhooks
        hooks.verify_signature(got.body, got.headers, secret=new_secret)
        with pytest.raises(openai.InvalidWebhookSignatureError):
            hooks.verify_signature(got.body, got.headers, secret=endpoint["secret"])


def test_bad_input_is_refused(hooks_server: ParleyServer, receiver: Receiver) -> None:
    key = hooks_server.new_user()
    other = hooks_server.new_user()
    with hooks_server.client(key) as http:
        for url in (
            "http://10.0.0.1/hook",  # private
            "http://169.254.169.254/latest",  # cloud metadata
            "http://127.0.0.2:9/hook",  # loopback, not the allowed 127.0.0.1
            "ftp://example.com/hook",
            "http://user:pw@127.0.0.1/hook",
        ):
            refused = http.post("/webhooks", json={"url": url, "events": ["response.completed"]})
            assert refused.status_code == 400, (url, refused.text)
            assert refused.json()["error"]["param"] == "url", refused.text
        unknown = http.post(
            "/webhooks", json={"url": receiver.endpoint("/x"), "events": ["response.exploded"]}
        )
        assert unknown.status_code == 400
        assert unknown.json()["error"]["param"] == "events"
        assert "response.exploded" in unknown.json()["error"]["message"]
        none = http.post("/webhooks", json={"url": receiver.endpoint("/x"), "events": []})
        assert none.status_code == 400
        assert http.get("/webhooks").json()["data"] == []
        endpoint = make_endpoint(http, receiver.endpoint("/x"), ["response.completed"])
    with hooks_server.client(other) as http:
        eid = endpoint["id"]
        assert http.get(f"/webhooks/{eid}").status_code == 404
        assert http.delete(f"/webhooks/{eid}").status_code == 404
        assert http.post(f"/webhooks/{eid}/rotate_secret").status_code == 404
        assert http.get(f"/webhooks/{eid}/deliveries").status_code == 404
        assert http.post(f"/webhooks/{eid}/deliveries/whd_x/replay").status_code == 404
        assert http.get("/webhooks").json()["data"] == []
    with hooks_server.client(key) as http:
        assert http.delete(f"/webhooks/{endpoint['id']}").status_code == 200
        assert http.get(f"/webhooks/{endpoint['id']}").status_code == 404


def test_a_response_that_calls_a_tool_is_completed_once(
    hooks_server: ParleyServer, receiver: Receiver
) -> None:
    key = hooks_server.new_user()
    tool = {
        "type": "function",
        "name": "lookup",
        "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
    }
    with hooks_server.client(key) as http:
        make_endpoint(http, receiver.endpoint("/tools"), RESPONSE_EVENTS)
        made = http.post(
            "/responses",
            json={"model": "demo/x", "input": "lookup cats", "tools": [tool], "background": True},
        )
        first = made.json()["id"]
        (got,) = receiver.wait_for("/tools", 1)
        assert json.loads(got.body)["data"] == {"id": first}
        call = next(
            item
            for item in http.get(f"/responses/{first}").json()["output"]
            if item["type"] == "function_call"
        )
        following = http.post(
            "/responses",
            json={
                "model": "demo/x",
                "previous_response_id": first,
                "input": [
                    {"type": "function_call_output", "call_id": call["call_id"], "output": "ok"}
                ],
                "tools": [tool],
                "background": True,
            },
        )
        assert following.status_code == 200, following.text
        got = receiver.wait_for("/tools", 2)
        time.sleep(0.5)
        got = receiver.at("/tools")
        assert [json.loads(r.body)["data"]["id"] for r in got] == [first, following.json()["id"]]
        assert {json.loads(r.body)["type"] for r in got} == {"response.completed"}


def test_the_docs_verifier_example_verifies_a_delivery(
    hooks_server: ParleyServer, receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "webhooks.md").read_text()
    (example,) = re.findall(r"```python\n(.*?)```", doc, re.S)
    key = hooks_server.new_user()
    with hooks_server.client(key) as http:
        endpoint = make_endpoint(http, receiver.endpoint("/docs"), ["response.completed"])
        response_id = background_response(http)
    (got,) = receiver.wait_for("/docs", 1)
    names: dict[str, Any] = {}
    exec(example.replace('"whsec_..."', repr(endpoint["secret"])), names)
    names["handle"](got.body, got.headers)
    assert capsys.readouterr().out == f"done: {response_id}\n"
    with pytest.raises(openai.InvalidWebhookSignatureError):
        names["handle"](got.body.replace(b"}}", b"} }"), got.headers)


def test_a_run_that_waits_for_tool_outputs_and_is_cancelled(
    hooks_server: ParleyServer, receiver: Receiver
) -> None:
    key = hooks_server.new_user()
    tool = {
        "type": "function",
        "function": {
            "name": "lookup",
            "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
        },
    }
    every = [
        "thread.run.requires_action",
        "thread.run.completed",
        "thread.run.failed",
        "thread.run.cancelled",
        "thread.run.incomplete",
        "thread.run.expired",
    ]
    with hooks_server.client(key) as http:
        make_endpoint(http, receiver.endpoint("/paused"), every)
        assistant = http.post("/assistants", json={"model": "demo/x", "tools": [tool]}).json()
        run = http.post(
            "/threads/runs",
            json={
                "assistant_id": assistant["id"],
                "thread": {"messages": [{"role": "user", "content": "lookup cats"}]},
            },
        ).json()
        (paused,) = receiver.wait_for("/paused", 1)
        assert json.loads(paused.body)["type"] == "thread.run.requires_action"
        cancelled = http.post(f"/threads/{run['thread_id']}/runs/{run['id']}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        got = receiver.wait_for("/paused", 2)
    payloads = [json.loads(r.body) for r in got]
    assert [p["type"] for p in payloads] == ["thread.run.requires_action", "thread.run.cancelled"]
    assert all(p["data"] == {"id": run["id"], "thread_id": run["thread_id"]} for p in payloads)
    assert payloads[0]["id"] != payloads[1]["id"]


def test_a_server_sends_what_it_writes_without_waiting_for_its_look(
    upstream: Any, tmp_path: Path, receiver: Receiver
) -> None:
    """With an hour between its looks for due deliveries, a server still sends the events
    its runs write (woken by their commit), an API replay, and a retry when it falls due."""
    from tests.harness import FreshDatabase, free_port, provider_config
    from tests.webhooks.conftest import WEBHOOK_ENV

    db = FreshDatabase(tmp_path)
    srv = ParleyServer(
        database_url=db.url,
        workdir=tmp_path,
        config=provider_config(upstream.base_url, free_port()),
        env=tuned(WEBHOOK_ENV, webhook_poll_seconds=3600),
    )
    try:
        srv.start()
        with srv.client(srv.new_user()) as http:
            endpoint = make_endpoint(http, receiver.endpoint("/flaky"), RESPONSE_EVENTS)
            receiver.fail("/flaky", times=1)  # the first attempt fails: a retry follows
            background_response(http)
            receiver.wait_for("/flaky", 2)
            wait_until(lambda: deliveries(http, endpoint["id"])[0]["status"] == "delivered")
            (delivery,) = deliveries(http, endpoint["id"])
            replayed = http.post(f"/webhooks/{endpoint['id']}/deliveries/{delivery['id']}/replay")
            assert replayed.status_code == 200, replayed.text
            receiver.wait_for("/flaky", 3)
        srv.stop()
        srv.assert_clean_log()
    finally:
        srv.stop()
        db.drop()
