"""Deliveries survive a server killed mid-attempt, and two replicas on one database send
each event once."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import ParleyServer, replicas, restartable_server
from tests.webhooks.conftest import WEBHOOK_ENV
from tests.webhooks.receiver import Receiver
from tests.webhooks.test_webhooks import RESPONSE_EVENTS, deliveries, make_endpoint, wait_until


@pytest.fixture
def restartable(upstream: Any, tmp_path: Path) -> Iterator[ParleyServer]:
    yield from restartable_server(upstream.base_url, tmp_path, env=WEBHOOK_ENV)


def test_a_delivery_cut_by_kill_9_is_sent_after_the_restart(
    restartable: ParleyServer, receiver: Receiver
) -> None:
    srv = restartable
    key = srv.new_user()
    receiver.hang("/slow")
    with srv.client(key) as http:
        endpoint = make_endpoint(http, receiver.endpoint("/slow"), ["response.completed"])
        made = http.post("/responses", json={"model": "demo/x", "input": "hi", "background": True})
        assert made.status_code == 200, made.text
    assert receiver.hanging.wait(20), "the first attempt never came"
    srv.kill()
    srv.start()
    got = receiver.wait_for("/slow", 2, timeout=30)
    assert got[0].headers["webhook-id"] == got[1].headers["webhook-id"]
    with srv.client(key) as http:
        wait_until(lambda: [d["status"] for d in deliveries(http, endpoint["id"])] == ["delivered"])
        (delivery,) = deliveries(http, endpoint["id"])
    # The killed attempt counted, but left no outcome: its claim ran out and was taken again.
    assert delivery["attempts"] == 2
    assert [(a["number"], a["status_code"]) for a in delivery["attempt_log"]] == [(2, 204)]
    receiver.release()


def test_two_replicas_deliver_each_event_once(
    upstream: Any, tmp_path: Path, receiver: Receiver
) -> None:
    for servers in replicas(upstream.base_url, tmp_path, 2, env=WEBHOOK_ENV):
        key = servers[0].new_user()
        with servers[0].client(key) as http:
            make_endpoint(http, receiver.endpoint("/both"), ["response.completed"])
        ids = []
        for n in range(12):
            with servers[n % 2].client(key) as http:
                made = http.post(
                    "/responses", json={"model": "demo/x", "input": f"n{n}", "background": True}
                )
                assert made.status_code == 200, made.text
                ids.append(made.json()["id"])
        got = receiver.wait_for("/both", 12, timeout=40)
        time.sleep(1.5)
        got = receiver.at("/both")
        counts = Counter(r.headers["webhook-id"] for r in got)
        assert len(counts) == 12 and set(counts.values()) == {1}, counts


def test_a_turn_killed_with_its_server_is_delivered_incomplete_after_the_restart(
    restartable: ParleyServer, receiver: Receiver
) -> None:
    srv = restartable
    key = srv.new_user()
    with srv.client(key) as http:
        make_endpoint(http, receiver.endpoint("/swept"), RESPONSE_EVENTS)
        made = http.post(
            "/responses", json={"model": "fake/stall:3", "input": "hi", "background": True}
        )
        assert made.status_code == 200, made.text
        response_id = made.json()["id"]
        wait_until(lambda: http.get(f"/responses/{response_id}").json()["status"] == "in_progress")
    srv.kill()
    srv.start()
    (got,) = receiver.wait_for("/swept", 1, timeout=30)
    payload = json.loads(got.body)
    assert payload["type"] == "response.incomplete"
    assert payload["data"] == {"id": response_id}
    with srv.client(key) as http:
        assert http.get(f"/responses/{response_id}").json()["status"] == "incomplete"


def test_a_server_stopped_mid_attempt_gives_its_claim_back(
    restartable: ParleyServer, receiver: Receiver
) -> None:
    srv = restartable
    key = srv.new_user()
    receiver.hang("/stopped")
    with srv.client(key) as http:
        endpoint = make_endpoint(http, receiver.endpoint("/stopped"), ["response.completed"])
        made = http.post("/responses", json={"model": "demo/x", "input": "hi", "background": True})
        assert made.status_code == 200, made.text
    assert receiver.hanging.wait(20), "the first attempt never came"
    srv.stop()
    srv.start()
    receiver.wait_for("/stopped", 2, timeout=30)
    with srv.client(key) as http:
        wait_until(lambda: [d["status"] for d in deliveries(http, endpoint["id"])] == ["delivered"])
        (delivery,) = deliveries(http, endpoint["id"])
    # Given back, the cut attempt does not count: the next one is number 1 again.
    assert delivery["attempts"] == 1
    assert [(a["number"], a["status_code"]) for a in delivery["attempt_log"]] == [(1, 204)]
    srv.assert_clean_log()


@pytest.fixture
def impatient(upstream: Any, tmp_path: Path) -> Iterator[ParleyServer]:
    """Retries for a second and a half only."""
    env = {**WEBHOOK_ENV, "PARLEY_WEBHOOK_RETRY_HOURS": str(1.5 / 3600)}
    yield from restartable_server(upstream.base_url, tmp_path, env=env)


def test_a_delivery_that_keeps_failing_ends_failed_and_a_replay_sends_it(
    impatient: ParleyServer, receiver: Receiver
) -> None:
    srv = impatient
    key = srv.new_user()
    receiver.fail("/down", 1000)
    with srv.client(key) as http:
        endpoint = make_endpoint(http, receiver.endpoint("/down"), ["response.completed"])
        made = http.post("/responses", json={"model": "demo/x", "input": "hi", "background": True})
        assert made.status_code == 200, made.text
        wait_until(lambda: [d["status"] for d in deliveries(http, endpoint["id"])] == ["failed"])
        (failed,) = deliveries(http, endpoint["id"])
        tried = len(receiver.at("/down"))
        assert failed["attempts"] == tried >= 2
        assert failed["last_status_code"] == 500 and failed["next_attempt_at"] is None
        time.sleep(0.5)
        assert len(receiver.at("/down")) == tried  # no more attempts
        receiver.fail("/down", 0)
        replayed = http.post(f"/webhooks/{endpoint['id']}/deliveries/{failed['id']}/replay")
        assert replayed.status_code == 200, replayed.text
        wait_until(lambda: [d["status"] for d in deliveries(http, endpoint["id"])] == ["delivered"])
        (delivery,) = deliveries(http, endpoint["id"])
        assert delivery["attempts"] == tried + 1
        assert delivery["attempt_log"][-1]["status_code"] == 204
