"""``prompt_cache_retention`` on both OpenAI faces: accepted where OpenAI accepts it (Chat
Completions and Responses), with OpenAI's values only (``in_memory``, ``24h``), and passed
on to an OpenAI-style upstream by both."""

from __future__ import annotations

from typing import Any

import httpx

from tests.e2e.helpers import assert_invalid, marker, upstream_requests


def test_a_chat_completion_passes_it_on(http: httpx.Client, upstream: Any) -> None:
    word = marker()
    body = {
        "model": "fake/text:1",
        "messages": [{"role": "user", "content": word}],
        "prompt_cache_retention": "24h",
    }
    answer = http.post("/chat/completions", json=body)
    assert answer.status_code == 200, answer.text
    [sent] = upstream_requests(upstream, word)
    assert sent["prompt_cache_retention"] == "24h"


def test_a_response_passes_it_on(http: httpx.Client, upstream: Any) -> None:
    word = marker()
    body = {"model": "fake/text:1", "input": word, "prompt_cache_retention": "in_memory"}
    answer = http.post("/responses", json=body)
    assert answer.status_code == 200, answer.text
    [sent] = upstream_requests(upstream, word)
    assert sent["prompt_cache_retention"] == "in_memory"
    assert answer.json()["status"] == "completed"


def test_a_bad_value_is_a_400_naming_it_on_chat_completions(http: httpx.Client) -> None:
    body = {
        "model": "fake/text:1",
        "messages": [{"role": "user", "content": "hi"}],
        "prompt_cache_retention": "forever",
    }
    error = assert_invalid(http.post("/chat/completions", json=body), "prompt_cache_retention")
    assert error["code"] == "invalid_value", error


def test_a_bad_value_is_a_400_naming_it_on_responses(http: httpx.Client) -> None:
    body = {"model": "fake/text:1", "input": "hi", "prompt_cache_retention": "forever"}
    error = assert_invalid(http.post("/responses", json=body), "prompt_cache_retention")
    assert error["code"] == "invalid_value", error
