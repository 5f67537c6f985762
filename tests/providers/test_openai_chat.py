"""The OpenAI Chat Completions adapter against the fake upstream, over real loopback sockets."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from parley.errors import UpstreamError, UpstreamTimeout
from parley.events import FinishPart, ModelEvent, ReasoningPart, TextPart, UsagePart
from parley.providers.base import ChatMessage, ModelRequest
from parley.providers.openai_chat import OpenAIChatProvider
from parley.testing.fake_upstream import (
    FakeUpstream,
    expected_reasoning,
    expected_text,
    tool_arguments,
    tool_results_text,
)
from parley.types import FunctionSpec, Role, ToolCall, ToolSpec
from tests.harness import free_port
from tests.providers.helpers import (
    CannedUpstream,
    collect,
    failure,
    http_answer,
    no_resource_warnings,
    wait_until,
)

TOOLS = [
    ToolSpec(
        function=FunctionSpec(
            name="get_weather",
            description="Weather for a city",
            parameters={
                "type": "object",
                "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                "required": ["city"],
            },
        )
    ),
    ToolSpec(
        function=FunctionSpec(
            name="get_time",
            parameters={
                "type": "object",
                "properties": {"zone": {"type": "string", "enum": ["UTC", "CET"]}},
            },
        )
    ),
]


def request(model: str, text: str = "Hello there", **kwargs: Any) -> ModelRequest:
    return ModelRequest(model=model, messages=[ChatMessage(role=Role.USER, content=text)], **kwargs)


# ----------------------------------------------------------------------------- streams


async def test_text_stream(provider: OpenAIChatProvider) -> None:
    events, acc = await collect(provider, request("text:7"))
    assert [e.text for e in events if isinstance(e, TextPart)] == [
        "Parley ",
        "streams ",
        "every ",
        "token ",
        "from ",
        "the ",
        "fake.",
    ]
    assert acc.text == expected_text(7)
    assert acc.finish_reason == "stop"
    assert (acc.usage.input_tokens, acc.usage.output_tokens) == (2, 7)
    assert isinstance(events[-1], UsagePart)  # usage comes after the finish chunk
    assert any(isinstance(e, FinishPart) for e in events)


async def test_default_chunk_count(provider: OpenAIChatProvider) -> None:
    _, acc = await collect(provider, request("text"))
    assert acc.text == expected_text()


async def test_reasoning_stream(provider: OpenAIChatProvider) -> None:
    events, acc = await collect(provider, request("reasoning:4"))
    assert acc.reasoning == expected_reasoning(4)
    assert acc.text == expected_text(4)
    kinds = [type(e) for e in events if isinstance(e, ReasoningPart | TextPart)]
    assert kinds == [ReasoningPart] * 4 + [TextPart] * 4
    # completion_tokens_details.reasoning_tokens: the reasoning among the output
    assert (acc.output_tokens, acc.reasoning_tokens) == (8, 4)


async def test_cached_tokens_from_prompt_tokens_details(provider: OpenAIChatProvider) -> None:
    # The fake counts the words of the messages before the newest as cached.
    earlier = [
        ChatMessage(role=Role.USER, content="one two three"),
        ChatMessage(role=Role.ASSISTANT, content="four five"),
    ]
    req = ModelRequest(
        model="text:3", messages=[*earlier, ChatMessage(role=Role.USER, content="six")]
    )
    _, acc = await collect(provider, req)
    assert (acc.input_tokens, acc.cached_tokens, acc.reasoning_tokens) == (6, 5, 0)


@pytest.mark.parametrize(
    ("usage", "details"),
    [
        # OpenAI
        (
            b'{"prompt_tokens":2000,"completion_tokens":300,"total_tokens":2300,'
            b'"prompt_tokens_details":{"cached_tokens":1920,"audio_tokens":0},'
            b'"completion_tokens_details":{"reasoning_tokens":256,"audio_tokens":0}}',
            (256, 1920),
        ),
        # DeepSeek's own field, without the details
        (
            b'{"prompt_tokens":2000,"completion_tokens":300,"total_tokens":2300,'
            b'"prompt_cache_hit_tokens":1536,"prompt_cache_miss_tokens":464}',
            (0, 1536),
        ),
        # Together: cached_tokens beside the totals
        (b'{"prompt_tokens":2000,"completion_tokens":300,"cached_tokens":64}', (0, 64)),
        # details that are null, or not counts, say nothing
        (
            b'{"prompt_tokens":2000,"completion_tokens":300,"prompt_tokens_details":null,'
            b'"completion_tokens_details":{"reasoning_tokens":"many"}}',
            (0, 0),
        ),
        # a detail above its total is not believed past it
        (
            b'{"prompt_tokens":20,"completion_tokens":300,"total_tokens":320,'
            b'"prompt_tokens_details":{"cached_tokens":64},'
            b'"completion_tokens_details":{"reasoning_tokens":301}}',
            (300, 20),
        ),
    ],
    ids=["openai", "deepseek", "together", "unreadable", "over-the-total"],
)
async def test_usage_details(
    provider: OpenAIChatProvider, tmp_path: Path, usage: bytes, details: tuple[int, int]
) -> None:
    recording = tmp_path / "stream.sse"
    recording.write_bytes(
        b'data: {"choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":"stop"}]}\n\n'
        b'data: {"choices":[],"usage":' + usage + b"}\n\n"
        b"data: [DONE]\n\n"
    )
    events, acc = await collect(provider, request(f"replay:{recording}"))
    (part,) = [e for e in events if isinstance(e, UsagePart)]
    assert (part.reasoning_tokens, part.cached_tokens) == details
    assert (acc.reasoning_tokens, acc.cached_tokens) == details


async def test_two_parallel_tool_calls(provider: OpenAIChatProvider, fake: FakeUpstream) -> None:
    _, acc = await collect(provider, request("tools:2", tools=TOOLS))
    assert acc.finish_reason == "tool_calls"
    calls = acc.finish_tool_calls()
    sent_tools = fake.requests[-1]["tools"]
    assert [(c.name, c.arguments) for c in calls] == [
        ("get_weather", tool_arguments(sent_tools[0], 0)),
        ("get_time", tool_arguments(sent_tools[1], 1)),
    ]
    assert calls[0].arguments == {"city": "city 0", "days": 1}
    assert calls[1].arguments == {"zone": "UTC"}
    assert calls[0].id != calls[1].id and all(c.id.startswith("call_") for c in calls)


async def test_second_turn_sees_the_tool_results(provider: OpenAIChatProvider) -> None:
    messages = [
        ChatMessage(role=Role.USER, content="weather?"),
        ChatMessage(
            role=Role.ASSISTANT,
            tool_calls=[ToolCall(id="call_1", name="get_weather", arguments={"city": "Oslo"})],
        ),
        ChatMessage(role=Role.TOOL, content="sunny, 21C", tool_call_id="call_1"),
    ]
    _, acc = await collect(provider, ModelRequest(model="tools:1", messages=messages, tools=TOOLS))
    assert acc.text == tool_results_text([("get_weather", "sunny, 21C")])
    assert not acc.has_tool_calls


async def test_request_body_shape(provider: OpenAIChatProvider, fake: FakeUpstream) -> None:
    messages = [
        ChatMessage(role=Role.USER, content="weather in Oslo and the time?"),
        ChatMessage(
            role=Role.ASSISTANT,
            reasoning="thinking",
            tool_calls=[
                ToolCall(id="call_1", name="get_weather", arguments={"city": "Oslo"}),
                ToolCall(id="call_2", name="get_time", arguments={}),
            ],
        ),
        ChatMessage(role=Role.TOOL, content="sunny", tool_call_id="call_1"),
        ChatMessage(role=Role.TOOL, content="noon", tool_call_id="call_2"),
        ChatMessage(role=Role.ASSISTANT, content="Sunny, and it is noon."),
        ChatMessage(role=Role.USER, content="thanks"),
    ]
    req = ModelRequest(
        model="text:2",
        messages=messages,
        instructions="Be brief.",
        tools=TOOLS,
        parameters={"temperature": 0.2, "max_tokens": 50, "stream": False},
    )
    await collect(provider, req)
    body = fake.requests[-1]
    assert body["model"] == "text:2"
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert (body["temperature"], body["max_tokens"]) == (0.2, 50)
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "weather in Oslo and the time?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                },
                {
                    "id": "call_2",
                    "type": "function",
                    "function": {"name": "get_time", "arguments": "{}"},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "call_2", "content": "noon"},
        {"role": "assistant", "content": "Sunny, and it is noon."},
        {"role": "user", "content": "thanks"},
    ]
    assert body["tools"] == [tool.model_dump() for tool in TOOLS]
    assert body["tools"][0]["function"]["name"] == "get_weather"
    headers = fake.request_headers[-1]
    assert headers["authorization"] == "Bearer sk-test"
    assert headers["content-type"] == "application/json"
    assert headers["accept"] == "text/event-stream"


async def test_no_tools_key_without_tools(provider: OpenAIChatProvider, fake: FakeUpstream) -> None:
    await collect(provider, request("text:1"))
    assert "tools" not in fake.requests[-1]
    assert fake.requests[-1]["messages"] == [{"role": "user", "content": "Hello there"}]


async def test_extra_headers_are_sent(fake: FakeUpstream) -> None:
    provider = OpenAIChatProvider(fake.base_url, headers={"X-Tenant": "t1"})
    try:
        await collect(provider, request("text:1"))
    finally:
        await provider.aclose()
    headers = fake.request_headers[-1]
    assert headers["x-tenant"] == "t1"
    assert "authorization" not in headers


async def test_connections_are_reused(provider: OpenAIChatProvider, fake: FakeUpstream) -> None:
    before = fake.connections
    for _ in range(3):
        _, acc = await collect(provider, request("text:3"))
        assert acc.text == expected_text(3)
    await failure(provider, request("error:429"))  # an error answer read to its end
    _, acc = await collect(provider, request("reasoning:2"))
    assert acc.text == expected_text(2)
    assert fake.connections - before == 1


async def test_concurrent_streams(provider: OpenAIChatProvider) -> None:
    results = await asyncio.gather(
        *(collect(provider, request(f"text:{n}:1")) for n in range(1, 9))
    )
    assert [acc.text for _, acc in results] == [expected_text(n) for n in range(1, 9)]


async def test_replayed_recording_with_crlf_comments_and_ids(
    provider: OpenAIChatProvider, tmp_path: Path
) -> None:
    recording = tmp_path / "stream.sse"
    recording.write_bytes(
        b": keep-alive comment\r\n\r\n"
        b'id: 1\r\nevent: message\r\ndata: {"choices":[{"index":0,"delta":{"role":"assistant","content":"Hi"}}]}\r\n\r\n'
        b'retry: 100\r\ndata: {"choices":[{"index":0,"delta":{"reasoning":"hmm"}}]}\r\n\r\n'
        b'data: {"choices":[{"index":0,"delta":{"content":" you"},"finish_reason":"stop"}]}\r\n\r\n'
        b'data: {"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2}}\r\n\r\n'
        b"data: [DONE]\r\n\r\n"
    )
    _, acc = await collect(provider, request(f"replay:{recording}"))
    assert (acc.text, acc.reasoning, acc.finish_reason) == ("Hi you", "hmm", "stop")
    assert (acc.input_tokens, acc.output_tokens) == (5, 2)


async def test_finish_reason_without_done_is_a_complete_answer(
    provider: OpenAIChatProvider, tmp_path: Path
) -> None:
    recording = tmp_path / "no-done.sse"
    recording.write_bytes(
        b'data: {"choices":[{"delta":{"content":"ok"},"finish_reason":"length"}]}\n\n'
    )
    _, acc = await collect(provider, request(f"replay:{recording}"))
    assert (acc.text, acc.finish_reason) == ("ok", "length")


# ------------------------------------------------------------------------------ images

#: A real 1x1 PNG (RGBA), as a data URL.
PNG = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAC"
    "hwGA60e6kgAAAABJRU5ErkJggg=="
)
PHOTO = "https://images.example.test/cat.jpg?size=large"


async def test_images_are_sent_as_content_parts(
    provider: OpenAIChatProvider, fake: FakeUpstream
) -> None:
    messages = [
        ChatMessage(role=Role.USER, content="What is in these pictures?", images=[PNG, PHOTO]),
        ChatMessage(role=Role.ASSISTANT, content="A dot and a cat."),
        ChatMessage(role=Role.USER, content="Which is bigger?"),
    ]
    _, acc = await collect(
        provider, ModelRequest(model="text:3", messages=messages, instructions="Be brief.")
    )
    assert acc.text == expected_text(3)  # the fake accepted the parts
    assert fake.requests[-1]["messages"] == [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in these pictures?"},
                {"type": "image_url", "image_url": {"url": PNG}},
                {"type": "image_url", "image_url": {"url": PHOTO}},
            ],
        },
        {"role": "assistant", "content": "A dot and a cat."},
        {"role": "user", "content": "Which is bigger?"},  # no images: a plain string
    ]


async def test_an_image_without_text_sends_no_empty_text_part(
    provider: OpenAIChatProvider, fake: FakeUpstream
) -> None:
    req = ModelRequest(model="text:1", messages=[ChatMessage(role=Role.USER, images=[PHOTO])])
    await collect(provider, req)
    assert fake.requests[-1]["messages"] == [
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": PHOTO}}]}
    ]


async def test_the_text_beside_images_reaches_the_model(
    provider: OpenAIChatProvider, fake: FakeUpstream
) -> None:
    req = ModelRequest(
        model="echo", messages=[ChatMessage(role=Role.USER, content="two words", images=[PNG])]
    )
    _, acc = await collect(provider, req)
    assert acc.text == "two words"
    assert isinstance(fake.requests[-1]["messages"][0]["content"], list)


async def test_messages_without_images_keep_string_content(
    provider: OpenAIChatProvider, fake: FakeUpstream
) -> None:
    req = ModelRequest(
        model="text:1",
        messages=[ChatMessage(role=Role.USER, content="", images=[])],
        instructions="Be brief.",
    )
    await collect(provider, req)
    assert fake.requests[-1]["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": ""},
    ]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ([], "must not be empty"),
        ([{"type": "image_url", "image_url": {}}], "content[0].image_url.url"),
        ([{"type": "text", "text": "a"}, {"type": "input_image"}], "content[1].type"),
    ],
)
async def test_the_fake_refuses_malformed_content_parts(
    fake: FakeUpstream, content: list[Any], problem: str
) -> None:
    """What the image tests lean on: the fake checks content parts as OpenAI does."""
    body = {"model": "text:1", "stream": True, "messages": [{"role": "user", "content": content}]}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{fake.base_url}/chat/completions", json=body) as answer,
    ):
        assert answer.status == 400
        error = (await answer.json())["error"]
    assert error["type"] == "invalid_request_error"
    assert problem in error["message"]
    assert fake.requests[-1] == body


# ------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (401, "upstream_auth"),
        (403, "upstream_auth"),
        (429, "upstream_rate_limited"),
        (500, "upstream_http_error"),
        (503, "upstream_http_error"),
    ],
)
async def test_http_errors(provider: OpenAIChatProvider, status: int, code: str) -> None:
    error = await failure(provider, request(f"error:{status}"))
    assert type(error) is UpstreamError
    assert error.code == code
    assert f"HTTP {status}" in error.message
    assert f"fake upstream error {status}" in error.message  # the upstream's own message


async def test_malformed_chunk(provider: OpenAIChatProvider) -> None:
    error = await failure(provider, request("malformed"))
    assert error.code == "upstream_malformed"


@pytest.mark.parametrize(
    "data",
    [
        b'"just a string"',
        b'{"choices": {"delta": {}}}',
        b'{"choices": [{"delta": "text"}]}',
        b'{"choices": [{"delta": {"content": 5}}]}',
        b'{"choices": [{"delta": {"tool_calls": [{"index": "0"}]}}]}',
        b'{"choices": [], "usage": {"prompt_tokens": "many"}}',
    ],
)
async def test_chunks_of_the_wrong_shape(
    provider: OpenAIChatProvider, tmp_path: Path, data: bytes
) -> None:
    recording = tmp_path / "bad.sse"
    recording.write_bytes(b"data: " + data + b"\n\ndata: [DONE]\n\n")
    error = await failure(provider, request(f"replay:{recording}"))
    assert error.code == "upstream_malformed"


async def test_error_object_inside_the_stream(provider: OpenAIChatProvider, tmp_path: Path) -> None:
    recording = tmp_path / "err.sse"
    recording.write_bytes(b'data: {"error": {"message": "overloaded, try later"}}\n\n')
    error = await failure(provider, request(f"replay:{recording}"))
    assert error.code == "upstream_stream_error"
    assert "overloaded, try later" in error.message


@pytest.mark.parametrize("model", ["truncate", "truncate:0", "cut", "cut:0"])
async def test_truncated_streams(provider: OpenAIChatProvider, model: str) -> None:
    error = await failure(provider, request(model))
    assert error.code == "upstream_truncated"


async def test_connection_refused() -> None:
    port = free_port()
    provider = OpenAIChatProvider(f"http://127.0.0.1:{port}/v1", connect_timeout=5)
    try:
        error = await failure(provider, request("text"))
    finally:
        await provider.aclose()
    assert type(error) is UpstreamError
    assert error.code == "upstream_unreachable"
    # the URL tried, and nothing of the HTTP client's own text ("Connect call failed ...")
    assert error.message == (
        f"Could not connect to the upstream provider at http://127.0.0.1:{port}/v1/chat/"
        "completions (connection refused or unknown host)."
    )


async def test_read_timeout_on_a_hanging_upstream(fake: FakeUpstream) -> None:
    provider = OpenAIChatProvider(fake.base_url, read_timeout=0.3)
    loop = asyncio.get_running_loop()
    start = loop.time()
    try:
        error = await failure(provider, request("hang"))
    finally:
        await provider.aclose()
    assert isinstance(error, UpstreamTimeout)
    assert error.code == "upstream_timeout"
    assert "0.3 s" in error.message
    assert loop.time() - start < 5
    assert await wait_until(lambda: fake.active_streams == 0)


async def test_read_timeout_mid_stream(fake: FakeUpstream) -> None:
    provider = OpenAIChatProvider(fake.base_url, read_timeout=0.3)
    try:
        events: list[ModelEvent] = []
        with pytest.raises(UpstreamTimeout):
            async for event in provider.stream(request("stall:2")):
                events.append(event)
    finally:
        await provider.aclose()
    assert "".join(e.text for e in events if isinstance(e, TextPart)) == expected_text(2)


async def test_connect_timeout() -> None:
    """A listener whose accept queue is full: the kernel drops further SYNs."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        queued = [socket.socket() for _ in range(3)]
        for sock in queued:
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", port))
        provider = OpenAIChatProvider(f"http://127.0.0.1:{port}/v1", connect_timeout=0.3)
        try:
            error = await failure(provider, request("text"))
        finally:
            await provider.aclose()
            for sock in queued:
                sock.close()
    assert isinstance(error, UpstreamTimeout)
    assert error.message == (
        f"Timed out after 0.3 s connecting to the upstream provider at "
        f"http://127.0.0.1:{port}/v1/chat/completions."
    )


