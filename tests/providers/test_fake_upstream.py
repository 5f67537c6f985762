"""The fake upstream itself: its spec language, endpoints and process mode."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from parley.testing.fake_upstream import (
    DEFAULT_CHUNKS,
    FakeUpstream,
    FakeUpstreamServer,
    Spec,
    expected_text,
    parse_model,
    text_chunks,
    tool_arguments,
)


@pytest.mark.parametrize(
    ("model", "spec"),
    [
        ("text", Spec("text", DEFAULT_CHUNKS, 0.0)),
        ("text:5", Spec("text", 5, 0.0)),
        ("text:22:5", Spec("text", 22, 0.005)),
        ("slow:40", Spec("slow", DEFAULT_CHUNKS, 0.04)),
        ("reasoning:3", Spec("reasoning", 3, 0.0)),
        ("tools", Spec("tools", 1, 0.0)),
        ("tools:2", Spec("tools", 2, 0.0)),
        ("auto", Spec("auto", DEFAULT_CHUNKS, 0.0)),
        ("auto:3:5", Spec("auto", 3, 0.005)),
        ("preface:2", Spec("preface", 2, 0.0)),
        ("error", Spec("error", 500, 0.0)),
        ("error:429", Spec("error", 429, 0.0)),
        ("error:429:7", Spec("error", 429, 0.0, argument="7")),
        ("badkey", Spec("badkey", DEFAULT_CHUNKS, 0.0)),
        ("stall:4", Spec("stall", 4, 0.0)),
        ("truncate", Spec("truncate", 3, 0.0)),
        ("replay:/tmp/a:b.sse", Spec("replay", 0, 0.0, "/tmp/a:b.sse")),
        ("gpt-4o-mini", Spec("text", DEFAULT_CHUNKS, 0.0)),
    ],
)
def test_parse_model(model: str, spec: Spec) -> None:
    assert parse_model(model) == spec


def test_expected_text_is_deterministic() -> None:
    assert expected_text(3) == "Parley streams every."
    assert "".join(text_chunks(40)) == expected_text(40)
    assert expected_text(0) == ""


def test_tool_arguments_from_a_schema() -> None:
    tool = {
        "type": "function",
        "function": {
            "name": "f",
            "parameters": {
                "properties": {
                    "s": {"type": "string"},
                    "e": {"type": "string", "enum": ["x", "y"]},
                    "i": {"type": "integer"},
                    "n": {"type": "number"},
                    "b": {"type": "boolean"},
                    "o": {"type": "object"},
                }
            },
        },
    }
    assert tool_arguments(tool, 2) == {"s": "s 2", "e": "x", "i": 3, "n": 2.5, "b": True}
    assert tool_arguments(None, 1) == {"q": "query 1"}


def test_endpoints(fake: FakeUpstream) -> None:
    with httpx.Client(base_url=fake.url) as client:
        models = client.get("/v1/models").json()
        assert {m["id"] for m in models["data"]} >= {"text", "tools"}
        body = {"model": "text:4", "messages": [{"role": "user", "content": "one two three"}]}
        answer = client.post("/v1/chat/completions", json=body).json()
        assert answer["object"] == "chat.completion"
        assert answer["choices"][0]["message"]["content"] == expected_text(4)
        usage = answer["usage"]
        assert (usage["prompt_tokens"], usage["completion_tokens"]) == (3, 4)
        assert usage["total_tokens"] == 7
        assert usage["prompt_tokens_details"]["cached_tokens"] == 0  # one message: no prefix
        assert usage["completion_tokens_details"]["reasoning_tokens"] == 0
        tools = client.post("/chat/completions", json={"model": "tools:2", "messages": []}).json()
        calls = tools["choices"][0]["message"]["tool_calls"]
        assert [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls] == [
            ("tool_0", {"q": "query 0"}),
            ("tool_1", {"q": "query 1"}),
        ]
        assert client.get("/_requests").json() == [body, {"model": "tools:2", "messages": []}]
        assert client.post("/_reset").json() == {"ok": True}
        assert client.get("/_requests").json() == []
        assert client.get("/nope").status_code == 404
        bad = client.post("/v1/chat/completions", content=b"not json")
        assert bad.status_code == 400 and "error" in bad.json()
        error = client.post("/v1/chat/completions", json={"model": "error:418", "stream": True})
        assert error.status_code == 418
        assert error.json()["error"]["message"] == "fake upstream error 418"


def test_stream_wire_format(fake: FakeUpstream) -> None:
    body = {"model": "text:2", "stream": True, "messages": []}
    with (
        httpx.Client() as client,
        client.stream("POST", f"{fake.base_url}/chat/completions", json=body) as response,
    ):
        assert response.headers["content-type"] == "text/event-stream"
        assert response.headers["transfer-encoding"] == "chunked"
        lines = list(response.iter_lines())
    data = [line.removeprefix("data: ") for line in lines if line]
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert [c["choices"][0]["delta"].get("content") for c in chunks[:3]] == [
        "",
        "Parley ",
        "streams.",
    ]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"  # no usage: not asked for


def test_streamed_usage_details(fake: FakeUpstream) -> None:
    # The words of the messages before the newest are cached; the reasoning chunks are the
    # reasoning tokens among the completion tokens.
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "one two three"},
        {"role": "assistant", "content": "four"},
        {"role": "user", "content": "five six"},
    ]
    body = {
        "model": "reasoning:3",
        "stream": True,
        "stream_options": {"include_usage": True},
        "messages": messages,
    }
    with (
        httpx.Client() as client,
        client.stream("POST", f"{fake.base_url}/chat/completions", json=body) as response,
    ):
        lines = [line.removeprefix("data: ") for line in response.iter_lines() if line]
    usage = json.loads(lines[-2])["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (8, 6)
    assert usage["prompt_tokens_details"]["cached_tokens"] == 6
    assert usage["completion_tokens_details"]["reasoning_tokens"] == 3


async def test_in_loop_server() -> None:
    server = FakeUpstreamServer(chunks=3)
    port = await server.listen()
    try:
        async with httpx.AsyncClient() as client:
            answer = await client.post(
                f"http://127.0.0.1:{port}/v1/chat/completions",
                json={"model": "echo", "messages": [{"role": "user", "content": "say  this"}]},
            )
        assert answer.json()["choices"][0]["message"]["content"] == "say  this"
        assert server.requests[0]["model"] == "echo"
    finally:
        await server.aclose()


def test_stop_closes_open_streams() -> None:
    fake = FakeUpstream().start()
    client = httpx.Client(timeout=10)
    try:
        body = {"model": "hang", "stream": True, "messages": []}
        with client.stream("POST", f"{fake.base_url}/chat/completions", json=body) as response:
            assert response.status_code == 200
            fake.stop()
            with pytest.raises(httpx.RemoteProtocolError):
                response.read()
    finally:
        client.close()
        fake.stop()


@pytest.fixture
def fake_process() -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "parley.testing.fake_upstream",
            "--port",
            "0",
            "--chunks",
            "4",
            "--gap-ms",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    line = process.stdout.readline().decode().strip()
    try:
        assert line.startswith("listening on http://127.0.0.1:"), line
        yield process, line.removeprefix("listening on ")
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)


def test_process_mode(fake_process: tuple[subprocess.Popen[bytes], str]) -> None:
    process, url = fake_process
    body = {
        "model": "text",
        "stream": True,
        "stream_options": {"include_usage": True},
        "messages": [],
    }
    with httpx.Client(base_url=url, timeout=10) as client:
        with client.stream("POST", "/v1/chat/completions", json=body) as response:
            text = "".join(
                json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
                for line in response.iter_lines()
                if line.startswith("data: {") and '"choices":[{' in line
            )
        assert text == expected_text(4)  # --chunks 4
        # clients that go away mid-stream leave no noise behind
        for model in ("stall:1", "hang", "slow:50"):
            with client.stream(
                "POST", "/v1/chat/completions", json={**body, "model": model}
            ) as response:
                assert response.status_code == 200
        assert len(client.get("/_requests").json()) == 4
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0
    assert stderr == b""


def test_restart_on_the_same_port() -> None:
    with FakeUpstream(chunks=2) as fake:
        port = fake.port
    with httpx.Client() as client:
        fake.start()
        try:
            assert fake.port == port
            body = {"model": "text", "messages": []}
            answer = client.post(f"{fake.base_url}/chat/completions", json=body).json()
            assert answer["choices"][0]["message"]["content"] == expected_text(2)
        finally:
            fake.stop()


def test_preface_writes_then_calls_the_first_offered_tool(fake: FakeUpstream) -> None:
    weather = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
    asked = [{"role": "user", "content": "Paris?"}]
    with httpx.Client(base_url=fake.base_url) as client:
        body = {"model": "preface:2", "messages": asked, "tools": [weather]}
        [called] = client.post("/chat/completions", json=body).json()["choices"]
        plain = client.post("/chat/completions", json={**body, "tools": []}).json()
    assert called["finish_reason"] == "tool_calls"
    assert called["message"]["content"] == expected_text(2)
    (call,) = called["message"]["tool_calls"]
    assert json.loads(call["function"]["arguments"]) == {"city": "city 0"}
    assert plain["choices"][0]["message"]["content"] == expected_text(2)
    assert plain["choices"][0]["finish_reason"] == "stop"


def test_auto_calls_the_first_offered_tool_once_then_answers(fake: FakeUpstream) -> None:
    weather = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {"location": {"type": "string"}},
                "required": ["location"],
            },
        },
    }
    clock = {"type": "function", "function": {"name": "get_time", "parameters": {}}}
    asked = [{"role": "user", "content": "What's the weather like in San Francisco?"}]

    def answer(**body: object) -> dict:
        with httpx.Client(base_url=fake.base_url) as client:
            reply = client.post("/chat/completions", json={"model": "auto:3", **body})
        return reply.json()["choices"][0]

    called = answer(messages=asked, tools=[weather, clock])
    assert called["finish_reason"] == "tool_calls"
    (call,) = called["message"]["tool_calls"]
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"location": "location 0"}

    for plain in (
        {"messages": asked},  # no tools offered
        {"messages": asked, "tools": [weather], "tool_choice": "none"},
        {"messages": [*asked, {"role": "assistant", "content": "Hm."}], "tools": [weather]},
    ):
        text = answer(**plain)
        assert (text["finish_reason"], text["message"]) == (
            "stop",
            {"role": "assistant", "content": expected_text(3)},
        ), plain

    after = [
        *asked,
        {"role": "assistant", "content": None, "tool_calls": [{**call, "type": "function"}]},
        {"role": "tool", "tool_call_id": call["id"], "content": "Sunny, 18 C"},
    ]
    result = answer(messages=after, tools=[weather])
    assert result["message"]["content"] == (
        'Fake upstream got tool results: get_weather returned "Sunny, 18 C".'
    )

    body = {"model": "auto", "stream": True, "messages": asked, "tools": [weather]}
    with (
        httpx.Client() as client,
        client.stream("POST", f"{fake.base_url}/chat/completions", json=body) as response,
    ):
        data = [line[6:] for line in response.iter_lines() if line.startswith("data: {")]
    chunks = [json.loads(d)["choices"][0] for d in data]
    assert chunks[-1]["finish_reason"] == "tool_calls"
    fragments = [c["delta"].get("tool_calls") for c in chunks if c["delta"].get("tool_calls")]
    assert fragments[0][0]["function"]["name"] == "get_weather"
    assert {f[0]["index"] for f in fragments} == {0}
