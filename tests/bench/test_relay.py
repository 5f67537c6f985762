"""``bench/relay.py``, the bare relay of the head-to-head bench, as a real process between
an HTTP client and the fake upstream: every chunk arrives, re-serialized, then ``[DONE]``;
an upstream error passes through."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from parley.testing.fake_upstream import expected_text

RELAY = Path(__file__).resolve().parents[2] / "bench" / "relay.py"


@pytest.fixture
def relay(upstream: Any) -> Iterator[str]:
    command = [sys.executable, str(RELAY), "--upstream", upstream.base_url, "--port", "0"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline().decode().strip()
            assert line.startswith("listening on "), line
            yield line.removeprefix("listening on ")
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def test_relays_every_chunk_then_done(relay: str, upstream: Any) -> None:
    upstream.reset()
    body = {"model": "text:5:1", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    answer = httpx.post(f"{relay}/v1/chat/completions", json=body, timeout=10)

    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/event-stream")
    events = [e for e in answer.text.split("\n\n") if e]
    assert all(e.startswith("data: ") for e in events)
    assert events[-1] == "data: [DONE]"
    chunks = [orjson.loads(e.removeprefix("data: ")) for e in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert text == expected_text(5)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert upstream.requests == [body]


def test_passes_an_upstream_error_through(relay: str) -> None:
    body = {"model": "error:429", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    answer = httpx.post(f"{relay}/v1/chat/completions", json=body, timeout=10)

    assert answer.status_code == 429
    assert answer.json()["error"]["message"] == "fake upstream error 429"
