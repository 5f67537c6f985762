"""``ModelOptions`` on the wire: the fields each adapter sends for each option, read from the
bodies the fake upstreams received over real loopback sockets. Ollama's are in
``test_ollama.py`` (its scripted server lives there), the demo model's in ``test_demo.py``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from parley.providers.anthropic import AnthropicProvider
from parley.providers.base import ChatMessage, ModelOptions, ModelRequest
from parley.providers.gemini import GeminiProvider
from parley.providers.openai_chat import OpenAIChatProvider
from parley.providers.openai_responses import OpenAIResponsesProvider
from parley.providers.options import ToolRule, offered_tools, tool_rule
from parley.testing.fake_anthropic import FakeAnthropic
from parley.testing.fake_gemini import FakeGemini, Script
from parley.testing.fake_responses import FakeResponses
from parley.testing.fake_upstream import FakeUpstream
from parley.types import FunctionSpec, Role, ToolSpec

WEATHER = ToolSpec(
    function=FunctionSpec(
        name="get_weather",
        parameters={"type": "object", "properties": {"city": {"type": "string"}}},
    )
)
TIME = ToolSpec(function=FunctionSpec(name="get_time"))
TOOLS = [WEATHER, TIME]
SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "temperature": {"type": "number"}},
    "required": ["city", "temperature"],
    "additionalProperties": False,
}
JSON_SCHEMA = {
    "type": "json_schema",
    "name": "weather",
    "description": "A weather report",
    "schema": SCHEMA,
    "strict": True,
}
ONE_FUNCTION = {"type": "function", "name": "get_time"}
ALLOWED_AUTO = {
    "type": "allowed_tools",
    "mode": "auto",
    "tools": [{"type": "function", "name": "get_time"}],
}
ALLOWED_BOTH = {
    "type": "allowed_tools",
    "mode": "required",
    "tools": [
        {"type": "function", "name": "get_time"},
        {"type": "function", "name": "get_weather"},
    ],
}


def request(
    model: str,
    *,
    tools: list[ToolSpec] | None = None,
    parameters: dict[str, Any] | None = None,
    **options: Any,
) -> ModelRequest:
    return ModelRequest(
        model=model,
        messages=[ChatMessage(role=Role.USER, content="Weather in Oslo?")],
        tools=TOOLS if tools is None else tools,
        parameters=parameters or {},
        options=ModelOptions(**options),
    )


async def drain(provider: Any, req: ModelRequest) -> None:
    async for _event in provider.stream(req):
        pass


# ------------------------------------------------------------------------ tool choice


@pytest.mark.parametrize(
    ("choice", "rule"),
    [
        (None, None),
        ("auto", ToolRule("auto")),
        ("none", ToolRule("none")),
        ("required", ToolRule("required")),
        (ONE_FUNCTION, ToolRule("required", ("get_time",))),
        (ALLOWED_AUTO, ToolRule("auto", ("get_time",))),
        (ALLOWED_BOTH, ToolRule("required", ("get_time", "get_weather"))),
        # Shapes the neutral form does not have: the provider's default.
        ("any", None),
        ({"type": "function", "function": {"name": "get_time"}}, None),
        ({"type": "allowed_tools", "mode": "none", "tools": []}, None),
        ({"type": "file_search"}, None),
    ],
)
def test_tool_rule(choice: Any, rule: ToolRule | None) -> None:
    assert tool_rule(choice) == rule


def test_allowed_tools_skip_other_tool_types() -> None:
    choice = {
        "type": "allowed_tools",
        "mode": "auto",
        "tools": [{"type": "mcp", "server_label": "x"}, {"type": "function", "name": "get_time"}],
    }
    assert tool_rule(choice) == ToolRule("auto", ("get_time",))


@pytest.mark.parametrize(
    ("choice", "offered"),
    [
        (None, TOOLS),
        ("required", TOOLS),
        ("none", []),
        (ONE_FUNCTION, [TIME]),
        (ALLOWED_BOTH, TOOLS),
    ],
)
def test_offered_tools(choice: Any, offered: list[ToolSpec]) -> None:
    assert offered_tools(TOOLS, tool_rule(choice)) == offered


# ------------------------------------------------------------------- Chat Completions


async def chat_body(provider: OpenAIChatProvider, fake: FakeUpstream, req: ModelRequest) -> Any:
    await drain(provider, req)
    return fake.requests[-1]


@pytest.mark.parametrize(
    ("choice", "wire"),
    [
        ("auto", "auto"),
        ("none", "none"),
        ("required", "required"),
        (ONE_FUNCTION, {"type": "function", "function": {"name": "get_time"}}),
        (
            ALLOWED_BOTH,
            {
                "type": "allowed_tools",
                "allowed_tools": {
                    "mode": "required",
                    "tools": [
                        {"type": "function", "function": {"name": "get_time"}},
                        {"type": "function", "function": {"name": "get_weather"}},
                    ],
                },
            },
        ),
    ],
)
async def test_chat_tool_choice(
    provider: OpenAIChatProvider, fake: FakeUpstream, choice: Any, wire: Any
) -> None:
    body = await chat_body(provider, fake, request("text:1", tool_choice=choice))
    assert body["tool_choice"] == wire
    assert "parallel_tool_calls" not in body


@pytest.mark.parametrize(
    ("fmt", "wire"),
    [
        ({"type": "text"}, {"type": "text"}),
        ({"type": "json_object"}, {"type": "json_object"}),
        (
            JSON_SCHEMA,
            {
                "type": "json_schema",
                "json_schema": {
                    "name": "weather",
                    "description": "A weather report",
                    "schema": SCHEMA,
                    "strict": True,
                },
            },
        ),
        (
            {"type": "json_schema", "name": "weather", "schema": SCHEMA},
            {"type": "json_schema", "json_schema": {"name": "weather", "schema": SCHEMA}},
        ),
    ],
)
async def test_chat_response_format(
    provider: OpenAIChatProvider, fake: FakeUpstream, fmt: dict[str, Any], wire: Any
) -> None:
    body = await chat_body(provider, fake, request("text:1", tools=[], response_format=fmt))
    assert body["response_format"] == wire


async def test_chat_parallel_calls_and_reasoning_effort(
    provider: OpenAIChatProvider, fake: FakeUpstream
) -> None:
    req = request("text:1", parallel_tool_calls=False, reasoning_effort="high")
    body = await chat_body(provider, fake, req)
    assert body["parallel_tool_calls"] is False
    assert body["reasoning_effort"] == "high"
    assert "tool_choice" not in body
    # A reasoning summary has no Chat Completions field.
    body = await chat_body(provider, fake, request("text:1", reasoning_summary="auto"))
    assert not {"reasoning", "reasoning_summary", "summary"} & set(body)


async def test_chat_tool_fields_only_with_tools(
    provider: OpenAIChatProvider, fake: FakeUpstream
) -> None:
    req = request("text:1", tools=[], tool_choice="required", parallel_tool_calls=True)
    body = await chat_body(provider, fake, req)
    assert not {"tools", "tool_choice", "parallel_tool_calls"} & set(body)


async def test_chat_parameters_win(provider: OpenAIChatProvider, fake: FakeUpstream) -> None:
    explicit = {
        "tool_choice": "none",
        "parallel_tool_calls": True,
        "response_format": {"type": "json_object"},
        "reasoning_effort": "low",
    }
    req = request(
        "text:1",
        parameters=explicit,
        tool_choice="required",
        parallel_tool_calls=False,
        response_format=JSON_SCHEMA,
        reasoning_effort="high",
    )
    body = await chat_body(provider, fake, req)
    assert {key: body[key] for key in explicit} == explicit


async def test_chat_without_options_sends_nothing_more(
    provider: OpenAIChatProvider, fake: FakeUpstream
) -> None:
    body = await chat_body(provider, fake, request("text:1"))
    assert set(body) == {"model", "messages", "stream", "stream_options", "tools"}


# ---------------------------------------------------------------------- Responses API


@pytest.fixture
async def responses() -> AsyncIterator[FakeResponses]:
    async with FakeResponses() as server:
        yield server


@pytest.fixture
async def responses_provider(responses: FakeResponses) -> AsyncIterator[OpenAIResponsesProvider]:
    adapter = OpenAIResponsesProvider(responses.base_url, api_key="sk-test", read_timeout=10)
    yield adapter
    await adapter.aclose()


async def responses_body(
    provider: OpenAIResponsesProvider, fake: FakeResponses, req: ModelRequest
) -> Any:
    await drain(provider, req)
    return fake.requests[-1].body


@pytest.mark.parametrize(
    ("choice", "wire"),
    [
        ("auto", "auto"),
        ("none", "none"),
        ("required", "required"),
        (ONE_FUNCTION, {"type": "function", "name": "get_time"}),
        (
            ALLOWED_AUTO,
            {
                "type": "allowed_tools",
                "mode": "auto",
                "tools": [{"type": "function", "name": "get_time"}],
            },
        ),
    ],
)
async def test_responses_tool_choice_and_parallel_calls(
    responses_provider: OpenAIResponsesProvider, responses: FakeResponses, choice: Any, wire: Any
) -> None:
    req = request("gpt-4.1", tool_choice=choice, parallel_tool_calls=False)
    body = await responses_body(responses_provider, responses, req)
    assert body["tool_choice"] == wire
    assert body["parallel_tool_calls"] is False
    body = await responses_body(
        responses_provider, responses, request("gpt-4.1", tools=[], tool_choice=choice)
    )
    assert "tool_choice" not in body and "tools" not in body


@pytest.mark.parametrize(
    ("fmt", "wire"),
    [
        ({"type": "text"}, {"type": "text"}),
        ({"type": "json_object"}, {"type": "json_object"}),
        (JSON_SCHEMA, JSON_SCHEMA),
    ],
)
async def test_responses_text_format(
    responses_provider: OpenAIResponsesProvider,
    responses: FakeResponses,
    fmt: dict[str, Any],
    wire: Any,
) -> None:
    body = await responses_body(
        responses_provider, responses, request("gpt-4.1", response_format=fmt)
    )
    assert body["text"] == {"format": wire}


async def test_responses_reasoning(
    responses_provider: OpenAIResponsesProvider, responses: FakeResponses
) -> None:
    req = request("gpt-5", reasoning_effort="minimal", reasoning_summary="detailed")
    body = await responses_body(responses_provider, responses, req)
    assert body["reasoning"] == {"effort": "minimal", "summary": "detailed"}
    # A deployment whose name says nothing is taken as a reasoning model once asked to reason.
    body = await responses_body(
        responses_provider, responses, request("my-deployment", reasoning_effort="low")
    )
    assert body["reasoning"] == {"effort": "low"}
    assert body["include"] == ["reasoning.encrypted_content"]


async def test_responses_parameters_win_inside_text_and_reasoning(
    responses_provider: OpenAIResponsesProvider, responses: FakeResponses
) -> None:
    req = request(
        "gpt-5",
        parameters={
            "text": {"verbosity": "low"},
            "reasoning": {"effort": "high"},
            "tool_choice": "none",
            "parallel_tool_calls": True,
        },
        response_format={"type": "json_object"},
        reasoning_effort="low",
        reasoning_summary="auto",
        tool_choice="required",
        parallel_tool_calls=False,
    )
    body = await responses_body(responses_provider, responses, req)
    assert body["text"] == {"format": {"type": "json_object"}, "verbosity": "low"}
    assert body["reasoning"] == {"effort": "high", "summary": "auto"}
    assert body["tool_choice"] == "none"
    assert body["parallel_tool_calls"] is True


async def test_responses_without_options_sends_nothing_more(
    responses_provider: OpenAIResponsesProvider, responses: FakeResponses
) -> None:
    body = await responses_body(responses_provider, responses, request("gpt-4.1"))
    assert set(body) == {"model", "input", "stream", "store", "tools"}


# ---------------------------------------------------------------------------- Anthropic


@pytest.fixture
async def anthropic() -> AsyncIterator[FakeAnthropic]:
    async with FakeAnthropic() as server:
        yield server


@pytest.fixture
async def anthropic_provider(anthropic: FakeAnthropic) -> AsyncIterator[AnthropicProvider]:
    adapter = AnthropicProvider(anthropic.base_url, api_key="sk-ant-test", read_timeout=10)
    yield adapter
    await adapter.aclose()


async def anthropic_body(
    provider: AnthropicProvider, fake: FakeAnthropic, req: ModelRequest
) -> Any:
    await drain(provider, req)
    return fake.requests[-1].body


@pytest.mark.parametrize(
    ("options", "wire"),
    [
        ({"tool_choice": "auto"}, {"type": "auto"}),
        ({"tool_choice": "none"}, {"type": "none"}),
        ({"tool_choice": "required"}, {"type": "any"}),
        ({"tool_choice": ONE_FUNCTION}, {"type": "tool", "name": "get_time"}),
        # No allowed list in the API: every tool stays callable, in the choice's mode...
        ({"tool_choice": ALLOWED_AUTO}, {"type": "auto"}),
        ({"tool_choice": ALLOWED_BOTH}, {"type": "any"}),
        # ... but a required list of one is that one tool.
        (
            {"tool_choice": {**ALLOWED_AUTO, "mode": "required"}},
            {"type": "tool", "name": "get_time"},
        ),
        ({"parallel_tool_calls": False}, {"type": "auto", "disable_parallel_tool_use": True}),
        (
            {"tool_choice": "required", "parallel_tool_calls": False},
            {"type": "any", "disable_parallel_tool_use": True},
        ),
        (
            {"tool_choice": ONE_FUNCTION, "parallel_tool_calls": False},
            {"type": "tool", "name": "get_time", "disable_parallel_tool_use": True},
        ),
        ({"tool_choice": "none", "parallel_tool_calls": False}, {"type": "none"}),
    ],
)
async def test_anthropic_tool_choice(
    anthropic_provider: AnthropicProvider,
    anthropic: FakeAnthropic,
    options: dict[str, Any],
    wire: Any,
) -> None:
    body = await anthropic_body(
        anthropic_provider, anthropic, request("claude-sonnet-4-5", **options)
    )
    assert body["tool_choice"] == wire
    assert [tool["name"] for tool in body["tools"]] == ["get_weather", "get_time"]


async def test_anthropic_tool_choice_only_with_tools(
    anthropic_provider: AnthropicProvider, anthropic: FakeAnthropic
) -> None:
    req = request("claude-sonnet-4-5", tools=[], tool_choice="required", parallel_tool_calls=False)
    body = await anthropic_body(anthropic_provider, anthropic, req)
    assert "tool_choice" not in body and "tools" not in body
    body = await anthropic_body(
        anthropic_provider, anthropic, request("claude-sonnet-4-5", parallel_tool_calls=True)
    )
    assert "tool_choice" not in body


@pytest.mark.parametrize(
    ("effort", "budget", "max_tokens"),
    [("low", 1024, 4096), ("medium", 8192, 12288), ("high", 16384, 20480), ("xhigh", 24576, 28672)],
)
async def test_anthropic_reasoning_effort_is_a_thinking_budget(
    anthropic_provider: AnthropicProvider,
    anthropic: FakeAnthropic,
    effort: str,
    budget: int,
    max_tokens: int,
) -> None:
    req = request("claude-sonnet-4-5", reasoning_effort=effort, reasoning_summary="auto")
    body = await anthropic_body(anthropic_provider, anthropic, req)
    assert body["thinking"] == {"type": "enabled", "budget_tokens": budget}
    assert body["max_tokens"] == max_tokens
    assert "output_config" not in body and "tool_choice" not in body


async def test_anthropic_max_tokens_given(
    anthropic_provider: AnthropicProvider, anthropic: FakeAnthropic
) -> None:
    # Room enough: kept as given; none: raised by the budget.
    req = request(
        "claude-opus-4-1-20250805", parameters={"max_tokens": 32000}, reasoning_effort="high"
    )
    assert (await anthropic_body(anthropic_provider, anthropic, req))["max_tokens"] == 32000
    req = request(
        "claude-3-7-sonnet-20250219", parameters={"max_tokens": 1000}, reasoning_effort="low"
    )
    body = await anthropic_body(anthropic_provider, anthropic, req)
    assert body["max_tokens"] == 2024
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 1024}


@pytest.mark.parametrize(
    ("model", "effort", "wire"),
    [
        ("claude-opus-4-6", "low", "low"),
        ("claude-sonnet-4-6", "medium", "medium"),
        ("claude-opus-4-7", "xhigh", "high"),
        ("claude-opus-5", "high", "high"),
    ],
)
async def test_anthropic_adaptive_thinking_from_claude_4_6(
    anthropic_provider: AnthropicProvider,
    anthropic: FakeAnthropic,
    model: str,
    effort: str,
    wire: str,
) -> None:
    body = await anthropic_body(
        anthropic_provider, anthropic, request(model, reasoning_effort=effort)
    )
    assert body["thinking"] == {"type": "adaptive"}
    assert body["output_config"] == {"effort": wire}
    assert body["max_tokens"] == 4096


@pytest.mark.parametrize(
    ("options", "parameters"),
    [
        ({"reasoning_effort": "none"}, {}),
        ({"reasoning_effort": "minimal"}, {}),
        # The API refuses thinking with a forced tool call.
        ({"reasoning_effort": "high", "tool_choice": "required"}, {}),
        ({"reasoning_effort": "high", "tool_choice": ONE_FUNCTION}, {}),
        ({"reasoning_effort": "high"}, {"tool_choice": {"type": "any"}}),
    ],
)
async def test_anthropic_no_thinking(
    anthropic_provider: AnthropicProvider,
    anthropic: FakeAnthropic,
    options: dict[str, Any],
    parameters: dict[str, Any],
) -> None:
    req = request("claude-sonnet-4-5", parameters=parameters, **options)
    body = await anthropic_body(anthropic_provider, anthropic, req)
    assert "thinking" not in body and "output_config" not in body
    assert body["max_tokens"] == 4096


async def test_anthropic_parameters_win(
    anthropic_provider: AnthropicProvider, anthropic: FakeAnthropic
) -> None:
    explicit = {
        "tool_choice": {"type": "auto"},
        "thinking": {"type": "enabled", "budget_tokens": 2000},
        "max_tokens": 3000,
    }
    req = request(
        "claude-sonnet-4-5", parameters=explicit, tool_choice="none", reasoning_effort="high"
    )
    body = await anthropic_body(anthropic_provider, anthropic, req)
    assert {key: body[key] for key in explicit} == explicit
    req = request(
        "claude-opus-4-6", parameters={"output_config": {"effort": "max"}}, reasoning_effort="low"
    )
    body = await anthropic_body(anthropic_provider, anthropic, req)
    assert body["thinking"] == {"type": "adaptive"}
    assert body["output_config"] == {"effort": "max"}


async def test_anthropic_sends_no_response_format(
    anthropic_provider: AnthropicProvider, anthropic: FakeAnthropic
) -> None:
    plain = await anthropic_body(anthropic_provider, anthropic, request("claude-sonnet-4-5"))
    req = request("claude-sonnet-4-5", response_format=JSON_SCHEMA, reasoning_summary="concise")
    assert await anthropic_body(anthropic_provider, anthropic, req) == plain
    assert set(plain) == {"max_tokens", "model", "messages", "stream", "tools"}


# ------------------------------------------------------------------------------- Gemini

GEMINI_MODELS = (
    "gemini-2.5-flash",
    "gemini-2.5-pro",
    "gemini-3-pro-preview",
    "gemini-3-flash-preview",
)
ANSWER = {
    "candidates": [
        {
            "content": {"role": "model", "parts": [{"text": "ok"}]},
            "finishReason": "STOP",
            "index": 0,
        }
    ]
}


@pytest.fixture
async def gemini() -> AsyncIterator[FakeGemini]:
    async with FakeGemini() as server:
        for model in GEMINI_MODELS:
            server.scripts[model] = Script(events=[ANSWER])
        yield server


@pytest.fixture
async def gemini_provider(gemini: FakeGemini) -> AsyncIterator[GeminiProvider]:
    adapter = GeminiProvider(gemini.base_url, api_key="gm-test", read_timeout=10)
    yield adapter
    await adapter.aclose()


async def gemini_body(provider: GeminiProvider, fake: FakeGemini, req: ModelRequest) -> Any:
    await drain(provider, req)
    return fake.requests[-1].body


def declared(body: Any) -> list[str]:
    return [d["name"] for d in body["tools"][0]["functionDeclarations"]]


@pytest.mark.parametrize(
    ("choice", "calling", "names"),
    [
        ("auto", {"mode": "AUTO"}, ["get_weather", "get_time"]),
        ("none", {"mode": "NONE"}, ["get_weather", "get_time"]),
        ("required", {"mode": "ANY"}, ["get_weather", "get_time"]),
        (
            ONE_FUNCTION,
            {"mode": "ANY", "allowedFunctionNames": ["get_time"]},
            ["get_weather", "get_time"],
        ),
        (
            ALLOWED_BOTH,
            {"mode": "ANY", "allowedFunctionNames": ["get_time", "get_weather"]},
            ["get_weather", "get_time"],
        ),
        # AUTO takes no allowedFunctionNames: only the allowed tools are declared.
        (ALLOWED_AUTO, {"mode": "AUTO"}, ["get_time"]),
    ],
)
async def test_gemini_tool_choice(
    gemini_provider: GeminiProvider,
    gemini: FakeGemini,
    choice: Any,
    calling: dict[str, Any],
    names: list[str],
) -> None:
    req = request("gemini-2.5-flash", tool_choice=choice, parallel_tool_calls=False)
    body = await gemini_body(gemini_provider, gemini, req)
    assert body["toolConfig"] == {"functionCallingConfig": calling}
    assert declared(body) == names


async def test_gemini_tool_config_only_with_tools(
    gemini_provider: GeminiProvider, gemini: FakeGemini
) -> None:
    req = request("gemini-2.5-flash", tools=[], tool_choice="required")
    assert set(await gemini_body(gemini_provider, gemini, req)) == {"contents"}
    # None of the tools offered is allowed: none is declared.
    req = request("gemini-2.5-flash", tools=[WEATHER], tool_choice=ALLOWED_AUTO)
    assert set(await gemini_body(gemini_provider, gemini, req)) == {"contents"}
    # Parallel calls have no switch.
    req = request("gemini-2.5-flash", parallel_tool_calls=False)
    assert set(await gemini_body(gemini_provider, gemini, req)) == {"contents", "tools"}


@pytest.mark.parametrize(
    ("fmt", "config"),
    [
        ({"type": "text"}, None),
        ({"type": "json_object"}, {"responseMimeType": "application/json"}),
        (JSON_SCHEMA, {"responseMimeType": "application/json", "responseJsonSchema": SCHEMA}),
    ],
)
async def test_gemini_response_format(
    gemini_provider: GeminiProvider,
    gemini: FakeGemini,
    fmt: dict[str, Any],
    config: dict[str, Any] | None,
) -> None:
    req = request("gemini-2.5-flash", response_format=fmt)
    assert (await gemini_body(gemini_provider, gemini, req)).get("generationConfig") == config


@pytest.mark.parametrize(
    ("model", "effort", "thinking"),
    [
        ("gemini-2.5-flash", "none", {"thinkingBudget": 0}),
        ("gemini-2.5-flash", "minimal", {"thinkingBudget": 1024}),
        ("gemini-2.5-flash", "low", {"thinkingBudget": 1024}),
        ("gemini-2.5-flash", "medium", {"thinkingBudget": 8192}),
        ("gemini-2.5-flash", "high", {"thinkingBudget": 24576}),
        ("gemini-2.5-flash", "xhigh", {"thinkingBudget": 24576}),
        ("gemini-2.5-pro", "none", {"thinkingBudget": 128}),
        ("gemini-2.5-pro", "high", {"thinkingBudget": 24576}),
        ("gemini-3-flash-preview", "none", {"thinkingLevel": "minimal"}),
        ("gemini-3-flash-preview", "medium", {"thinkingLevel": "medium"}),
        ("gemini-3-flash-preview", "xhigh", {"thinkingLevel": "high"}),
        ("gemini-3-pro-preview", "minimal", {"thinkingLevel": "low"}),
        ("gemini-3-pro-preview", "low", {"thinkingLevel": "low"}),
        ("gemini-3-pro-preview", "medium", {"thinkingLevel": "high"}),
        ("gemini-3-pro-preview", "high", {"thinkingLevel": "high"}),
    ],
)
async def test_gemini_reasoning_effort(
    gemini_provider: GeminiProvider,
    gemini: FakeGemini,
    model: str,
    effort: str,
    thinking: dict[str, Any],
) -> None:
    body = await gemini_body(gemini_provider, gemini, request(model, reasoning_effort=effort))
    assert body["generationConfig"] == {"thinkingConfig": thinking}


async def test_gemini_reasoning_summary_includes_thoughts(
    gemini_provider: GeminiProvider, gemini: FakeGemini
) -> None:
    req = request("gemini-2.5-flash", reasoning_summary="auto")
    body = await gemini_body(gemini_provider, gemini, req)
    assert body["generationConfig"] == {"thinkingConfig": {"includeThoughts": True}}
    req = request("gemini-3-pro-preview", reasoning_effort="high", reasoning_summary="detailed")
    body = await gemini_body(gemini_provider, gemini, req)
    assert body["generationConfig"]["thinkingConfig"] == {
        "thinkingLevel": "high",
        "includeThoughts": True,
    }


async def test_gemini_parameters_win(gemini_provider: GeminiProvider, gemini: FakeGemini) -> None:
    req = request(
        "gemini-2.5-flash",
        parameters={
            "thinking_config": {"thinkingBudget": 512},
            "response_mime_type": "text/x.enum",
            "temperature": 0.5,
        },
        response_format=JSON_SCHEMA,
        reasoning_effort="high",
        reasoning_summary="auto",
    )
    body = await gemini_body(gemini_provider, gemini, req)
    assert body["generationConfig"] == {
        "thinkingConfig": {"thinkingBudget": 512},
        "responseMimeType": "text/x.enum",
        "temperature": 0.5,
    }


async def test_gemini_without_options_sends_nothing_more(
    gemini_provider: GeminiProvider, gemini: FakeGemini
) -> None:
    body = await gemini_body(gemini_provider, gemini, request("gemini-2.5-flash"))
    assert set(body) == {"contents", "tools"}
