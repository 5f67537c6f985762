"""``POST /v1/chat/completions`` over HTTP, on the suite's server and its fake OpenAI-style
upstream: text, reasoning and parallel tool calls as one completion and as chunks, images,
the usage chunk, errors before and after the first byte (an upstream that fails, breaks
off or goes quiet), every refused field named, and the per-key usage count."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from parley.store.db import normalise_url
from parley.testing.fake_upstream import expected_reasoning, expected_text, tool_arguments
from tests.e2e.helpers import CLOCK, WEATHER
from tests.e2e.responses_helpers import openai_error

PNG = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQ"
    "DwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def chat(model: str, content: Any = "hi", **fields: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": content}], **fields}


def chunks_of(answer: httpx.Response) -> list[dict[str, Any]]:
    """The chunks of a streamed completion; it must end with one ``data: [DONE]``."""
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/event-stream")
    blocks = [b for b in answer.text.split("\n\n") if b.strip()]
    assert blocks[-1] == "data: [DONE]", blocks[-3:]
    return [json.loads(b.removeprefix("data: ")) for b in blocks[:-1]]


def deltas(chunks: list[dict[str, Any]], field: str) -> str:
    return "".join(c["choices"][0]["delta"].get(field) or "" for c in chunks if c.get("choices"))


def test_a_completion(http: httpx.Client, upstream: Any) -> None:
    answer = http.post("/chat/completions", json=chat("fake/text:5"))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["object"] == "chat.completion" and body["model"] == "fake/text:5"
    (choice,) = body["choices"]
    assert choice["message"]["content"] == expected_text(5)
    assert choice["finish_reason"] == "stop" and "tool_calls" not in choice["message"]
    usage = body["usage"]
    assert usage["completion_tokens"] == 5
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    sent = upstream.requests[-1]
    assert sent["model"] == "text:5" and sent["messages"][-1]["content"] == "hi"


def test_chunks_as_openai_sends_them(http: httpx.Client) -> None:
    chunks = chunks_of(http.post("/chat/completions", json=chat("fake/text:6", stream=True)))
    first, *middle, closing = chunks
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    assert deltas(middle, "content") == expected_text(6)
    assert len(middle) == 6  # a chunk for each of the provider's
    assert closing["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "stop",
    }
    assert all("usage" not in c for c in chunks)  # not asked for
    ids = {(c["id"], c["created"], c["object"], c["model"]) for c in chunks}
    assert len(ids) == 1


def test_the_usage_chunk(http: httpx.Client) -> None:
    body = chat("fake/text:4", stream=True, stream_options={"include_usage": True})
    *chunks, last = chunks_of(http.post("/chat/completions", json=body))
    assert all(c["usage"] is None for c in chunks)
    assert last["choices"] == [] and last["usage"]["completion_tokens"] == 4
    assert last["usage"]["completion_tokens_details"]["reasoning_tokens"] == 0


def test_reasoning_as_reasoning_content(http: httpx.Client) -> None:
    body = chat("fake/reasoning:3", stream=True, stream_options={"include_usage": True})
    chunks = chunks_of(http.post("/chat/completions", json=body))
    assert deltas(chunks, "reasoning_content") == expected_reasoning(3)
    assert deltas(chunks, "content") == expected_text(3)
    assert chunks[-1]["usage"]["completion_tokens_details"]["reasoning_tokens"] == 3
    whole = http.post("/chat/completions", json=chat("fake/reasoning:3")).json()
    message = whole["choices"][0]["message"]
    assert (message["reasoning_content"], message["content"]) == (
        expected_reasoning(3),
        expected_text(3),
    )


def test_parallel_tool_calls_in_chunks_and_whole(http: httpx.Client, upstream: Any) -> None:
    body = chat("fake/tools:2", "weather and time?", tools=[WEATHER, CLOCK], stream=True)
    chunks = chunks_of(http.post("/chat/completions", json=body))
    fragments = [f for c in chunks for f in c["choices"][0]["delta"].get("tool_calls", [])]
    heads = [f for f in fragments if "id" in f]
    assert [(h["index"], h["type"], h["function"]["name"]) for h in heads] == [
        (0, "function", "get_weather"),
        (1, "function", "get_time"),
    ]
    for index, tool in enumerate((WEATHER, CLOCK)):
        arguments = "".join(
            f["function"].get("arguments", "") for f in fragments if f["index"] == index
        )
        assert json.loads(arguments) == tool_arguments(tool, index)
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    sent = upstream.requests[-1]
    assert [t["function"]["name"] for t in sent["tools"]] == ["get_weather", "get_time"]
    whole = http.post("/chat/completions", json={**body, "stream": False}).json()
    calls = whole["choices"][0]["message"]["tool_calls"]
    assert [c["function"]["name"] for c in calls] == ["get_weather", "get_time"]
    assert whole["choices"][0]["message"]["content"] is None
    assert whole["choices"][0]["finish_reason"] == "tool_calls"
    # The calls and their results go back as messages: the next call gets both.
    messages = [
        {"role": "user", "content": "weather and time?"},
        {"role": "assistant", "content": None, "tool_calls": calls},
        *(
            {"role": "tool", "tool_call_id": c["id"], "content": f"result {n}"}
            for n, c in enumerate(calls)
        ),
    ]
    after = http.post(
        "/chat/completions", json={"model": "fake/tools:2", "messages": messages}
    ).json()
    text = after["choices"][0]["message"]["content"]
    assert "result 0" in text and "result 1" in text
    sent = upstream.requests[-1]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool", "tool"]
    assert [c["id"] for c in sent[1]["tool_calls"]] == [c["id"] for c in calls]


def test_options_reach_the_provider(http: httpx.Client, upstream: Any) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    body = chat(
        "fake/text:2",
        [{"type": "text", "text": "look"}, {"type": "image_url", "image_url": {"url": PNG}}],
        temperature=0.5,
        top_p=0.9,
        max_completion_tokens=50,
        stop=["END"],
        seed=7,
        tools=[WEATHER],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        parallel_tool_calls=False,
        response_format={"type": "json_schema", "json_schema": {"name": "a", "schema": schema}},
        reasoning_effort="low",
        user="u-1",
    )
    body["messages"].insert(0, {"role": "developer", "content": "Be brief."})
    answer = http.post("/chat/completions", json=body)
    assert answer.status_code == 200, answer.text
    sent = upstream.requests[-1]
    assert {k: sent[k] for k in ("temperature", "top_p", "stop", "seed", "max_tokens")} == {
        "temperature": 0.5,
        "top_p": 0.9,
        "stop": ["END"],
        "seed": 7,
        "max_tokens": 50,
    }
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert sent["parallel_tool_calls"] is False and sent["reasoning_effort"] == "low"
    assert sent["response_format"]["json_schema"]["schema"] == schema
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    parts = sent["messages"][-1]["content"]
    assert {"type": "image_url", "image_url": {"url": PNG}} in parts


# ----------------------------------------------------------------------- failures


def test_an_upstream_error_before_the_first_byte_is_an_http_error(http: httpx.Client) -> None:
    for stream in (False, True):
        answer = http.post("/chat/completions", json=chat("fake/error:500", stream=stream))
        assert answer.status_code == 502, answer.text
        error = answer.json()["error"]
        assert error["type"] == "model_error" and error["message"]
    answer = http.post("/chat/completions", json=chat("dead/text", stream=True))
    assert answer.status_code == 502 and answer.json()["error"]["message"]


def test_a_stream_that_breaks_off_ends_with_an_error_object(http: httpx.Client) -> None:
    answer = http.post("/chat/completions", json=chat("fake/truncate:3", stream=True))
    chunks = chunks_of(answer)
    *text, last = chunks
    assert expected_text(22).startswith(deltas(text, "content")[:10])
    assert set(last) == {"error"} and last["error"]["type"] == "model_error", last
    assert all(c["choices"][0]["finish_reason"] is None for c in text)  # no false end


def _until(check: Any, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while not check() and time.monotonic() < deadline:
        time.sleep(0.02)
    return bool(check())


def test_a_client_gone_mid_stream_ends_the_upstream_call(http: httpx.Client, upstream: Any) -> None:
    """The model (two chunks, then nothing until its client goes) is left as soon as the
    client leaves: right after the first chunk, and later on."""
    for wanted in (1, 2):
        body = chat("fake/stall:2", stream=True)
        with http.stream("POST", "/chat/completions", json=body) as answer:
            assert answer.status_code == 200
            seen = 0
            # Kept until the client leaves: a line iterator let go of (as a loop's, at its
            # break) closes the response, and the server would see the client go at once.
            lines = answer.iter_lines()
            for line in lines:
                if '"content":"' in line.replace(" ", "") and '"role"' not in line:
                    seen += 1
                if seen == wanted:
                    break
            assert upstream.active_streams == 1  # the model is still answering
        assert _until(lambda: upstream.active_streams == 0), wanted


def test_a_quiet_model_times_out(http: httpx.Client) -> None:
    answer = http.post("/chat/completions", json=chat("quiet/stall:2", stream=True))
    *text, last = chunks_of(answer)
    assert deltas(text, "content")
    assert "(idle_timeout)" in last["error"]["message"], last
    whole = http.post("/chat/completions", json=chat("quiet/hang"))
    assert whole.status_code == 504, whole.text
    assert "(first_token_timeout)" in whole.json()["error"]["message"]


BAD = [
    ({"messages": [{"role": "user", "content": "hi"}]}, "model", "missing_required_parameter"),
    (chat("fake/text", colour="red"), "colour", "unknown_parameter"),
    (chat("fake/text", n=2), "n", "unsupported_parameter"),
    (chat("fake/text", logprobs=True), "logprobs", "unsupported_parameter"),
    (chat("fake/text", store=True), "store", "unsupported_parameter"),
    (chat("fake/text", functions=[{"name": "f"}]), "functions", "unsupported_parameter"),
    (chat("fake/text", audio={"voice": "x"}), "audio", "unsupported_parameter"),
    (chat("fake/text", temperature=3), "temperature", "invalid_value"),
    (chat("fake/text", stop=["a", "b", "c", "d", "e"]), "stop", "invalid_value"),
    (chat("nowhere/x"), "model", "unknown_model"),
    ({"model": "fake/text", "messages": []}, "messages", "invalid_value"),
    ({"model": "fake/text", "messages": [{"role": "robot", "content": "x"}]},
     "messages[0].role", "invalid_value"),
    ({"model": "fake/text", "messages": [{"role": "system", "content": "x"}]},
     "messages", "invalid_value"),
    (chat("fake/text", [{"type": "image_url", "image_url": {"url": "ftp://x"}}]),
     "messages[0].content[0].image_url.url", "invalid_value"),
    (chat("fake/text", [{"type": "input_audio", "input_audio": {}}]),
     "messages[0].content[0].type", "unsupported_parameter"),
    (chat("fake/text", [{"type": "video"}]), "messages[0].content[0].type", "invalid_value"),
    ({"model": "fake/text", "messages": [
        {"role": "user", "content": "x"},
        {"role": "assistant", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{"}}]},
    ]}, "messages[1].tool_calls[0].function.arguments", "invalid_value"),
    ({"model": "fake/text", "messages": [{"role": "tool", "content": "x"}]},
     "messages[0].tool_call_id", "invalid_value"),
    (chat("fake/text", tools=[{"type": "custom", "custom": {"name": "x"}}]),
     "tools[0].type", "invalid_value"),
    (chat("fake/text", tools=[{"type": "function", "function": {"name": "bad name"}}]),
     "tools[0].function.name", "invalid_value"),
    (chat("fake/text", tools=[WEATHER], tool_choice={"type": "function",
                                                     "function": {"name": "other"}}),
     "tool_choice.function.name", "invalid_value"),
    (chat("fake/text", response_format={"type": "xml"}), "response_format.type", "invalid_value"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "param", "code"), BAD, ids=[p for _, p, _ in BAD])
def test_a_bad_request_names_its_field(
    http: httpx.Client, upstream: Any, body: dict[str, Any], param: str, code: str | None
) -> None:
    before = len(upstream.requests)
    error = openai_error(http.post("/chat/completions", json=body), 400, param, code)
    assert error["message"]
    assert len(upstream.requests) == before  # nothing went upstream


def test_a_key_is_needed(server: Any) -> None:
    with server.client("pk_wrong") as client:
        answer = client.post("/chat/completions", json=chat("fake/text"))
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "invalid_api_key"


def test_tokens_are_counted_per_key(http: httpx.Client, server: Any) -> None:
    model = "fake/text:7:0"  # a model of its own: its row is this test's alone
    http.post("/chat/completions", json=chat(model)).raise_for_status()
    streamed = chat(model, stream=True, stream_options={"include_usage": True})
    chunks_of(http.post("/chat/completions", json=streamed))
    engine = sa.create_engine(normalise_url(server.database_url))
    try:
        for _ in range(100):  # counted after the answer, in the background
            with engine.connect() as conn:
                rows = conn.execute(
                    sa.text("SELECT requests, output_tokens, face FROM key_usage WHERE model = :m"),
                    {"m": model},
                ).all()
            if rows and rows[0][0] == 2:
                break
            time.sleep(0.05)
    finally:
        engine.dispose()
    assert [tuple(r) for r in rows] == [(2, 14, "chat.completions")]


def test_bodies_that_are_not_a_request(http: httpx.Client, upstream: Any) -> None:
    """Answered before any route (``server.fastpaths``) as the route would."""
    before = len(upstream.requests)
    headers = {"Content-Type": "application/json"}
    answer = http.post("/chat/completions", content=b'{"model": ', headers=headers)
    openai_error(answer, 400, None, "invalid_json")
    for body in (b"", b"[]", b'"text"', b"null"):
        answer = http.post("/chat/completions", content=body, headers=headers)
        assert answer.status_code == 400, (body, answer.text)
        assert answer.json()["error"]["type"] == "invalid_request"
    assert len(upstream.requests) == before
    answer = http.get("/chat/completions")
    assert answer.status_code == 405 and "POST" in answer.headers["allow"]
