"""The Prometheus metrics (``parley.metrics``, docs/metrics.md) of a real ``parley serve``:
a known workload through the fake upstream, then a scrape of ``/metrics`` read with
prometheus-client's own parser."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.helpers import create_assistant, get_run, live_turn, wait_until
from tests.e2e.sse import stream_events
from tests.harness import FreshDatabase, ParleyServer, free_port, provider_config

TOKEN = "metrics-" + secrets.token_hex(8)
_KNOWN = "".join(f'\n[providers.fake.models."{m}"]\n' for m in ("text:5", "text:4", "error:500"))
TURNS = 3
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _server(upstream: Any, tmp: Path, env: dict[str, str]) -> Iterator[ParleyServer]:
    database = FreshDatabase(tmp)
    srv = ParleyServer(
        database_url=database.url,
        workdir=tmp,
        # The workload's models are configured: only known models are labels of their own.
        config=provider_config(upstream.base_url, free_port()) + _KNOWN,
        env=env,
    ).start()
    try:
        yield srv
    finally:
        srv.stop()
        srv.assert_clean_log()
        database.drop()


@pytest.fixture(scope="module")
def server(upstream: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ParleyServer]:
    """A server of this module's own, so that every count below is the workload's."""
    yield from _server(
        upstream, tmp_path_factory.mktemp("metrics"), {"PARLEY_METRICS_TOKEN": TOKEN}
    )


def scrape(base_url: str, token: str | None = TOKEN) -> Samples:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    answer = httpx.get(f"{base_url}/metrics", headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def label_values(samples: Samples, label: str) -> set[str]:
    return {dict(labels)[label] for _, labels in samples if label in dict(labels)}


def _turn(http: httpx.Client, assistant_id: str) -> dict[str, Any]:
    """One flow B turn to its end; its ``usage`` event."""
    body = {"assistant_id": assistant_id, "content": "count my words please"}
    with http.stream("POST", "/process", json=body) as response:
        assert response.status_code == 200
        events = list(stream_events(response))
    assert events[-1].data["status"] == "completed", events[-1]
    return next(e.data for e in events if e.event == "usage")


def test_a_known_workload_is_counted_exactly(server: ParleyServer) -> None:
    key = server.new_user()
    with server.client(key) as http:
        bot = create_assistant(http, "fake/text:5")
        usages = [_turn(http, bot["id"]) for _ in range(TURNS)]
        thread_id = get_run(http, usages[0]["run_id"])["thread_id"]
        assert http.get(f"/threads/{thread_id}").status_code == 200
        assert http.get(f"/threads/{thread_id}").status_code == 200
        chat = {
            "model": "fake/text:4",
            "messages": [{"role": "user", "content": "two words"}],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        with http.stream("POST", "/chat/completions", json=chat) as response:
            assert response.status_code == 200
            lines = [line for line in response.iter_lines() if line.startswith("data: {")]
        chat_usage = httpx.Response(200, content=lines[-1][len("data: ") :]).json()["usage"]
    samples = scrape(server.base_url)

    assert value(samples, "parley_turns_total", status="completed") == TURNS
    fake_text = {"provider": "fake", "model": "text:5"}
    tokens = "parley_upstream_tokens_total"
    assert value(samples, tokens, **fake_text, direction="input") == sum(
        u["input_tokens"] for u in usages
    )
    assert value(samples, tokens, **fake_text, direction="output") == 5 * TURNS
    assert sum(u["output_tokens"] for u in usages) == 5 * TURNS
    fake_chat = {"provider": "fake", "model": "text:4"}
    assert value(samples, tokens, **fake_chat, direction="input") == chat_usage["prompt_tokens"]
    assert value(samples, tokens, **fake_chat, direction="output") == 4
    for labels, calls in ((fake_text, TURNS), (fake_chat, 1)):
        assert value(samples, "parley_upstream_call_duration_seconds_count", **labels) == calls
        assert value(samples, "parley_upstream_first_token_seconds_count", **labels) == calls

    requests = "parley_http_request_duration_seconds_count"
    ok = {"method": "POST", "status": "200"}
    assert value(samples, requests, route="/v1/process", **ok) == TURNS  # a fast path
    assert value(samples, requests, route="/v1/chat/completions", **ok) == 1  # a fast path
    assert value(samples, requests, route="/v1/assistants", method="POST", status="200") == 1
    thread = {"route": "/v1/threads/{thread_id}", "method": "GET", "status": "200"}
    assert value(samples, requests, **thread) == 2
    assert value(samples, "parley_open_streams", route="/v1/process") == 0
    assert value(samples, "parley_run_followers") == 0
    assert not label_values(samples, "route") & {f"/v1/threads/{thread_id}"}


def test_open_streams_and_upstream_failures(server: ParleyServer, upstream: Any) -> None:
    key = server.new_user()
    with server.client(key) as http:
        stalled = create_assistant(http, "fake/stall:2")
        with live_turn(http, stalled["id"], chunks=2) as live:
            run_id = live.run_id
            with http.stream("GET", f"/runs/{run_id}/events") as follower:
                events = stream_events(follower)  # kept: dropping it would close the stream
                assert next(events).event == "run.status"
                during = scrape(server.base_url)
        upstream.flaky_calls.pop("flaky:1:503", None)
        retried = create_assistant(http, "patient/flaky:1:503")
        _turn(http, retried["id"])
        failing = create_assistant(http, "fake/error:500")
        failed = {"assistant_id": failing["id"], "content": "x"}
        with http.stream("POST", "/process", json=failed) as response:
            assert response.status_code == 200
        assert get_run(http, run_id)["status"] == "cancelled"
    assert value(during, "parley_open_streams", route="/v1/process") == 1
    assert value(during, "parley_open_streams", route="/v1/runs/{run_id}/events") == 1
    assert value(during, "parley_run_followers") == 1
    after = scrape(server.base_url)
    assert value(after, "parley_run_followers") == 0
    assert value(after, "parley_open_streams", route="/v1/process") == 0
    assert value(after, "parley_turns_total", status="cancelled") == 1
    assert value(after, "parley_upstream_retries_total", provider="patient") == 1
    errors = [
        (dict(labels), count)
        for (name, labels), count in after.items()
        if name == "parley_upstream_errors_total"
    ]
    assert errors == [
        ({"provider": "fake", "model": "error:500", "type": "upstream_http_error"}, 1)
    ]
    assert value(after, "parley_turns_total", status="failed") == 1
    assert value(after, "parley_db_pool_size") >= 1
    lag = "parley_event_loop_lag_seconds_count"  # one sample a second
    wait_until(lambda: value(scrape(server.base_url), lag) >= 1, what="a loop lag sample")


def test_the_grafana_dashboard_queries_only_metrics_the_server_exports(
    server: ParleyServer,
) -> None:
    text = httpx.get(
        f"{server.base_url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
    ).text
    # A family's own name too: a panel's description may name it.
    suffixes = {"counter": ("_total", ""), "histogram": ("_bucket", "_count", "_sum", "")}
    exported = {
        name + suffix
        for family in text_string_to_metric_families(text)
        for suffix in suffixes.get(family.type, ("",))
        for name in [family.name]
    }
    dashboard = (Path(__file__).parents[2] / "deploy" / "grafana" / "parley.json").read_text()
    queried = set(re.findall(r"\b(parley_[a-z_]+)", dashboard))
    assert len(queried) >= 10, queried
    assert queried <= exported, sorted(queried - exported)


def test_the_endpoint_needs_its_token(server: ParleyServer) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        answer = httpx.get(f"{server.base_url}/metrics", headers=headers, timeout=10)
        assert answer.status_code == 401
        assert answer.json()["error"]["code"] == "invalid_metrics_token"
    # API keys are no metrics token, and the metrics token is no API key.
    admin = httpx.get(f"{server.base_url}/metrics", headers={"Authorization": "Bearer x"})
    assert admin.status_code == 401
    with server.client(TOKEN) as http:
        assert http.get("/assistants").status_code == 401


def test_unknown_paths_add_no_label_values(server: ParleyServer) -> None:
    scrape(server.base_url)  # the scrape itself is a request on /metrics: its label first
    before = scrape(server.base_url)
    random_path = f"/v1/nothing-{secrets.token_hex(6)}/here"
    for method in ("GET", "POST", "PROPFIND"):
        answer = httpx.request(method, server.base_url + random_path, timeout=10)
        assert answer.status_code in (404, 405), (method, answer.status_code)
    after = scrape(server.base_url)
    assert label_values(after, "route") - label_values(before, "route") <= {"other"}
    assert label_values(after, "method") <= {"GET", "POST", "PATCH", "DELETE", "other"}
    assert not any(random_path in str(labels) for _, labels in after)
    requests = "parley_http_request_duration_seconds_count"
    other_404 = {"route": "other", "status": "404"}
    assert (
        value(after, requests, method="GET", **other_404)
        - value(before, requests, method="GET", **other_404)
        == 1
    )
    assert (
        value(after, requests, method="other", **other_404)
        - value(before, requests, method="other", **other_404)
        == 1
    )


def test_metrics_on_a_port_of_their_own(
    upstream: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    port = free_port()
    env = {"PARLEY_METRICS_PORT": str(port), "PARLEY_METRICS_TOKEN": TOKEN}
    for srv in _server(upstream, tmp_path_factory.mktemp("metrics-port"), env):
        assert httpx.get(f"{srv.base_url}/metrics", timeout=10).status_code == 404
        own = f"http://127.0.0.1:{port}"
        denied = httpx.get(f"{own}/metrics", timeout=10)
        assert denied.status_code == 401
        assert denied.json()["error"]["code"] == "invalid_metrics_token"
        assert httpx.get(f"{own}/other", timeout=10).status_code == 404
        assert httpx.get(f"{srv.base_url}/healthz").status_code == 200
        samples = scrape(own)
        health = {"route": "/healthz", "method": "GET", "status": "200"}
        assert value(samples, "parley_http_request_duration_seconds_count", **health) >= 1


def test_hosted_tool_steps_by_kind_server_operation_and_outcome() -> None:
    from parley.metrics import PrometheusMetrics

    metrics = PrometheusMetrics()
    metrics.hosted_call("mcp", "files", "list", 0.02, False)
    metrics.hosted_call("mcp", "other", "call", 0.5, True)
    text = metrics.exposition()[0].decode()
    assert (
        'parley_hosted_tool_duration_seconds_count{kind="mcp",operation="list",outcome="ok",'
        'server="files"} 1.0' in text
    )
    assert (
        'parley_hosted_tool_duration_seconds_count{kind="mcp",operation="call",outcome="error",'
        'server="other"} 1.0' in text
    )
