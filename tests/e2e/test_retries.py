"""Retries before the first token: a provider that is briefly unwell is tried again, and the
turn streams as if nothing happened; a provider that stays unwell fails the turn after its
retries. (Provider "patient" retries twice, 0.05 s apart at first; "fake" never retries.)"""

from __future__ import annotations

from typing import Any

import httpx

from parley.testing.fake_upstream import expected_text
from tests.e2e.helpers import create_assistant
from tests.e2e.sse import stream_events


def _turn(http: httpx.Client, model: str) -> list[Any]:
    bot = create_assistant(http, model)
    with http.stream("POST", "/process", json={"assistant_id": bot["id"], "content": "hi"}) as r:
        assert r.status_code == 200
        return list(stream_events(r))


def test_a_briefly_unwell_upstream_is_tried_again(http: httpx.Client, upstream: Any) -> None:
    model = "flaky:2:503"
    upstream.flaky_calls.pop(model, None)
    events = _turn(http, f"patient/{model}")
    assert events[-1].data["status"] == "completed"
    text = "".join(e.data["text"] for e in events if e.event == "content.delta")
    assert text == expected_text()
    assert upstream.flaky_calls[model] == 3  # two 503s, then the answer


def test_an_upstream_that_stays_unwell_fails_after_the_retries(
    http: httpx.Client, upstream: Any
) -> None:
    model = "flaky:9:429"
    upstream.flaky_calls.pop(model, None)
    events = _turn(http, f"patient/{model}")
    assert [e.event for e in events[-4:]] == ["error", "usage", "run.status", "done"]
    assert events[-4].data["code"] == "upstream_rate_limited"
    assert events[-1].data["status"] == "failed"
    assert upstream.flaky_calls[model] == 3  # the first try and two retries


def test_a_provider_without_retries_fails_at_once(http: httpx.Client, upstream: Any) -> None:
    model = "flaky:1:503"
    upstream.flaky_calls.pop(model, None)
    events = _turn(http, f"fake/{model}")
    assert events[-1].data["status"] == "failed"
    assert upstream.flaky_calls[model] == 1
