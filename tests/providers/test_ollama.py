"""The Ollama adapter against ``parley.testing.fake_ollama``, a loopback server speaking
Ollama's NDJSON wire format.

The answers below are constructed examples written from Ollama's API documentation
(``/api/chat`` streaming, ``/api/tags``); they are not recordings of a real server.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from typing import Any, Literal

import orjson
import pytest

from parley.errors import UpstreamError
from parley.events import FinishPart, ModelEvent, ReasoningPart, TextPart, ToolCallPart, UsagePart
from parley.providers.base import ChatMessage, ModelOptions, ModelRequest
from parley.providers.ollama import OllamaProvider, ndjson_lines
from parley.testing.fake_ollama import Answer, FakeOllama, chat_line, done_line, text_line
from parley.types import FunctionSpec, Role, ToolCall, ToolSpec
from tests.providers.helpers import collect, failure, no_resource_warnings, wait_until

WEATHER = ToolSpec(
    function=FunctionSpec(
        name="get_weather",
        description="Weather for a city",
        parameters={"type": "object", "properties": {"city": {"type": "string"}}},
    )
)


@pytest.fixture
async def ollama() -> AsyncIterator[FakeOllama]:
    async with FakeOllama() as server:
        yield server


@pytest.fixture
async def provider(ollama: FakeOllama) -> AsyncIterator[OllamaProvider]:
    adapter = OllamaProvider(ollama.base_url, read_timeout=10)
    yield adapter
    await adapter.aclose()


def request(text: str = "Hello", **kwargs: Any) -> ModelRequest:
    return ModelRequest(
        model="llama3.2", messages=[ChatMessage(role=Role.USER, content=text)], **kwargs
    )


# ----------------------------------------------------------------------------- streams


async def test_text_over_several_lines(provider: OllamaProvider, ollama: FakeOllama) -> None:
    ollama.answer(
        Answer([text_line("The "), text_line("sky "), text_line("is blue."), done_line()])
    )
    events, acc = await collect(provider, request())
    assert [e.text for e in events if isinstance(e, TextPart)] == ["The ", "sky ", "is blue."]
    assert acc.text == "The sky is blue."
    assert acc.finish_reason == "stop"
    assert isinstance(events[-1], UsagePart)


async def test_lines_split_across_writes(provider: OllamaProvider, ollama: FakeOllama) -> None:
    body = text_line("Grüße") + text_line(", wor") + text_line("ld") + done_line()
    umlaut = body.index("ü".encode()) + 1  # inside the two bytes of "ü"
    # pieces cut mid-line, mid-character, and one piece holding several lines
    cuts = [0, 7, umlaut, umlaut + 1, len(body) - 3, len(body)]
    ollama.answer(Answer([body[a:b] for a, b in itertools.pairwise(cuts)]))
    _, acc = await collect(provider, request())
    assert acc.text == "Grüße, world"
    assert acc.finish_reason == "stop"


async def test_last_line_without_newline(provider: OllamaProvider, ollama: FakeOllama) -> None:
    ollama.answer(Answer([text_line("ok") + b"\r\n\n", done_line().rstrip(b"\n")]))
    _, acc = await collect(provider, request())
    assert (acc.text, acc.finish_reason) == ("ok", "stop")


async def test_thinking(provider: OllamaProvider, ollama: FakeOllama) -> None:
    ollama.answer(
        Answer(
            [
                chat_line({"thinking": "The user "}),
                chat_line({"thinking": "greets me."}),
                text_line("Hello!"),
                done_line(),
            ]
        )
    )
    events, acc = await collect(provider, request(parameters={"think": True}))
    assert [type(e) for e in events[:3]] == [ReasoningPart, ReasoningPart, TextPart]
    assert acc.reasoning == "The user greets me."
    assert acc.text == "Hello!"
    assert ollama.requests[-1].body["think"] is True


async def test_one_tool_call(provider: OllamaProvider, ollama: FakeOllama) -> None:
    call = {"function": {"name": "get_weather", "arguments": {"city": "Paris, FR"}}}
    ollama.answer(Answer([chat_line({"tool_calls": [call]}), done_line("stop")]))
    events, acc = await collect(provider, request(tools=[WEATHER]))
    parts = [e for e in events if isinstance(e, ToolCallPart)]
    assert len(parts) == 1 and parts[0].index == 0 and parts[0].name == "get_weather"
    assert orjson.loads(parts[0].arguments) == {"city": "Paris, FR"}
    assert acc.finish_reason == "tool_calls"  # Ollama says "stop"
    [finished] = acc.finish_tool_calls()
    assert finished.arguments == {"city": "Paris, FR"}
    assert finished.id.startswith("call_")


async def test_two_tool_calls_in_one_message(provider: OllamaProvider, ollama: FakeOllama) -> None:
    calls = [
        {"function": {"name": "get_weather", "arguments": {"city": "Oslo"}}},
        {"function": {"name": "get_weather", "arguments": {"city": "Rome"}}},
    ]
    ollama.answer(Answer([chat_line({"tool_calls": calls}), done_line()]))
    events, acc = await collect(provider, request(tools=[WEATHER]))
    assert [e.index for e in events if isinstance(e, ToolCallPart)] == [0, 1]
    first, second = acc.finish_tool_calls()
    assert (first.arguments, second.arguments) == ({"city": "Oslo"}, {"city": "Rome"})
    assert first.id != second.id
    assert acc.finish_reason == "tool_calls"


async def test_tool_calls_over_several_lines_keep_counting(
    provider: OllamaProvider, ollama: FakeOllama
) -> None:
    call = {"function": {"name": "get_weather", "arguments": {}}}
    ollama.answer(
        Answer(
            [
                chat_line({"tool_calls": [call]}),
                chat_line({"tool_calls": [call | {"id": "call_x"}]}),
                done_line(),
            ]
        )
    )
    _, acc = await collect(provider, request(tools=[WEATHER]))
    first, second = acc.finish_tool_calls()
    assert second.id == "call_x"  # an id the server gives is kept
    assert first.id != second.id and first.arguments == {}


async def test_usage(provider: OllamaProvider, ollama: FakeOllama) -> None:
    ollama.answer(Answer([text_line("x"), done_line(prompt=31, output=7)]))
    events, acc = await collect(provider, request())
    assert UsagePart(input_tokens=31, output_tokens=7) in events
    assert (acc.usage.input_tokens, acc.usage.output_tokens) == (31, 7)
    # Ollama says nothing of reasoning or cached tokens
    assert (acc.usage.reasoning_tokens, acc.usage.cached_tokens) == (0, 0)


async def test_usage_without_prompt_count(provider: OllamaProvider, ollama: FakeOllama) -> None:
    """A cached prompt: Ollama leaves ``prompt_eval_count`` out."""
    ollama.answer(
        Answer([chat_line({"content": "x"}, done=True, done_reason="stop", eval_count=1)])
    )
    _, acc = await collect(provider, request())
    assert (acc.usage.input_tokens, acc.usage.output_tokens) == (0, 1)


@pytest.mark.parametrize(
    ("done_reason", "expected"), [("stop", "stop"), ("length", "length"), (None, "stop")]
)
async def test_done_reasons(
    provider: OllamaProvider, ollama: FakeOllama, done_reason: str | None, expected: str
) -> None:
    last = chat_line({"content": ""}, done=True, eval_count=1)
    if done_reason is not None:
        last = chat_line({"content": ""}, done=True, done_reason=done_reason, eval_count=1)
    ollama.answer(Answer([text_line("a"), last]))
    events, _ = await collect(provider, request())
    assert [e for e in events if isinstance(e, FinishPart)] == [FinishPart(expected)]


async def test_connection_is_reused(provider: OllamaProvider, ollama: FakeOllama) -> None:
    for _ in range(3):
        _, acc = await collect(provider, request())
        assert acc.text == "Hi"
    assert len(ollama.requests) == 3
    assert sum(head.startswith("POST /api/chat ") for head in ollama.heads) == 3
    assert ollama.open_connections == 1


# ----------------------------------------------------------------------------- request


async def test_request_body_shape(provider: OllamaProvider, ollama: FakeOllama) -> None:
    req = ModelRequest(
        model="qwen3:8b",
        instructions="Be brief.",
        messages=[
            ChatMessage(role=Role.USER, content="Weather in Oslo?"),
            ChatMessage(
                role=Role.ASSISTANT,
                reasoning="I should call the tool.",
                tool_calls=[ToolCall(id="call_1", name="get_weather", arguments={"city": "Oslo"})],
            ),
            ChatMessage(role=Role.TOOL, content="sunny, 21C", tool_call_id="call_1"),
        ],
        tools=[WEATHER],
        parameters={
            "temperature": 0.2,
            "top_p": 0.9,
            "max_tokens": 128,
            "stop": "END",
            "seed": 7,
            "num_ctx": 8192,
            "keep_alive": "10m",
            "think": False,
            "parallel_tool_calls": True,  # OpenAI-only: not sent
        },
    )
    await collect(provider, req)
    body = ollama.requests[-1].body
    assert body["model"] == "qwen3:8b"
    assert body["stream"] is True
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Oslo?"},
        {
            "role": "assistant",
            "content": "",
            "thinking": "I should call the tool.",
            "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}],
        },
        {"role": "tool", "content": "sunny, 21C", "tool_name": "get_weather"},
    ]
    assert body["tools"] == [WEATHER.model_dump()]
    assert body["tools"][0]["type"] == "function"
    assert body["options"] == {
        "temperature": 0.2,
        "top_p": 0.9,
        "num_predict": 128,
        "stop": ["END"],
        "seed": 7,
        "num_ctx": 8192,
    }
    assert body["keep_alive"] == "10m"
    assert body["think"] is False
    assert "parallel_tool_calls" not in body and "max_tokens" not in body
    head = ollama.heads[-1]
    assert head.startswith("POST /api/chat HTTP/1.1")
    assert "authorization" not in head.lower()


async def test_minimal_body_and_options_dict(provider: OllamaProvider, ollama: FakeOllama) -> None:
    await collect(provider, request())
    assert set(ollama.requests[-1].body) == {"model", "messages", "stream"}
    await collect(provider, request(parameters={"options": {"num_gpu": 0, "temperature": 1}}))
    assert ollama.requests[-1].body["options"] == {"num_gpu": 0, "temperature": 1}


# ----------------------------------------------------------------------------- options

TIME = ToolSpec(function=FunctionSpec(name="get_time"))
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


async def body_with(
    provider: OllamaProvider,
    ollama: FakeOllama,
    model: str = "qwen3:8b",
    parameters: dict[str, Any] | None = None,
    **options: Any,
) -> dict[str, Any]:
    req = ModelRequest(
        model=model,
        messages=[ChatMessage(role=Role.USER, content="Weather in Oslo?")],
        tools=[WEATHER, TIME],
        parameters=parameters or {},
        options=ModelOptions(**options),
    )
    await collect(provider, req)
    return ollama.requests[-1].body


@pytest.mark.parametrize(
    ("fmt", "wire"),
    [
        ({"type": "json_object"}, "json"),
        ({"type": "json_schema", "name": "weather", "schema": SCHEMA, "strict": True}, SCHEMA),
        ({"type": "text"}, None),
    ],
)
async def test_option_response_format(
    provider: OllamaProvider, ollama: FakeOllama, fmt: dict[str, Any], wire: Any
) -> None:
    body = await body_with(provider, ollama, response_format=fmt)
    assert body.get("format") == wire


@pytest.mark.parametrize(
    ("model", "effort", "think"),
    [
        ("qwen3:8b", "none", False),
        ("qwen3:8b", "minimal", True),
        ("qwen3:8b", "high", True),
        ("gpt-oss:20b", "none", False),
        ("gpt-oss:20b", "minimal", "low"),
        ("gpt-oss:20b", "low", "low"),
        ("gpt-oss:20b", "medium", "medium"),
        ("gpt-oss:120b", "xhigh", "high"),
    ],
)
async def test_option_reasoning_effort(
    provider: OllamaProvider, ollama: FakeOllama, model: str, effort: str, think: Any
) -> None:
    body = await body_with(provider, ollama, model, reasoning_effort=effort)
    assert body["think"] is think if isinstance(think, bool) else body["think"] == think


@pytest.mark.parametrize(
    ("choice", "names"),
    [
        ("auto", ["get_weather", "get_time"]),
        ("required", ["get_weather", "get_time"]),
        ("none", None),
        ({"type": "function", "name": "get_time"}, ["get_time"]),
        (
            {
                "type": "allowed_tools",
                "mode": "auto",
                "tools": [{"type": "function", "name": "get_weather"}],
            },
            ["get_weather"],
        ),
    ],
)
async def test_option_tool_choice_sends_the_tools_allowed(
    provider: OllamaProvider, ollama: FakeOllama, choice: Any, names: list[str] | None
) -> None:
    body = await body_with(provider, ollama, tool_choice=choice, parallel_tool_calls=False)
    sent = [tool["function"]["name"] for tool in body["tools"]] if "tools" in body else None
    assert sent == names
    assert "tool_choice" not in body and "parallel_tool_calls" not in body


async def test_options_lose_to_parameters(provider: OllamaProvider, ollama: FakeOllama) -> None:
    body = await body_with(
        provider,
        ollama,
        parameters={"format": "json", "think": "high"},
        response_format={"type": "json_schema", "name": "w", "schema": SCHEMA},
        reasoning_effort="none",
    )
    assert (body["format"], body["think"]) == ("json", "high")


async def test_no_options_no_fields(provider: OllamaProvider, ollama: FakeOllama) -> None:
    body = await body_with(provider, ollama, reasoning_summary="auto")
    assert set(body) == {"model", "messages", "stream", "tools"}


async def test_api_key_and_headers(ollama: FakeOllama) -> None:
    provider = OllamaProvider(ollama.base_url + "/", api_key="k-1", headers={"X-Team": "a"})
    try:
        await collect(provider, request())
        assert await provider.list_models() == []
    finally:
        await provider.aclose()
    for head in ollama.heads:
        assert "Authorization: Bearer k-1" in head and "X-Team: a" in head


# ------------------------------------------------------------------------------ images

#: A real 1x1 PNG (RGBA): its base64 data, and as a data URL.
PNG_BASE64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
PNG = f"data:image/png;base64,{PNG_BASE64}"
#: The first bytes of a JPEG (not a whole image: the adapter passes the data on unread).
JPEG_BASE64 = "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAgGBgcGBQg="


async def test_images_are_sent_as_raw_base64(provider: OllamaProvider, ollama: FakeOllama) -> None:
    req = ModelRequest(
        model="llava",
        messages=[
            ChatMessage(
                role=Role.USER,
                content="What is in these pictures?",
                images=[PNG, f"data:image/jpeg;base64,{JPEG_BASE64}"],
            ),
            ChatMessage(role=Role.ASSISTANT, content="A dot and a photo."),
            ChatMessage(role=Role.USER, content="Which is bigger?"),
        ],
    )
    _, acc = await collect(provider, req)
    assert acc.text == "Hi"
    assert ollama.requests[-1].body["messages"] == [
        {
            "role": "user",
            "content": "What is in these pictures?",
            "images": [PNG_BASE64, JPEG_BASE64],
        },
        {"role": "assistant", "content": "A dot and a photo."},
        {"role": "user", "content": "Which is bigger?"},  # no images: no images key
    ]


@pytest.mark.parametrize("url", ["https://images.example.test/cat.jpg", "http://10.0.0.1/a.png"])
async def test_an_image_address_is_refused_before_any_request(
    provider: OllamaProvider, ollama: FakeOllama, url: str
) -> None:
    req = request("What is this?")
    req.messages[0].images = [PNG, url]
    with pytest.raises(UpstreamError) as info:
        await collect(provider, req)
    error = info.value
    assert (error.code, error.status_code) == ("unsupported_image", 400)
    assert error.message == (
        "Ollama cannot fetch images from an address: give the image inline as a "
        "data: URL (data:image/png;base64,...) instead."
    )
    assert url not in error.message
    assert ollama.requests == [] and ollama.heads == []  # nothing was sent
    _, acc = await collect(provider, request())  # the adapter still works afterwards
    assert acc.text == "Hi"


async def test_an_image_address_in_an_earlier_message_is_refused_too(
    provider: OllamaProvider, ollama: FakeOllama
) -> None:
    req = ModelRequest(
        model="llava",
        messages=[
            ChatMessage(role=Role.USER, content="look", images=["https://x.test/a.png"]),
            ChatMessage(role=Role.ASSISTANT, content="A cat."),
            ChatMessage(role=Role.USER, content="and now?", images=[PNG]),
        ],
    )
    with pytest.raises(UpstreamError) as info:
        await collect(provider, req)
    assert info.value.code == "unsupported_image"
    assert ollama.heads == []


# ------------------------------------------------------------------------------ errors


async def test_error_line_after_some_text(provider: OllamaProvider, ollama: FakeOllama) -> None:
    ollama.answer(
        Answer(
            [
                text_line("Once "),
                text_line("upon"),
                b'{"error":"llama runner process has terminated"}\n',
            ]
        )
    )
    events: list[ModelEvent] = []
    error = await failure(provider, request(), events)
    assert error.code == "upstream_stream_error"
    assert "llama runner process has terminated" in error.message
    assert events == [TextPart("Once "), TextPart("upon")]


async def test_model_not_found(provider: OllamaProvider, ollama: FakeOllama) -> None:
    ollama.answer(
        Answer(
            [b'{"error":"model \\"llama3.2\\" not found, try pulling it first"}'],
            status=404,
            content_type="application/json; charset=utf-8",
        )
    )
    error = await failure(provider, request())
    assert error.code == "upstream_not_found"
    assert "HTTP 404" in error.message
    assert 'model "llama3.2" not found, try pulling it first' in error.message
    assert "ollama pull llama3.2" in error.message


@pytest.mark.parametrize(("status", "code"), [(401, "upstream_auth"), (500, "upstream_http_error")])
async def test_http_errors(
    provider: OllamaProvider, ollama: FakeOllama, status: int, code: str
) -> None:
    ollama.answer(Answer([b'{"error":"something broke"}'], status=status))
    error = await failure(provider, request())
    assert (error.code, f"HTTP {status}" in error.message) == (code, True)
    assert "something broke" in error.message and "ollama pull" not in error.message


@pytest.mark.parametrize("ending", ["end", "cut"])
async def test_truncated_body(
    provider: OllamaProvider, ollama: FakeOllama, ending: Literal["end", "cut"]
) -> None:
    ollama.answer(Answer([text_line("Half "), text_line("an answer")], ending=ending))
    events: list[ModelEvent] = []
    error = await failure(provider, request(), events)
    assert error.code == "upstream_truncated"
    assert events == [TextPart("Half "), TextPart("an answer")]


@pytest.mark.parametrize(
    "bad",
    [
        b"this is not json\n",
        b'["a list"]\n',
        b'{"message": "text", "done": false}\n',
        b'{"message": {"content": 5}, "done": false}\n',
        b'{"message": {"tool_calls": [{"function": {"name": 1}}]}, "done": false}\n',
        b'{"message": {"content": ""}, "done": true, "eval_count": "many"}\n',
    ],
)
async def test_malformed_line(provider: OllamaProvider, ollama: FakeOllama, bad: bytes) -> None:
    ollama.answer(Answer([text_line("ok"), bad, done_line()]))
    error = await failure(provider, request())
    assert error.code == "upstream_malformed"
    assert "Ollama server" in error.message


# ------------------------------------------------------------------------ cancellation


async def test_aclose_mid_stream_closes_the_connection(
    provider: OllamaProvider, ollama: FakeOllama
) -> None:
    ollama.answer(Answer([text_line("one "), text_line("two ")], ending="hold"))
    stream = provider.stream(request())
    assert await anext(stream) == TextPart("one ")
    assert await anext(stream) == TextPart("two ")
    assert ollama.open_connections == 1
    await stream.aclose()
    assert await wait_until(lambda: ollama.open_connections == 0, within=1.0)
    ollama.answer(Answer([text_line("again"), done_line()]))
    _, acc = await collect(provider, request())  # the adapter still works afterwards
    assert acc.text == "again"


async def test_aclose_leaves_nothing_open(ollama: FakeOllama) -> None:
    with no_resource_warnings():
        provider = OllamaProvider(ollama.base_url)
        await provider.aclose()  # never used: nothing to close
        _, acc = await collect(provider, request())
        await provider.aclose()
        assert acc.text == "Hi"
        del provider


# ------------------------------------------------------------------------------ models


async def test_list_models(provider: OllamaProvider, ollama: FakeOllama) -> None:
    ollama.tags = {
        "models": [
            {"name": "qwen3:8b", "model": "qwen3:8b", "size": 5225388164},
            {"name": "llama3.2:latest", "model": "llama3.2:latest", "size": 2019393189},
            {"size": 1},
        ]
    }
    assert await provider.list_models() == ["llama3.2:latest", "qwen3:8b"]
    assert ollama.heads[-1].startswith("GET /api/tags HTTP/1.1")


async def test_list_models_unreachable(ollama: FakeOllama) -> None:
    await ollama.aclose()
    provider = OllamaProvider(ollama.base_url, connect_timeout=2)
    with pytest.raises(UpstreamError) as info:
        await provider.list_models()
    assert info.value.code == "upstream_unreachable"
    await ollama.start()  # the fixture closes it again


# ------------------------------------------------------------------------------- lines


async def test_ndjson_lines_from_pieces_cut_anywhere() -> None:
    async def pieces() -> AsyncIterator[bytes]:
        for piece in (b'{"a"', b":1}\n\n{", b'"b":2}\r\n{"c"', b":3}"):
            yield piece

    lines = [item async for item in ndjson_lines(pieces())]
    assert [orjson.loads(item) for item in lines] == [{"a": 1}, {"b": 2}, {"c": 3}]