@pytest.mark.parametrize("base_url", ["ftp://example.invalid/v1", "http://", "/v1"])
async def test_invalid_base_url(base_url: str) -> None:
    provider = OpenAIChatProvider(base_url)
    try:
        error = await failure(provider, request("text"))
    finally:
        await provider.aclose()
    assert error.code == "upstream_unreachable"
    assert "base URL" in error.message


# ------------------------------------------------------------------------ cancellation


async def test_aclose_mid_stream_closes_the_upstream_connection(
    provider: OpenAIChatProvider, fake: FakeUpstream
) -> None:
    stream = provider.stream(request("stall:3"))
    first = await anext(stream)
    second = await anext(stream)
    assert [first, second] == [TextPart("Parley "), TextPart("streams ")]
    assert fake.active_streams == 1
    await stream.aclose()
    assert await wait_until(lambda: fake.active_streams == 0, within=1.0)
    # the adapter still works afterwards
    _, acc = await collect(provider, request("text:2"))
    assert acc.text == expected_text(2)


async def test_cancelling_the_consumer_closes_the_upstream_connection(
    provider: OpenAIChatProvider, fake: FakeUpstream
) -> None:
    got_one = asyncio.Event()

    async def consume() -> None:
        async for _event in provider.stream(request("text:100000:20")):
            got_one.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(got_one.wait(), timeout=5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await wait_until(lambda: fake.active_streams == 0)


async def test_injected_session_is_used_and_left_open(fake: FakeUpstream) -> None:
    async with aiohttp.ClientSession() as session:
        provider = OpenAIChatProvider(fake.base_url, session=session, read_timeout=0.3)
        _, acc = await collect(provider, request("text:2"))
        error = await failure(provider, request("hang"))  # the provider's timeouts apply
        await provider.aclose()
        assert not session.closed
    assert acc.text == expected_text(2)
    assert isinstance(error, UpstreamTimeout)


# ----------------------------------------------------------------------------- session


def test_construction_opens_nothing() -> None:
    """No running loop here: the session is opened on first use, inside the loop."""
    with no_resource_warnings():
        provider = OpenAIChatProvider("http://127.0.0.1:9/v1")
        del provider


async def test_aclose_leaves_nothing_open(fake: FakeUpstream) -> None:
    with no_resource_warnings():
        provider = OpenAIChatProvider(fake.base_url)
        await provider.aclose()  # never used: nothing to close
        # concurrent first calls share one session; idle keep-alive connections stay pooled
        results = await asyncio.gather(*(collect(provider, request("text:2")) for _ in range(4)))
        assert all(acc.text == expected_text(2) for _, acc in results)
        await provider.aclose()
        _, acc = await collect(provider, request("text:1"))  # opens a new session
        assert acc.text == expected_text(1)
        await provider.aclose()
        del provider, results


async def test_aclose_mid_stream_leaves_nothing_open(fake: FakeUpstream) -> None:
    with no_resource_warnings():
        provider = OpenAIChatProvider(fake.base_url)
        stream = provider.stream(request("stall:3"))
        await anext(stream)
        await provider.aclose()
        await stream.aclose()
        assert await wait_until(lambda: fake.active_streams == 0)
        del provider, stream


# ----------------------------------------------------------------------------- proxies


async def test_proxy_from_the_environment(
    clean_proxy_env: pytest.MonkeyPatch, canned: CannedUpstream
) -> None:
    clean_proxy_env.setenv("HTTP_PROXY", f"http://127.0.0.1:{canned.port}")
    canned.answer = http_answer(
        200, b'data: {"choices":[{"delta":{"content":"via proxy"},"finish_reason":"stop"}]}\n\n'
    )
    provider = OpenAIChatProvider("http://upstream.test/v1", api_key="sk-p")
    try:
        _, acc = await collect(provider, request("text"))
    finally:
        await provider.aclose()
    assert acc.text == "via proxy"
    request_line, *headers = canned.heads[-1].split("\r\n")
    assert request_line == "POST http://upstream.test/v1/chat/completions HTTP/1.1"
    assert "Authorization: Bearer sk-p" in headers


async def test_no_proxy_and_no_netrc(
    clean_proxy_env: pytest.MonkeyPatch, fake: FakeUpstream, tmp_path: Path
) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1\nlogin someone\npassword secret\n")
    netrc.chmod(0o600)
    clean_proxy_env.setenv("NETRC", str(netrc))
    clean_proxy_env.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
    clean_proxy_env.setenv("NO_PROXY", "127.0.0.1")
    provider = OpenAIChatProvider(fake.base_url, api_key="sk-test")
    try:
        _, acc = await collect(provider, request("text:2"))
    finally:
        await provider.aclose()
    assert acc.text == expected_text(2)
    assert fake.request_headers[-1]["authorization"] == "Bearer sk-test"  # not .netrc's
